package store

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
)

// Payload is a message as stored after normalisation (lifecycle.md §3): the
// client's add-messages item with null keys removed, `from` (never
// `from_addr`), resolved tenant_id, integer priority and unknown keys dropped.
// The JSON names are the wire contract's.
type Payload struct {
	ID          string            `json:"id"`
	TenantID    string            `json:"tenant_id"`
	AccountID   string            `json:"account_id"`
	From        string            `json:"from"`
	To          []string          `json:"to"`
	Cc          []string          `json:"cc,omitempty"`
	Bcc         []string          `json:"bcc,omitempty"`
	ReplyTo     string            `json:"reply_to,omitempty"`
	ReturnPath  string            `json:"return_path,omitempty"`
	Subject     string            `json:"subject"`
	Body        string            `json:"body"`
	ContentType string            `json:"content_type,omitempty"` // "html" or "plain"
	BodyText    string            `json:"body_text,omitempty"`    // text/plain alternative of an html body
	Headers     map[string]string `json:"headers,omitempty"`      // values already rendered as text
	MessageID   string            `json:"message_id,omitempty"`
	Attachments []Attachment      `json:"attachments,omitempty"`
	Priority    int               `json:"priority"`
	DeferredTS  *int64            `json:"deferred_ts,omitempty"` // Unix seconds
	BatchCode   string            `json:"batch_code,omitempty"`
	// Raw is a complete RFC 5322 message relayed as submitted instead of one
	// built from subject, body and attachments; RawEncoding "base64" when
	// its bytes are not UTF-8 text.
	Raw         string `json:"raw,omitempty"`
	RawEncoding string `json:"raw_encoding,omitempty"`
	// Suppressed are recipients (lower-cased addresses) on the tenant's
	// suppression list at enqueue: kept in the headers, left out of RCPT TO.
	Suppressed []string `json:"suppressed,omitempty"`

	// ToText, CcText and BccText keep a recipient field the client gave as
	// one (comma-separated) string, so the stored payload, and GET
	// /messages, echo it as submitted while To, Cc and Bcc hold the
	// addresses. "" = given as a list (or not at all).
	ToText, CcText, BccText string `json:"-"`
}

// payloadFields is Payload without its JSON methods.
type payloadFields Payload

// MarshalJSON writes a recipient field given as text back as that text.
func (p Payload) MarshalJSON() ([]byte, error) {
	if p.ToText == "" && p.CcText == "" && p.BccText == "" {
		return json.Marshal(payloadFields(p))
	}
	return json.Marshal(struct {
		payloadFields
		To  any `json:"to"`
		Cc  any `json:"cc,omitempty"`
		Bcc any `json:"bcc,omitempty"`
	}{payloadFields(p), recipientsJSON(p.To, p.ToText, true), recipientsJSON(p.Cc, p.CcText, false),
		recipientsJSON(p.Bcc, p.BccText, false)})
}

// recipientsJSON is a recipient field's stored form; nil omits it.
func recipientsJSON(list []string, text string, always bool) any {
	switch {
	case text != "":
		return text
	case len(list) > 0 || always:
		return list
	}
	return nil
}

// UnmarshalJSON reads a recipient field stored as a string or a list.
func (p *Payload) UnmarshalJSON(b []byte) error {
	aux := struct {
		*payloadFields
		To  json.RawMessage `json:"to"`
		Cc  json.RawMessage `json:"cc"`
		Bcc json.RawMessage `json:"bcc"`
	}{payloadFields: (*payloadFields)(p)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	var err error
	if p.To, p.ToText, err = decodeRecipients(aux.To); err != nil {
		return fmt.Errorf("to: %w", err)
	}
	if p.Cc, p.CcText, err = decodeRecipients(aux.Cc); err != nil {
		return fmt.Errorf("cc: %w", err)
	}
	if p.Bcc, p.BccText, err = decodeRecipients(aux.Bcc); err != nil {
		return fmt.Errorf("bcc: %w", err)
	}
	return nil
}

func decodeRecipients(raw json.RawMessage) ([]string, string, error) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || bytes.Equal(raw, []byte("null")):
		return nil, "", nil
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, "", err
		}
		return SplitAddresses(s), s, nil
	}
	var list []string
	err := json.Unmarshal(raw, &list)
	return list, "", err
}

// SplitAddresses splits a comma-separated address list, keeping commas inside
// quoted display names and angle brackets, and drops blank entries.
func SplitAddresses(s string) []string {
	var out []string
	inQuote, inAngle, escaped := false, false, false
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case escaped:
			escaped = false
		case c == '\\' && inQuote:
			escaped = true
		case c == '"':
			inQuote = !inQuote
		case c == '<' && !inQuote:
			inAngle = true
		case c == '>' && !inQuote:
			inAngle = false
		case c == ',' && !inQuote && !inAngle:
			if a := strings.TrimSpace(s[start:i]); a != "" {
				out = append(out, a)
			}
			start = i + 1
		}
	}
	if a := strings.TrimSpace(s[start:]); a != "" {
		out = append(out, a)
	}
	return out
}

// RawBytes decodes Raw.
func (p Payload) RawBytes() ([]byte, error) {
	if p.RawEncoding == "base64" {
		return base64.StdEncoding.DecodeString(p.Raw)
	}
	return []byte(p.Raw), nil
}

// Attachment is one attachment reference (api.md §3.1, attachments.md).
type Attachment struct {
	Filename    string      `json:"filename"`
	StoragePath string      `json:"storage_path"`
	MimeType    string      `json:"mime_type,omitempty"`
	FetchMode   string      `json:"fetch_mode,omitempty"` // endpoint, http_url, base64, filesystem; "" = detect
	ContentMD5  string      `json:"content_md5,omitempty"`
	Auth        *ClientAuth `json:"auth,omitempty"`
}

// DecodePayload parses a stored payload.
func DecodePayload(raw json.RawMessage) (Payload, error) {
	var p Payload
	err := json.Unmarshal(raw, &p)
	return p, err
}
