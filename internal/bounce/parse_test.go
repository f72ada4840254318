package bounce

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mailproxy/mailproxy/internal/testimap"
)

func crlf(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

func TestParse(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		raw  []byte
		want Notification
	}{
		{name: "RFC 3464 hard bounce, returned headers",
			raw: testimap.DSN{Recipient: "bob@example.net", Status: "5.1.1", Diagnostic: "550 5.1.1 <bob@example.net>: user unknown",
				MessageID: "<pk1@example.com>", MailID: "order-42"}.Bytes(),
			want: Notification{Kind: DSN, MessageID: "<pk1@example.com>", MailID: "order-42",
				Recipients: []Recipient{{Address: "bob@example.net", Status: "5.1.1", Reason: "550 5.1.1 <bob@example.net>: user unknown"}}}},
		{name: "soft bounce, returned message",
			raw: testimap.DSN{Recipient: "full@example.net", Status: "4.2.2", Action: "delayed", Diagnostic: "452 4.2.2 mailbox full",
				MessageID: "<pk2@example.com>", FullMessage: true}.Bytes(),
			want: Notification{Kind: DSN, MessageID: "<pk2@example.com>",
				Recipients: []Recipient{{Address: "full@example.net", Status: "4.2.2", Reason: "452 4.2.2 mailbox full"}}}},
		{name: "delivered DSN is no bounce",
			raw:  testimap.DSN{Recipient: "ok@example.net", Status: "2.0.0", Action: "delivered", MailID: "m"}.Bytes(),
			want: Notification{Kind: DSN, MailID: "m"}},
		{name: "ARF abuse complaint",
			raw: crlf(`From: feedback@isp.example
To: bounces@example.com
Subject: Abuse report
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="B"

--B
Content-Type: text/plain

This is an abuse report.
--B
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: isp-fbl/1.0
Version: 1
Original-Rcpt-To: <Angry@Example.net>

--B
Content-Type: message/rfc822

From: Shop <shop@example.com>
To: angry@example.net
Message-ID: <pk3@example.com>
X-Genro-Mail-ID: promo-7
Subject: Sale

Buy now.
--B--
`),
			want: Notification{Kind: Complaint, MessageID: "<pk3@example.com>", MailID: "promo-7",
				Recipients: []Recipient{{Address: "Angry@Example.net", Reason: "abuse complaint"}}}},
		{name: "non-standard bounce quoting the original headers",
			raw: crlf(`From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
To: bounces@example.com
Subject: Delivery Status Notification (Failure)
Content-Type: text/plain; charset=UTF-8

Address not found

Your message wasn't delivered to gone@example.org because the address couldn't be found.

The response was:
550 5.1.1 The email account that you tried to reach does not exist.

----- Original message -----

From: Shop <shop@example.com>
To: gone@example.org
Subject: Your order
Message-ID: <pk4@example.com>
X-Genro-Mail-ID: order-9
`),
			want: Notification{Kind: DSN, MessageID: "<pk4@example.com>", MailID: "order-9",
				Recipients: []Recipient{{Address: "gone@example.org", Status: "5.1.1",
					Reason: "550 5.1.1 The email account that you tried to reach does not exist."}}}},
		{name: "an ordinary message is no bounce",
			raw: crlf("From: someone@example.net\nTo: bounces@example.com\nSubject: hello\nMessage-ID: <x@y>\n\nX-Genro-Mail-ID: quoted-but-not-a-bounce\n")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := Parse(tc.raw)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Parse (-want +got):\n%s", diff)
			}
		})
	}
}
