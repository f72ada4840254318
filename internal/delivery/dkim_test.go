package delivery_test

import (
	"bytes"
	"fmt"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/mailproxy/mailproxy/internal/delivery"
	mpdkim "github.com/mailproxy/mailproxy/internal/dkim"
	"github.com/mailproxy/mailproxy/internal/store"
)

// TestDKIMSignatureVerifies sends through an account with a DKIM key and
// verifies what the SMTP server received with go-msgauth's verifier,
// answering its TXT lookup with the key's own record.
func TestDKIMSignatureVerifies(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"rsa", "ed25519"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			key, pemText, err := mpdkim.GenerateKey(kind, 2048)
			if err != nil {
				t.Fatal(err)
			}
			record, err := mpdkim.PublicRecord(key)
			if err != nil {
				t.Fatal(err)
			}
			b := setup(t, setupOpts{})
			b.acct.DKIMDomain, b.acct.DKIMSelector, b.acct.DKIMPrivateKey = "example.com", "mail2026", pemText

			p := payload("signed")
			p.Cc = []string{"c@example.net"}
			p.ReplyTo = "replies@example.com"
			p.ContentType, p.Body = "html", "<p>Ciao è, <a href=\"https://example.com/x\">link</a></p>\n.leading dot line"
			if _, err := b.sender.Send(t.Context(), b.acct, build(t, p)); err != nil {
				t.Fatalf("send: %v", err)
			}
			got := b.srv.Messages()
			if len(got) != 1 {
				t.Fatalf("server got %d messages", len(got))
			}
			data := got[0].Data
			var lookedUp []string
			verifications, err := dkim.VerifyWithOptions(bytes.NewReader(data), &dkim.VerifyOptions{
				LookupTXT: func(domain string) ([]string, error) {
					lookedUp = append(lookedUp, domain)
					if domain != "mail2026._domainkey.example.com" {
						return nil, fmt.Errorf("no TXT record for %s", domain)
					}
					return []string{record}, nil
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(verifications) != 1 {
				t.Fatalf("%d signatures, want 1", len(verifications))
			}
			v := verifications[0]
			if v.Err != nil {
				t.Fatalf("signature does not verify: %v (looked up %v)\n%s", v.Err, lookedUp, data)
			}
			if v.Domain != "example.com" {
				t.Errorf("d= %q", v.Domain)
			}
			want := []string{"from", "to", "cc", "subject", "date", "message-id", "mime-version", "content-type", "reply-to"}
			if strings.Join(lower(v.HeaderKeys), ",") != strings.Join(want, ",") {
				t.Errorf("signed headers %v, want %v", v.HeaderKeys, want)
			}
			m, err := mail.ReadMessage(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			sig := m.Header.Get("Dkim-Signature")
			if !strings.Contains(sig, "c=relaxed/relaxed") || !strings.Contains(sig, "s=mail2026") {
				t.Errorf("DKIM-Signature = %q", sig)
			}

			// The signature covers the body: a changed byte fails it.
			tampered := bytes.Replace(data, []byte("Subject: hello"), []byte("Subject: hellO"), 1)
			vs, err := dkim.VerifyWithOptions(bytes.NewReader(tampered), &dkim.VerifyOptions{
				LookupTXT: func(string) ([]string, error) { return []string{record}, nil }})
			if err != nil || len(vs) != 1 || vs[0].Err == nil {
				t.Errorf("a tampered message verifies: %v %+v", err, vs)
			}
		})
	}
}

func lower(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.ToLower(s)
	}
	return out
}

// TestDKIMUnusableStoredKey: a stored key that does not parse fails the
// send permanently before any SMTP command.
func TestDKIMUnusableStoredKey(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	b.acct.DKIMDomain, b.acct.DKIMSelector, b.acct.DKIMPrivateKey = "example.com", "s", "not a key"
	_, err := b.sender.Send(t.Context(), b.acct, build(t, payload("x")))
	de := asError(t, err)
	if !de.Permanent || de.Command != "DKIM" || !strings.Contains(err.Error(), "dkim_private_key") {
		t.Errorf("error %v (%+v), want a permanent DKIM error naming dkim_private_key", err, de)
	}
	if n := len(b.srv.Messages()); n != 0 {
		t.Errorf("server got %d messages", n)
	}
}

// TestDKIMSignsRawMessages: a submitted message (bare LF line ends, which
// the DATA writer turns into CRLF) is signed over the bytes the server gets.
func TestDKIMSignsRawMessages(t *testing.T) {
	t.Parallel()
	key, pemText, err := mpdkim.GenerateKey("ed25519", 0)
	if err != nil {
		t.Fatal(err)
	}
	record, _ := mpdkim.PublicRecord(key)
	b := setup(t, setupOpts{})
	b.acct.DKIMDomain, b.acct.DKIMSelector, b.acct.DKIMPrivateKey = "example.com", "raw", pemText
	raw := "From: Sender <sender@example.com>\nTo: a@example.net\nSubject: raw\nMIME-Version: 1.0\n" +
		"Content-Type: text/plain; charset=utf-8\n\nline one\n.dot line\n"
	msg, err := delivery.BuildRaw(store.Payload{ID: "r1", From: "Sender <sender@example.com>", To: []string{"a@example.net"}, Raw: raw},
		"pk-r1", time.Unix(1_700_000_000, 0).UTC())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.sender.Send(t.Context(), b.acct, msg); err != nil {
		t.Fatalf("send: %v", err)
	}
	got := b.srv.Messages()
	if len(got) != 1 {
		t.Fatalf("server got %d messages", len(got))
	}
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(got[0].Data), &dkim.VerifyOptions{
		LookupTXT: func(string) ([]string, error) { return []string{record}, nil }})
	if err != nil || len(vs) != 1 || vs[0].Err != nil {
		t.Fatalf("raw message signature: %v %+v\n%q", err, vs, got[0].Data)
	}
}
