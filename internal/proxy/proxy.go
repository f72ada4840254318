// Package proxy is the composition root: it assembles one mail-proxy
// instance from the configuration, runs its parts under one errgroup and
// stops them in order. It is the only package that reads config.Config for
// the service; every part gets its own options and hooks.
//
// Start-up:
//  1. Open the store once (OpenStore: SQLite exclusively, or PostgreSQL),
//     which migrates it and applies encryption at rest; the result holds the
//     encrypted view, the raw driver (key rotation) and the driver's Waker.
//  2. On SQLite release every claim (no other process can hold one); make the
//     `default` tenant when no tenant exists; resolve the admin token
//     (GMP_API_TOKEN, else stored, else generated, stored and printed once).
//  3. Decide the schedule once (GMP_SCHEDULER_ACTIVE, GMP_TEST_MODE): it
//     becomes the dispatcher's TestMode, the API's wake hooks (no-ops in test
//     mode) and whether the report loop runs on its own.
//  4. Build the metrics (zero series per account, the gmp_pending_messages
//     counter, counted once now), the SMTP pool, the attachment fetcher, the
//     report loop, the bounce poller, the dispatcher and the API.
//  5. Run them until ctx ends. Shutdown: the HTTP server stops accepting and
//     finishes open requests, the dispatcher stops claiming and drains, the
//     report loop stops, pooled connections QUIT, the store closes last.
package proxy

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mailproxy/mailproxy/internal/api"
	"github.com/mailproxy/mailproxy/internal/attach"
	"github.com/mailproxy/mailproxy/internal/bounce"
	"github.com/mailproxy/mailproxy/internal/config"
	"github.com/mailproxy/mailproxy/internal/delivery"
	"github.com/mailproxy/mailproxy/internal/metrics"
	"github.com/mailproxy/mailproxy/internal/queue"
	"github.com/mailproxy/mailproxy/internal/report"
	"github.com/mailproxy/mailproxy/internal/smtppool"
	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/submit"
)

// Options are the process-level inputs of Run beyond the configuration.
type Options struct {
	Logger  *slog.Logger
	Stderr  io.Writer          // where a generated admin token is printed once
	Version string             // reported in User-Agent and /openapi.json
	Ready   func(api net.Addr) // called once the API listens (tests use port 0)
	// SubmissionReady is called with the SMTP submission listeners'
	// addresses (plain first) once they are bound; not called when off.
	SubmissionReady func(addrs []net.Addr)
}

// Run runs the instance until ctx is cancelled, then shuts down gracefully.
func Run(ctx context.Context, cfg config.Config, opts Options) error {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Stderr == nil {
		opts.Stderr = io.Discard
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	owner := instanceID()
	log = log.With("instance", owner)

	opened, err := OpenStore(ctx, cfg, log, true)
	if err != nil {
		return err
	}
	defer func() {
		if err := opened.Close(); err != nil {
			log.Error("close store", "err", err)
		}
	}()
	st, waker := opened.Store, opened.Waker
	if !cfg.IsPostgres() { // SQLite, opened exclusively: every claim left is stale
		if n, err := st.ReleaseClaims(ctx, ""); err != nil {
			return fmt.Errorf("release stale claims: %w", err)
		} else if n > 0 {
			log.Info("released claims left by a previous run", "count", n)
		}
	}
	if err := ensureDefaultTenant(ctx, st); err != nil {
		return err
	}
	token, announceToken, err := adminToken(ctx, st, cfg, opts.Stderr)
	if err != nil {
		return err
	}

	// GMP_SCHEDULER_ACTIVE and GMP_TEST_MODE are decided here, once: the
	// parts below get hooks and options that already say what they mean.
	active := cfg.SchedulerActive
	onDemand := cfg.TestMode // work only on run-now: no wake-ups, no report loop of its own

	userAgent := "mail-proxy/" + opts.Version
	m := metrics.New()
	if err := seedAccountSeries(ctx, st, m); err != nil {
		return err
	}
	pendingEvery := time.Duration(0)
	if active {
		pendingEvery = 5 * time.Second // also catch what other instances change
	}
	pending := m.NewPendingCounter(metrics.PendingOptions{Count: st.CountUnprocessed, Every: pendingEvery,
		Logger: log.With("component", "metrics")})
	pending.Refresh(ctx)
	m.WatchQueue(func(ctx context.Context, now time.Time) (store.QueueOverview, error) {
		return st.Overview(ctx, "", now, now)
	})

	pool := smtppool.New(smtppool.Options{Size: cfg.PoolSize, Logger: log.With("component", "smtppool")})
	sender, err := delivery.NewSender(senderOptions(cfg, pool, log.With("component", "delivery")))
	if err != nil {
		return fmt.Errorf("smtp sender: %w", err)
	}
	fetcher, err := attach.New(attachOptions(cfg, m, log.With("component", "attach"), userAgent))
	if err != nil {
		return fmt.Errorf("attachments: %w", err)
	}

	reports := report.New(st, reportOptions(cfg, owner, m, log.With("component", "report"), userAgent))

	bounces := bounce.New(st, bounce.Options{
		Owner:    owner,
		Settings: func(ctx context.Context) (bounce.Settings, error) { return bounceSettings(ctx, cfg, st) },
		OnBounce: func(string) { reports.Wake() },
		Registry: m.Registry,
		Logger:   log.With("component", "bounce"),
	})
	dispatchOpts := queueOptions(cfg, owner, onDemand, bounceReturnPath(ctx, cfg, st), m, log.With("component", "queue"))
	dispatchOpts.OnOutcome = func(string) { reports.Wake(); pending.Wake() }
	dispatchOpts.OnIdle = func(ctx context.Context) {
		if err := reports.Cycle(ctx); err != nil && ctx.Err() == nil {
			log.Warn("report cycle after run-now", "err", err)
		}
	}
	dispatcher := queue.New(st, sender, fetcher, dispatchOpts)

	wake, newEvents := func() {}, func() {}
	if !onDemand {
		newEvents = reports.Wake
		if active {
			wake = dispatcher.Wake
		}
	}
	runNow := func(tenantID string) {
		if waker != nil {
			if err := waker.SignalWork(context.WithoutCancel(ctx)); err != nil {
				log.Warn("signal other instances", "err", err)
			}
		}
		if !active {
			return
		}
		dispatcher.RunNow()
		// In test mode this only records the request; the cycle that follows
		// the drain (OnIdle) honours it.
		reports.RunNow(tenantID)
	}

	handler, submissions, err := api.NewWithSubmissions(api.Deps{
		Store:        st,
		Options:      apiOptions(cfg, active, onDemand),
		Metrics:      m,
		Logger:       log.With("component", "api"),
		AdminToken:   token,
		Version:      opts.Version,
		Wake:         wake,
		RunNow:       runNow,
		NewEvents:    newEvents,
		QueueChanged: pending.Wake,
		ReloadBounce: bounces.Reload,
		Ready:        func(ctx context.Context) error { _, err := st.GetInstance(ctx); return err },
		Probe:        sender.Probe,
		Pools:        pool.States,
	})
	if err != nil {
		return fmt.Errorf("api: %w", err)
	}

	submission, err := newSubmission(cfg, submissions, m, log)
	if err != nil {
		return err
	}

	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s (GMP_HOST/GMP_PORT): %w", addr, err)
	}
	// Only a start that got this far keeps (and shows) a generated token: a failed
	// start leaves none stored, so the next start generates and shows one again.
	if announceToken != nil {
		if err := announceToken(); err != nil {
			_ = ln.Close()
			return err
		}
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("mail-proxy listening", "addr", ln.Addr().String(), "scheduler_active", active,
		"test_mode", onDemand, "store", storeKind(cfg))
	if opts.Ready != nil {
		opts.Ready(ln.Addr())
	}
	if submission != nil && opts.SubmissionReady != nil {
		opts.SubmissionReady(submission.Addrs())
	}

	g, gctx := errgroup.WithContext(ctx)
	goSafe(g, log, m, "http", func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	})
	goSafe(g, log, m, "http-shutdown", func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout.Duration())
		defer cancel()
		return srv.Shutdown(sctx)
	})
	goSafe(g, log, m, "smtppool", func() error { return pool.Run(gctx) })
	goSafe(g, log, m, "pending", func() error { return pending.Run(gctx) })
	if submission != nil {
		goSafe(g, log, m, "submission", func() error { return submission.Run(gctx) })
	}
	if active {
		goSafe(g, log, m, "dispatcher", func() error { return dispatcher.Run(gctx) })
		if !onDemand { // reports go out only after a run-now drain
			goSafe(g, log, m, "reports", func() error { return reports.Run(gctx) })
		}
		goSafe(g, log, m, "retention", func() error {
			return report.RunRetention(gctx, st, time.Hour, cfg.ReportRetention.Duration(), 500, log.With("component", "retention"))
		})
		goSafe(g, log, m, "housekeeping", func() error { return housekeeping(gctx, st, log) })
		goSafe(g, log, m, "bounce", func() error { return bounces.Run(gctx) })
		if waker != nil {
			goSafe(g, log, m, "listen", func() error {
				return waker.Listen(gctx, func() { wake(); reports.Wake() })
			})
		}
	}
	if cfg.PprofAddr != "" {
		psrv := pprofServer(cfg.PprofAddr)
		goSafe(g, log, m, "pprof", func() error {
			go func() { <-gctx.Done(); _ = psrv.Close() }()
			if err := psrv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("pprof server: %w", err)
			}
			return nil
		})
	}
	err = g.Wait()

	qctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pool.Close(qctx)
	log.Info("mail-proxy stopped")
	return err
}

// newSubmission binds the SMTP submission listeners (GMP_SMTP_LISTEN,
// GMP_SMTPS_LISTEN); nil when neither is set.
func newSubmission(cfg config.Config, subs *api.Submissions, m *metrics.Metrics, log *slog.Logger) (*submit.Server, error) {
	if cfg.SMTPListen == "" && cfg.SMTPSListen == "" {
		return nil, nil
	}
	var tlsConfig *tls.Config
	if cfg.SMTPTLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.SMTPTLSCert, cfg.SMTPTLSKey)
		if err != nil {
			return nil, fmt.Errorf("GMP_SMTP_TLS_CERT/GMP_SMTP_TLS_KEY: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	domain, _ := os.Hostname()
	srv, err := submit.New(submit.Options{
		Addr:              cfg.SMTPListen,
		TLSAddr:           cfg.SMTPSListen,
		TLSConfig:         tlsConfig,
		AllowInsecureAuth: cfg.SMTPAllowInsecureAuth,
		Domain:            domain,
		MaxMessageBytes:   int64(cfg.MessageMaxMB * 1024 * 1024),
		ShutdownTimeout:   cfg.ShutdownTimeout.Duration(),
		Submitter:         subs,
		Registerer:        m.Registry,
		Logger:            log.With("component", "submit"),
		LogActivity:       cfg.LogDeliveryActivity,
		OnPanic:           m.Panics.Inc,
	})
	if err != nil {
		return nil, err
	}
	for i, a := range srv.Addrs() {
		implicit := cfg.SMTPSListen != "" && (cfg.SMTPListen == "" || i == 1)
		log.Info("smtp submission listening", "addr", a.String(), "implicit_tls", implicit, "starttls", tlsConfig != nil)
	}
	return srv, nil
}

func storeKind(cfg config.Config) string {
	if cfg.IsPostgres() {
		return "postgresql"
	}
	return "sqlite:" + cfg.DatabaseDSN()
}

// ensureDefaultTenant creates tenant `default` when no tenant exists (lifecycle.md §2).
func ensureDefaultTenant(ctx context.Context, st store.Store) error {
	tenants, err := st.ListTenants(ctx, false)
	if err != nil {
		return fmt.Errorf("list tenants: %w", err)
	}
	if len(tenants) > 0 {
		return nil
	}
	name := "Default Tenant"
	if _, err := st.UpsertTenant(ctx, store.Tenant{ID: "default", Name: &name, Active: true}); err != nil {
		return fmt.Errorf("create default tenant: %w", err)
	}
	return nil
}

// adminToken resolves the admin token: GMP_API_TOKEN, else the stored one,
// else a new one (tenancy-security.md §1). A new token comes with announce,
// which stores it and prints it once; Run calls it when the API listens.
func adminToken(ctx context.Context, st store.Store, cfg config.Config, stderr io.Writer) (token string, announce func() error, err error) {
	if cfg.APIToken != "" {
		return cfg.APIToken, nil, nil
	}
	inst, err := st.GetInstance(ctx)
	if err != nil {
		return "", nil, fmt.Errorf("read instance settings: %w", err)
	}
	if inst.APIToken != "" {
		return inst.APIToken, nil, nil
	}
	token, err = NewToken()
	if err != nil {
		return "", nil, err
	}
	announce = func() error {
		inst.APIToken = token
		if err := st.PutInstance(ctx, inst); err != nil {
			return fmt.Errorf("store generated admin token: %w", err)
		}
		fmt.Fprintf(stderr, "Generated admin API token (shown once; `mail-proxy token` shows it again):\n%s\n", token)
		return nil
	}
	return token, announce, nil
}

// NewToken is 32 random bytes, URL-safe base64 without padding (43 characters).
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func seedAccountSeries(ctx context.Context, st store.Store, m *metrics.Metrics) error {
	tenants, err := st.ListTenants(ctx, false)
	if err != nil {
		return fmt.Errorf("list tenants: %w", err)
	}
	names := map[string]string{}
	for _, t := range tenants {
		if t.Name != nil {
			names[t.ID] = *t.Name
		}
	}
	accounts, err := st.ListAccounts(ctx, "")
	if err != nil {
		return fmt.Errorf("list accounts: %w", err)
	}
	for _, a := range accounts {
		m.AccountSeen(a.TenantID, names[a.TenantID], a.ID)
	}
	return nil
}

// housekeeping drops idempotency records and rate windows older than a day.
func housekeeping(ctx context.Context, st store.Store, log *slog.Logger) error {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := st.PurgeExpired(ctx, time.Now().Add(-24*time.Hour)); err != nil && ctx.Err() == nil {
				log.Warn("housekeeping", "err", err)
			}
		}
	}
}

func pprofServer(addr string) *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
}

// bounceSettings are GMP_BOUNCE_* when GMP_BOUNCE_ENABLED is set, else the
// stored instance settings (config-metrics-cli.md §1).
func bounceSettings(ctx context.Context, cfg config.Config, st store.Store) (bounce.Settings, error) {
	if cfg.BounceEnabled {
		return bounce.Settings{Enabled: true, Host: cfg.BounceIMAPHost, Port: cfg.BounceIMAPPort, TLS: cfg.BounceIMAPSSL,
			User: cfg.BounceIMAPUser, Password: cfg.BounceIMAPPassword, Folder: cfg.BounceIMAPFolder,
			PollInterval: cfg.BouncePollInterval.Duration()}, nil
	}
	inst, err := st.GetInstance(ctx)
	if err != nil {
		return bounce.Settings{}, err
	}
	deref := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	return bounce.Settings{Enabled: inst.BounceEnabled, Host: deref(inst.BounceIMAPHost), Port: inst.BounceIMAPPort,
		TLS: inst.BounceIMAPSSL, User: deref(inst.BounceIMAPUser), Password: inst.BounceIMAPPassword,
		Folder: inst.BounceIMAPFolder, PollInterval: time.Duration(inst.BouncePollInterval) * time.Second}, nil
}

// bounceReturnPath is the envelope sender while bounce processing is on:
// GMP_BOUNCE_RETURN_PATH when GMP_BOUNCE_ENABLED is set, else the stored
// settings'; "" when off.
func bounceReturnPath(ctx context.Context, cfg config.Config, st store.Settings) string {
	if cfg.BounceEnabled {
		return cfg.BounceReturnPath
	}
	if inst, err := st.GetInstance(ctx); err == nil && inst.BounceEnabled && inst.BounceReturnPath != nil {
		return *inst.BounceReturnPath
	}
	return ""
}

// goSafe runs fn in the group, turning a panic into a logged, counted error.
func goSafe(g *errgroup.Group, log *slog.Logger, m *metrics.Metrics, name string, fn func() error) {
	g.Go(func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				log.Error("panic", "component", name, "panic", r, "stack", string(debug.Stack()))
				m.Panics.Inc()
				err = fmt.Errorf("%s: panic: %v", name, r)
			}
		}()
		return fn()
	})
}

func instanceID() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}
