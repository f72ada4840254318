package store

import (
	"context"
	"encoding/json"
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

// Waker is implemented by drivers whose instances can wake each other
// (PostgreSQL LISTEN/NOTIFY). EnqueueBatch and Activate signal it themselves.
type Waker interface {
	// SignalWork wakes every instance listening on this store (run-now).
	SignalWork(ctx context.Context) error
	// Listen calls wake whenever any instance signals work, until ctx ends.
	Listen(ctx context.Context, wake func()) error
}
