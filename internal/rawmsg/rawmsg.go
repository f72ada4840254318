// Package rawmsg reads and edits complete RFC 5322 messages handed over as
// they are (REST `raw`, SMTP submission, `mail-proxy send --eml`), keeping
// every byte of the header fields and body it does not touch.
//
// A message is split once at the first empty line into header fields (each
// kept with its folded continuation lines and its own line ending) and the
// body, which is never parsed. Edits remove whole fields or insert new ones
// at the top, in the line ending the message already uses, so that what is
// relayed is byte-identical to what was submitted except for those fields.
package rawmsg

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"strings"
)

// The control headers a submitter may set; they are read and removed before
// the message is stored (the README lists them).
const (
	HeaderID         = "X-Mail-Proxy-Id"
	HeaderPriority   = "X-Mail-Proxy-Priority"
	HeaderDeferredTS = "X-Mail-Proxy-Deferred-Ts"
	HeaderBatchCode  = "X-Mail-Proxy-Batch-Code"
)

// Message is a parsed message: its header fields in order and its body.
type Message struct {
	fields []field
	body   []byte // everything after the header, the empty line included
	eol    string // the line ending of the first line, for inserted fields
}

type field struct {
	name string // as written, without the colon
	raw  []byte // the whole field: name, colon, value, continuations, line ends
}

// ErrNoHeader: the message does not start with a header field.
var ErrNoHeader = errors.New("message has no header fields")

// Parse splits b into header fields and body. A message without an empty
// line is all header. b is not modified; the Message keeps slices of it.
func Parse(b []byte) (*Message, error) {
	m := &Message{eol: "\r\n"}
	if i := bytes.IndexByte(b, '\n'); i >= 0 && (i == 0 || b[i-1] != '\r') {
		m.eol = "\n"
	}
	rest := b
	line := 0
	for len(rest) > 0 {
		end := bytes.IndexByte(rest, '\n') + 1
		if end == 0 {
			end = len(rest)
		}
		l := rest[:end]
		line++
		if isBlank(l) {
			m.body = rest
			break
		}
		if l[0] == ' ' || l[0] == '\t' {
			if len(m.fields) == 0 {
				return nil, fmt.Errorf("line 1 starts with white space: %w", ErrNoHeader)
			}
			f := &m.fields[len(m.fields)-1]
			f.raw = f.raw[:len(f.raw)+len(l)] // continuation: extend the field in place
			rest = rest[end:]
			continue
		}
		colon := bytes.IndexByte(l, ':')
		if colon <= 0 || !validName(l[:colon]) {
			if line == 1 {
				return nil, ErrNoHeader
			}
			return nil, fmt.Errorf("header line %d is not a field (name: value)", line)
		}
		m.fields = append(m.fields, field{name: string(l[:colon]), raw: l})
		rest = rest[end:]
	}
	if len(m.fields) == 0 {
		return nil, ErrNoHeader
	}
	return m, nil
}

func isBlank(l []byte) bool {
	return len(l) == 1 && l[0] == '\n' || len(l) == 2 && l[0] == '\r' && l[1] == '\n'
}

// validName: printable ASCII without spaces or colons (RFC 5322 §3.6.8).
func validName(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c > '~' {
			return false
		}
	}
	return len(b) > 0
}

// Values returns the unfolded, trimmed values of every field named name
// (case-insensitive), in order.
func (m *Message) Values(name string) []string {
	var out []string
	for _, f := range m.fields {
		if strings.EqualFold(f.name, name) {
			out = append(out, f.value())
		}
	}
	return out
}

// Get returns the first value of name, or "".
func (m *Message) Get(name string) string {
	for _, f := range m.fields {
		if strings.EqualFold(f.name, name) {
			return f.value()
		}
	}
	return ""
}

// Has reports whether a field named name exists.
func (m *Message) Has(name string) bool {
	for _, f := range m.fields {
		if strings.EqualFold(f.name, name) {
			return true
		}
	}
	return false
}

func (f field) value() string {
	v := f.raw[len(f.name)+1:]
	s := strings.NewReplacer("\r\n", "", "\n", "", "\r", "").Replace(string(v))
	return strings.TrimSpace(s)
}

// Remove deletes every field named name and returns their values.
func (m *Message) Remove(name string) []string {
	var removed []string
	kept := m.fields[:0]
	for _, f := range m.fields {
		if strings.EqualFold(f.name, name) {
			removed = append(removed, f.value())
			continue
		}
		kept = append(kept, f)
	}
	m.fields = kept
	return removed
}

// Prepend inserts name: value as the first field. value must be one line.
func (m *Message) Prepend(name, value string) error {
	if !validName([]byte(name)) || strings.Contains(name, ":") {
		return fmt.Errorf("invalid header name %q", name)
	}
	if strings.ContainsAny(value, "\r\n") {
		return fmt.Errorf("header %s: line break in value", name)
	}
	raw := []byte(name + ": " + value + m.eol)
	m.fields = append([]field{{name: name, raw: raw}}, m.fields...)
	return nil
}

// Len is the size of the rendered message in bytes.
func (m *Message) Len() int {
	n := len(m.body)
	for _, f := range m.fields {
		n += len(f.raw)
	}
	return n
}

// Bytes renders the message: the fields in order, then the body as given.
func (m *Message) Bytes() []byte {
	out := make([]byte, 0, m.Len()+len(m.eol))
	for _, f := range m.fields {
		out = append(out, f.raw...)
		if !bytes.HasSuffix(f.raw, []byte("\n")) { // a header-only message without a final line end
			out = append(out, m.eol...)
		}
	}
	return append(out, m.body...)
}

// Control is what the X-Mail-Proxy-* headers asked for ("" = not given).
type Control struct {
	ID, Priority, DeferredTS, BatchCode string
}

// TakeControl reads the X-Mail-Proxy-* headers (the first of each) and
// removes them all.
func (m *Message) TakeControl() Control {
	first := func(v []string) string {
		if len(v) == 0 {
			return ""
		}
		return v[0]
	}
	return Control{
		ID:         first(m.Remove(HeaderID)),
		Priority:   first(m.Remove(HeaderPriority)),
		DeferredTS: first(m.Remove(HeaderDeferredTS)),
		BatchCode:  first(m.Remove(HeaderBatchCode)),
	}
}

// Envelope is the sender and recipients a message's headers name.
type Envelope struct {
	From        string   // the first From mailbox (display name kept)
	To, Cc, Bcc []string // each mailbox
	// InvalidFrom and InvalidRcpt hold the text of a From, or a To/Cc/Bcc,
	// header that did not parse as an address list.
	InvalidFrom, InvalidRcpt string
}

// HeaderEnvelope reads From, To, Cc and Bcc. A header that does not parse
// as an address list is named in InvalidFrom or InvalidRcpt.
func (m *Message) HeaderEnvelope() Envelope {
	var env Envelope
	dec := mail.AddressParser{WordDecoder: &mime.WordDecoder{CharsetReader: passCharset}}
	list := func(name string, invalid *string) []string {
		var out []string
		for _, v := range m.Values(name) {
			if strings.TrimSpace(v) == "" {
				continue
			}
			addrs, err := dec.ParseList(v)
			if err != nil {
				if *invalid == "" {
					*invalid = v
				}
				continue
			}
			for _, a := range addrs {
				out = append(out, a.String())
			}
		}
		return out
	}
	if from := list("From", &env.InvalidFrom); len(from) > 0 {
		env.From = from[0]
	}
	env.To, env.Cc, env.Bcc = list("To", &env.InvalidRcpt), list("Cc", &env.InvalidRcpt), list("Bcc", &env.InvalidRcpt)
	return env
}

// passCharset lets display names in any charset parse; only the address
// part matters for the envelope.
func passCharset(_ string, r io.Reader) (io.Reader, error) { return r, nil }
