package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"strconv"
)

// What the command log keeps of a body (tenancy-security.md §5, issue 11):
// a small JSON body whole (redacted), a large one as a bounded redacted
// summary, a body that is not JSON never, only its size and hash. So a
// typo'd POST /account cannot leak its password, and one 40 MB add-messages
// cannot grow the log by 40 MB.
const (
	logInlineMax  = 64 << 10 // bodies up to this size are logged whole
	logSummaryMax = 8 << 10  // a larger one: about this much of its start
	logStringMax  = 256      // strings in a summary are cut to this many bytes
)

// logBody is what the command log keeps of body: the body itself when it is
// small JSON (whole != nil), else facts about it (size, SHA-256 and, for
// JSON, a redacted summary of its start).
func logBody(body []byte) (whole json.RawMessage, facts map[string]any) {
	body = bytes.TrimSpace(body)
	switch {
	case len(body) == 0:
		return nil, nil
	case !json.Valid(body):
		return nil, bodyFacts(body)
	case len(body) <= logInlineMax:
		return body, nil
	}
	facts = bodyFacts(body)
	facts["body_summary"] = summarizeJSON(body, logSummaryMax)
	return nil, facts
}

func bodyFacts(body []byte) map[string]any {
	sum := sha256.Sum256(body)
	return map[string]any{"body_size": len(body), "body_sha256": hex.EncodeToString(sum[:])}
}

// boundedLog returns raw when it may be logged as it is, else its facts as
// a JSON object.
func boundedLog(raw json.RawMessage) json.RawMessage {
	whole, facts := logBody(raw)
	if facts == nil {
		return whole
	}
	b, err := json.Marshal(facts)
	if err != nil {
		return nil
	}
	return b
}

// summaryFrame is one open container of summarizeJSON.
type summaryFrame struct {
	object  bool
	wantKey bool   // object: the next token is a key (or the end)
	key     string // object: the key of the value being read
	inAuth  bool   // object: the value of client_auth or an attachment's auth
	n       int    // members written
}

// summarizeJSON renders the start of a valid JSON document in at most about
// budget bytes: secret values (secretKeys, and token inside an auth object)
// as "***", strings cut to logStringMax bytes, and, once the budget is
// spent, nothing more (open containers are closed, so the result is valid
// JSON). It reads the document token by token, so it holds no more than one
// string of it at a time.
func summarizeJSON(doc []byte, budget int) json.RawMessage {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var (
		out   bytes.Buffer
		stack []summaryFrame
	)
	closeAll := func() json.RawMessage {
		for i := len(stack) - 1; i >= 0; i-- {
			if stack[i].object {
				out.WriteByte('}')
			} else {
				out.WriteByte(']')
			}
		}
		return out.Bytes()
	}
	for {
		tok, err := dec.Token()
		if err == io.EOF || (err != nil && len(stack) == 0) {
			return closeAll()
		}
		if err != nil {
			return closeAll() // unreachable for valid JSON
		}
		var top *summaryFrame
		if len(stack) > 0 {
			top = &stack[len(stack)-1]
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			out.WriteByte(byte(d))
			stack = stack[:len(stack)-1]
			valueDone(stack)
			continue
		}
		if top != nil && top.object && top.wantKey {
			if out.Len() >= budget {
				return closeAll()
			}
			if top.n > 0 {
				out.WriteByte(',')
			}
			top.key, _ = tok.(string)
			writeJSONString(&out, top.key)
			out.WriteByte(':')
			top.wantKey = false
			continue
		}
		if top != nil && !top.object {
			if out.Len() >= budget {
				return closeAll()
			}
			if top.n > 0 {
				out.WriteByte(',')
			}
		}
		secret := top != nil && top.object && tok != nil && (secretKeys[top.key] || (top.inAuth && top.key == "token"))
		if secret {
			out.WriteString(`"` + redacted + `"`)
			if d, ok := tok.(json.Delim); ok {
				if err := skipValue(dec, d); err != nil {
					return closeAll()
				}
			}
			valueDone(stack)
			continue
		}
		switch v := tok.(type) {
		case json.Delim: // '{' or '['
			inAuth := top != nil && top.object && (top.key == "client_auth" || top.key == "auth")
			out.WriteByte(byte(v))
			stack = append(stack, summaryFrame{object: v == '{', wantKey: v == '{', inAuth: inAuth})
			continue
		case string:
			if len(v) > logStringMax {
				v = truncate(v, logStringMax) + "…"
			}
			writeJSONString(&out, v)
		case json.Number:
			out.WriteString(v.String())
		case bool:
			out.WriteString(strconv.FormatBool(v))
		case nil:
			out.WriteString("null")
		}
		valueDone(stack)
	}
}

// valueDone counts a finished value in its container.
func valueDone(stack []summaryFrame) {
	if len(stack) == 0 {
		return
	}
	top := &stack[len(stack)-1]
	top.n++
	if top.object {
		top.wantKey = true
	}
}

// skipValue reads past the rest of a container whose opening d was read.
func skipValue(dec *json.Decoder, d json.Delim) error {
	depth := 1
	for depth > 0 {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		if d, ok := tok.(json.Delim); ok {
			if d == '{' || d == '[' {
				depth++
			} else {
				depth--
			}
		}
	}
	return nil
}

func writeJSONString(out *bytes.Buffer, s string) {
	b, _ := json.Marshal(s)
	out.Write(b)
}
