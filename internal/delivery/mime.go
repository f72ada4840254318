package delivery

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/mail"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/k3a/html2text"
	gomail "github.com/wneessen/go-mail"

	"github.com/mailproxy/mailproxy/internal/store"
)

// Part is one fetched attachment.
type Part struct {
	Filename    string
	ContentType string // the attachment's mime_type; "" or without "/" = guess
	Data        []byte
}

// Message is a built message: its envelope and its MIME rendering.
// WriteTo may be called again (each attempt renders anew), but not
// concurrently.
type Message struct {
	msg      *gomail.Msg // built from the payload's fields, or
	raw      []byte      // a submitted message, sent as it is (BuildRaw)
	eightBit bool        // raw has bytes over 127: 8BITMIME when offered
	signed   []byte      // the rendering with its DKIM-Signature, once signed
	from     string
	rcpts    []string
	utf8     bool  // some address needs SMTPUTF8
	estimate int64 // rough size, for the DATA timeout
}

// Envelope returns MAIL FROM and the RCPT TO addresses.
func (m *Message) Envelope() (from string, rcpts []string) { return m.from, slices.Clone(m.rcpts) }

// NeedsSMTPUTF8 reports whether an address is not ASCII.
func (m *Message) NeedsSMTPUTF8() bool { return m.utf8 }

// WriteTo renders the message into w: the one step from a built or a raw
// message to the bytes of DATA (line ends become CRLF in the DATA writer),
// the signed bytes once Sender.Send has signed it.
func (m *Message) WriteTo(w io.Writer) (int64, error) {
	if m.signed != nil {
		n, err := w.Write(m.signed)
		return int64(n), err
	}
	if m.raw != nil {
		n, err := w.Write(m.raw)
		return int64(n), err
	}
	return m.msg.WriteTo(w)
}

// errBuild marks every Build failure: bad input, so permanent.
var errBuild = errors.New("invalid message")

func buildErr(format string, args ...any) error {
	return &Error{Permanent: true, Command: "build", Err: fmt.Errorf("%w: %s", errBuild, fmt.Sprintf(format, args...))}
}

// reservedHeader: a custom header of this (lower-case) name is ignored. Bcc
// never reaches the header; the others would corrupt the MIME structure or
// claim the final MTA's job.
func reservedHeader(lower string) bool {
	switch lower {
	case "bcc", "return-path", "mime-version", "content-type", "content-transfer-encoding", "x-genro-mail-id":
		return true
	}
	return false
}

// canonicalName gives the standard spelling, so that a custom "message-id"
// replaces the builder's Message-ID rather than adding a second one.
func canonicalName(lower, name string) string {
	switch lower {
	case "from":
		return "From"
	case "to":
		return "To"
	case "cc":
		return "Cc"
	case "sender":
		return "Sender"
	case "subject":
		return "Subject"
	case "date":
		return "Date"
	case "reply-to":
		return "Reply-To"
	case "message-id":
		return "Message-ID"
	}
	return name
}

// BuildOptions are the instance's MIME choices.
type BuildOptions struct {
	// NoGeneratedText turns off the text/plain part generated from an HTML
	// body; an item's own body_text is still sent as the alternative.
	NoGeneratedText bool
}

// Build makes the MIME message for one attempt (delivery.md §5) with the
// default options.
func Build(p store.Payload, pk string, parts []Part, now time.Time) (*Message, error) {
	return BuildOptions{}.Build(p, pk, parts, now)
}

// Build makes the MIME message for one attempt (delivery.md §5). pk is the
// message's primary key, used for a stable Message-ID; now is the Date. An
// HTML body goes as multipart/alternative with a text/plain part first
// (body_text, else generated from the HTML unless NoGeneratedText).
func (o BuildOptions) Build(p store.Payload, pk string, parts []Part, now time.Time) (*Message, error) {
	fromAddr, err := mail.ParseAddress(p.From)
	if err != nil {
		return nil, buildErr("from %q: %v", p.From, err)
	}
	m := &Message{from: fromAddr.Address}
	if p.ReturnPath != "" {
		rp, err := mail.ParseAddress(p.ReturnPath)
		if err != nil {
			return nil, buildErr("return_path %q: %v", p.ReturnPath, err)
		}
		m.from = rp.Address
	}
	if err := m.addRecipients(p); err != nil {
		return nil, err
	}

	hdr := newHeaderSet()
	for _, h := range []struct {
		name      string
		addrs     []string
		validated bool // parsed above already
	}{{"From", []string{p.From}, true}, {"To", p.To, true}, {"Cc", p.Cc, true}, {"Reply-To", nonEmpty(p.ReplyTo), false}} {
		if len(h.addrs) == 0 {
			continue
		}
		v, utf8, err := addressHeader(h.addrs, h.validated)
		if err != nil {
			return nil, buildErr("%s: %v", strings.ToLower(h.name), err)
		}
		hdr.set(h.name, v, utf8)
	}
	hdr.set("Subject", p.Subject, false)
	hdr.set("Date", now.Format(time.RFC1123Z), false)
	msgID := p.MessageID
	if msgID == "" {
		msgID = "<" + pk + "@" + domainOf(fromAddr.Address) + ">"
	}
	hdr.set("Message-ID", msgID, false)
	for _, name := range slices.Sorted(maps.Keys(p.Headers)) {
		value := p.Headers[name]
		if err := validHeader(name, value); err != nil {
			return nil, buildErr("header %q: %v", name, err)
		}
		if reservedHeader(strings.ToLower(name)) {
			continue
		}
		hdr.set(name, value, false)
	}
	hdr.set("X-Genro-Mail-ID", p.ID, false)

	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent(), gomail.WithCharset(gomail.CharsetUTF8))
	for _, h := range hdr.list {
		switch {
		case h.raw:
			// RFC 6532: UTF-8 addresses go as they are (SMTPUTF8 checked at send).
			msg.SetGenHeaderPreformatted(gomail.Header(h.name), h.value)
		default:
			msg.SetGenHeader(gomail.Header(h.name), h.value) // RFC 2047 when not ASCII
		}
		m.utf8 = m.utf8 || h.raw
	}
	m.estimate = int64(len(p.Body)) + 4096
	switch text := o.textAlternative(p); {
	case !strings.EqualFold(p.ContentType, "html"):
		msg.SetBodyString(gomail.TypeTextPlain, p.Body)
	case text == "":
		msg.SetBodyString(gomail.TypeTextHTML, p.Body)
	default:
		// RFC 2046 §5.1.4: the preferred (richest) alternative comes last.
		msg.SetBodyString(gomail.TypeTextPlain, text)
		msg.AddAlternativeString(gomail.TypeTextHTML, p.Body)
		m.estimate += int64(len(text))
	}

	for i, part := range parts {
		ctype, err := partType(part)
		if err != nil {
			return nil, buildErr("attachment %d (%q): %v", i+1, part.Filename, err)
		}
		disposition := "attachment"
		if part.Filename != "" {
			disposition = mime.FormatMediaType("attachment", map[string]string{"filename": part.Filename})
			if disposition == "" {
				return nil, buildErr("attachment %d: filename %q cannot be encoded", i+1, part.Filename)
			}
		}
		msg.AttachReadSeeker(part.Filename, bytes.NewReader(part.Data), func(f *gomail.File) {
			f.Header.Set("Content-Type", ctype)
			f.Header.Set("Content-Disposition", disposition)
		})
		m.estimate += int64(len(part.Data))*4/3 + 512
	}
	m.msg = msg
	return m, nil
}

// textAlternative is the text/plain part of an HTML message: the item's
// body_text, else (unless turned off) the HTML rendered as text with links
// kept as "text <url>" and list items as " - item"; "" means none.
func (o BuildOptions) textAlternative(p store.Payload) string {
	if !strings.EqualFold(p.ContentType, "html") {
		return ""
	}
	if strings.TrimSpace(p.BodyText) != "" {
		return p.BodyText
	}
	if o.NoGeneratedText || strings.TrimSpace(p.Body) == "" {
		return ""
	}
	return html2text.HTML2TextWithOptions(p.Body,
		html2text.WithLinksInnerText(), html2text.WithListSupport(), html2text.WithUnixLineBreaks())
}

// addRecipients fills RCPT TO from to, cc and bcc, de-duplicated
// case-insensitively, first spelling kept.
func (m *Message) addRecipients(p store.Payload) error {
	seen := make(map[string]bool)
	for _, a := range p.Suppressed {
		seen[strings.ToLower(a)] = true // on the tenant's suppression list: never RCPT
	}
	for _, group := range []struct {
		field string
		items []string
	}{{"to", p.To}, {"cc", p.Cc}, {"bcc", p.Bcc}} {
		for _, item := range group.items {
			if strings.TrimSpace(item) == "" {
				continue
			}
			list, err := mail.ParseAddressList(item)
			if err != nil {
				return buildErr("%s %q: %v", group.field, item, err)
			}
			for _, a := range list {
				k := strings.ToLower(a.Address)
				if seen[k] {
					continue
				}
				seen[k] = true
				m.rcpts = append(m.rcpts, a.Address)
				m.utf8 = m.utf8 || !isASCII(a.Address)
			}
		}
	}
	m.utf8 = m.utf8 || !isASCII(m.from)
	if len(m.rcpts) == 0 {
		return buildErr("no recipients")
	}
	return nil
}

// addressHeader renders an address header: ASCII items verbatim, joined by
// ", "; an item with a non-ASCII display name gets it RFC 2047-encoded. raw
// reports a UTF-8 address that must be sent as is. validated items were
// parsed already (the envelope), so ASCII ones need no second parse.
func addressHeader(items []string, validated bool) (value string, raw bool, err error) {
	out := make([]string, 0, len(items))
	for _, item := range items {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if strings.ContainsAny(item, "\r\n") {
			return "", false, errors.New("line break in address")
		}
		ascii := isASCII(item)
		if ascii && validated {
			out = append(out, item)
			continue
		}
		list, err := mail.ParseAddressList(item)
		if err != nil {
			return "", false, fmt.Errorf("%q: %w", item, err)
		}
		if ascii {
			out = append(out, item)
			continue
		}
		for _, a := range list {
			s := a.String() // encodes a non-ASCII name
			raw = raw || !isASCII(s)
			out = append(out, s)
		}
	}
	return strings.Join(out, ", "), raw, nil
}

// partType is the part's Content-Type with its name parameter.
func partType(p Part) (string, error) {
	ctype := p.ContentType
	if !strings.Contains(ctype, "/") {
		ctype = mime.TypeByExtension(filepath.Ext(p.Filename))
	}
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	base, params, err := mime.ParseMediaType(ctype)
	if err != nil {
		return "", fmt.Errorf("content type %q: %w", ctype, err)
	}
	if p.Filename != "" {
		params["name"] = p.Filename
	}
	out := mime.FormatMediaType(base, params)
	if out == "" {
		return "", fmt.Errorf("content type %q cannot be encoded", ctype)
	}
	return out, nil
}

func validHeader(name, value string) error {
	if name == "" {
		return errors.New("empty name")
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c >= 0x7f || c == ':' {
			return errors.New("name must be printable ASCII without ':' or spaces")
		}
	}
	if strings.ContainsAny(value, "\r\n") {
		return errors.New("line break in value")
	}
	return nil
}

// headerSet is an ordered header list with case-insensitive replacement.
type headerSet struct {
	list  []header
	index map[string]int
}

type header struct {
	name, value string
	raw         bool
}

func newHeaderSet() *headerSet { return &headerSet{index: make(map[string]int)} }

func (h *headerSet) set(name, value string, raw bool) {
	k := strings.ToLower(name)
	name = canonicalName(k, name)
	if i, ok := h.index[k]; ok {
		h.list[i] = header{name, value, raw}
		return
	}
	h.index[k] = len(h.list)
	h.list = append(h.list, header{name, value, raw})
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return "localhost"
}

func nonEmpty(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	return []string{s}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
