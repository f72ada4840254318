package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/mailproxy/mailproxy/internal/rawmsg"
	"github.com/mailproxy/mailproxy/internal/store"
)

// reasonInvalidRaw prefixes the per-item reason of a raw message whose
// header cannot be read.
const reasonInvalidRaw = "invalid raw message: "

// contentKeys build a message from fields; a raw message already is one.
var contentKeys = []string{"subject", "body", "body_text", "content_type", "headers", "reply_to", "message_id", "attachments"}

// parseRawMessage checks an add-messages item carrying `raw` (a complete
// RFC 5322 message). from/to/cc/bcc, when given, are the envelope; else the
// envelope comes from the message's From, To, Cc and Bcc headers.
func parseRawMessage(m map[string]json.RawMessage, loc []any, is *issues) item {
	var it item
	f := newFields(m, loc, is)
	p := &it.payload

	parseIdentity(f, &it, loc)
	for _, k := range contentKeys {
		if v, ok := f.raw(k); ok && !emptyJSON(v) {
			is.valueError(at(loc, k), v, k+" cannot be combined with raw: the raw message is the whole content")
		}
	}
	raw, _ := f.str("raw", true)
	encoding, _ := f.literal("raw_encoding", "base64")
	data := []byte(raw)
	if encoding == "base64" {
		b, err := base64.StdEncoding.DecodeString(raw)
		if err != nil {
			is.valueError(at(loc, "raw"), nil, "raw is not valid base64: "+err.Error())
			return it
		}
		data = b
	}
	p.Raw, p.RawEncoding = raw, encoding

	if v, ok := f.raw("from"); ok && kindOf(v) != kindNull {
		p.From, _ = f.str("from", false)
	} else if v, ok := f.raw("from_addr"); ok && kindOf(v) != kindNull {
		p.From, _ = f.str("from_addr", false)
	}
	envelopeGiven := false
	if v, ok := f.raw("to"); ok {
		p.To, p.ToText = recipients(v, at(loc, "to"), is, false)
		envelopeGiven = true
	}
	if v, ok := f.raw("cc"); ok {
		p.Cc, p.CcText = recipients(v, at(loc, "cc"), is, false)
		envelopeGiven = true
	}
	if v, ok := f.raw("bcc"); ok {
		p.Bcc, p.BccText = recipients(v, at(loc, "bcc"), is, false)
		envelopeGiven = true
	}
	p.ReturnPath, _ = f.str("return_path", false)
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
	it.rawReason = rawEnvelope(p, data, p.From == "", !envelopeGiven)
	if n := len(p.To) + len(p.Cc) + len(p.Bcc); n > maxRecipients {
		is.valueError(loc, nil, fmt.Sprintf("a message may have at most %d recipients, not %d", maxRecipients, n))
	}
	return it
}

// emptyJSON: "", [] or {}, what clients that always send every field (zero
// values included) put in the fields a raw item leaves out.
func emptyJSON(v json.RawMessage) bool {
	switch string(bytes.TrimSpace(v)) {
	case `""`, "[]", "{}":
		return true
	}
	return false
}

// rawEnvelope parses the raw message's header and, as asked, takes the
// sender and the recipients from it. It returns a per-item reason, or "".
func rawEnvelope(p *store.Payload, data []byte, wantFrom, wantRcpts bool) string {
	rm, err := rawmsg.Parse(data)
	if err != nil {
		return reasonInvalidRaw + err.Error()
	}
	if !wantFrom && !wantRcpts {
		return ""
	}
	env := rm.HeaderEnvelope()
	if wantFrom {
		if env.InvalidFrom != "" {
			return reasonInvalidAddress + env.InvalidFrom
		}
		p.From = env.From
	}
	if wantRcpts {
		if env.InvalidRcpt != "" {
			return reasonInvalidAddress + env.InvalidRcpt
		}
		p.To, p.Cc, p.Bcc = env.To, env.Cc, env.Bcc
	}
	return ""
}
