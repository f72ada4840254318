package testimap

import (
	"fmt"
	"strings"
)

// DSN is a delivery status notification to append, as a receiving MTA
// writes it (RFC 3464): a text part, the message/delivery-status part and
// the returned headers (text/rfc822-headers) or message (message/rfc822).
type DSN struct {
	Recipient  string // Final-Recipient
	Status     string // e.g. 5.1.1 or 4.2.2
	Action     string // failed (default) or delayed
	Diagnostic string // e.g. "550 5.1.1 user unknown"
	// The returned original: its Message-ID and X-Genro-Mail-ID ("" = absent).
	MessageID, MailID string
	FullMessage       bool // message/rfc822 instead of text/rfc822-headers
}

// Bytes renders the notification with CRLF line ends.
func (d DSN) Bytes() []byte {
	action := d.Action
	if action == "" {
		action = "failed"
	}
	var orig strings.Builder
	orig.WriteString("From: Shop <shop@example.com>\nTo: " + d.Recipient + "\nSubject: Your order\n")
	if d.MessageID != "" {
		orig.WriteString("Message-ID: " + d.MessageID + "\n")
	}
	if d.MailID != "" {
		orig.WriteString("X-Genro-Mail-ID: " + d.MailID + "\n")
	}
	origType := "text/rfc822-headers"
	if d.FullMessage {
		origType = "message/rfc822"
		orig.WriteString("\nThanks for your order.\n")
	}
	return []byte(strings.ReplaceAll(fmt.Sprintf(`From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
To: bounces@example.com
Subject: Undelivered Mail Returned to Sender
Date: Fri, 4 Dec 2026 03:00:00 +0000
Message-ID: <dsn-%[1]s-%[2]s@mx.example.net>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="BOUNDARY"

--BOUNDARY
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.net. Your message could not be delivered.

--BOUNDARY
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
Arrival-Date: Fri, 4 Dec 2026 02:59:00 +0000

Final-Recipient: rfc822; %[1]s
Original-Recipient: rfc822;%[1]s
Action: %[3]s
Status: %[2]s
Diagnostic-Code: smtp; %[4]s

--BOUNDARY
Content-Type: %[5]s

%[6]s
--BOUNDARY--
`, d.Recipient, d.Status, action, d.Diagnostic, origType, orig.String()), "\n", "\r\n"))
}
