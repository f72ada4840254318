// Package bounce reads delivery status notifications and complaints from an
// IMAP mailbox (delivery.md §8, issue 16.1): RFC 3464 DSNs, ARF abuse
// reports (RFC 5965) and the common non-standard bounces that quote the
// original headers. Each is matched to the message it is about (by the
// returned X-Genro-Mail-ID or Message-ID), recorded as a bounce event
// (reported to the client) and, for hard bounces and complaints, put on the
// tenant's suppression list. Processed notifications are flagged so they
// are never processed twice; with several instances one polls at a time.
package bounce

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/mail"
	"net/textproto"
	"regexp"
	"strings"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decode any charset a bounce comes in
)

// Kind is what a notification is.
type Kind int

// Notification kinds.
const (
	NotBounce Kind = iota // anything else: left alone
	DSN                   // a delivery status notification (standard or not)
	Complaint             // an ARF abuse report
)

// Recipient is one recipient's status in a notification.
type Recipient struct {
	Address string // final (or original) recipient
	Status  string // enhanced status code, e.g. 5.1.1
	Reason  string // the diagnostic text, e.g. "550 5.1.1 user unknown"
}

// Hard reports a permanent failure (5.x.x).
func (r Recipient) Hard() bool { return strings.HasPrefix(r.Status, "5.") }

// Notification is a parsed bounce or complaint.
type Notification struct {
	Kind       Kind
	Recipients []Recipient // DSN: the failed or delayed ones; complaint: the complained-about recipient
	// The original message, as quoted: its Message-ID and X-Genro-Mail-ID.
	MessageID string
	MailID    string
}

// maxMessage bounds what is read of one notification.
const maxMessage = 10 << 20

var (
	enhancedRE = regexp.MustCompile(`\b([45])\.(\d{1,3})\.(\d{1,3})\b`)
	replyRE    = regexp.MustCompile(`\b([45])\d\d\b`)
	mailIDRE   = regexp.MustCompile(`(?im)^X-Genro-Mail-ID:[ \t]*(\S+)`)
	msgIDRE    = regexp.MustCompile(`(?im)^Message-ID:[ \t]*(<[^>\r\n]+>)`)
	quotedToRE = regexp.MustCompile(`(?im)^To:[ \t]*(.+)$`)
	bounceFrom = regexp.MustCompile(`(?i)mailer-daemon|postmaster|mail delivery (subsystem|system)`)
	bounceSubj = regexp.MustCompile(`(?i)undeliver|delivery (status|failure|has failed|failed)|returned mail|failure notice|mail delivery failed|could not be delivered|non[- ]?delivery`)
)

// Parse reads one message of the bounce mailbox.
func Parse(raw []byte) (Notification, error) {
	if len(raw) > maxMessage {
		raw = raw[:maxMessage]
	}
	e, err := message.Read(bytes.NewReader(raw))
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		return Notification{}, err
	}
	var n Notification
	p := &parser{n: &n}
	if err := p.walk(e, 0); err != nil {
		return Notification{}, err
	}
	switch {
	case p.feedback != nil:
		if !strings.EqualFold(strings.TrimSpace(p.feedback.Get("Feedback-Type")), "abuse") {
			return Notification{}, nil
		}
		n.Kind = Complaint
		rcpt := firstAddress(p.feedback.Get("Original-Rcpt-To"))
		if rcpt == "" {
			rcpt = p.originalTo
		}
		if rcpt != "" {
			n.Recipients = []Recipient{{Address: rcpt, Reason: "abuse complaint"}}
		}
	case p.dsn:
		n.Kind = DSN
	default:
		// Not RFC 3464: a provider's own format quoting the original headers.
		if !bounceFrom.MatchString(e.Header.Get("From")) && !bounceSubj.MatchString(decodeHeader(e.Header.Get("Subject"))) {
			return Notification{}, nil
		}
		text := p.text.String()
		if n.MailID == "" {
			if m := mailIDRE.FindStringSubmatch(text); m != nil {
				n.MailID = m[1]
			}
		}
		if n.MessageID == "" {
			if m := msgIDRE.FindStringSubmatch(text); m != nil {
				n.MessageID = m[1]
			}
		}
		if n.MailID == "" && n.MessageID == "" {
			return Notification{}, nil
		}
		status := "5.0.0" // a failure notice without a code is a failure
		if m := enhancedRE.FindString(text); m != "" {
			status = m
		} else if m := replyRE.FindStringSubmatch(text); m != nil {
			status = m[1] + ".0.0"
		}
		rcpt := p.originalTo
		if m := quotedToRE.FindStringSubmatch(text); rcpt == "" && m != nil {
			rcpt = firstAddress(m[1])
		}
		n.Kind = DSN
		n.Recipients = []Recipient{{Address: rcpt, Status: status, Reason: reasonLine(text, status)}}
	}
	return n, nil
}

type parser struct {
	n          *Notification
	dsn        bool
	feedback   textproto.MIMEHeader
	originalTo string
	text       bytes.Buffer // text parts, for non-standard bounces
}

func (p *parser) walk(e *message.Entity, depth int) error {
	if depth > 10 {
		return nil
	}
	if mr := e.MultipartReader(); mr != nil {
		for range 100 {
			part, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
				return nil // a broken part ends the walk; what was read counts
			}
			if err := p.walk(part, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	ctype, _, _ := e.Header.ContentType()
	body, err := io.ReadAll(io.LimitReader(e.Body, maxMessage))
	if err != nil {
		return nil
	}
	switch strings.ToLower(ctype) {
	case "message/delivery-status", "message/global-delivery-status":
		p.dsn = true
		p.deliveryStatus(body)
	case "message/feedback-report":
		if h, err := readHeader(body); err == nil || len(h) > 0 {
			p.feedback = h
		}
	case "message/rfc822", "text/rfc822-headers", "message/rfc822-headers", "message/global", "message/global-headers":
		p.original(body)
	case "text/plain", "text/html", "":
		if p.text.Len() < maxMessage {
			p.text.Write(body)
			p.text.WriteByte('\n')
		}
	}
	return nil
}

// deliveryStatus reads RFC 3464 §2.1: a per-message block, then one block
// per recipient.
func (p *parser) deliveryStatus(body []byte) {
	r := textproto.NewReader(bufio.NewReader(bytes.NewReader(body)))
	for i := 0; i < 1000; i++ {
		h, err := r.ReadMIMEHeader()
		if len(h) > 0 && i > 0 || h.Get("Final-Recipient") != "" {
			p.recipient(h)
		}
		if err != nil {
			return
		}
	}
}

func (p *parser) recipient(h textproto.MIMEHeader) {
	action := strings.ToLower(strings.TrimSpace(h.Get("Action")))
	status := enhancedRE.FindString(h.Get("Status"))
	if status == "" || (action != "" && action != "failed" && action != "delayed") {
		return // delivered, relayed, expanded, or no usable status
	}
	addr := typedAddress(h.Get("Final-Recipient"))
	if addr == "" {
		addr = typedAddress(h.Get("Original-Recipient"))
	}
	reason := strings.TrimSpace(h.Get("Diagnostic-Code"))
	if i := strings.IndexByte(reason, ';'); i >= 0 && i < 12 {
		reason = strings.TrimSpace(reason[i+1:]) // drop the "smtp;" diagnostic type
	}
	if reason == "" {
		reason = status
	}
	p.n.Recipients = append(p.n.Recipients, Recipient{Address: addr, Status: status, Reason: collapse(reason)})
}

// original reads the returned message's headers.
func (p *parser) original(body []byte) {
	h, err := readHeader(body)
	if err != nil && len(h) == 0 {
		return
	}
	if v := strings.TrimSpace(h.Get("X-Genro-Mail-ID")); v != "" && p.n.MailID == "" {
		p.n.MailID = v
	}
	if v := strings.TrimSpace(h.Get("Message-ID")); v != "" && p.n.MessageID == "" {
		p.n.MessageID = v
	}
	if p.originalTo == "" {
		p.originalTo = firstAddress(h.Get("To"))
	}
}

func readHeader(body []byte) (textproto.MIMEHeader, error) {
	return textproto.NewReader(bufio.NewReader(bytes.NewReader(body))).ReadMIMEHeader()
}

// typedAddress reads "rfc822; user@example.com".
func typedAddress(v string) string {
	if i := strings.IndexByte(v, ';'); i >= 0 {
		v = v[i+1:]
	}
	return strings.Trim(strings.TrimSpace(v), "<>")
}

func firstAddress(v string) string {
	list, err := mail.ParseAddressList(strings.TrimSpace(v))
	if err != nil || len(list) == 0 {
		return strings.Trim(strings.TrimSpace(v), "<>")
	}
	return list[0].Address
}

// reasonLine is the text line that carries the status code.
func reasonLine(text, status string) string {
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, status) || replyRE.MatchString(line) && strings.HasPrefix(status, line[replyRE.FindStringIndex(line)[0]:][:1]) {
			if s := collapse(line); s != "" {
				if len(s) > 300 {
					s = s[:300]
				}
				return s
			}
		}
	}
	return status
}

func collapse(s string) string { return strings.Join(strings.Fields(s), " ") }

func decodeHeader(v string) string {
	var h message.Header
	h.Set("X", v)
	if s, err := h.Text("X"); err == nil {
		return s
	}
	return v
}
