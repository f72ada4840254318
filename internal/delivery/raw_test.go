package delivery_test

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/internal/delivery"
	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/testsmtp"
)

func TestBuildRawSendsSubmittedBytes(t *testing.T) {
	t.Parallel()
	const head = "From: Sender <sender@example.com>\r\nTo: a@example.net\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
	const body = "\r\nline one\r\n.starts with a dot\r\n\xc3\xa9 8-bit text\r\n"
	cases := []struct {
		name, raw    string
		encoding     string
		messageID    string
		wantPrefix   string // the added fields, in order
		wantRcpts    []string
		wantBody     string
		envelopeFrom string
		returnPath   string
	}{
		{name: "adds date, message-id and genro id; drops bcc",
			raw:        head + "Bcc: hidden@example.org,\r\n other@example.org\r\n" + body,
			wantPrefix: "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\nMessage-ID: <pk-r1@example.com>\r\nX-Genro-Mail-ID: r1\r\n",
			wantRcpts:  []string{"a@example.net", "hidden@example.org"}, wantBody: head + body, envelopeFrom: "sender@example.com"},
		{name: "keeps date and message-id; base64 transport; return path",
			raw:      "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <own@x>\r\n" + head + body,
			encoding: "base64", returnPath: "bounces@example.com",
			wantPrefix: "X-Genro-Mail-ID: r1\r\n", wantRcpts: []string{"a@example.net"},
			wantBody: "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <own@x>\r\n" + head + body, envelopeFrom: "bounces@example.com"},
		{name: "message_id wins over the generated one",
			raw: head + body, messageID: "<given@example.com>",
			wantPrefix: "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\nMessage-ID: <given@example.com>\r\nX-Genro-Mail-ID: r1\r\n",
			wantRcpts:  []string{"a@example.net"}, wantBody: head + body, envelopeFrom: "sender@example.com"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, setupOpts{server: testsmtp.Options{}})
			p := store.Payload{ID: "r1", From: "Sender <sender@example.com>", To: []string{"a@example.net"},
				ReturnPath: tc.returnPath, MessageID: tc.messageID, Raw: tc.raw}
			if strings.Contains(tc.raw, "hidden@") {
				p.Bcc = []string{"hidden@example.org"}
			}
			if tc.encoding == "base64" {
				p.Raw, p.RawEncoding = base64.StdEncoding.EncodeToString([]byte(tc.raw)), "base64"
			}
			msg, err := delivery.BuildRaw(p, "pk-r1", time.Unix(1_700_000_000, 0).UTC())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.sender.Send(t.Context(), b.acct, msg); err != nil {
				t.Fatal(err)
			}
			got := b.srv.Messages()
			if len(got) != 1 {
				t.Fatalf("received %d messages", len(got))
			}
			if want := tc.wantPrefix + tc.wantBody; string(got[0].Data) != want {
				t.Errorf("data\n%q\nwant\n%q", got[0].Data, want)
			}
			if got[0].From != tc.envelopeFrom || !slices.Equal(got[0].Rcpts, tc.wantRcpts) {
				t.Errorf("envelope %q %q", got[0].From, got[0].Rcpts)
			}
		})
	}
}

func TestBuildRawRefusesBrokenMessages(t *testing.T) {
	t.Parallel()
	for _, p := range []store.Payload{
		{ID: "x", From: "a@example.com", To: []string{"b@example.com"}, Raw: "no header here"},
		{ID: "x", From: "a@example.com", To: []string{"b@example.com"}, Raw: "!!", RawEncoding: "base64"},
		{ID: "x", From: "a@example.com", Raw: "From: a@example.com\r\n\r\nbody"},
	} {
		if _, err := delivery.BuildRaw(p, "pk", time.Now()); err == nil {
			t.Errorf("BuildRaw(%q) succeeded", p.Raw)
		} else if de, ok := err.(*delivery.Error); !ok || !de.Permanent {
			t.Errorf("error %v is not a permanent delivery error", err)
		}
	}
}
