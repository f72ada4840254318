package delivery

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mailproxy/mailproxy/internal/store"
)

// ProbeResult is one diagnostic session with an account's server, outside the pool:
// connect, TLS as the account's settings ask, EHLO, STARTTLS, AUTH and, given a
// message, MAIL/RCPT/DATA. It records the dialogue with the credentials masked.
type ProbeResult struct {
	Dialogue      []string `json:"dialogue"`           // "C: EHLO host", "S: 250-…"; AUTH data as ***
	TLS           string   `json:"tls"`                // implicit, starttls or none
	Authenticated bool     `json:"authenticated"`      // AUTH succeeded
	Response      string   `json:"response,omitempty"` // the reply to the end of DATA
}

// Probe runs the session; the error, if any, is an *Error naming the step that failed.
// With msg nil it stops after AUTH (nothing is sent).
func (s *Sender) Probe(ctx context.Context, acct store.Account, msg *Message) (ProbeResult, error) {
	t := &transcript{}
	res := ProbeResult{TLS: "none"}
	c, err := s.probeSession(ctx, acct, t, &res)
	if err == nil {
		defer func() { _ = c.Close() }()
		if msg != nil {
			err = s.probeSend(ctx, c, msg, &res)
		}
		if err == nil {
			_ = c.Quit()
		}
	}
	res.Dialogue = t.lines()
	return res, err
}

func (s *Sender) probeSession(ctx context.Context, acct store.Account, t *transcript, res *ProbeResult) (_ *smtp.Client, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.SessionTimeout)
	defer cancel()
	if acct.Host == "" || acct.Port <= 0 || acct.Port > 65535 {
		return nil, &Error{Permanent: true, Command: "dial",
			Err: errors.New("account has no valid SMTP host and port: " + net.JoinHostPort(acct.Host, strconv.Itoa(acct.Port)))}
	}
	addr := net.JoinHostPort(acct.Host, strconv.Itoa(acct.Port))
	t.note("connecting to " + addr)
	d := net.Dialer{Timeout: s.opts.DialTimeout}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, classifyAt("dial", err)
	}
	rec := &recordingConn{Conn: raw, t: t}
	rec.on.Store(true)
	var c *smtp.Client
	defer func() {
		if err != nil {
			if c != nil {
				_ = c.Close()
			}
			_ = raw.Close()
		}
	}()
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
		defer func() { _ = raw.SetDeadline(time.Time{}) }()
	}
	mode := s.tlsMode(acct)
	cfg := &tls.Config{ServerName: acct.Host, MinVersion: tls.VersionTLS12, RootCAs: s.opts.RootCAs,
		InsecureSkipVerify: !acct.TLSVerify} // the account's explicit tls_verify=false
	if mode == modeImplicit {
		rec.on.Store(false)
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, classifyAt("TLS", err)
		}
		t.note("TLS from the first byte: " + tlsVersion(tc.ConnectionState()))
		res.TLS = "implicit"
		c = smtp.NewClient(tc)
		c.DebugWriter = t
	} else {
		c = smtp.NewClient(rec)
	}
	s.setTimeouts(c)
	if err := c.Hello(s.opts.HeloName); err != nil {
		return nil, classifyAt("EHLO", err)
	}
	if mode == modeRequired || mode == modeAuto {
		offered, _ := c.Extension("STARTTLS")
		switch {
		case offered:
			c2, err := smtp.NewClientStartTLS(&greetedConn{Conn: rec, pending: []byte("220 resumed\r\n")}, cfg)
			if err != nil {
				return nil, classifyAt("STARTTLS", err)
			}
			c = c2
			c.DebugWriter = t // from here the recording conn sees only ciphertext
			if st, ok := c.TLSConnectionState(); ok {
				t.note("TLS started: " + tlsVersion(st))
			}
			res.TLS = "starttls"
			s.setTimeouts(c)
			if err := c.Hello(s.opts.HeloName); err != nil {
				return nil, classifyAt("STARTTLS", err)
			}
		case mode == modeRequired:
			return nil, &Error{Permanent: true, Command: "STARTTLS", Err: ErrStartTLSUnsupported}
		default:
			t.note("the server offers no STARTTLS: continuing in plain text (use_tls unset)")
		}
	}
	if acct.User != "" && acct.Password != "" {
		offered, mechs := c.Extension("AUTH")
		if !offered {
			return nil, &Error{Permanent: true, Command: "AUTH", Err: ErrAuthUnsupported}
		}
		var mech sasl.Client = sasl.NewLoginClient(acct.User, acct.Password)
		for _, m := range strings.Fields(mechs) {
			if strings.EqualFold(m, sasl.Plain) {
				mech = sasl.NewPlainClient("", acct.User, acct.Password)
				break
			}
		}
		if err := c.Auth(mech); err != nil {
			return nil, classifyAt("AUTH", err)
		}
		res.Authenticated = true
	} else {
		t.note("no user and password on the account: AUTH skipped")
	}
	return c, nil
}

func (s *Sender) probeSend(ctx context.Context, c *smtp.Client, msg *Message, res *ProbeResult) error {
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	from, rcpts := msg.Envelope()
	if err := c.Mail(from, nil); err != nil {
		return classifyAt("MAIL", err)
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			return classifyAt("RCPT", err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return classifyAt("DATA", err)
	}
	if _, err := msg.WriteTo(w); err != nil {
		_ = w.Close()
		return classifyAt("DATA", err)
	}
	reply, err := w.CloseWithResponse()
	if err != nil {
		return classifyAt("DATA", err)
	}
	res.Response = reply.StatusText
	return nil
}

func tlsVersion(st tls.ConnectionState) string {
	return tls.VersionName(st.Version) + ", " + tls.CipherSuiteName(st.CipherSuite)
}

// recordingConn copies the plain-text part of a session into a transcript;
// it stops at the server's 220 to STARTTLS, before the handshake.
type recordingConn struct {
	net.Conn
	t  *transcript
	on atomic.Bool
}

func (r *recordingConn) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	if n > 0 && r.on.Load() {
		if _, _ = r.t.Write(p[:n]); r.t.startedTLS() {
			r.on.Store(false)
		}
	}
	return n, err
}

func (r *recordingConn) Write(p []byte) (int, error) {
	if r.on.Load() {
		_, _ = r.t.Write(p)
	}
	return r.Conn.Write(p)
}

var serverLine = regexp.MustCompile(`^[2-5][0-9][0-9]([ -]|$)`)

// transcript turns the bytes of both directions into "C: " and "S: " lines:
// server replies start with a 3-digit code, everything else is the client.
// AUTH arguments and answers to 334 challenges are masked; a message body is
// summarised by its line count.
type transcript struct {
	mu        sync.Mutex
	buf       []byte
	out       []string
	afterAuth bool // the last server line was a 334 challenge
	lastCmd   string
	tls       bool // the server accepted STARTTLS
	inBody    bool
	bodyLines int
}

func (t *transcript) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	for {
		i := strings.IndexByte(string(t.buf), '\n')
		if i < 0 {
			break
		}
		t.line(strings.TrimRight(string(t.buf[:i]), "\r"))
		t.buf = t.buf[i+1:]
	}
	return len(p), nil
}

func (t *transcript) line(l string) {
	if t.inBody {
		if l == "." {
			t.inBody = false
			t.out = append(t.out, fmt.Sprintf("C: (message, %d lines)", t.bodyLines), "C: .")
		} else {
			t.bodyLines++
		}
		return
	}
	if serverLine.MatchString(l) {
		t.out = append(t.out, "S: "+l)
		t.afterAuth = strings.HasPrefix(l, "334")
		if strings.HasPrefix(l, "220") && t.lastCmd == "STARTTLS" {
			t.tls = true
		}
		if strings.HasPrefix(l, "354") {
			t.inBody, t.bodyLines = true, 0
		}
		return
	}
	cmd := strings.ToUpper(strings.Fields(l + " x")[0])
	switch {
	case t.afterAuth:
		l = "***"
	case cmd == "AUTH":
		if f := strings.Fields(l); len(f) > 2 {
			l = f[0] + " " + f[1] + " ***"
		}
	}
	t.afterAuth = false
	t.lastCmd = cmd
	t.out = append(t.out, "C: "+l)
}

func (t *transcript) note(s string) {
	t.mu.Lock()
	t.out = append(t.out, "-- "+s)
	t.mu.Unlock()
}

func (t *transcript) startedTLS() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.tls
}

func (t *transcript) lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.out...)
}
