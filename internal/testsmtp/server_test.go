package testsmtp_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mailproxy/mailproxy/internal/testsmtp"
)

func dial(t *testing.T, srv *testsmtp.Server) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(srv.Addr())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.CommandTimeout = 5 * time.Second
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func send(c *smtp.Client, from string, to []string, body string) error {
	return c.SendMail(from, to, strings.NewReader(body))
}

func smtpCode(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

func TestRecordsAcceptedMessages(t *testing.T) {
	t.Parallel()
	seen := make(chan testsmtp.Received, 1)
	srv := testsmtp.Start(t, testsmtp.Options{OnMessage: func(r testsmtp.Received) { seen <- r }})
	c := dial(t, srv)
	if err := send(c, "a@example.com", []string{"b@example.com", "c@example.com"}, "Subject: hi\r\n\r\nbody\r\n"); err != nil {
		t.Fatalf("send: %v", err)
	}
	if err := srv.WaitForCount(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("got %d messages", len(msgs))
	}
	m := msgs[0]
	if m.From != "a@example.com" || strings.Join(m.Rcpts, ",") != "b@example.com,c@example.com" {
		t.Errorf("envelope = %q %q", m.From, m.Rcpts)
	}
	if !strings.Contains(string(m.Data), "Subject: hi") || m.ConnID != 1 {
		t.Errorf("data %q conn %d", m.Data, m.ConnID)
	}
	if r := <-seen; r.From != m.From {
		t.Errorf("OnMessage saw %+v", r)
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	srv := testsmtp.Start(t, testsmtp.Options{Users: map[string]string{"u": "secret"}, AuthRequired: true})

	c := dial(t, srv)
	if err := send(c, "a@x", []string{"b@x"}, "x\r\n"); smtpCode(err) != 530 {
		t.Errorf("unauthenticated MAIL: %v, want 530", err)
	}

	for _, mech := range []sasl.Client{sasl.NewPlainClient("", "u", "secret"), sasl.NewLoginClient("u", "secret")} {
		c := dial(t, srv)
		if err := c.Auth(mech); err != nil {
			t.Fatalf("auth: %v", err)
		}
		if err := send(c, "a@x", []string{"b@x"}, "x\r\n"); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	if got := srv.Messages(); len(got) != 2 || got[0].AuthUser != "u" || got[1].AuthUser != "u" {
		t.Errorf("messages = %+v", got)
	}

	c = dial(t, srv)
	if err := c.Auth(sasl.NewPlainClient("", "u", "wrong")); smtpCode(err) != 535 {
		t.Errorf("wrong password: %v, want 535", err)
	}
}

func TestTLS(t *testing.T) {
	t.Parallel()
	t.Run("starttls", func(t *testing.T) {
		t.Parallel()
		srv := testsmtp.Start(t, testsmtp.Options{TLS: true})
		c, err := smtp.DialStartTLS(srv.Addr(), &tls.Config{RootCAs: srv.CertPool(), ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatalf("starttls: %v", err)
		}
		defer c.Close()
		if err := send(c, "a@x", []string{"b@x"}, "x\r\n"); err != nil {
			t.Fatal(err)
		}
		if m := srv.Messages(); len(m) != 1 || !m[0].TLS {
			t.Errorf("messages = %+v", m)
		}
		// Without the test CA the certificate is rejected.
		// (go-smtp handshakes lazily, on the first command after STARTTLS.)
		bad, err := smtp.DialStartTLS(srv.Addr(), &tls.Config{ServerName: "127.0.0.1"})
		if err == nil {
			err = bad.Noop()
			_ = bad.Close()
		}
		var unknownCA x509.UnknownAuthorityError
		if !errors.As(err, &unknownCA) {
			t.Errorf("untrusted certificate: %v, want x509.UnknownAuthorityError", err)
		}
	})
	t.Run("implicit", func(t *testing.T) {
		t.Parallel()
		srv := testsmtp.Start(t, testsmtp.Options{ImplicitTLS: true})
		c, err := smtp.DialTLS(srv.Addr(), &tls.Config{RootCAs: srv.CertPool(), ServerName: "localhost"})
		if err != nil {
			t.Fatalf("dial tls: %v", err)
		}
		defer c.Close()
		if err := send(c, "a@x", []string{"b@x"}, "x\r\n"); err != nil {
			t.Fatal(err)
		}
		if m := srv.Messages(); len(m) != 1 || !m[0].TLS {
			t.Errorf("messages = %+v", m)
		}
	})
}

func TestFaultFiringRules(t *testing.T) {
	t.Parallel()
	srv := testsmtp.Start(t, testsmtp.Options{})
	if _, err := srv.AddFault(testsmtp.Reply(testsmtp.StageMail, 451, "4.3.0", "busy").OnNth(2)); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.AddFault(testsmtp.Reply(testsmtp.StageRcpt, 550, "5.1.1", "user unknown").ForRcpt("BAD@x")); err != nil {
		t.Fatal(err)
	}
	c := dial(t, srv)
	var codes []int
	for range 3 {
		err := c.Mail("a@x", nil)
		codes = append(codes, smtpCode(err))
		if err == nil {
			if err := c.Rcpt("bad@x", nil); smtpCode(err) != 550 {
				t.Errorf("bad rcpt: %v", err)
			}
			if err := c.Rcpt("good@x", nil); err != nil {
				t.Errorf("good rcpt: %v", err)
			}
		}
		if err := c.Reset(); err != nil {
			t.Fatal(err)
		}
	}
	if got := codes; got[0] != 0 || got[1] != 451 || got[2] != 0 {
		t.Errorf("MAIL codes = %v, want [0 451 0]", got)
	}

	// Next(2): exactly two failures, then normal service.
	srv.ClearFaults()
	if _, err := srv.AddFault(testsmtp.Reply(testsmtp.StageData, 452, "4.3.1", "full").Next(2)); err != nil {
		t.Fatal(err)
	}
	codes = codes[:0]
	for range 3 {
		codes = append(codes, smtpCode(send(c, "a@x", []string{"b@x"}, "x\r\n")))
	}
	if codes[0] != 452 || codes[1] != 452 || codes[2] != 0 {
		t.Errorf("DATA codes = %v, want [452 452 0]", codes)
	}
	if _, err := srv.AddFault(testsmtp.Fault{Stage: "HELO"}); err == nil {
		t.Error("unknown stage accepted")
	}
}

func TestProbabilityIsSeeded(t *testing.T) {
	t.Parallel()
	run := func() []int {
		srv := testsmtp.Start(t, testsmtp.Options{Seed: 7, Faults: []testsmtp.Fault{
			testsmtp.Reply(testsmtp.StageMail, 450, "", "maybe").WithProbability(0.5),
		}})
		c := dial(t, srv)
		var codes []int
		for range 20 {
			codes = append(codes, smtpCode(c.Mail("a@x", nil)))
			_ = c.Reset()
		}
		return codes
	}
	a, b := run(), run()
	fails := 0
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed, different outcomes: %v vs %v", a, b)
		}
		if a[i] == 450 {
			fails++
		}
	}
	if fails == 0 || fails == len(a) {
		t.Errorf("probability 0.5 gave %d/%d failures", fails, len(a))
	}
}

func TestDropMidData(t *testing.T) {
	t.Parallel()
	srv := testsmtp.Start(t, testsmtp.Options{Faults: []testsmtp.Fault{testsmtp.Drop(testsmtp.StageData).AfterBody(10)}})
	c := dial(t, srv)
	err := send(c, "a@x", []string{"b@x"}, strings.Repeat("line of body text\r\n", 1000))
	if err == nil || smtpCode(err) != 0 {
		t.Fatalf("send over dropped connection: %v, want a network error", err)
	}
	if srv.Count() != 0 {
		t.Errorf("a dropped message was recorded")
	}
}

func TestStallAndDelay(t *testing.T) {
	t.Parallel()
	srv := testsmtp.Start(t, testsmtp.Options{Faults: []testsmtp.Fault{testsmtp.Stall(testsmtp.StageRcpt)}})
	c := dial(t, srv)
	c.CommandTimeout = 100 * time.Millisecond
	if err := c.Mail("a@x", nil); err != nil {
		t.Fatal(err)
	}
	err := c.Rcpt("b@x", nil)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("stalled RCPT: %v, want a timeout", err)
	}

	srv.ClearFaults()
	if _, err := srv.AddFault(testsmtp.Delay(testsmtp.StageMail, 50*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	c2 := dial(t, srv)
	start := time.Now()
	if err := c2.Mail("a@x", nil); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("delayed MAIL answered after %v", d)
	}
}

func TestConnectFaults(t *testing.T) {
	t.Parallel()
	srv := testsmtp.Start(t, testsmtp.Options{Faults: []testsmtp.Fault{
		testsmtp.Reply(testsmtp.StageConnect, 421, "4.3.2", "go away").OnNth(1),
	}})
	c, err := smtp.Dial(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client"); smtpCode(err) != 421 {
		t.Errorf("greeting: %v, want 421", err)
	}
	c2 := dial(t, srv)
	if err := c2.Noop(); err != nil {
		t.Errorf("second connection: %v", err)
	}
}

func TestDownUp(t *testing.T) {
	t.Parallel()
	srv := testsmtp.Start(t, testsmtp.Options{})
	c := dial(t, srv)
	if err := c.Noop(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Down(); err != nil {
		t.Fatal(err)
	}
	if err := c.Noop(); err == nil {
		t.Error("connection survived Down")
	}
	if _, err := net.DialTimeout("tcp", srv.Addr(), time.Second); err == nil {
		t.Error("dial succeeded while down")
	}
	if err := srv.Up(); err != nil {
		t.Fatal(err)
	}
	c2 := dial(t, srv)
	if err := send(c2, "a@x", []string{"b@x"}, "x\r\n"); err != nil {
		t.Fatalf("send after Up: %v", err)
	}
	if got := srv.Connections(); got != 2 {
		t.Errorf("connections = %d, want 2", got)
	}
}

func TestCountsCommandsAndDiscards(t *testing.T) {
	t.Parallel()
	srv := testsmtp.Start(t, testsmtp.Options{Discard: true})
	c := dial(t, srv)
	for range 3 {
		// A body line reading "RSET" must not count as a command.
		if err := send(c, "a@x", []string{"b@x"}, "Subject: x\r\n\r\nRSET\r\nNOOP\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	if err := c.Noop(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := srv.WaitForCount(ctx, 3); err != nil {
		t.Fatal(err)
	}
	st := srv.Stats()
	if st.Messages != 3 || st.Bytes == 0 || len(srv.Messages()) != 0 {
		t.Errorf("discard stats = %+v, kept %d", st, len(srv.Messages()))
	}
	if st.Commands["RSET"] != 1 || st.Commands["NOOP"] != 1 || st.Commands["MAIL"] != 3 {
		t.Errorf("commands = %v", st.Commands)
	}

	short, cancel2 := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel2()
	if err := srv.WaitForCount(short, 4); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitForCount beyond count: %v", err)
	}
}

// PassData hands every body to OnMessage while the server keeps none.
func TestPassDataHandsBodiesOnWithoutKeepingThem(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen [][]byte
	srv := testsmtp.Start(t, testsmtp.Options{Discard: true, PassData: true, OnMessage: func(r testsmtp.Received) {
		mu.Lock()
		seen = append(seen, r.Data)
		mu.Unlock()
	}})
	c, err := smtp.Dial(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 3 {
		body := fmt.Sprintf("Subject: n%d\r\n\r\nbody %d\r\n", i, i)
		if err := c.SendMail("a@example.com", []string{"b@example.com"}, strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	if srv.Count() != 3 || len(srv.Messages()) != 0 {
		t.Fatalf("count %d, kept %d; want 3 counted, none kept", srv.Count(), len(srv.Messages()))
	}
	mu.Lock()
	defer mu.Unlock()
	for i, d := range seen {
		if !strings.Contains(string(d), fmt.Sprintf("body %d", i)) {
			t.Fatalf("OnMessage got %q for message %d", d, i)
		}
	}
}
