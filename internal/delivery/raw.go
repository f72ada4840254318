package delivery

import (
	"net/mail"
	"time"

	"github.com/mailproxy/mailproxy/internal/rawmsg"
	"github.com/mailproxy/mailproxy/internal/store"
)

// BuildRaw prepares a submitted message (payload Raw) for one attempt: the
// envelope comes from the payload (return_path, else from; to, cc, bcc), the
// header and body bytes stay as submitted, except that every Bcc field is
// removed and, when missing, Date (now), Message-ID (message_id, else
// <pk@domain of from>, identical on every attempt) and X-Genro-Mail-ID are
// added at the top.
func BuildRaw(p store.Payload, pk string, now time.Time) (*Message, error) {
	data, err := p.RawBytes()
	if err != nil {
		return nil, buildErr("raw: %v", err)
	}
	rm, err := rawmsg.Parse(data)
	if err != nil {
		return nil, buildErr("raw: %v", err)
	}
	m := &Message{}
	if err := m.envelope(p); err != nil {
		return nil, err
	}
	rm.Remove("Bcc")
	if !rm.Has("X-Genro-Mail-ID") {
		if err := rm.Prepend("X-Genro-Mail-ID", p.ID); err != nil {
			return nil, buildErr("raw: %v", err)
		}
	}
	if !rm.Has("Message-ID") {
		id := p.MessageID
		if id == "" {
			id = "<" + pk + "@" + domainOf(m.from) + ">"
		}
		if err := rm.Prepend("Message-ID", id); err != nil {
			return nil, buildErr("raw: %v", err)
		}
	}
	if !rm.Has("Date") {
		_ = rm.Prepend("Date", now.Format(time.RFC1123Z))
	}
	m.raw = rm.Bytes()
	m.eightBit = has8Bit(m.raw)
	m.estimate = int64(len(m.raw))
	return m, nil
}

// envelope sets MAIL FROM (return_path, else from) and RCPT TO (to, cc, bcc).
func (m *Message) envelope(p store.Payload) error {
	from := p.ReturnPath
	if from == "" {
		from = p.From
	}
	a, err := mail.ParseAddress(from)
	if err != nil {
		return buildErr("envelope sender %q: %v", from, err)
	}
	m.from = a.Address
	return m.addRecipients(p)
}

func has8Bit(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return true
		}
	}
	return false
}
