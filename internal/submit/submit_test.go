package submit_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mailproxy/mailproxy/internal/testsmtp"
)

// plainMessage has no Date or Message-ID (the proxy adds them), a Bcc
// header (removed) and control headers (read and removed).
const plainMessage = "From: Shop <shop@example.com>\r\n" +
	"To: Customer <customer@example.net>\r\n" +
	"Bcc: audit@example.org\r\n" +
	"X-Mail-Proxy-Id: %s\r\n" +
	"X-Mail-Proxy-Priority: high\r\n" +
	"Subject: =?utf-8?q?Your_order_=E2=9C=93?=\r\n" +
	"X-Custom:  kept   as is\r\n" +
	"\tand folded\r\n" +
	"\r\n" +
	"Thanks for your order.\r\n" +
	".a line that starts with a dot\r\n" +
	"\r\n" +
	"-- \r\nShop\r\n"

// attachmentMessage has its own Date and Message-ID, and a PDF attachment.
const attachmentMessage = "Date: Mon, 1 Jun 2026 10:00:00 +0200\r\n" +
	"Message-ID: <own-%s@example.com>\r\n" +
	"From: shop@example.com\r\n" +
	"To: customer@example.net\r\n" +
	"Subject: Invoice\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=\"b1\"\r\n" +
	"X-Mail-Proxy-Id: %s\r\n" +
	"\r\n" +
	"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nYour invoice is attached.\r\n" +
	"--b1\r\nContent-Type: application/pdf; name=\"invoice.pdf\"\r\n" +
	"Content-Disposition: attachment; filename=\"invoice.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
	"JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+PgpzdHJlYW0K\r\n" +
	"--b1--\r\n"

// relayed is what the upstream must receive: the submission without its
// Bcc and X-Mail-Proxy-* fields.
func relayed(submitted string) string {
	var out []string
	lines := strings.SplitAfter(submitted, "\r\n")
	inHeader, skipping := true, false
	for _, l := range lines {
		if inHeader {
			if l == "\r\n" {
				inHeader = false
			} else if l[0] == ' ' || l[0] == '\t' {
				if skipping {
					continue
				}
			} else {
				name, _, _ := strings.Cut(l, ":")
				skipping = strings.EqualFold(name, "Bcc") || strings.HasPrefix(strings.ToLower(name), "x-mail-proxy-")
				if skipping {
					continue
				}
			}
		}
		out = append(out, l)
	}
	return strings.Join(out, "")
}

var addedPrefix = regexp.MustCompile(`^Date: [A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}\r\nMessage-ID: <[0-9a-f-]+@example\.com>\r\n`)

// checkArrival waits for the message with client id at the upstream and
// compares its bytes with the submission; then for its delivery report.
func checkArrival(t *testing.T, in *instance, id, submitted string, rcpts []string, wantAdded bool) {
	t.Helper()
	var got []byte
	eventually(t, "upstream receives "+id, func() bool {
		for _, m := range in.upstream.Messages() {
			if strings.Contains(string(m.Data), "X-Genro-Mail-ID: "+id+"\r\n") {
				got = m.Data
				if !slices.Equal(m.Rcpts, rcpts) {
					t.Errorf("%s: RCPT TO %v, want %v", id, m.Rcpts, rcpts)
				}
				return true
			}
		}
		return false
	})
	rest := string(got)
	if wantAdded {
		loc := addedPrefix.FindStringIndex(rest)
		if loc == nil {
			t.Fatalf("%s: no added Date and Message-ID at the top:\n%s", id, got)
		}
		rest = rest[loc[1]:]
	}
	rest, ok := strings.CutPrefix(rest, "X-Genro-Mail-ID: "+id+"\r\n")
	if !ok {
		t.Fatalf("%s: X-Genro-Mail-ID not right after the added fields:\n%s", id, got)
	}
	if want := relayed(submitted); rest != want {
		t.Errorf("%s: relayed bytes differ\n got %q\nwant %q", id, rest, want)
	}
	eventually(t, "sent report for "+id, func() bool { return in.reports.item(id, "sent_ts") != nil })
}

func TestGoSMTPClientSubmitsAndMessagesArriveAsSubmitted(t *testing.T) {
	in := start(t, nil)
	c := in.login(t, "acme/main", in.key)

	m1 := fmt.Sprintf(plainMessage, "order-1")
	reply, err := send(c, "bounces@example.com", []string{"customer@example.net", "audit@example.org"}, m1)
	if err != nil || reply != "2.0.0 queued as order-1" {
		t.Fatalf("DATA reply %q, %v", reply, err)
	}
	m2 := fmt.Sprintf(attachmentMessage, "inv-7", "inv-7")
	if reply, err := send(c, "shop@example.com", []string{"customer@example.net"}, m2); err != nil || reply != "2.0.0 queued as inv-7" {
		t.Fatalf("DATA reply %q, %v", reply, err)
	}
	// Without X-Mail-Proxy-Id the proxy names the id it generated.
	m3 := "From: shop@example.com\r\nTo: x@example.net\r\nSubject: no id\r\n\r\nbody\r\n"
	reply, err = send(c, "shop@example.com", []string{"x@example.net"}, m3)
	gen, ok := strings.CutPrefix(reply, "2.0.0 queued as ")
	if err != nil || !ok || gen == "" {
		t.Fatalf("DATA reply %q, %v", reply, err)
	}

	checkArrival(t, in, "order-1", m1, []string{"customer@example.net", "audit@example.org"}, true)
	checkArrival(t, in, "inv-7", m2, []string{"customer@example.net"}, false)
	checkArrival(t, in, gen, m3, []string{"x@example.net"}, true)

	// MAIL FROM became the return path; the priority header was applied.
	for _, m := range in.upstream.Messages() {
		if strings.Contains(string(m.Data), "X-Genro-Mail-ID: order-1\r\n") && m.From != "bounces@example.com" {
			t.Errorf("MAIL FROM upstream %q, want the submitted one", m.From)
		}
	}
	var list struct {
		Messages []struct {
			ID       string `json:"id"`
			Priority int    `json:"priority"`
		} `json:"messages"`
	}
	in.call("GET", "/messages?tenant_id=acme", nil, &list)
	for _, m := range list.Messages {
		if m.ID == "order-1" && m.Priority != 1 {
			t.Errorf("order-1 priority %d, want 1 (high)", m.Priority)
		}
	}
	if got := in.metric("mailproxy_submission_accepted_total"); got != "3" {
		t.Errorf("mailproxy_submission_accepted_total = %q, want 3", got)
	}
}

func TestRefusals(t *testing.T) {
	in := start(t, nil)
	authErr := func(user, password string) int {
		c := in.dial(t)
		err := c.Auth(sasl.NewPlainClient("", user, password))
		var se *smtp.SMTPError
		if !errors.As(err, &se) {
			t.Fatalf("AUTH %s: %v, want an SMTP error", user, err)
		}
		return se.Code
	}
	for _, tc := range []struct{ name, user, password string }{
		{"wrong key", "acme/main", "not-a-key"},
		{"another tenant's account", "acme/theirs", in.key},
		{"another tenant with this key", "other/theirs", in.key},
		{"unknown account", "acme/nope", in.key},
		{"no account in the username", "acme", in.key},
	} {
		if code := authErr(tc.user, tc.password); code != 535 {
			t.Errorf("%s: AUTH answered %d, want 535", tc.name, code)
		}
	}
	// The admin token is accepted for any tenant.
	c := in.login(t, "other/theirs", adminToken)
	if reply, err := send(c, "a@example.com", []string{"b@example.net"}, "From: a@example.com\r\n\r\nx\r\n"); err != nil ||
		!strings.HasPrefix(reply, "2.0.0 queued as ") {
		t.Errorf("admin submission: %q %v", reply, err)
	}

	// No AUTH: 530 at MAIL.
	c = in.dial(t)
	var se *smtp.SMTPError
	if err := c.Mail("a@example.com", nil); !errors.As(err, &se) || se.Code != 530 {
		t.Errorf("MAIL without AUTH: %v, want 530", err)
	}

	// An invalid item: 554 with the reason; nothing queued.
	c = in.login(t, "acme/main", in.key)
	_, err := send(c, "a@example.com", []string{"b@example.net"},
		"From: a@example.com\r\nX-Mail-Proxy-Priority: urgent\r\n\r\nx\r\n")
	if !errors.As(err, &se) || se.Code != 554 || !strings.Contains(se.Message, "X-Mail-Proxy-Priority") {
		t.Errorf("invalid priority: %v, want 554 naming the header", err)
	}
	_, err = send(c, "a@example.com", []string{"b@example.net"}, "this is not a message\r\n")
	if !errors.As(err, &se) || se.Code != 554 || !strings.Contains(se.Message, "invalid message") {
		t.Errorf("headerless data: %v, want 554", err)
	}
	// The session is still usable after a refusal.
	if reply, err := send(c, "a@example.com", []string{"b@example.net"}, "From: a@example.com\r\n\r\nok\r\n"); err != nil ||
		!strings.HasPrefix(reply, "2.0.0 queued as ") {
		t.Errorf("after refusals: %q %v", reply, err)
	}

	// A fully suspended tenant: 451 at MAIL, accepted again once activated.
	in.call("POST", "/commands/suspend?tenant_id=acme", nil, nil)
	if err := c.Mail("a@example.com", nil); !errors.As(err, &se) || se.Code != 451 {
		t.Errorf("MAIL for a suspended tenant: %v, want 451", err)
	}
	_ = c.Reset()
	in.call("POST", "/commands/activate?tenant_id=acme", nil, nil)
	if reply, err := send(c, "a@example.com", []string{"b@example.net"}, "From: a@example.com\r\n\r\nback\r\n"); err != nil ||
		!strings.HasPrefix(reply, "2.0.0 queued as ") {
		t.Errorf("after activate: %q %v", reply, err)
	}

	// Resubmitting a known id answers 250 without queueing it twice.
	msg := "From: a@example.com\r\nX-Mail-Proxy-Id: dup-1\r\n\r\nonce\r\n"
	for i, want := range []string{"queued as dup-1", "queued as dup-1"} {
		if reply, err := send(c, "a@example.com", []string{"b@example.net"}, msg); err != nil || !strings.HasSuffix(reply, want) {
			t.Errorf("submission %d of dup-1: %q %v", i+1, reply, err)
		}
	}

	for series, want := range map[string]string{
		`mailproxy_submission_refused_total{reason="auth_failed"}`:      "5",
		`mailproxy_submission_refused_total{reason="auth_required"}`:    "1",
		`mailproxy_submission_refused_total{reason="invalid_message"}`:  "2",
		`mailproxy_submission_refused_total{reason="tenant_suspended"}`: "1",
	} {
		if got := in.metric(series); got != want {
			t.Errorf("%s = %q, want %s", series, got, want)
		}
	}
	if got := in.metric("mailproxy_submission_sessions"); got == "" || got == "0" {
		t.Errorf("mailproxy_submission_sessions = %q with sessions open", got)
	}
}

func TestSizeAndRecipientLimits(t *testing.T) {
	in := start(t, map[string]string{"GMP_MESSAGE_MAX_MB": "0.01"})
	c := in.login(t, "acme/main", in.key)
	if ok, v := c.Extension("SIZE"); !ok || v != "10485" {
		t.Errorf("SIZE advertised %v %q, want 10485", ok, v)
	}
	big := "From: a@example.com\r\n\r\n" + strings.Repeat(strings.Repeat("x", 76)+"\r\n", 300)
	var se *smtp.SMTPError
	if _, err := send(c, "a@example.com", []string{"b@example.net"}, big); !errors.As(err, &se) || se.Code != 552 {
		t.Errorf("oversized message: %v, want 552", err)
	}
	c = in.login(t, "acme/main", in.key)
	if err := c.Mail("a@example.com", nil); err != nil {
		t.Fatal(err)
	}
	var rcptErr error
	for i := 0; i < 1001 && rcptErr == nil; i++ {
		rcptErr = c.Rcpt(fmt.Sprintf("r%d@example.net", i), nil)
	}
	if !errors.As(rcptErr, &se) || se.Code != 452 {
		t.Errorf("recipient 1001: %v, want 452", rcptErr)
	}
}

// TestPythonSMTPLib submits with a client no one here wrote (CPython's
// smtplib), over AUTH LOGIN.
func TestPythonSMTPLib(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	in := start(t, nil)
	dir := t.TempDir()
	m1 := fmt.Sprintf(plainMessage, "py-1")
	m2 := fmt.Sprintf(attachmentMessage, "py-2", "py-2")
	for name, m := range map[string]string{"m1.eml": m1, "m2.eml": m2} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(m), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	host, port, _ := strings.Cut(in.smtp, ":")
	script := `
import smtplib, sys
host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
s = smtplib.SMTP(host, port, timeout=30)
s.ehlo("python.test")
s.user, s.password = user, password
code, resp = s.auth("LOGIN", s.auth_login)
assert code == 235, (code, resp)
for path in sys.argv[5:]:
    with open(path, "rb") as f:
        data = f.read()
    s.mail("shop@example.com")
    code, _ = s.rcpt("customer@example.net")
    assert code == 250, code
    code, resp = s.data(data)
    print(code, resp.decode())
s.quit()
`
	out, err := exec.Command(py, "-c", script, host, port, "acme/main", in.key,
		filepath.Join(dir, "m1.eml"), filepath.Join(dir, "m2.eml")).CombinedOutput()
	if err != nil {
		t.Fatalf("python smtplib: %v\n%s", err, out)
	}
	if got := string(out); !strings.Contains(got, "250 2.0.0 queued as py-1") && !strings.Contains(got, "250 queued as py-1") {
		t.Fatalf("smtplib output:\n%s", got)
	}
	checkArrival(t, in, "py-1", m1, []string{"customer@example.net"}, true)
	checkArrival(t, in, "py-2", m2, []string{"customer@example.net"}, false)

	// Wrong password: smtplib sees 535.
	out, _ = exec.Command(py, "-c", `
import smtplib, sys
s = smtplib.SMTP(sys.argv[1], int(sys.argv[2]), timeout=30)
try:
    s.login("acme/main", "wrong")
except smtplib.SMTPAuthenticationError as e:
    print("refused", e.smtp_code)
`, host, port).CombinedOutput()
	if !strings.Contains(string(out), "refused 535") {
		t.Errorf("smtplib with a wrong password:\n%s", out)
	}
}

// TestSwaks submits with Debian's swaks (AUTH PLAIN, a file as DATA).
func TestSwaks(t *testing.T) {
	swaks, err := exec.LookPath("swaks")
	if err != nil {
		t.Skip("swaks not installed (.ci/run installs it)")
	}
	in := start(t, nil)
	m := fmt.Sprintf(attachmentMessage, "sw-1", "sw-1")
	path := filepath.Join(t.TempDir(), "m.eml")
	// swaks ends DATA with a CRLF of its own: the file leaves out the last one.
	if err := os.WriteFile(path, []byte(strings.TrimSuffix(m, "\r\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(swaks, "--server", in.smtp, "--auth", "PLAIN", "--auth-user", "acme/main",
		"--auth-password", in.key, "--from", "shop@example.com", "--to", "customer@example.net",
		"--data", "@"+path, "--helo", "swaks.test").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "250 2.0.0 queued as sw-1") {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	checkArrival(t, in, "sw-1", m, []string{"customer@example.net"}, false)
	out, _ = exec.Command(swaks, "--server", in.smtp, "--auth", "PLAIN", "--auth-user", "acme/main",
		"--auth-password", "wrong", "--from", "a@example.com", "--to", "b@example.net").CombinedOutput()
	if !strings.Contains(string(out), "535 5.7.8") {
		t.Errorf("swaks with a wrong password:\n%s", out)
	}
}

// BenchmarkSubmissions reports accepted submissions per second over 8
// concurrent SMTP connections, each message durably stored before its 250.
func BenchmarkSubmissions(b *testing.B) {
	in := start(b, map[string]string{"GMP_SCHEDULER_ACTIVE": "false", "GMP_LOG_DELIVERY_ACTIVITY": "false"})
	const conns = 8
	clients := make([]*smtp.Client, conns)
	for i := range clients {
		clients[i] = in.login(b, "acme/main", in.key)
	}
	body := "From: shop@example.com\r\nTo: c@example.net\r\nSubject: bench\r\n\r\n" + strings.Repeat("line of text\r\n", 60)
	var next sync.Mutex
	n := 0
	b.ResetTimer()
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				next.Lock()
				if n >= b.N {
					next.Unlock()
					return
				}
				n++
				next.Unlock()
				if _, err := send(c, "shop@example.com", []string{"c@example.net"}, body); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
}

func TestSTARTTLSAndImplicitTLS(t *testing.T) {
	certFile, keyFile, pool, err := testsmtp.WriteCertificate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	in := start(t, map[string]string{"GMP_SMTP_TLS_CERT": certFile, "GMP_SMTP_TLS_KEY": keyFile,
		"GMP_SMTPS_LISTEN": "127.0.0.1:0"})
	cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}

	c, err := smtp.DialStartTLS(in.smtp, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", "acme/main", in.key)); err != nil {
		t.Fatal(err)
	}
	if reply, err := send(c, "a@example.com", []string{"b@example.net"}, "From: a@example.com\r\nX-Mail-Proxy-Id: tls-1\r\n\r\nx\r\n"); err != nil ||
		reply != "2.0.0 queued as tls-1" {
		t.Fatalf("over STARTTLS: %q %v", reply, err)
	}

	ic, err := smtp.DialTLS(in.smtps, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	if err := ic.Auth(sasl.NewLoginClient("acme/main", in.key)); err != nil {
		t.Fatal(err)
	}
	if reply, err := send(ic, "a@example.com", []string{"b@example.net"}, "From: a@example.com\r\nX-Mail-Proxy-Id: tls-2\r\n\r\nx\r\n"); err != nil ||
		reply != "2.0.0 queued as tls-2" {
		t.Fatalf("over implicit TLS: %q %v", reply, err)
	}
	for _, id := range []string{"tls-1", "tls-2"} {
		eventually(t, "sent report for "+id, func() bool { return in.reports.item(id, "sent_ts") != nil })
	}
}

// TestSuppressionApplies: the enqueue path's suppression list covers
// submitted messages: a suppressed recipient is dropped from the envelope,
// a message to suppressed recipients only is refused.
func TestSuppressionApplies(t *testing.T) {
	in := start(t, nil)
	in.call("POST", "/suppressions", map[string]any{"tenant_id": "acme", "addresses": []any{"gone@example.net"}}, nil)
	c := in.login(t, "acme/main", in.key)
	m := "From: shop@example.com\r\nTo: customer@example.net, gone@example.net\r\nX-Mail-Proxy-Id: sup-1\r\n\r\nhello\r\n"
	if reply, err := send(c, "shop@example.com", []string{"customer@example.net", "gone@example.net"}, m); err != nil ||
		reply != "2.0.0 queued as sup-1" {
		t.Fatalf("partly suppressed: %q %v", reply, err)
	}
	checkArrival(t, in, "sup-1", m, []string{"customer@example.net"}, true)
	var se *smtp.SMTPError
	_, err := send(c, "shop@example.com", []string{"gone@example.net"}, "From: shop@example.com\r\n\r\nx\r\n")
	if !errors.As(err, &se) || se.Code != 554 || !strings.Contains(se.Message, "suppressed") {
		t.Errorf("only suppressed recipients: %v, want 554 naming the suppression", err)
	}
}

// TestSMTPUTF8: an internationalised recipient is accepted and relayed
// with SMTPUTF8.
func TestSMTPUTF8(t *testing.T) {
	in := start(t, nil)
	c := in.login(t, "acme/main", in.key)
	if ok, _ := c.Extension("SMTPUTF8"); !ok {
		t.Fatal("SMTPUTF8 not advertised")
	}
	m := "From: shop@example.com\r\nTo: José <josé@example.net>\r\nX-Mail-Proxy-Id: utf8-1\r\nSubject: olé\r\n\r\nçà\r\n"
	if err := c.Mail("shop@example.com", &smtp.MailOptions{UTF8: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("josé@example.net", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write([]byte(m))
	if resp, err := w.CloseWithResponse(); err != nil || resp.StatusText != "2.0.0 queued as utf8-1" {
		t.Fatalf("DATA: %v %v", resp, err)
	}
	checkArrival(t, in, "utf8-1", m, []string{"josé@example.net"}, true)
	for _, got := range in.upstream.Messages() {
		if strings.Contains(string(got.Data), "utf8-1") && !got.UTF8 {
			t.Error("relayed without SMTPUTF8")
		}
	}
}
