package delivery_test

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/internal/delivery"
)

// alternatives reads a multipart/alternative message (or a multipart/mixed
// one whose first part is it) into content type → decoded text, in order
// checked: text/plain must come before text/html (RFC 2046 §5.1.4).
func alternatives(t *testing.T, m *mail.Message) map[string]string {
	t.Helper()
	ct, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("Content-Type %q: %v", m.Header.Get("Content-Type"), err)
	}
	body := io.Reader(m.Body)
	if ct == "multipart/mixed" {
		first, err := multipart.NewReader(body, params["boundary"]).NextPart()
		if err != nil {
			t.Fatal(err)
		}
		if ct, params, err = mime.ParseMediaType(first.Header.Get("Content-Type")); err != nil {
			t.Fatal(err)
		}
		body = first
	}
	if ct != "multipart/alternative" {
		t.Fatalf("body type %q, want multipart/alternative", ct)
	}
	out := map[string]string{}
	var order []string
	mr := multipart.NewReader(body, params["boundary"])
	for range 10 {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		pct, pparams, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
		if !strings.EqualFold(pparams["charset"], "utf-8") {
			t.Errorf("%s part charset %q", pct, pparams["charset"])
		}
		b, err := io.ReadAll(decodeTransfer(part.Header.Get("Content-Transfer-Encoding"), part))
		if err != nil {
			t.Fatal(err)
		}
		out[pct] = strings.TrimSuffix(string(b), "\r\n")
		order = append(order, pct)
	}
	if strings.Join(order, ",") != "text/plain,text/html" {
		t.Errorf("alternative parts %v, want text/plain then text/html", order)
	}
	return out
}

func TestHTMLTextAlternative(t *testing.T) {
	t.Parallel()
	const html = `<html><head><style>p{color:red}</style></head><body><h1>Your order</h1>` +
		`<p>Thanks! Track it <a href="https://shop.example/track/42">here</a>.</p><ul><li>one book</li></ul></body></html>`
	cases := []struct {
		name     string
		opts     delivery.BuildOptions
		bodyText string
		attach   bool
		want     []string // substrings of the text part; nil = no alternative
		wantNot  []string
	}{
		{name: "generated", want: []string{"Your order", "Thanks! Track it here <https://shop.example/track/42>.", " - one book"},
			wantNot: []string{"<p>", "color:red"}},
		{name: "body_text wins", bodyText: "Plain thanks, see https://shop.example/track/42", want: []string{"Plain thanks, see https://shop.example/track/42"},
			wantNot: []string{"Your order"}},
		{name: "generation off", opts: delivery.BuildOptions{NoGeneratedText: true}},
		{name: "generation off, body_text still sent", opts: delivery.BuildOptions{NoGeneratedText: true}, bodyText: "mine", want: []string{"mine"}},
		{name: "with an attachment", attach: true, want: []string{"Your order"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := payload("alt")
			p.ContentType, p.Body, p.BodyText = "html", html, tc.bodyText
			var parts []delivery.Part
			if tc.attach {
				parts = []delivery.Part{{Filename: "a.txt", Data: []byte("attached")}}
			}
			msg, err := tc.opts.Build(p, "pk-alt", parts, time.Unix(1_700_000_000, 0))
			if err != nil {
				t.Fatal(err)
			}
			b := setup(t, setupOpts{})
			if _, err := b.sender.Send(t.Context(), b.acct, msg); err != nil {
				t.Fatalf("send: %v", err)
			}
			got := b.srv.Messages()
			if len(got) != 1 {
				t.Fatalf("server got %d messages", len(got))
			}
			m, err := mail.ReadMessage(bytes.NewReader(got[0].Data))
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == nil {
				if ct, _, _ := mime.ParseMediaType(m.Header.Get("Content-Type")); ct != "text/html" {
					t.Errorf("Content-Type %q, want text/html alone", ct)
				}
				return
			}
			alt := alternatives(t, m)
			if alt["text/html"] != html {
				t.Errorf("html part = %q", alt["text/html"])
			}
			for _, w := range tc.want {
				if !strings.Contains(alt["text/plain"], w) {
					t.Errorf("text part lacks %q:\n%s", w, alt["text/plain"])
				}
			}
			for _, w := range tc.wantNot {
				if strings.Contains(alt["text/plain"], w) {
					t.Errorf("text part has %q:\n%s", w, alt["text/plain"])
				}
			}
		})
	}
}
