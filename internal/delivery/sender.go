// Package delivery builds a message's MIME form, sends it over a pooled SMTP
// connection and classifies the outcome (delivery.md §3–§5, §7).
//
// One Send:
//  0. With the account's DKIM key, sign the rendered bytes (DATA then
//     carries exactly what was signed).
//  1. Take a connection for the account from the pool; a new one is dialled
//     within the session timeout: TCP, implicit TLS on port 465 or STARTTLS
//     per the account's use_tls, EHLO, then AUTH (PLAIN if offered, else
//     LOGIN) when user and password are both set.
//  2. MAIL FROM (SMTPUTF8 when an address needs it), then RCPT TO for each
//     recipient; refused recipients are noted and the others kept. All
//     refused: temporary if any refusal was 4xx, else permanent.
//  3. DATA, streamed from Message.WriteTo, bounded by 30 s + 1 s per 100 KiB.
//  4. Return the connection to the pool, after RSET if a refusal left the
//     transaction open (or always, with ResetAfterSuccess); after a network
//     error, a timeout or a 421 close it instead.
//
// Every failure comes back as an *Error whose Permanent field decides retry
// or fail; Classify implements the rules. The same *Error tells the rest of
// the proxy everything else it reads from a failure: Public is the tenant's
// description, ReplyClass the class label of gmp_smtp_replies_total.
package delivery

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mailproxy/mailproxy/internal/dkim"
	"github.com/mailproxy/mailproxy/internal/netguard"
	"github.com/mailproxy/mailproxy/internal/smtppool"
	"github.com/mailproxy/mailproxy/internal/store"
)

// SenderOptions configure a Sender; zero durations take the defaults of
// delivery.md §4 (in brackets).
type SenderOptions struct {
	Pool           *smtppool.Pool // required
	HeloName       string         // EHLO name [os.Hostname, else "localhost"]
	DialTimeout    time.Duration  // TCP connect [10s]
	SessionTimeout time.Duration  // dial + TLS + EHLO + AUTH [15s]
	ReplyTimeout   time.Duration  // each reply [30s]
	DataTimeout    time.Duration  // DATA transfer base [30s]
	DataPer100KiB  time.Duration  // DATA transfer per 100 KiB [1s]
	// ImplicitTLSPorts are the ports where use_tls true or null means TLS
	// from the first byte [465]; tests add their server's random port.
	ImplicitTLSPorts []int
	// ResetAfterSuccess sends RSET after every delivered message too. By
	// default RSET follows only a transaction left open by a refusal: after
	// the reply to the end of DATA the server has already reset the
	// transaction (RFC 5321 §4.1.1.4), and go-smtp follows its RSET with a
	// fresh EHLO before the next MAIL, two extra round trips per message.
	ResetAfterSuccess bool
	// RootCAs verifies servers' certificates; nil = the system roots.
	RootCAs *x509.CertPool
	Logger  *slog.Logger
	// TargetPolicy judges the address of every SMTP server dialled (after
	// DNS, so a name that later resolves elsewhere is caught too); nil:
	// netguard.Private: relays on loopback and private networks work,
	// link-local and cloud metadata addresses never.
	TargetPolicy *netguard.Policy
	// TenantTargetPolicy replaces TargetPolicy for accounts whose host was
	// set with a tenant key (Account.HostByTenant); nil: TargetPolicy. The
	// instance sets it to public-only under GMP_ACCOUNT_TARGETS_PUBLIC_ONLY.
	TenantTargetPolicy *netguard.Policy
	// AUTH is never sent in clear when use_tls is unset and the server
	// offers no STARTTLS, unless the account says tls_verify false or the
	// server is on a loopback address (this machine). NoLoopbackClearAuth
	// removes that exemption: tests, which can only listen on loopback, set
	// it to treat their server as a remote one.
	NoLoopbackClearAuth bool
}

// Sender sends messages over pooled connections. Safe for concurrent use.
type Sender struct {
	opts         SenderOptions
	dialer       *net.Dialer // TargetPolicy
	tenantDialer *net.Dialer // TenantTargetPolicy: hosts set with a tenant key
	dkimKeys     sync.Map    // sha256 of the PEM text → crypto.Signer
}

// NewSender makes a Sender; it starts no goroutines.
func NewSender(opts SenderOptions) (*Sender, error) {
	if opts.Pool == nil {
		return nil, errors.New("delivery: SenderOptions.Pool is required")
	}
	if opts.HeloName == "" {
		opts.HeloName = "localhost"
		if h, err := os.Hostname(); err == nil && h != "" && !strings.ContainsAny(h, " \r\n") {
			opts.HeloName = h
		}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.DialTimeout, 10*time.Second)
	def(&opts.SessionTimeout, 15*time.Second)
	def(&opts.ReplyTimeout, 30*time.Second)
	def(&opts.DataTimeout, 30*time.Second)
	def(&opts.DataPer100KiB, time.Second)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if len(opts.ImplicitTLSPorts) == 0 {
		opts.ImplicitTLSPorts = []int{465}
	}
	policy := netguard.Policy{Level: netguard.Private}
	if opts.TargetPolicy != nil {
		policy = *opts.TargetPolicy
	}
	tenantPolicy := policy
	if opts.TenantTargetPolicy != nil {
		tenantPolicy = *opts.TenantTargetPolicy
	}
	return &Sender{opts: opts, dialer: policy.Dialer(opts.DialTimeout), tenantDialer: tenantPolicy.Dialer(opts.DialTimeout)}, nil
}

// Refusal is one recipient the server refused while others were accepted.
type Refusal struct {
	Rcpt    string `json:"rcpt"`
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// Result is a completed transaction.
type Result struct {
	Accepted []string
	Refused  []Refusal
	Response string // the server's reply to the end of DATA
	Reused   bool   // sent over a connection from the pool
}

// TLS modes of a pool key.
const (
	modeImplicit = "implicit" // TLS from the first byte
	modeRequired = "starttls" // STARTTLS or fail
	modeAuto     = "auto"     // STARTTLS when offered
	modePlain    = "plain"
)

// tlsMode applies the table of delivery.md §4.
func (s *Sender) tlsMode(a store.Account) string {
	switch {
	case slices.Contains(s.opts.ImplicitTLSPorts, a.Port) && (a.UseTLS == nil || *a.UseTLS):
		return modeImplicit
	case a.UseTLS == nil:
		return modeAuto
	case *a.UseTLS:
		return modeRequired
	default:
		return modePlain
	}
}

// PoolKey is the pool an account's connections live in.
func (s *Sender) PoolKey(a store.Account) smtppool.Key {
	sum := sha256.Sum256([]byte(a.Password))
	mode := s.tlsMode(a)
	if !a.TLSVerify && mode != modePlain {
		mode += "-noverify"
	}
	if a.HostByTenant { // dialled through another policy: never share its connections
		mode += "-tenant"
	}
	return smtppool.Key{
		Account:      store.AccountKey(a.TenantID, a.ID),
		Host:         a.Host,
		Port:         a.Port,
		User:         a.User,
		PasswordHash: hex.EncodeToString(sum[:]),
		TLSMode:      mode,
	}
}

// Send delivers msg through acct's server. The error, if any, is an *Error.
// With some recipients refused and others accepted the message is sent and
// Result.Refused lists the refusals.
func (s *Sender) Send(ctx context.Context, acct store.Account, msg *Message) (Result, error) {
	if msg == nil || (msg.msg == nil && msg.raw == nil) {
		return Result{}, &Error{Permanent: true, Command: "build", Err: errors.New("message not built with Build")}
	}
	if err := s.sign(acct, msg); err != nil {
		return Result{}, err
	}
	ttl := time.Duration(acct.TTL) * time.Second
	if acct.TTL <= 0 {
		ttl = 300 * time.Second
	}
	conn, err := s.opts.Pool.Get(ctx, s.PoolKey(acct), ttl, func(ctx context.Context) (*smtp.Client, *smtppool.Guard, error) {
		return s.dial(ctx, acct)
	})
	if err != nil {
		return Result{}, classifyAt("connect", err)
	}
	res, reusable, err := s.transact(ctx, conn, msg)
	res.Reused = conn.Reused()
	if reusable {
		s.opts.Pool.Put(conn)
	} else {
		s.opts.Logger.Debug("smtp connection closed after failure", "host", acct.Host, "port", acct.Port, "err", err)
		s.opts.Pool.Discard(conn)
	}
	return res, err
}

// transact runs MAIL, RCPT and DATA on conn; reusable reports whether the
// connection is fit for another message (it was reset).
func (s *Sender) transact(ctx context.Context, conn *smtppool.Conn, msg *Message) (res Result, reusable bool, err error) {
	c := conn.Client()
	stop := conn.Within(ctx, 0)
	defer stop()

	// fail classifies err; a reply other than 421 leaves the connection
	// usable once the transaction is reset.
	fail := func(cmd string, err error) (Result, bool, error) {
		de := classifyAt(cmd, err)
		ok := de.Code != 0 && de.Code != 421 && c.Reset() == nil
		return res, ok, de
	}

	var mailOpts *smtp.MailOptions
	if msg.utf8 {
		if ok, _ := c.Extension("SMTPUTF8"); !ok {
			// Nothing was sent: the connection stays good.
			return res, true, &Error{Permanent: true, Command: "MAIL", Err: ErrSMTPUTF8Unsupported}
		}
		mailOpts = &smtp.MailOptions{UTF8: true}
	}
	if msg.eightBit {
		if ok, _ := c.Extension("8BITMIME"); ok {
			if mailOpts == nil {
				mailOpts = &smtp.MailOptions{}
			}
			mailOpts.Body = smtp.Body8BitMIME
		}
	}
	if err := c.Mail(msg.from, mailOpts); err != nil {
		return fail("MAIL", err)
	}

	var firstRefusal, firstTemporary error
	for _, rcpt := range msg.rcpts {
		err := c.Rcpt(rcpt, nil)
		if err == nil {
			res.Accepted = append(res.Accepted, rcpt)
			continue
		}
		se, isReply := errors.AsType[*smtp.SMTPError](err)
		if !isReply || se.Code == 421 {
			return fail("RCPT", err)
		}
		res.Refused = append(res.Refused, Refusal{Rcpt: rcpt, Code: se.Code, Message: refusalText(se)})
		if firstRefusal == nil {
			firstRefusal = err
		}
		if firstTemporary == nil && !classifyAt("RCPT", err).Permanent {
			firstTemporary = err
		}
	}
	if len(res.Accepted) == 0 {
		// All refused: temporary if any refusal was, else permanent.
		if firstTemporary != nil {
			return fail("RCPT", firstTemporary)
		}
		return fail("RCPT", firstRefusal)
	}

	w, err := c.Data()
	if err != nil {
		return fail("DATA", err)
	}
	conn.Limit(s.dataTimeout(msg) + s.opts.ReplyTimeout)
	if _, err := msg.WriteTo(w); err != nil {
		return res, false, classifyAt("DATA", err)
	}
	reply, err := w.CloseWithResponse()
	if err != nil {
		return fail("DATA", err)
	}
	res.Response = reply.StatusText
	if !s.opts.ResetAfterSuccess {
		return res, true, nil
	}
	conn.Limit(0)
	// Accepted: a failing RSET only costs the connection, not the message.
	return res, c.Reset() == nil, nil
}

// sign adds the account's DKIM signature over the bytes DATA will carry,
// when the account has a key. A key that does not parse is permanent.
func (s *Sender) sign(acct store.Account, msg *Message) error {
	if acct.DKIMDomain == "" || acct.DKIMSelector == "" || acct.DKIMPrivateKey == "" {
		return nil
	}
	sum := sha256.Sum256([]byte(acct.DKIMPrivateKey))
	var key crypto.Signer
	if v, ok := s.dkimKeys.Load(sum); ok {
		key = v.(crypto.Signer)
	} else {
		k, err := dkim.ParsePrivateKey(acct.DKIMPrivateKey)
		if err != nil {
			return &Error{Permanent: true, Command: "DKIM", Err: fmt.Errorf("account dkim_private_key: %w", err)}
		}
		s.dkimKeys.Store(sum, k)
		key = k
	}
	var buf bytes.Buffer
	msg.signed = nil
	if _, err := msg.WriteTo(&buf); err != nil {
		return &Error{Permanent: true, Command: "DKIM", Err: fmt.Errorf("render message: %w", err)}
	}
	// The DATA writer turns bare LF into CRLF (a raw message may have them):
	// sign those bytes, the ones the receiver gets.
	signed, err := dkim.Sign(crlf(buf.Bytes()), acct.DKIMDomain, acct.DKIMSelector, key)
	if err != nil {
		return &Error{Permanent: true, Command: "DKIM", Err: err}
	}
	msg.signed = signed
	return nil
}

// crlf turns every bare LF into CRLF, as textproto's DotWriter does.
func crlf(b []byte) []byte {
	if bytes.Count(b, []byte("\n")) == bytes.Count(b, []byte("\r\n")) {
		return b
	}
	out := make([]byte, 0, len(b)+len(b)/32)
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}

func (s *Sender) dataTimeout(msg *Message) time.Duration {
	return s.opts.DataTimeout + time.Duration(msg.estimate/(100*1024))*s.opts.DataPer100KiB
}

func refusalText(se *smtp.SMTPError) string {
	text := strings.ReplaceAll(se.Message, "\n", " ")
	if e := enhancedString(se.EnhancedCode); e != "" {
		return e + " " + text
	}
	return text
}

// dial opens a ready connection for acct: connected, TLS as configured,
// greeted and authenticated, all within SessionTimeout.
func (s *Sender) dial(ctx context.Context, acct store.Account) (_ *smtp.Client, _ *smtppool.Guard, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.SessionTimeout)
	defer cancel()
	if acct.Host == "" || acct.Port <= 0 || acct.Port > 65535 {
		return nil, nil, &Error{Permanent: true, Command: "dial",
			Err: errors.New("account has no valid SMTP host and port: " + net.JoinHostPort(acct.Host, strconv.Itoa(acct.Port)))}
	}
	dialer := s.dialer
	if acct.HostByTenant {
		dialer = s.tenantDialer
	}
	raw, err := dialer.DialContext(ctx, "tcp", net.JoinHostPort(acct.Host, strconv.Itoa(acct.Port)))
	if err != nil {
		return nil, nil, classifyAt("dial", err)
	}
	guard := smtppool.NewGuard(raw)
	stop := guard.Within(ctx, s.opts.SessionTimeout)
	defer stop()
	var c *smtp.Client
	defer func() {
		if err != nil {
			if c != nil {
				_ = c.Close()
			}
			_ = guard.Close()
		}
	}()

	mode := s.tlsMode(acct)
	secure := mode == modeImplicit
	cfg := &tls.Config{
		ServerName:         acct.Host,
		MinVersion:         tls.VersionTLS12,
		RootCAs:            s.opts.RootCAs,
		InsecureSkipVerify: !acct.TLSVerify, // the account's explicit tls_verify=false
	}
	if mode == modeImplicit {
		tc := tls.Client(guard, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, nil, classifyAt("TLS", err)
		}
		c = smtp.NewClient(tc)
	} else {
		c = smtp.NewClient(guard)
	}
	s.setTimeouts(c)
	if err := c.Hello(s.opts.HeloName); err != nil {
		return nil, nil, classifyAt("EHLO", err)
	}
	if mode == modeRequired || mode == modeAuto {
		offered, _ := c.Extension("STARTTLS")
		switch {
		case offered:
			// go-smtp starts TLS only in NewClientStartTLS, which reads a
			// greeting first: give it the one already consumed.
			c2, err := smtp.NewClientStartTLS(&greetedConn{Conn: guard, pending: []byte("220 resumed\r\n")}, cfg)
			if err != nil {
				return nil, nil, classifyAt("STARTTLS", err)
			}
			c = c2
			secure = true
			s.setTimeouts(c)
			if err := c.Hello(s.opts.HeloName); err != nil {
				return nil, nil, classifyAt("STARTTLS", err)
			}
		case mode == modeRequired:
			return nil, nil, &Error{Permanent: true, Command: "STARTTLS", Err: ErrStartTLSUnsupported}
		}
	}
	if acct.User != "" && acct.Password != "" {
		if !secure && mode == modeAuto && acct.TLSVerify && !(!s.opts.NoLoopbackClearAuth && isLoopback(raw.RemoteAddr())) {
			// use_tls unset and no STARTTLS offered (or stripped on the way):
			// the password would cross the network in clear.
			return nil, nil, &Error{Permanent: true, Command: "AUTH", Err: ErrClearAuthRefused}
		}
		offered, mechs := c.Extension("AUTH")
		if !offered {
			return nil, nil, &Error{Permanent: true, Command: "AUTH", Err: ErrAuthUnsupported}
		}
		var mech sasl.Client = sasl.NewLoginClient(acct.User, acct.Password)
		for _, m := range strings.Fields(mechs) {
			if strings.EqualFold(m, sasl.Plain) {
				mech = sasl.NewPlainClient("", acct.User, acct.Password)
				break
			}
		}
		if err := c.Auth(mech); err != nil {
			return nil, nil, classifyAt("AUTH", err)
		}
	}
	s.opts.Logger.Debug("smtp connection ready", "host", acct.Host, "port", acct.Port, "tls", mode)
	return c, guard, nil
}

// isLoopback reports whether the connected peer is on this machine.
func isLoopback(addr net.Addr) bool {
	ta, ok := addr.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

func (s *Sender) setTimeouts(c *smtp.Client) {
	c.CommandTimeout = s.opts.ReplyTimeout
	c.SubmissionTimeout = s.opts.ReplyTimeout
}

// greetedConn replays a greeting before the connection's own bytes.
type greetedConn struct {
	net.Conn
	pending []byte
}

func (g *greetedConn) Read(p []byte) (int, error) {
	if len(g.pending) > 0 {
		n := copy(p, g.pending)
		g.pending = g.pending[n:]
		return n, nil
	}
	return g.Conn.Read(p)
}
