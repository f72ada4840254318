package api

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/mailproxy/mailproxy/internal/auth"
	"github.com/mailproxy/mailproxy/internal/store"
)

// Per-message limits (api.md §3.1 [better]).
const (
	maxIDLen          = 256
	maxBatchCodeLen   = 64
	maxRecipients     = 1000
	maxAttachments    = 100
	maxHeaders        = 100
	maxFilenameLen    = 255
	maxIdempotencyLen = 256
)

// Per-item reasons (api.md §3.3, §3.4).
const (
	reasonMissingID        = "missing id"
	reasonMissingTenant    = "missing tenant_id"
	reasonMissingAccount   = "missing account_id"
	reasonMissingFrom      = "missing from"
	reasonMissingTo        = "missing to"
	reasonMissingSubject   = "missing subject"
	reasonInvalidAddress   = "invalid address: "
	reasonAlreadySent      = "already sent"
	reasonSendingNow       = "sending in progress"
	reasonAccountNotFound  = "account not found for tenant"
	reasonHeaderNotAllowed = "header not allowed: "
	reasonSuppressed       = "suppressed: "
	idempotencyHeader      = "Idempotency-Key"
	idempotencyReplayed    = "Idempotent-Replayed"
	detailIdempotencyBody  = "Idempotency-Key already used with a different request body"
	detailIdempotencyStill = "A request with this Idempotency-Key is in progress"
)

// priorityLabels maps the contract's labels to priorities (lifecycle.md §4).
var priorityLabels = map[string]int{
	"immediate": store.PriorityImmediate, "high": store.PriorityHigh,
	"medium": store.PriorityMedium, "low": store.PriorityLow,
}

var priorityLabelList = []string{"immediate", "high", "medium", "low"}

var fetchModes = []string{"endpoint", "http_url", "base64", "filesystem"}

var md5Pattern = regexp.MustCompile(`^[a-fA-F0-9]{32}$`)

// attachmentKeys are the only keys an attachment may have (extra_forbidden).
var attachmentKeys = map[string]bool{
	"filename": true, "storage_path": true, "mime_type": true,
	"fetch_mode": true, "content_md5": true, "auth": true,
}

// Documentation types: the shapes of add-messages as huma describes them.

// AddMessagesRequest is the body of POST /commands/add-messages.
type AddMessagesRequest struct {
	_               struct{}      `additionalProperties:"true"`
	Messages        []MessageItem `json:"messages" nullable:"false" doc:"messages to enqueue (at most GMP_MAX_ENQUEUE_BATCH)"`
	DefaultPriority *Priority     `json:"default_priority,omitempty" doc:"priority of messages without their own"`
}

// MessageItem is one message of add-messages (api.md §3.1). Unknown keys are ignored.
type MessageItem struct {
	_           struct{}               `additionalProperties:"true"`
	ID          string                 `json:"id" maxLength:"256" doc:"client id, unique per tenant"`
	TenantID    *string                `json:"tenant_id,omitempty" doc:"omitted: the key's tenant, or default with the admin token"`
	AccountID   string                 `json:"account_id"`
	From        string                 `json:"from,omitempty" doc:"From header and default envelope sender; display name allowed (alias from_addr); required unless raw"`
	FromAddr    string                 `json:"from_addr,omitempty" doc:"alias of from"`
	To          Recipients             `json:"to,omitempty" doc:"required unless raw"`
	Cc          *Recipients            `json:"cc,omitempty"`
	Bcc         *Recipients            `json:"bcc,omitempty"`
	ReplyTo     string                 `json:"reply_to,omitempty"`
	ReturnPath  string                 `json:"return_path,omitempty" doc:"envelope sender only, never a header"`
	Subject     string                 `json:"subject,omitempty" minLength:"1" doc:"required unless raw"`
	Body        string                 `json:"body,omitempty" default:""`
	ContentType string                 `json:"content_type,omitempty" default:"plain" doc:"html for text/html, else text/plain"`
	BodyText    string                 `json:"body_text,omitempty" doc:"text/plain alternative of an html body (default: generated from the HTML)"`
	Headers     map[string]HeaderValue `json:"headers,omitempty" maxProperties:"100" doc:"extra headers; null values skipped"`
	MessageID   string                 `json:"message_id,omitempty" doc:"Message-ID, verbatim"`
	Attachments []AttachmentItem       `json:"attachments,omitempty" maxItems:"100"`
	Priority    *Priority              `json:"priority,omitempty"`
	DeferredTS  *int64                 `json:"deferred_ts,omitempty" doc:"not sent before this Unix time"`
	BatchCode   string                 `json:"batch_code,omitempty" maxLength:"64"`
	Raw         string                 `json:"raw,omitempty" doc:"a complete RFC 5322 message, relayed as submitted, instead of subject, body, body_text, content_type, headers, reply_to, message_id and attachments; from/to/cc/bcc then set only the envelope (default: the message's headers)"`
	RawEncoding string                 `json:"raw_encoding,omitempty" enum:"base64" doc:"base64: raw is base64 of the message bytes (binary-safe)"`
}

// AttachmentItem is one attachment reference; unknown keys are refused.
type AttachmentItem struct {
	Filename    string             `json:"filename" minLength:"1" maxLength:"255"`
	StoragePath string             `json:"storage_path" minLength:"1"`
	MimeType    *string            `json:"mime_type,omitempty"`
	FetchMode   *string            `json:"fetch_mode,omitempty" enum:"endpoint,http_url,base64,filesystem"`
	ContentMD5  *string            `json:"content_md5,omitempty" pattern:"^[a-fA-F0-9]{32}$"`
	Auth        *ClientAuthPayload `json:"auth,omitempty"`
}

// Recipients is a string (comma-separated addresses) or a list of addresses.
type Recipients []string

// Schema documents the two accepted forms.
func (Recipients) Schema(huma.Registry) *huma.Schema {
	return &huma.Schema{OneOf: []*huma.Schema{
		{Type: huma.TypeString, Description: "one or more comma-separated addresses"},
		{Type: huma.TypeArray, Items: &huma.Schema{Type: huma.TypeString}},
	}}
}

// Priority is 0..3, a numeric string, or a label.
type Priority string

// Schema documents the accepted forms.
func (Priority) Schema(huma.Registry) *huma.Schema {
	return &huma.Schema{Description: "0 immediate, 1 high, 2 medium, 3 low; out-of-range numbers are clamped",
		OneOf: []*huma.Schema{
			{Type: huma.TypeInteger},
			{Type: huma.TypeString, Enum: []any{"immediate", "high", "medium", "low"}},
			{Type: huma.TypeString, Pattern: `^-?[0-9]+$`},
		}}
}

// HeaderValue is a header's value: string, number or boolean (null skipped).
type HeaderValue string

// Schema documents the accepted forms.
func (HeaderValue) Schema(huma.Registry) *huma.Schema {
	return &huma.Schema{OneOf: []*huma.Schema{
		{Type: huma.TypeString}, {Type: huma.TypeNumber}, {Type: huma.TypeBoolean}, {Type: "null"},
	}}
}

// AddMessagesResponse is the 200 answer.
type AddMessagesResponse struct {
	OK       bool           `json:"ok"`
	Queued   int            `json:"queued"`
	Rejected []RejectedItem `json:"rejected" nullable:"false"`
}

// RejectedItem names a message that was not queued and why.
type RejectedItem struct {
	ID     *string `json:"id" nullable:"true"`
	Reason string  `json:"reason"`
}

// AddMessagesError is the 400 answer's detail.
type AddMessagesError struct {
	Error    *string        `json:"error" nullable:"true" doc:"batch-level error, e.g. too many messages"`
	Rejected []RejectedItem `json:"rejected" nullable:"true"`
}

// AddMessagesErrorBody is the 400 answer.
type AddMessagesErrorBody struct {
	Detail AddMessagesError `json:"detail"`
}

// item is one parsed message of a request.
type item struct {
	id             string
	tenantID       *string // as given; nil = resolve
	payload        store.Payload
	priority       *int // the message's own priority
	deferredUntil  *time.Time
	explicitTenant bool
	rawReason      string // a raw message that cannot be relayed: why
}

// parseAddMessages checks the schema of the whole request (api.md §3.1).
func (s *server) parseAddMessages(top map[string]json.RawMessage, is *issues) (items []item, defaultPrio *int) {
	f := newFields(top, []any{"body"}, is)
	if v, ok := f.raw("default_priority"); ok {
		if p, ok := parsePriority(v, []any{"body", "default_priority"}, is); ok {
			defaultPrio = &p
		}
	}
	raw, ok := top["messages"]
	if !ok {
		is.missing([]any{"body", "messages"}, objectInput(top))
		return nil, defaultPrio
	}
	if kindOf(raw) != kindArray {
		is.add("list_type", msgListType, []any{"body", "messages"}, raw, nil)
		return nil, defaultPrio
	}
	// Fast path: every element an object, decoded in one pass.
	var objs []map[string]json.RawMessage
	if json.Unmarshal(raw, &objs) == nil {
		delete(top, "messages") // decoded: this copy may go
		raw = nil
		items = make([]item, 0, len(objs))
		for i, m := range objs {
			loc := []any{"body", "messages", i}
			if m == nil { // a null element
				is.add("model_attributes_type", msgModelAttrs, loc, json.RawMessage("null"), nil)
				items = append(items, item{})
				continue
			}
			items = append(items, parseMessage(m, loc, is))
		}
		return items, defaultPrio
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil {
		is.add("list_type", msgListType, []any{"body", "messages"}, raw, nil)
		return nil, defaultPrio
	}
	items = make([]item, 0, len(list))
	for i, el := range list {
		loc := []any{"body", "messages", i}
		var m map[string]json.RawMessage
		if kindOf(el) != kindObject || json.Unmarshal(el, &m) != nil {
			is.add("model_attributes_type", msgModelAttrs, loc, el, nil)
			items = append(items, item{})
			continue
		}
		items = append(items, parseMessage(m, loc, is))
	}
	return items, defaultPrio
}

// parseMessage checks one message's schema and builds its payload.
// parseIdentity reads what every item names, whatever its content: its
// id, its tenant (when given) and its account.
func parseIdentity(f fields, it *item, loc []any) {
	p := &it.payload
	if id, ok := f.str("id", true); ok && f.strLen("id", id, 0, maxIDLen) {
		it.id, p.ID = id, id
	}
	if v, ok := f.raw("tenant_id"); ok {
		if t, ok := f.strValue(v, at(loc, "tenant_id")); ok {
			it.tenantID, it.explicitTenant = &t, true
		}
	}
	p.AccountID, _ = f.str("account_id", true)
}

func parseMessage(m map[string]json.RawMessage, loc []any, is *issues) item {
	if v, ok := m["raw"]; ok && kindOf(v) != kindNull {
		return parseRawMessage(m, loc, is)
	}
	var it item
	f := newFields(m, loc, is)
	p := &it.payload

	parseIdentity(f, &it, loc)
	switch {
	case !f.has("from") && !f.has("from_addr"):
		f.missingField("from")
	case f.has("from") && (kindOf(m["from"]) != kindNull || !f.has("from_addr")):
		p.From, _ = f.str("from", true)
	default:
		p.From, _ = f.str("from_addr", true)
	}
	if f.require("to") {
		p.To, p.ToText = recipients(m["to"], at(loc, "to"), is, true)
	}
	if v, ok := f.raw("cc"); ok {
		p.Cc, p.CcText = recipients(v, at(loc, "cc"), is, false)
	}
	if v, ok := f.raw("bcc"); ok {
		p.Bcc, p.BccText = recipients(v, at(loc, "bcc"), is, false)
	}
	if n := len(p.To) + len(p.Cc) + len(p.Bcc); n > maxRecipients {
		is.valueError(loc, nil, fmt.Sprintf("a message may have at most %d recipients, not %d", maxRecipients, n))
	}
	p.ReplyTo, _ = f.str("reply_to", false)
	p.ReturnPath, _ = f.str("return_path", false)
	if subj, ok := f.str("subject", true); ok && f.strLen("subject", subj, 1, 0) {
		p.Subject = subj
	}
	p.Body, _ = f.str("body", false)
	p.ContentType = "plain"
	if ct, ok := f.str("content_type", false); ok && ct == "html" {
		p.ContentType = "html"
	}
	p.BodyText, _ = f.str("body_text", false)
	if v, ok := f.raw("headers"); ok {
		p.Headers = parseHeaders(v, at(loc, "headers"), is)
	}
	p.MessageID, _ = f.str("message_id", false)
	if v, ok := f.raw("attachments"); ok {
		p.Attachments = parseAttachments(v, at(loc, "attachments"), is)
	}
	if v, ok := f.raw("priority"); ok {
		if n, ok := parsePriority(v, at(loc, "priority"), is); ok {
			it.priority = &n
		}
	}
	if ts, ok := f.integer("deferred_ts"); ok {
		p.DeferredTS = &ts
		t := time.Unix(ts, 0)
		it.deferredUntil = &t
	}
	if bc, ok := f.str("batch_code", false); ok && f.strLen("batch_code", bc, 0, maxBatchCodeLen) {
		p.BatchCode = bc
	}
	return it
}

// recipients reads a string (split on commas; also returned as text, so the
// payload keeps the submitted form) or a list of strings; blank entries are
// dropped. Wrong types give pydantic's union errors.
func recipients(v json.RawMessage, loc []any, is *issues, required bool) ([]string, string) {
	switch kindOf(v) {
	case kindString:
		s, err := decodeJSONString(v)
		if err != nil {
			break
		}
		return store.SplitAddresses(s), s
	case kindArray:
		var list []json.RawMessage
		if json.Unmarshal(v, &list) != nil {
			break
		}
		if len(list) > maxRecipients {
			is.tooLong(loc, "List", maxRecipients, len(list))
			return nil, ""
		}
		out := make([]string, 0, len(list))
		for i, e := range list {
			if kindOf(e) != kindString {
				is.add("string_type", msgStringType, at(loc, i), e, nil)
				continue
			}
			s, _ := decodeJSONString(e)
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out, ""
	case kindNull:
		if !required {
			return nil, ""
		}
	}
	is.add("string_type", msgStringType, at(loc, "str"), v, nil)
	is.add("list_type", msgListType, at(loc, "list[str]"), v, nil)
	return nil, ""
}

// parseHeaders renders header values as text (api.md §3.1).
func parseHeaders(v json.RawMessage, loc []any, is *issues) map[string]string {
	var m map[string]json.RawMessage
	if kindOf(v) != kindObject || json.Unmarshal(v, &m) != nil {
		is.add("dict_type", msgDictType, loc, v, nil)
		return nil
	}
	if len(m) > maxHeaders {
		is.tooLong(loc, "Dictionary", maxHeaders, len(m))
		return nil
	}
	out := make(map[string]string, len(m))
	for name, val := range m {
		hl := at(loc, name)
		if !validHeaderName(name) {
			is.valueError(hl, val, "header names must be printable ASCII without spaces or colons")
			continue
		}
		var text string
		switch kindOf(val) {
		case kindNull:
			continue
		case kindString:
			text, _ = decodeJSONString(val)
		case kindNumber, kindBool:
			text = string(val)
		default:
			is.valueError(hl, val, "header values must be strings, numbers or booleans")
			continue
		}
		if strings.ContainsAny(text, "\r\n") {
			is.valueError(hl, val, "header values must not contain CR or LF")
			continue
		}
		out[name] = text
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c > '~' || c == ':' {
			return false
		}
	}
	return true
}

// parseAttachments checks attachment objects; unknown keys are refused.
func parseAttachments(v json.RawMessage, loc []any, is *issues) []store.Attachment {
	var list []json.RawMessage
	if kindOf(v) != kindArray || json.Unmarshal(v, &list) != nil {
		is.add("list_type", msgListType, loc, v, nil)
		return nil
	}
	if len(list) > maxAttachments {
		is.tooLong(loc, "List", maxAttachments, len(list))
		return nil
	}
	out := make([]store.Attachment, 0, len(list))
	for i, raw := range list {
		al := at(loc, i)
		var m map[string]json.RawMessage
		if kindOf(raw) != kindObject || json.Unmarshal(raw, &m) != nil {
			is.add("model_attributes_type", msgModelAttrs, al, raw, nil)
			continue
		}
		f := newFields(m, al, is)
		var a store.Attachment
		if s, ok := f.str("filename", true); ok && f.strLen("filename", s, 1, maxFilenameLen) {
			a.Filename = s
		}
		if s, ok := f.str("storage_path", true); ok && f.strLen("storage_path", s, 1, 0) {
			a.StoragePath = s
		}
		a.MimeType, _ = f.str("mime_type", false)
		a.FetchMode, _ = f.literal("fetch_mode", fetchModes...)
		if s, ok := f.str("content_md5", false); ok {
			if md5Pattern.MatchString(s) {
				a.ContentMD5 = s
			} else {
				is.add("string_pattern_mismatch", "String should match pattern '"+md5Pattern.String()+"'",
					at(al, "content_md5"), jsonInput(s), map[string]any{"pattern": md5Pattern.String()})
			}
		}
		if obj, ok := f.object("auth"); ok {
			a.Auth = parseClientAuth(obj, at(al, "auth"), is, false)
		}
		for k, val := range m {
			if !attachmentKeys[k] {
				is.add("extra_forbidden", msgExtraForbidden, at(al, k), val, nil)
			}
		}
		out = append(out, a)
	}
	return out
}

// parseClientAuth reads {"method","token","user","password"}; method
// defaults to "none".
func parseClientAuth(raw json.RawMessage, loc []any, is *issues, strictMethod bool) *store.ClientAuth {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		is.add("dict_type", msgDictType, loc, raw, nil)
		return nil
	}
	f := newFields(m, loc, is)
	ca := &store.ClientAuth{Method: "none"}
	if strictMethod {
		if s, ok := f.literal("method", "none", "bearer", "basic"); ok {
			ca.Method = s
		}
	} else if s, ok := f.str("method", false); ok {
		ca.Method = s
	}
	ca.Token, _ = f.str("token", false)
	ca.User, _ = f.str("user", false)
	ca.Password, _ = f.str("password", false)
	return ca
}

// parsePriority reads an int, a numeric string or a label, clamped to 0..3.
func parsePriority(v json.RawMessage, loc []any, is *issues) (int, bool) {
	switch kindOf(v) {
	case kindString:
		s, _ := decodeJSONString(v)
		if p, ok := priorityFromText(s); ok {
			return p, true
		}
		exp := literalList(priorityLabelList)
		is.add("literal_error", "Input should be "+exp, loc, v, map[string]any{"expected": exp})
		return 0, false
	case kindNumber:
		n, typ := parseIntNumber(string(v), false)
		switch typ {
		case "":
			return clampPriority(n), true
		case "int_from_float":
			is.add(typ, msgIntFromFloat, loc, v, nil)
		default:
			is.add("int_parsing", msgIntParsing, loc, v, nil)
		}
		return 0, false
	}
	is.add("int_type", msgIntType, loc, v, nil)
	return 0, false
}

// priorityFromText maps a label or a numeric string to a priority.
func priorityFromText(s string) (int, bool) {
	if p, ok := priorityLabels[s]; ok {
		return p, true
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, false
	}
	return clampPriority(n), true
}

func clampPriority(n int64) int {
	return int(min(max(n, store.PriorityImmediate), store.PriorityLow))
}

// parseDefaultPriority reads GMP_DEFAULT_PRIORITY ("" = medium).
func parseDefaultPriority(s string) (int, error) {
	if strings.TrimSpace(s) == "" {
		return store.PriorityMedium, nil
	}
	p, ok := priorityFromText(strings.ToLower(strings.TrimSpace(s)))
	if !ok {
		return 0, fmt.Errorf("%q is not 0..3 or immediate/high/medium/low", s)
	}
	return p, nil
}

// validAddress: an RFC 5322 mailbox (display name allowed) with @ and a domain.
func validAddress(s string) bool {
	a, err := mail.ParseAddress(s)
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(a.Address, '@')
	return i > 0 && i < len(a.Address)-1
}

// itemReason is the first per-item reason that applies (api.md §3.3), or "".
func itemReason(it *item) string {
	p := &it.payload
	blank := func(s string) bool { return strings.TrimSpace(s) == "" }
	switch {
	case blank(it.id):
		return reasonMissingID
	case it.explicitTenant && blank(*it.tenantID):
		return reasonMissingTenant
	case blank(p.AccountID):
		return reasonMissingAccount
	case it.rawReason != "":
		return it.rawReason
	case blank(p.From):
		return reasonMissingFrom
	case len(p.To) == 0:
		return reasonMissingTo
	case blank(p.Subject) && p.Raw == "":
		return reasonMissingSubject
	}
	check := func(addr string) bool { return addr == "" || validAddress(addr) }
	if !check(strings.TrimSpace(p.From)) {
		return reasonInvalidAddress + p.From
	}
	for _, list := range [][]string{p.To, p.Cc, p.Bcc} {
		for _, a := range list {
			if !validAddress(a) {
				return reasonInvalidAddress + a
			}
		}
	}
	if !check(strings.TrimSpace(p.ReplyTo)) {
		return reasonInvalidAddress + p.ReplyTo
	}
	if !check(strings.TrimSpace(p.ReturnPath)) {
		return reasonInvalidAddress + p.ReturnPath
	}
	if name := forbiddenHeader(p.Headers); name != "" {
		return reasonHeaderNotAllowed + name + " (" + forbiddenHeaders[strings.ToLower(name)] + ")"
	}
	return ""
}

// forbiddenHeaders are the custom headers that would override what the
// message's own fields set (and validate), with the field to use instead.
// Bcc would also reveal the blind copies to every recipient.
var forbiddenHeaders = map[string]string{
	"from": "use the from field", "sender": "set by the from field", "to": "use the to field",
	"cc": "use the cc field", "bcc": "use the bcc field", "reply-to": "use the reply_to field",
	"return-path": "use the return_path field", "message-id": "use the message_id field",
	"date": "set when the message is sent",
}

// forbiddenHeader returns the first (by name order) custom header that
// forbiddenHeaders refuses, as given, or "".
func forbiddenHeader(h map[string]string) string {
	found := ""
	for name := range h {
		if _, bad := forbiddenHeaders[strings.ToLower(name)]; bad && (found == "" || name < found) {
			found = name
		}
	}
	return found
}

// validIdempotencyKey: 1..256 printable ASCII characters.
func validIdempotencyKey(k string) bool {
	if k == "" || len(k) > maxIdempotencyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < ' ' || k[i] > '~' {
			return false
		}
	}
	return true
}

// addMessages is POST /commands/add-messages (api.md §3).
func (s *server) addMessages(c *call) (any, error) {
	var is issues
	keys := c.r.Header.Values(idempotencyHeader)
	idemKey := ""
	if len(keys) > 0 {
		idemKey = keys[0]
		if !validIdempotencyKey(idemKey) {
			is.valueError([]any{"header", idempotencyHeader}, jsonInput(idemKey),
				"Idempotency-Key must be 1 to 256 printable ASCII characters")
		}
	}
	top, aerr := parseJSONBody(c.body, false)
	if aerr != nil {
		if is.empty() {
			return nil, aerr
		}
		return nil, invalid(append(is.list, aerr.detail.([]issue)...))
	}
	// What the log and the Idempotency-Key need of the body is taken now,
	// so that its bytes can go before its messages are decoded (a large
	// body is otherwise held two or three times over).
	c.logPayload = boundedLog(c.body)
	sum := sha256.Sum256(c.body)
	c.bodySum, c.body = sum[:], nil
	items, defaultPrio := s.parseAddMessages(top, &is)
	top = nil
	if !c.p.Admin {
		c.tenantID = c.p.TenantID
	}
	if !is.empty() {
		return nil, invalid(is.list)
	}
	// From here on every answer may be stored under the Idempotency-Key.
	var idem *idempotentCall
	if idemKey != "" {
		var replay *reply
		var err error
		idem, replay, err = s.beginIdempotent(c, idemKey)
		if err != nil || replay != nil {
			return replay, err
		}
	}
	out, err := s.enqueue(c, items, defaultPrio)
	if idem != nil {
		return idem.finish(c, out, err)
	}
	return out, err
}

// enqueue runs checks 2 and 3 of api.md §3.2, then stores and answers.
func (s *server) enqueue(c *call, items []item, defaultPrio *int) (any, error) {
	results, queued, err := s.enqueueItems(c, items, defaultPrio)
	if err != nil {
		return nil, err
	}
	rejected := make([]RejectedItem, 0)
	onlyDuplicates := true
	for i, r := range results {
		if r.reason == "" {
			continue
		}
		var id *string
		if strings.TrimSpace(items[i].id) != "" {
			id = &items[i].id
		}
		rejected = append(rejected, RejectedItem{ID: id, Reason: r.reason})
		if !r.duplicate() {
			onlyDuplicates = false
		}
	}
	if queued == 0 && !onlyDuplicates {
		return nil, newError(http.StatusBadRequest, AddMessagesError{Rejected: rejected})
	}
	return AddMessagesResponse{OK: true, Queued: queued, Rejected: rejected}, nil
}

// itemResult is what enqueueItems did with one request item.
type itemResult struct {
	reason string // "" when queued, else the rejection reason
	pk     string // the stored message's pk, when there is one
}

// duplicate: the id was already processed or is being sent (api.md §3.4), not an error.
func (r itemResult) duplicate() bool {
	return r.reason == reasonAlreadySent || r.reason == reasonSendingNow
}

// enqueueItems runs checks 2 and 3 of api.md §3.2 and stores the items in
// one store call, answering per item in request order and how many queued.
func (s *server) enqueueItems(c *call, items []item, defaultPrio *int) ([]itemResult, int, error) {
	if len(items) > s.maxBatch {
		msg := fmt.Sprintf("Cannot enqueue more than %d messages at once", s.maxBatch)
		return nil, 0, newError(http.StatusBadRequest, AddMessagesError{Error: &msg})
	}
	if !c.p.Admin {
		for i := range items {
			if t := items[i].tenantID; t != nil && strings.TrimSpace(*t) != "" && *t != c.p.TenantID {
				return nil, 0, auth.ErrWrongTenant
			}
		}
	}
	prio := s.defaultPriority
	if defaultPrio != nil {
		prio = *defaultPrio
	}
	defaultTenant := c.p.DefaultTenant()
	now := s.now()
	// toStore[i] is the request index of the i-th stored item.
	batch := make([]store.NewMessage, 0, len(items))
	toStore := make([]int, 0, len(items))
	reasons := make([]string, len(items))
	commonTenant, mixed := "", false
	suppressed, err := s.suppressedFor(c.ctx(), items, defaultTenant)
	if err != nil {
		return nil, 0, err
	}
	for i := range items {
		it := &items[i]
		tenant := defaultTenant
		if it.tenantID != nil {
			tenant = *it.tenantID
		}
		if commonTenant == "" {
			commonTenant = tenant
		} else if commonTenant != tenant {
			mixed = true
		}
		it.payload.TenantID = tenant
		it.payload.Priority = prio
		if it.priority != nil {
			it.payload.Priority = *it.priority
		}
		reasons[i] = itemReason(it)
		if reasons[i] == "" {
			reasons[i] = applySuppressions(&it.payload, suppressed[tenant])
		}
		if strings.TrimSpace(it.id) == "" || strings.TrimSpace(tenant) == "" {
			// Not stored (no id or no tenant to store it under): never
			// without a reason (a tenant key of a blank-id tenant made
			// before ids were checked gets here with none).
			if reasons[i] == "" {
				reasons[i] = reasonMissingTenant
			}
			continue
		}
		payload, err := json.Marshal(&it.payload)
		if err != nil {
			return nil, 0, fmt.Errorf("encode payload: %w", err)
		}
		// PK left empty: the store makes a time-ordered one, which keeps
		// inserts local in its primary-key index (random v4 keys halve batch speed).
		nm := store.NewMessage{TenantID: tenant, ID: it.id,
			AccountID: it.payload.AccountID, Priority: it.payload.Priority, Payload: payload,
			DeferredUntil: it.deferredUntil, RejectReason: reasons[i]}
		if it.payload.BatchCode != "" {
			bc := it.payload.BatchCode
			nm.BatchCode = &bc
		}
		batch = append(batch, nm)
		toStore = append(toStore, i)
	}
	if c.p.Admin && !mixed && commonTenant != "" {
		c.tenantID = commonTenant
	}
	queued, storedErrors := 0, false
	pks := make([]string, len(items))
	if len(batch) > 0 {
		results, err := s.st.EnqueueBatch(c.ctx(), batch, now)
		if err != nil {
			return nil, 0, fmt.Errorf("enqueue: %w", err)
		}
		if len(results) != len(batch) {
			return nil, 0, fmt.Errorf("enqueue: %d results for %d items", len(results), len(batch))
		}
		for j, res := range results {
			i := toStore[j]
			pks[i] = res.PK
			switch res.Status {
			case store.Queued:
				reasons[i] = ""
				queued++
			case store.AlreadySent:
				reasons[i] = reasonAlreadySent
			case store.SendingInProgress:
				reasons[i] = reasonSendingNow
			case store.Rejected:
				storedErrors = true // stored as errored with an error event
				if res.Reason != "" {
					reasons[i] = res.Reason
				} else if reasons[i] == "" {
					reasons[i] = reasonAccountNotFound
				}
			}
		}
		s.refreshPending()
	}
	if queued > 0 {
		s.wake()
	}
	if storedErrors {
		s.newEvents()
	}
	out := make([]itemResult, len(items))
	for i := range items {
		out[i] = itemResult{reason: reasons[i], pk: pks[i]}
	}
	return out, queued, nil
}
