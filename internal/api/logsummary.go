package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"unicode/utf8"
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
// JSON). It scans the bytes in place: a 40 MB string costs no copy.
func summarizeJSON(doc []byte, budget int) json.RawMessage {
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
	i := 0
	for {
		i = skipSpace(doc, i)
		if i >= len(doc) {
			return closeAll()
		}
		c := doc[i]
		if c == ',' || c == ':' {
			i++
			continue
		}
		var top *summaryFrame
		if len(stack) > 0 {
			top = &stack[len(stack)-1]
		}
		if c == '}' || c == ']' {
			out.WriteByte(c)
			stack = stack[:len(stack)-1]
			valueDone(stack)
			i++
			continue
		}
		if top != nil && top.object && top.wantKey { // a key
			end := stringEnd(doc, i)
			if out.Len() >= budget {
				return closeAll()
			}
			if top.n > 0 {
				out.WriteByte(',')
			}
			top.key = ""
			_ = json.Unmarshal(doc[i:end], &top.key)
			out.Write(doc[i:end])
			out.WriteByte(':')
			top.wantKey = false
			i = end
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
		end := valueEnd(doc, i)
		secret := top != nil && top.object && !bytes.Equal(doc[i:end], []byte("null")) &&
			(secretKeys[top.key] || (top.inAuth && top.key == "token"))
		switch {
		case secret:
			out.WriteString(`"` + redacted + `"`)
			i = valueEnd(doc, i) // the whole value, containers included
			if c == '{' || c == '[' {
				i = containerEnd(doc, i)
			}
			valueDone(stack)
			continue
		case c == '{' || c == '[':
			inAuth := top != nil && top.object && (top.key == "client_auth" || top.key == "auth")
			out.WriteByte(c)
			stack = append(stack, summaryFrame{object: c == '{', wantKey: c == '{', inAuth: inAuth})
			i++
			continue
		case c == '"':
			writeCutString(&out, doc[i:end])
		default: // number, true, false, null
			out.Write(doc[i:end])
		}
		i = end
		valueDone(stack)
	}
}

func skipSpace(doc []byte, i int) int {
	for i < len(doc) && (doc[i] == ' ' || doc[i] == '\t' || doc[i] == '\n' || doc[i] == '\r') {
		i++
	}
	return i
}

// stringEnd is the index after the string starting at doc[i] == '"'.
func stringEnd(doc []byte, i int) int {
	for j := i + 1; j < len(doc); j++ {
		switch doc[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(doc)
}

// valueEnd is the index after a scalar starting at i; for '{' or '[' it is i+1.
func valueEnd(doc []byte, i int) int {
	switch doc[i] {
	case '"':
		return stringEnd(doc, i)
	case '{', '[':
		return i + 1
	}
	j := i
	for j < len(doc) && !bytes.ContainsRune([]byte(",:]} \t\r\n"), rune(doc[j])) {
		j++
	}
	return j
}

// containerEnd is the index after the container whose opening bracket ends
// just before i.
func containerEnd(doc []byte, i int) int {
	depth := 1
	for i < len(doc) && depth > 0 {
		switch doc[i] {
		case '"':
			i = stringEnd(doc, i)
			continue
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		}
		i++
	}
	return i
}

// writeCutString writes a JSON string literal, cut to logStringMax bytes
// of its encoded content on a boundary that splits neither an escape nor a
// UTF-8 sequence.
func writeCutString(out *bytes.Buffer, lit []byte) {
	content := lit[1 : len(lit)-1]
	if len(content) <= logStringMax {
		out.Write(lit)
		return
	}
	n := 0
	for n < logStringMax {
		if content[n] == '\\' {
			step := 2
			if n+1 < len(content) && content[n+1] == 'u' {
				step = 6
			}
			if n+step > logStringMax {
				break
			}
			n += step
			continue
		}
		n++
	}
	for n > 0 && n < len(content) && !utf8.RuneStart(content[n]) {
		n--
	}
	out.WriteByte('"')
	out.Write(content[:n])
	out.WriteString("…\"")
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
