package delivery_test

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mailproxy/mailproxy/internal/delivery"
	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/testsmtp"
)

// receive sends p with parts and parses what the server got.
func receive(t *testing.T, p store.Payload, parts ...delivery.Part) (testsmtp.Received, *mail.Message) {
	t.Helper()
	b := setup(t, setupOpts{})
	if _, err := b.sender.Send(t.Context(), b.acct, build(t, p, parts...)); err != nil {
		t.Fatalf("send: %v", err)
	}
	msgs := b.srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("server got %d messages", len(msgs))
	}
	m, err := mail.ReadMessage(bytes.NewReader(msgs[0].Data))
	if err != nil {
		t.Fatalf("parse received message: %v\n%s", err, msgs[0].Data)
	}
	return msgs[0], m
}

func decodeHeader(t *testing.T, v string) string {
	t.Helper()
	s, err := new(mime.WordDecoder).DecodeHeader(v)
	if err != nil {
		t.Fatalf("decode %q: %v", v, err)
	}
	return s
}

func TestMIMEHeadersAndEnvelope(t *testing.T) {
	t.Parallel()
	p := store.Payload{
		ID: "client-42", From: "Mario Rossi <mario@example.com>",
		To:         []string{"a@example.net", "Bea <b@example.net>"},
		Cc:         []string{"c@example.net"},
		Bcc:        []string{"hidden@example.org", "A@EXAMPLE.NET"},
		ReplyTo:    "replies@example.com",
		ReturnPath: "bounces@example.com",
		Subject:    "Fattura è già pronta ✓ — un oggetto lungo abbastanza da richiedere più parole codificate",
		Body:       "<p>Ciao è</p>", ContentType: "html",
		Headers: map[string]string{"X-Campaign": "spring", "bcc": "leak@example.org", "Return-Path": "x@y.z", "reply-to": "override@example.com"},
	}
	got, m := receive(t, p)

	if got.From != "bounces@example.com" {
		t.Errorf("MAIL FROM = %q, want the return_path address", got.From)
	}
	if diff := cmp.Diff([]string{"a@example.net", "b@example.net", "c@example.net", "hidden@example.org"}, got.Rcpts); diff != "" {
		t.Errorf("RCPT TO (-want +got):\n%s", diff)
	}
	h := m.Header
	checks := map[string]string{
		"From":            "Mario Rossi <mario@example.com>",
		"To":              "a@example.net, Bea <b@example.net>",
		"Cc":              "c@example.net",
		"Reply-To":        "override@example.com",
		"Message-Id":      "<pk-client-42@example.com>",
		"Mime-Version":    "1.0",
		"X-Genro-Mail-Id": "client-42",
		"X-Campaign":      "spring",
	}
	for k, want := range checks {
		if v := h.Get(k); v != want {
			t.Errorf("%s = %q, want %q", k, v, want)
		}
	}
	for _, absent := range []string{"Bcc", "Return-Path", "User-Agent"} {
		if v, ok := h[absent]; ok {
			t.Errorf("header %s present: %q", absent, v)
		}
	}
	if strings.Contains(string(got.Data), "hidden@example.org") || strings.Contains(string(got.Data), "leak@") {
		t.Error("a Bcc address leaked into the message data")
	}
	if s := decodeHeader(t, h.Get("Subject")); s != p.Subject {
		t.Errorf("Subject decodes to %q", s)
	}
	if !isASCII(string(got.Data)) {
		t.Error("message data is not 7-bit")
	}
	if d, err := h.Date(); err != nil || !d.Equal(time.Unix(1_700_000_000, 0)) {
		t.Errorf("Date = %v, %v", d, err)
	}
	parts := alternatives(t, m)
	if got := parts["text/html"]; got != p.Body {
		t.Errorf("html part = %q, want %q", got, p.Body)
	}
	if got := parts["text/plain"]; strings.TrimSpace(got) != "Ciao è" {
		t.Errorf("text part = %q", got)
	}
}

func TestMIMEPlainAndMessageID(t *testing.T) {
	t.Parallel()
	p := payload("m1")
	p.MessageID = "<custom.123@client.example>"
	_, m := receive(t, p)
	if ct := m.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("default content type = %q", ct)
	}
	if id := m.Header.Get("Message-Id"); id != p.MessageID {
		t.Errorf("Message-ID = %q, want verbatim %q", id, p.MessageID)
	}

	// The generated Message-ID is the same on every attempt.
	p.MessageID = ""
	ids := map[string]bool{}
	for i := range 2 {
		msg, err := delivery.Build(p, "same-pk", nil, time.Unix(int64(1_700_000_000+i*3600), 0))
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := msg.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		parsed, err := mail.ReadMessage(&buf)
		if err != nil {
			t.Fatal(err)
		}
		ids[parsed.Header.Get("Message-Id")] = true
	}
	if len(ids) != 1 || !ids["<same-pk@example.com>"] {
		t.Errorf("Message-IDs over two attempts = %v", ids)
	}
}

func TestMIMEAttachments(t *testing.T) {
	t.Parallel()
	pdf := []byte("%PDF-1.4 fake \x00\x01\x02 binary")
	txt := []byte("riga uno\nriga due è\n")
	blob := bytes.Repeat([]byte{0xff, 0x00, 0x7f}, 5000)
	parts := []delivery.Part{
		{Filename: "report.pdf", ContentType: "pdf", Data: pdf},
		{Filename: "fattura è già.txt", ContentType: "text/plain", Data: txt},
		{Filename: "blob", Data: blob},
	}
	p := payload("att")
	p.Body = "see attached"
	got, m := receive(t, p, parts...)

	ct, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || ct != "multipart/mixed" {
		t.Fatalf("Content-Type = %q, %v", m.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	first, err := mr.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	if ct := first.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("first part type %q, want the body", ct)
	}
	if b, _ := io.ReadAll(first); string(b) != "see attached" {
		t.Errorf("body part = %q", b)
	}
	wantTypes := []string{"application/pdf", "text/plain", "application/octet-stream"}
	for i, want := range parts {
		part, err := mr.NextPart()
		if err != nil {
			t.Fatalf("attachment %d: %v", i, err)
		}
		if fn := part.FileName(); fn != want.Filename {
			t.Errorf("attachment %d filename = %q, want %q", i, fn, want.Filename)
		}
		disp, _, _ := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
		if disp != "attachment" {
			t.Errorf("attachment %d disposition = %q", i, disp)
		}
		if ct, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type")); ct != wantTypes[i] {
			t.Errorf("attachment %d type = %q, want %q", i, ct, wantTypes[i])
		}
		if enc := part.Header.Get("Content-Transfer-Encoding"); enc != "base64" {
			t.Errorf("attachment %d encoding = %q", i, enc)
		}
		data, err := io.ReadAll(base64.NewDecoder(base64.StdEncoding, part))
		if err != nil || !bytes.Equal(data, want.Data) {
			t.Errorf("attachment %d bytes differ (%d vs %d), %v", i, len(data), len(want.Data), err)
		}
	}
	if !strings.Contains(string(got.Data), "filename*=utf-8''fattura%20%C3%A8%20gi%C3%A0.txt") {
		t.Error("non-ASCII filename not RFC 2231-encoded")
	}
	if _, err := mr.NextPart(); err != io.EOF {
		t.Errorf("extra part: %v", err)
	}
}

func TestBuildRejectsBadInput(t *testing.T) {
	t.Parallel()
	cases := map[string]func(*store.Payload){
		"bad from":        func(p *store.Payload) { p.From = "not an address" },
		"no recipients":   func(p *store.Payload) { p.To = nil },
		"bad recipient":   func(p *store.Payload) { p.To = []string{"a@b", "<<broken"} },
		"header newline":  func(p *store.Payload) { p.Headers = map[string]string{"X-A": "v\r\nBcc: x@y"} },
		"bad header name": func(p *store.Payload) { p.Headers = map[string]string{"X A": "v"} },
		"bad return path": func(p *store.Payload) { p.ReturnPath = "@@" },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := payload("bad")
			mutate(&p)
			_, err := delivery.Build(p, "pk", nil, time.Now())
			if err == nil {
				t.Fatal("built anyway")
			}
			de := asError(t, err)
			if !de.Permanent || de.Command != "build" {
				t.Errorf("error %+v, want permanent build error", de)
			}
		})
	}
	// A bad attachment type is refused too.
	_, err := delivery.Build(payload("x"), "pk", []delivery.Part{{Filename: "a", ContentType: "text/plain; ;;=", Data: []byte("x")}}, time.Now())
	if de := asError(t, err); !de.Permanent {
		t.Errorf("bad content type: %v", err)
	}
}

func decodeTransfer(enc string, r io.Reader) io.Reader {
	switch strings.ToLower(enc) {
	case "base64":
		return base64.NewDecoder(base64.StdEncoding, r)
	case "quoted-printable":
		return quotedprintable.NewReader(r)
	}
	return r
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// TestSuppressedRecipientsLeftOutOfTheEnvelope: addresses on the tenant's
// suppression list get no RCPT TO, while the headers stay as written.
func TestSuppressedRecipientsLeftOutOfTheEnvelope(t *testing.T) {
	t.Parallel()
	p := payload("sup")
	p.To = []string{"Stay <stay@example.net>", "Gone <GONE@example.net>"}
	p.Bcc = []string{"hidden-gone@example.org"}
	p.Suppressed = []string{"gone@example.net", "hidden-gone@example.org"}
	got, m := receive(t, p)
	if diff := cmp.Diff([]string{"stay@example.net"}, got.Rcpts); diff != "" {
		t.Errorf("RCPT TO (-want +got):\n%s", diff)
	}
	if to := m.Header.Get("To"); to != "Stay <stay@example.net>, Gone <GONE@example.net>" {
		t.Errorf("To = %q", to)
	}
}
