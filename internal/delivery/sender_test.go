package delivery_test

import (
	"context"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/mailproxy/mailproxy/internal/delivery"
	"github.com/mailproxy/mailproxy/internal/smtppool"
	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/testsmtp"
)

func TestTLSModes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		server    testsmtp.Options
		useTLS    *bool
		verify    bool
		noRoots   bool
		implicit  bool
		wantTLS   bool
		wantErr   string // substring; "" = success
		permanent bool
	}{
		{name: "starttls verified with the test CA", server: testsmtp.Options{TLS: true}, useTLS: ptr(true), verify: true, wantTLS: true},
		{name: "starttls untrusted rejected", server: testsmtp.Options{TLS: true}, useTLS: ptr(true), verify: true, noRoots: true, wantErr: "certificate", permanent: true},
		{name: "starttls tls_verify=false accepts", server: testsmtp.Options{TLS: true}, useTLS: ptr(true), verify: false, noRoots: true, wantTLS: true},
		{name: "starttls required but not offered", server: testsmtp.Options{}, useTLS: ptr(true), verify: true, wantErr: "STARTTLS not supported by server", permanent: true},
		{name: "auto upgrades when offered", server: testsmtp.Options{TLS: true}, useTLS: nil, verify: true, wantTLS: true},
		{name: "auto stays plain when not offered", server: testsmtp.Options{}, useTLS: nil, verify: true, wantTLS: false},
		{name: "false never upgrades", server: testsmtp.Options{TLS: true}, useTLS: ptr(false), verify: true, wantTLS: false},
		{name: "implicit tls", server: testsmtp.Options{ImplicitTLS: true}, useTLS: ptr(true), verify: true, implicit: true, wantTLS: true},
		{name: "implicit tls auto", server: testsmtp.Options{ImplicitTLS: true}, useTLS: nil, verify: true, implicit: true, wantTLS: true},
		{name: "implicit tls untrusted rejected", server: testsmtp.Options{ImplicitTLS: true}, useTLS: nil, verify: true, noRoots: true, implicit: true, wantErr: "certificate", permanent: true},
		{name: "implicit port with use_tls=false is plain", server: testsmtp.Options{}, useTLS: ptr(false), verify: true, implicit: true, wantTLS: false},
		{name: "implicit tls against a plain server", server: testsmtp.Options{}, useTLS: nil, verify: true, implicit: true, wantErr: "tls", permanent: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, setupOpts{server: tc.server, noRootCAs: tc.noRoots, implicitTo: tc.implicit,
				sender: delivery.SenderOptions{SessionTimeout: 5 * time.Second}})
			b.acct.UseTLS, b.acct.TLSVerify = tc.useTLS, tc.verify
			_, err := b.send(t, payload("tls"))
			if tc.wantErr != "" {
				if err == nil {
					t.Fatal("sent, want an error")
				}
				de := asError(t, err)
				if !strings.Contains(strings.ToLower(de.Error()), strings.ToLower(tc.wantErr)) || de.Permanent != tc.permanent {
					t.Errorf("error %q permanent=%v, want %q permanent=%v", de, de.Permanent, tc.wantErr, tc.permanent)
				}
				return
			}
			if err != nil {
				t.Fatalf("send: %v", err)
			}
			if m := b.srv.Messages(); len(m) != 1 || m[0].TLS != tc.wantTLS {
				t.Errorf("received %+v, want TLS=%v", m, tc.wantTLS)
			}
		})
	}
}

func TestUntrustedCertificateIsX509Error(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{server: testsmtp.Options{TLS: true}, noRootCAs: true})
	b.acct.UseTLS = ptr(true)
	_, err := b.send(t, payload("x"))
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("error %v does not unwrap to x509.UnknownAuthorityError", err)
	}
	if de := asError(t, err); de.Command != "STARTTLS" {
		t.Errorf("command = %q", de.Command)
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	users := map[string]string{"user": "s3cret"}
	for _, mechs := range [][]string{{sasl.Plain, sasl.Login}, {sasl.Login}} {
		t.Run(strings.Join(mechs, "+"), func(t *testing.T) {
			t.Parallel()
			b := setup(t, setupOpts{server: testsmtp.Options{Users: users, AuthRequired: true, AuthMechanisms: mechs}})
			b.acct.User, b.acct.Password = "user", "s3cret"
			b.mustSend(t, payload("auth"))
			if m := b.srv.Messages(); len(m) != 1 || m[0].AuthUser != "user" {
				t.Errorf("received %+v", m)
			}
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{server: testsmtp.Options{Users: users, AuthRequired: true}})
		b.acct.User, b.acct.Password = "user", "nope"
		_, err := b.send(t, payload("auth"))
		de := asError(t, err)
		if !de.Permanent || de.Code != 535 || de.Command != "AUTH" || de.Error() != "5.7.8 Authentication failed (SMTP 535)" {
			t.Errorf("error %q %+v, want permanent 535 on AUTH", de, de)
		}
		if strings.Contains(de.Error(), "nope") {
			t.Error("password in the error")
		}
	})
	t.Run("no auth offered", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		b.acct.User, b.acct.Password = "user", "s3cret"
		_, err := b.send(t, payload("auth"))
		de := asError(t, err)
		if !de.Permanent || de.Error() != "SMTP AUTH not supported by server" {
			t.Errorf("error %q permanent=%v", de, de.Permanent)
		}
	})
	t.Run("user without password skips auth", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		b.acct.User = "user"
		b.mustSend(t, payload("auth"))
	})
}

func TestReplyFailuresAtEachStage(t *testing.T) {
	t.Parallel()
	cases := []struct {
		fault     testsmtp.Fault
		auth      bool
		command   string
		code      int
		permanent bool
		desc      string
	}{
		{fault: testsmtp.Reply(testsmtp.StageAuth, 454, "4.7.0", "auth backend down"), auth: true, command: "AUTH", code: 454, desc: "4.7.0 auth backend down (SMTP 454)"},
		{fault: testsmtp.Reply(testsmtp.StageMail, 451, "4.3.0", "try later"), command: "MAIL", code: 451, desc: "4.3.0 try later (SMTP 451)"},
		{fault: testsmtp.Reply(testsmtp.StageMail, 553, "5.7.1", "sender rejected"), command: "MAIL", code: 553, permanent: true, desc: "5.7.1 sender rejected (SMTP 553)"},
		{fault: testsmtp.Reply(testsmtp.StageRcpt, 450, "4.2.1", "mailbox busy"), command: "RCPT", code: 450, desc: "4.2.1 mailbox busy (SMTP 450)"},
		{fault: testsmtp.Reply(testsmtp.StageRcpt, 550, "5.1.1", "user unknown"), command: "RCPT", code: 550, permanent: true, desc: "5.1.1 user unknown (SMTP 550)"},
		{fault: testsmtp.Reply(testsmtp.StageRcpt, 552, "5.5.3", "too many recipients"), command: "RCPT", code: 552, desc: "5.5.3 too many recipients (SMTP 552)"},
		{fault: testsmtp.Reply(testsmtp.StageData, 452, "4.3.1", "queue full"), command: "DATA", code: 452, desc: "4.3.1 queue full (SMTP 452)"},
		{fault: testsmtp.Reply(testsmtp.StageData, 554, "5.6.0", "content rejected"), command: "DATA", code: 554, permanent: true, desc: "5.6.0 content rejected (SMTP 554)"},
		{fault: testsmtp.Reply(testsmtp.StageMail, 421, "4.4.2", "closing"), command: "MAIL", code: 421, desc: "4.4.2 closing (SMTP 421)"},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			opts := testsmtp.Options{Faults: []testsmtp.Fault{tc.fault.Next(1)}}
			if tc.auth {
				opts.Users = map[string]string{"u": "p"}
			}
			b := setup(t, setupOpts{server: opts})
			if tc.auth {
				b.acct.User, b.acct.Password = "u", "p"
			}
			_, err := b.send(t, payload("f"))
			de := asError(t, err)
			if de.Command != tc.command || de.Code != tc.code || de.Permanent != tc.permanent || de.Error() != tc.desc {
				t.Errorf("got %+v %q\nwant command %s code %d permanent %v %q", de, de, tc.command, tc.code, tc.permanent, tc.desc)
			}
			// The fault fired once; the next message goes through. A reply
			// other than 421 leaves the connection reusable.
			b.mustSend(t, payload("g"))
			if !tc.auth && tc.code != 421 && b.srv.Commands("RSET") != 1 {
				t.Errorf("RSET after the failed transaction: %d, want 1", b.srv.Commands("RSET"))
			}
			wantConns := int64(1)
			if tc.code == 421 || tc.auth {
				wantConns = 2
			}
			if got := b.srv.Connections(); got != wantConns {
				t.Errorf("connections = %d, want %d", got, wantConns)
			}
		})
	}
}

func TestPartialRefusal(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{server: testsmtp.Options{Faults: []testsmtp.Fault{
		testsmtp.Reply(testsmtp.StageRcpt, 550, "5.1.1", "no such user").ForRcpt("bad@example.net"),
	}}})
	p := payload("partial")
	p.To = []string{"good@example.net", "bad@example.net"}
	p.Cc = []string{"other@example.net"}
	res := b.mustSend(t, p)
	want := []delivery.Refusal{{Rcpt: "bad@example.net", Code: 550, Message: "5.1.1 no such user"}}
	if len(res.Refused) != 1 || res.Refused[0] != want[0] {
		t.Errorf("refused = %+v, want %+v", res.Refused, want)
	}
	if got := b.srv.Messages()[0].Rcpts; strings.Join(got, ",") != "good@example.net,other@example.net" {
		t.Errorf("delivered to %v", got)
	}

	t.Run("all refused, one temporarily", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{server: testsmtp.Options{Faults: []testsmtp.Fault{
			testsmtp.Reply(testsmtp.StageRcpt, 550, "5.1.1", "no such user").ForRcpt("a@example.net"),
			testsmtp.Reply(testsmtp.StageRcpt, 450, "4.2.0", "greylisted").ForRcpt("b@example.net"),
		}}})
		p := payload("all")
		p.To = []string{"a@example.net", "b@example.net"}
		res, err := b.send(t, p)
		de := asError(t, err)
		if de.Permanent || de.Code != 450 || len(res.Refused) != 2 {
			t.Errorf("error %q %+v refused %v, want temporary 450", de, de, res.Refused)
		}
	})
	t.Run("all refused permanently", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{server: testsmtp.Options{Faults: []testsmtp.Fault{
			testsmtp.Reply(testsmtp.StageRcpt, 550, "5.1.1", "no such user"),
		}}})
		p := payload("all")
		p.To = []string{"a@example.net", "b@example.net"}
		_, err := b.send(t, p)
		if de := asError(t, err); !de.Permanent || de.Code != 550 {
			t.Errorf("error %q, want permanent 550", de)
		}
		if b.srv.Count() != 0 {
			t.Error("message sent with every recipient refused")
		}
	})
}

func TestNetworkFailures(t *testing.T) {
	t.Parallel()
	t.Run("server down", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		if err := b.srv.Down(); err != nil {
			t.Fatal(err)
		}
		_, err := b.send(t, payload("down"))
		de := asError(t, err)
		if de.Permanent || de.Command != "dial" || !strings.Contains(de.Error(), "connection refused") {
			t.Errorf("error %q %+v, want temporary connection refused", de, de)
		}
		if err := b.srv.Up(); err != nil {
			t.Fatal(err)
		}
		b.mustSend(t, payload("up"))
	})
	t.Run("dropped mid-DATA", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{server: testsmtp.Options{Faults: []testsmtp.Fault{testsmtp.Drop(testsmtp.StageData).AfterBody(100).Next(1)}}})
		p := payload("drop")
		p.Body = strings.Repeat("a long line of body text to be cut off halfway\n", 4000)
		_, err := b.send(t, p)
		de := asError(t, err)
		if de.Permanent || de.Code != 0 {
			t.Errorf("error %q %+v, want temporary network error", de, de)
		}
		b.mustSend(t, payload("after"))
		if b.srv.Connections() != 2 {
			t.Errorf("connections = %d: the broken connection was reused", b.srv.Connections())
		}
	})
	t.Run("stalled reply times out", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{
			server: testsmtp.Options{Faults: []testsmtp.Fault{testsmtp.Stall(testsmtp.StageRcpt).Next(1)}},
			sender: delivery.SenderOptions{ReplyTimeout: 100 * time.Millisecond},
		})
		_, err := b.send(t, payload("stall"))
		de := asError(t, err)
		if de.Permanent || de.Command != "RCPT" || !strings.Contains(de.Error(), "timeout") {
			t.Errorf("error %q %+v, want temporary RCPT timeout", de, de)
		}
		b.mustSend(t, payload("after"))
		if b.srv.Connections() != 2 {
			t.Errorf("connections = %d: the timed-out connection was reused", b.srv.Connections())
		}
	})
	t.Run("stalled greeting hits the session timeout", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{
			server: testsmtp.Options{Faults: []testsmtp.Fault{testsmtp.Stall(testsmtp.StageConnect)}},
			sender: delivery.SenderOptions{SessionTimeout: 100 * time.Millisecond},
		})
		_, err := b.send(t, payload("stall"))
		if de := asError(t, err); de.Permanent || de.Command != "EHLO" {
			t.Errorf("error %q %+v, want temporary EHLO timeout", de, de)
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{server: testsmtp.Options{Faults: []testsmtp.Fault{testsmtp.Stall(testsmtp.StageData)}}})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		// Cancel once the server holds DATA, not after a guessed delay: on
		// a busy machine a timer can fire while the dial is still going.
		go func() {
			deadline := time.Now().Add(30 * time.Second)
			for b.srv.Commands("DATA") == 0 && time.Now().Before(deadline) && ctx.Err() == nil {
				time.Sleep(5 * time.Millisecond)
			}
			cancel()
		}()
		_, err := b.sender.Send(ctx, b.acct, build(t, payload("c")))
		if de := asError(t, err); de.Permanent || de.Command != "DATA" {
			t.Errorf("error %q %+v, want temporary DATA interruption", de, de)
		}
	})
}

func TestPoolReuseAndAgeing(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	for i := range 10 {
		res := b.mustSend(t, payload("m"))
		if res.Reused != (i > 0) {
			t.Errorf("message %d reused=%v", i, res.Reused)
		}
	}
	if got := b.srv.Connections(); got != 1 {
		t.Errorf("10 messages over %d connections, want 1", got)
	}
	// A completed DATA already ended the transaction: no RSET, no NOOP.
	if rset, noop := b.srv.Commands("RSET"), b.srv.Commands("NOOP"); rset != 0 || noop != 0 {
		t.Errorf("RSET %d NOOP %d on the hot path, want 0 and 0", rset, noop)
	}

	// Past the account's TTL the connection is replaced.
	b.acct.TTL = 60
	b.mustSend(t, payload("ttl")) // new key (TTL is not part of it), same server: reuse
	b.clock.Advance(61 * time.Second)
	b.mustSend(t, payload("aged"))
	if got := b.srv.Connections(); got != 2 {
		t.Errorf("after TTL: %d connections, want 2", got)
	}
	deadline := time.Now().Add(10 * time.Second)
	for b.srv.Commands("QUIT") != 1 && time.Now().Before(deadline) {
		<-time.After(5 * time.Millisecond)
	}
	if b.srv.Commands("QUIT") != 1 {
		t.Errorf("aged connection closed without QUIT")
	}
}

func TestResetAfterSuccess(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{sender: delivery.SenderOptions{ResetAfterSuccess: true}})
	for range 5 {
		b.mustSend(t, payload("m"))
	}
	if c, rset := b.srv.Connections(), b.srv.Commands("RSET"); c != 1 || rset != 5 {
		t.Errorf("connections %d RSET %d, want 1 and 5", c, rset)
	}
}

func TestPoolWaitTimeout(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{
		server: testsmtp.Options{Faults: []testsmtp.Fault{testsmtp.Stall(testsmtp.StageMail).Next(1)}},
		pool:   smtppool.Options{Size: 1, WaitTimeout: 50 * time.Millisecond},
	})
	first := make(chan error, 1)
	go func() {
		_, err := b.sender.Send(context.Background(), b.acct, build(t, payload("held")))
		first <- err
	}()
	// Wait until the first send holds the only slot.
	key := b.sender.PoolKey(b.acct)
	deadline := time.Now().Add(10 * time.Second)
	for b.pool.Open(key) == 0 && time.Now().Before(deadline) {
		<-time.After(5 * time.Millisecond)
	}
	_, err := b.send(t, payload("waits"))
	de := asError(t, err)
	if de.Permanent || de.Error() != "Timeout waiting for SMTP connection" {
		t.Errorf("error %q %+v", de, de)
	}
	if err := b.srv.Down(); err != nil { // release the stalled send
		t.Fatal(err)
	}
	if err := <-first; err == nil {
		t.Error("stalled send succeeded")
	}
}

func TestSMTPUTF8(t *testing.T) {
	t.Parallel()
	p := payload("utf8")
	p.To = []string{"josé@example.net"}
	b := setup(t, setupOpts{server: testsmtp.Options{SMTPUTF8: true}})
	b.mustSend(t, p)
	if m := b.srv.Messages(); len(m) != 1 || !m[0].UTF8 || m[0].Rcpts[0] != "josé@example.net" {
		t.Errorf("received %+v", m)
	}

	plain := setup(t, setupOpts{})
	_, err := plain.send(t, p)
	if de := asError(t, err); !de.Permanent || !errors.Is(err, delivery.ErrSMTPUTF8Unsupported) {
		t.Errorf("error %q, want permanent SMTPUTF8 unsupported", de)
	}
	plain.mustSend(t, payload("ascii")) // the connection stayed usable
	if plain.srv.Connections() != 1 {
		t.Errorf("connections = %d", plain.srv.Connections())
	}
}

func TestBadAccount(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	acct := b.acct
	acct.Host = ""
	_, err := b.sender.Send(t.Context(), acct, build(t, payload("x")))
	if de := asError(t, err); !de.Permanent {
		t.Errorf("error %q, want permanent", de)
	}
	var zero store.Account
	if _, err := b.sender.Send(t.Context(), zero, nil); err == nil {
		t.Error("nil message sent")
	}
	if _, err := b.sender.Send(t.Context(), b.acct, &delivery.Message{}); err == nil {
		t.Error("unbuilt message sent")
	}
}
