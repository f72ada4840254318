// Package submit is mailproxy's SMTP submission listener: applications that
// already speak SMTP hand their messages to the proxy as to any mail server,
// and the proxy queues, rate-limits, retries, reports and relays them.
//
// One submission:
//  1. EHLO, then STARTTLS when a certificate is configured (or TLS from the
//     first byte on the implicit-TLS listener). AUTH PLAIN or LOGIN is
//     offered only over TLS, on a loopback listener, or when insecure AUTH is
//     allowed; the username is "<tenant_id>/<account_id>", the password the
//     tenant's API key or the admin token. Bad credentials: 535.
//  2. MAIL and RCPT before AUTH: 530. A suspended or inactive tenant: 451
//     at MAIL. go-smtp enforces SIZE (GMP_MESSAGE_MAX_MB) and the recipient
//     limit.
//  3. DATA: the header is read, the X-Mail-Proxy-* control headers are taken
//     out, and the message goes through the add-messages enqueue path as a
//     raw item: envelope recipients as recipients, MAIL FROM as return path.
//  4. The reply to DATA comes only after the store committed: "250 2.0.0
//     queued as <id>" (the client id of the delivery reports); an invalid
//     item 554 with its reason; an overloaded or failing store 451.
package submit

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailproxy/mailproxy/internal/api"
)

// Submitter is the enqueue path (api.Submissions).
type Submitter interface {
	Login(ctx context.Context, username, password string) (api.Login, error)
	Accepting(ctx context.Context, tenantID string) error
	Submit(ctx context.Context, login api.Login, sub api.Submission) (api.SubmitResult, error)
}

// Options configure a Server.
type Options struct {
	Addr              string      // plain listener with STARTTLS when TLSConfig is set ("" = none)
	TLSAddr           string      // implicit-TLS listener ("" = none; needs TLSConfig)
	TLSConfig         *tls.Config // certificate for STARTTLS and TLSAddr
	AllowInsecureAuth bool        // AUTH without TLS on a non-loopback listener
	Domain            string      // greeting name [localhost]
	MaxMessageBytes   int64       // SIZE; 0 = no limit
	MaxRecipients     int         // per message [1000]
	Timeout           time.Duration
	ShutdownTimeout   time.Duration         // open sessions may finish within [30s]
	Submitter         Submitter             // required
	Registerer        prometheus.Registerer // required: the instance's registry
	Logger            *slog.Logger
	LogActivity       bool // one info line per submission (GMP_LOG_DELIVERY_ACTIVITY)
	OnPanic           func()
}

// Server is the listener set. New binds the listeners; Run serves them.
type Server struct {
	opts    Options
	log     *slog.Logger
	metrics *submitMetrics
	servers []*smtp.Server
	lns     []net.Listener
	wg      sync.WaitGroup
}

// New checks the options and binds the listeners, so that an address in use
// fails start-up; it starts no goroutines.
func New(opts Options) (*Server, error) {
	if opts.Submitter == nil {
		return nil, errors.New("submit: Options.Submitter is required")
	}
	if opts.TLSAddr != "" && opts.TLSConfig == nil {
		return nil, errors.New("submit: an implicit-TLS listener needs a certificate")
	}
	if opts.Domain == "" {
		opts.Domain = "localhost"
	}
	if opts.MaxRecipients <= 0 {
		opts.MaxRecipients = 1000
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Minute
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, log: opts.Logger, metrics: m}
	for _, l := range []struct {
		addr     string
		implicit bool
	}{{opts.Addr, false}, {opts.TLSAddr, true}} {
		if l.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			s.closeListeners()
			return nil, fmt.Errorf("submit: listen on %s: %w", l.addr, err)
		}
		if l.implicit {
			ln = tls.NewListener(ln, opts.TLSConfig)
		}
		s.lns = append(s.lns, ln)
		s.servers = append(s.servers, s.newSMTPServer(ln))
	}
	return s, nil
}

func (s *Server) newSMTPServer(ln net.Listener) *smtp.Server {
	srv := smtp.NewServer(&backend{s: s})
	srv.Domain = s.opts.Domain
	srv.MaxMessageBytes = s.opts.MaxMessageBytes
	srv.MaxRecipients = s.opts.MaxRecipients
	srv.ReadTimeout = s.opts.Timeout
	srv.WriteTimeout = s.opts.Timeout
	srv.TLSConfig = s.opts.TLSConfig
	srv.EnableSMTPUTF8 = true // delivery uses SMTPUTF8 upstream when an address needs it
	srv.AllowInsecureAuth = s.opts.AllowInsecureAuth || isLoopback(ln.Addr())
	srv.ErrorLog = errorLog{s.log}
	return srv
}

// Addrs are the bound listener addresses, plain first.
func (s *Server) Addrs() []net.Addr {
	out := make([]net.Addr, len(s.lns))
	for i, ln := range s.lns {
		out[i] = ln.Addr()
	}
	return out
}

// Run serves until ctx ends, then stops accepting and gives open sessions
// ShutdownTimeout to finish before closing them.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, len(s.servers))
	for i, srv := range s.servers {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.recoverPanic("serve")
			if err := srv.Serve(s.lns[i]); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
				errc <- fmt.Errorf("submit: serve %s: %w", s.lns[i].Addr(), err)
			}
		}()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	for _, srv := range s.servers {
		if serr := srv.Shutdown(sctx); serr != nil && !errors.Is(serr, smtp.ErrServerClosed) {
			s.log.Warn("submission sessions still open at shutdown; closing them", "err", serr)
			_ = srv.Close()
		}
	}
	s.wg.Wait()
	return err
}

func (s *Server) closeListeners() {
	for _, ln := range s.lns {
		_ = ln.Close()
	}
}

func (s *Server) recoverPanic(where string) {
	if v := recover(); v != nil {
		s.panicked(where, v)
	}
}

func (s *Server) panicked(where string, v any) {
	s.log.Error("panic in submission listener", "where", where, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	if s.opts.OnPanic != nil {
		s.opts.OnPanic()
	}
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// errorLog sends go-smtp's connection errors to slog at debug level.
type errorLog struct{ log *slog.Logger }

func (e errorLog) Printf(format string, v ...any) { e.log.Debug(fmt.Sprintf(format, v...)) }
func (e errorLog) Println(v ...any)               { e.log.Debug(fmt.Sprint(v...)) }

// submitMetrics are the mailproxy_submission_* series.
type submitMetrics struct {
	accepted prometheus.Counter
	refused  *prometheus.CounterVec // reason
	sessions prometheus.Gauge
}

// Refusal reasons (the refused counter's label values).
const (
	refusedAuth      = "auth_failed"
	refusedNoAuth    = "auth_required"
	refusedSuspended = "tenant_suspended"
	refusedInvalid   = "invalid_message"
	refusedTooLarge  = "too_large"
	refusedStore     = "store_unavailable"
)

func newMetrics(reg prometheus.Registerer) (*submitMetrics, error) {
	m := &submitMetrics{
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mailproxy_submission_accepted_total", Help: "Messages accepted by the SMTP submission listener (250 after DATA)"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailproxy_submission_refused_total", Help: "SMTP submission refusals by reason"}, []string{"reason"}),
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mailproxy_submission_sessions", Help: "Open SMTP submission sessions"}),
	}
	for _, r := range []string{refusedAuth, refusedNoAuth, refusedSuspended, refusedInvalid, refusedTooLarge, refusedStore} {
		m.refused.WithLabelValues(r)
	}
	for _, c := range []prometheus.Collector{m.accepted, m.refused, m.sessions} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("submit: register metrics: %w", err)
		}
	}
	return m, nil
}
