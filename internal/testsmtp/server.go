// Package testsmtp is a real SMTP server (emersion/go-smtp) for tests,
// benchmarks and internal/sink (`mail-proxy sink`): it listens on loopback,
// records what it accepts and misbehaves on request.
//
// How a session is served:
//  1. The listener accepts a TCP connection, counts it, gives it an id and
//     applies CONNECT faults (drop, stall, an early reply, a slow greeting).
//     With ImplicitTLS it wraps the connection in TLS first.
//  2. go-smtp speaks the protocol. STARTTLS is offered when Options.TLS is
//     set, AUTH PLAIN/LOGIN when Options.Users is set.
//  3. The AUTH, MAIL, RCPT and DATA hooks each ask the fault set whether a
//     fault fires for this occurrence (always, from the Nth, K times, with a
//     probability, for one recipient) and reply, drop, stall or delay.
//  4. An accepted message is recorded (envelope, raw data, auth user,
//     connection id), or only counted in Discard mode.
//
// Faults can be changed while the server runs. Down closes the listener and
// every connection; Up listens again on the same address.
package testsmtp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Options configure a Server. The zero value is a plain server on
// 127.0.0.1:0 accepting everything.
type Options struct {
	// Addr to listen on; default "127.0.0.1:0".
	Addr string
	// Domain announced in the greeting; default "testsmtp.localhost".
	Domain string
	// Users are the accepted AUTH credentials (user -> password). When set,
	// AUTH is offered on every connection, plain ones included.
	Users map[string]string
	// AuthRequired refuses MAIL with 530 5.7.0 until the client authenticated.
	AuthRequired bool
	// AuthMechanisms offered; default PLAIN and LOGIN.
	AuthMechanisms []string
	// TLS offers STARTTLS with a self-signed certificate made at New.
	TLS bool
	// ImplicitTLS speaks TLS from the first byte (like port 465). Exclusive
	// with TLS.
	ImplicitTLS bool
	// SMTPUTF8 advertises the SMTPUTF8 extension.
	SMTPUTF8 bool
	// MaxMessageBytes refuses larger messages with 552; 0 = no limit.
	MaxMessageBytes int64
	// Discard counts messages without keeping them (for benchmarks).
	Discard bool
	// PassData, with Discard, still reads each body and hands it to
	// OnMessage in Received.Data; the server keeps nothing, so memory stays
	// flat however many messages arrive (the sink command uses it).
	PassData bool
	// OnMessage, if set, sees each accepted message (Data is nil in Discard
	// mode) on the connection's goroutine, after it was counted; the sink
	// command prints from here.
	OnMessage func(Received)
	// Faults installed at start.
	Faults []Fault
	// Seed for probabilistic faults (deterministic per seed).
	Seed uint64
	// Logger for go-smtp's connection errors, at debug level; nil discards.
	Logger *slog.Logger
}

// Received is one accepted message.
type Received struct {
	ConnID   int64
	AuthUser string
	TLS      bool
	UTF8     bool // MAIL FROM carried SMTPUTF8
	From     string
	Rcpts    []string
	Data     []byte // nil in Discard mode
	At       time.Time
}

// Stats are the server's counters since New.
type Stats struct {
	Connections int64            // TCP connections accepted
	Open        int              // connections open now
	Messages    int              // messages accepted
	Bytes       int64            // message bytes accepted
	Commands    map[string]int64 // commands seen in clear, by verb (RSET, NOOP, ...)
}

// Server is a running or stopped test SMTP server. Its methods are safe for
// concurrent use.
type Server struct {
	opts       Options
	log        *slog.Logger
	smtp       *smtp.Server
	tlsConfig  *tls.Config
	certPool   *x509.CertPool
	mechanisms []string
	faults     *faultSet

	nextConn atomic.Int64
	wg       sync.WaitGroup

	mu       sync.Mutex
	addr     string
	started  bool
	closed   bool
	listener *listener
	conns    map[*trackedConn]struct{}
	messages []Received
	count    int
	bytes    int64
	commands map[string]int64
	changed  chan struct{} // closed and replaced when count grows
}

// New prepares a server (certificate, faults) without listening; call
// Start, or Run.
func New(opts Options) (*Server, error) {
	if opts.TLS && opts.ImplicitTLS {
		return nil, errors.New("testsmtp: TLS (STARTTLS) and ImplicitTLS are exclusive")
	}
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.Domain == "" {
		opts.Domain = "testsmtp.localhost"
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		opts:       opts,
		log:        log,
		faults:     newFaultSet(opts.Seed),
		conns:      make(map[*trackedConn]struct{}),
		commands:   make(map[string]int64),
		changed:    make(chan struct{}),
		mechanisms: opts.AuthMechanisms,
	}
	if len(s.mechanisms) == 0 {
		s.mechanisms = []string{sasl.Plain, sasl.Login}
	}
	for _, m := range s.mechanisms {
		if m != sasl.Plain && m != sasl.Login {
			return nil, fmt.Errorf("testsmtp: unsupported AUTH mechanism %q (PLAIN, LOGIN)", m)
		}
	}
	for _, f := range opts.Faults {
		if _, err := s.faults.add(f); err != nil {
			return nil, err
		}
	}
	cert, pool, err := selfSigned(time.Now())
	if err != nil {
		return nil, err
	}
	s.certPool = pool
	s.tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}

	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = opts.Domain
	srv.AllowInsecureAuth = true // the contract allows AUTH on plain connections
	srv.EnableSMTPUTF8 = opts.SMTPUTF8
	srv.MaxMessageBytes = opts.MaxMessageBytes
	srv.ErrorLog = slogPrinter{log}
	if opts.TLS {
		srv.TLSConfig = s.tlsConfig
	}
	s.smtp = srv
	return s, nil
}

// Start listens and serves in the background until Close.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("testsmtp: already started")
	}
	if s.closed {
		return smtp.ErrServerClosed
	}
	if err := s.listenLocked(s.opts.Addr); err != nil {
		return err
	}
	s.started = true
	s.addr = s.listener.Addr().String()
	return nil
}

// Run starts the server, serves until ctx ends, then closes it.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	return s.Close()
}

// TB is the part of testing.TB that Start needs.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// Start makes and starts a server for one test and closes it at cleanup.
func Start(tb TB, opts Options) *Server {
	tb.Helper()
	s, err := New(opts)
	if err != nil {
		tb.Fatalf("testsmtp: %v", err)
	}
	if err := s.Start(); err != nil {
		tb.Fatalf("testsmtp: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

func (s *Server) listenLocked(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("testsmtp: listen: %w", err)
	}
	l := &listener{Listener: ln, srv: s}
	s.listener = l
	s.goSafe(func() {
		if err := s.smtp.Serve(l); err != nil && !errors.Is(err, net.ErrClosed) {
			s.log.Debug("testsmtp: serve", "err", err)
		}
	})
	return nil
}

// Close stops the server and ends every connection.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	started := s.started
	s.closeAllLocked()
	s.mu.Unlock()
	if !started {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.smtp.Shutdown(ctx); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
		return fmt.Errorf("testsmtp: shutdown: %w", err)
	}
	s.wg.Wait()
	return nil
}

// closeAllLocked closes the listener and every connection.
func (s *Server) closeAllLocked() {
	if s.listener != nil {
		if err := s.listener.Close(); err != nil {
			s.log.Debug("testsmtp: close listener", "err", err)
		}
		s.listener = nil
	}
	conns := make([]*trackedConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	// trackedConn.Close takes s.mu through untrack; release it meanwhile.
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	s.mu.Lock()
}

// Down simulates an outage: stop listening and drop every connection.
// Clients then get "connection refused".
func (s *Server) Down() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started || s.closed {
		return errors.New("testsmtp: not running")
	}
	s.closeAllLocked()
	return nil
}

// Up listens again on the same address after Down.
func (s *Server) Up() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started || s.closed {
		return errors.New("testsmtp: not running")
	}
	if s.listener != nil {
		return nil
	}
	return s.listenLocked(s.addr)
}

// Addr is the listening address, host:port.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Host is the listening IP.
func (s *Server) Host() string {
	h, _, _ := net.SplitHostPort(s.Addr())
	return h
}

// Port is the listening port.
func (s *Server) Port() int {
	_, p, _ := net.SplitHostPort(s.Addr())
	n, _ := strconv.Atoi(p)
	return n
}

// CertPool trusts the server's self-signed certificate.
func (s *Server) CertPool() *x509.CertPool { return s.certPool }

// AddFault installs a fault and returns its id.
func (s *Server) AddFault(f Fault) (int, error) { return s.faults.add(f) }

// RemoveFault uninstalls one fault.
func (s *Server) RemoveFault(id int) { s.faults.remove(id) }

// ClearFaults uninstalls every fault.
func (s *Server) ClearFaults() { s.faults.clear() }

// Messages returns the accepted messages in order (nil in Discard mode).
func (s *Server) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Received, len(s.messages))
	copy(out, s.messages)
	return out
}

// Count is the number of accepted messages.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

// WaitForCount waits until at least n messages were accepted.
func (s *Server) WaitForCount(ctx context.Context, n int) error {
	for {
		s.mu.Lock()
		count, ch := s.count, s.changed
		s.mu.Unlock()
		if count >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("testsmtp: %d of %d messages: %w", count, n, ctx.Err())
		}
	}
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	cmds := make(map[string]int64, len(s.commands))
	for k, v := range s.commands {
		cmds[k] = v
	}
	return Stats{
		Connections: s.nextConn.Load(),
		Open:        len(s.conns),
		Messages:    s.count,
		Bytes:       s.bytes,
		Commands:    cmds,
	}
}

// Connections is the number of TCP connections accepted so far.
func (s *Server) Connections() int64 { return s.nextConn.Load() }

// Commands is how many times verb (e.g. "RSET", "NOOP", "QUIT") was seen.
// Commands are read in clear on plain and implicit-TLS connections; after
// STARTTLS the server cannot see them and they are not counted.
func (s *Server) Commands(verb string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commands[verb]
}

func (s *Server) track(raw net.Conn) *trackedConn {
	id := s.nextConn.Add(1)
	var nc net.Conn = raw
	if s.opts.ImplicitTLS {
		nc = tls.Server(raw, s.tlsConfig)
	}
	tc := &trackedConn{Conn: nc, id: id, srv: s, tls: s.opts.ImplicitTLS, closed: make(chan struct{})}
	s.mu.Lock()
	s.conns[tc] = struct{}{}
	s.mu.Unlock()
	return tc
}

func (s *Server) untrack(c *trackedConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *Server) countCommand(verb string) {
	s.mu.Lock()
	s.commands[verb]++
	s.mu.Unlock()
}

func (s *Server) record(r Received, n int64) {
	s.mu.Lock()
	s.count++
	s.bytes += n
	if !s.opts.Discard {
		s.messages = append(s.messages, r)
	}
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	if s.opts.OnMessage != nil {
		s.opts.OnMessage(r)
	}
}

// goSafe runs f in a goroutine that Close waits for and that survives a panic.
func (s *Server) goSafe(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("testsmtp: panic", "panic", r, "stack", string(debug.Stack()))
			}
		}()
		f()
	}()
}

// slogPrinter adapts go-smtp's Printf logger to slog at debug level.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Printf(format string, v ...any) { p.log.Debug(fmt.Sprintf(format, v...)) }
func (p slogPrinter) Println(v ...any)               { p.log.Debug(fmt.Sprint(v...)) }

var _ io.Closer = (*Server)(nil)
