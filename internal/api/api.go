// Package api serves mailproxy's legacy REST API (api.md): the /commands/*
// routes, accounts, tenants, instance settings, the command log, health,
// readiness, statistics and metrics, with auth and tenant scope on every
// route (tenancy-security.md §3).
//
// How a request is served:
//  1. The root handler recovers panics (a JSON 500) and answers unknown
//     paths and methods with the contract's JSON 404/405.
//  2. Each route is one entry of the route table: its auth class, query
//     parameters, request and response types, and command-log name.
//  3. The route wrapper authenticates (package auth), rejects bodies over
//     GMP_MAX_REQUEST_MB with 413 before parsing, parses query parameters
//     into pydantic-shaped 422 entries, resolves and checks the tenant scope,
//     runs the handler, records mutating calls in the command log (secrets
//     redacted) and writes the JSON answer.
//  4. Bodies are decoded by our own field readers so that every error has
//     the original's FastAPI/pydantic v2 shape; huma documents the same Go
//     types in /openapi.json and serves /docs.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailproxy/mailproxy/internal/auth"
	"github.com/mailproxy/mailproxy/internal/metrics"
	"github.com/mailproxy/mailproxy/internal/smtppool"
	"github.com/mailproxy/mailproxy/internal/store"
)

// Store is the part of store.Store the API uses: the groups it manages,
// and of the rate and report groups only the reads it shows. Claims,
// outcomes and report marks belong to the dispatcher and the report loop.
type Store interface {
	store.Settings
	store.Tenants
	store.Accounts
	store.Messages
	store.CommandLog
	store.Idempotency
	store.Suppressions
	RateUsage(ctx context.Context, tenantID, accountID string, now time.Time) (store.RateUsage, error)
	CountUnreported(ctx context.Context, tenantID string) (int, error)
	TenantsWithUnreported(ctx context.Context) ([]string, error)
	GetSyncState(ctx context.Context, tenantID string) (store.SyncState, error)
}

// Deps is everything the API needs from the instance.
type Deps struct {
	Store      Store
	Options    Options
	Metrics    *metrics.Metrics
	Logger     *slog.Logger
	AdminToken string                // effective admin token at startup (env, stored or generated)
	Version    string                // shown in /openapi.json
	Wake       func()                // after add-messages queued > 0 or activate committed (nil-safe; a no-op in test mode)
	RunNow     func(tenantID string) // run-now; "" = all tenants (nil-safe)
	NewEvents  func()                // events written outside delivery (rejected at enqueue): wake the report loop (nil-safe; a no-op in test mode)
	// QueueChanged follows every mutation that may change how many messages
	// are unprocessed: it wakes gmp_pending_messages' counter (nil-safe).
	QueueChanged func()
	Now          func() time.Time                // nil = time.Now
	Ready        func(ctx context.Context) error // /ready check; nil = always ready
	Probe        Prober                          // SMTP sessions of diagnostics and test-send; nil = unavailable
	// ReloadBounce makes the bounce poller re-read its settings (nil-safe).
	ReloadBounce func()
	Pools        func() []smtppool.KeyState // the SMTP pool's state for the dashboard (nil = none shown)
	// BodyWait bounds the wait for room among the request bodies being
	// decoded (GMP_MAX_REQUEST_MB in total) before a 503; 0 = 20 s.
	BodyWait time.Duration
}

// Options are the API's settings, which the composition root takes from the
// configuration (GMP_* in brackets).
type Options struct {
	InstanceName    string        // shown while no name is stored (GMP_INSTANCE_NAME)
	MaxRequestBytes int64         // one body, and the bodies decoded at once (GMP_MAX_REQUEST_MB); 0 = 64 MiB
	MaxEnqueueBatch int           // messages per add-messages (GMP_MAX_ENQUEUE_BATCH); 0 = 1000
	DefaultPriority string        // 0..3 or immediate/high/medium/low; "" = medium (GMP_DEFAULT_PRIORITY)
	ReportRetention time.Duration // cleanup-messages' default age (GMP_DELIVERY_REPORT_RETENTION_SECONDS)
	SyncInterval    time.Duration // the report heartbeat (GMP_SYNC_INTERVAL): dashboard, diagnostics
	// SchedulerActive and TestMode are shown in /status and the diagnostics;
	// ReportLoopRuns says whether the report loop runs on its own (active,
	// not in test mode), as the composition root decided.
	SchedulerActive bool
	TestMode        bool
	ReportLoopRuns  bool
	// AdminTokenFixed: GMP_API_TOKEN is set, so a token sent to
	// update-instance is ignored.
	AdminTokenFixed bool
	// BounceEnabled: GMP_BOUNCE_* override the stored bounce settings, with
	// BounceIMAPHost as the host.
	BounceEnabled  bool
	BounceIMAPHost string
	// AccountTargetsPublicOnly: a tenant key may only name public SMTP
	// servers (GMP_ACCOUNT_TARGETS_PUBLIC_ONLY).
	AccountTargetsPublicOnly bool
}

// server is the API's state; one per New.
type server struct {
	d               Deps
	st              Store
	opts            Options
	log             *slog.Logger
	auth            *auth.Authenticator
	now             func() time.Time
	maxBody         int64
	maxBatch        int
	defaultPriority int
	storeHealth     storeHealth
	bodies          *bodyBudget
	mux             *http.ServeMux
	// tenantGen counts tenant changes made through this API (suspend,
	// activate, update, delete), so caches of tenant state know when to drop.
	tenantGen atomic.Uint64
}

func (s *server) tenantsChanged() { s.tenantGen.Add(1) }

// New builds the API handler.
func New(d Deps) (http.Handler, error) {
	if d.Store == nil {
		return nil, errors.New("api: nil store")
	}
	if d.Metrics == nil {
		return nil, errors.New("api: nil metrics")
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	prio, err := parseDefaultPriority(d.Options.DefaultPriority)
	if err != nil {
		return nil, fmt.Errorf("api: GMP_DEFAULT_PRIORITY: %w", err)
	}
	a, err := auth.New(d.Store, d.AdminToken, d.Now)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	s := &server{
		d: d, st: d.Store, opts: d.Options, log: d.Logger, auth: a, now: d.Now,
		maxBody:         d.Options.MaxRequestBytes,
		maxBatch:        d.Options.MaxEnqueueBatch,
		defaultPriority: prio,
		mux:             http.NewServeMux(),
	}
	if s.maxBody <= 0 {
		s.maxBody = 64 << 20
	}
	s.bodies = newBodyBudget(s.maxBody, d.BodyWait)
	if s.maxBatch <= 0 {
		s.maxBatch = 1000
	}
	s.storeHealth.log, s.storeHealth.now = d.Logger, d.Now
	routes := append(s.routes(), s.diagnosticsRoutes()...)
	for _, rt := range routes {
		rt.observeOK = sync.OnceValue(func() prometheus.Observer {
			return d.Metrics.HTTPDuration.WithLabelValues(rt.path, rt.method, "200")
		})
		s.mux.Handle(rt.method+" "+rt.path, s.handler(rt))
	}
	if err := s.mountDocs(routes); err != nil {
		return nil, err
	}
	s.mountUI()
	return s, nil
}

// ServeHTTP is the root handler: panics become a JSON 500, unrouted
// requests the contract's JSON 404 or 405.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.panicked(r, v)
			writeJSON(w, http.StatusInternalServerError, nil, newError(500, detailInternal).body())
		}
	}()
	h, pattern := s.mux.Handler(r)
	if pattern != "" {
		s.mux.ServeHTTP(w, r)
		return
	}
	// The mux's own 404/405 handler: learn which it is, answer in JSON.
	rec := &statusRecorder{header: http.Header{}}
	h.ServeHTTP(rec, r)
	var hdr http.Header
	detail := detailNotFound
	if rec.status == http.StatusMethodNotAllowed {
		detail = detailMethod
		hdr = http.Header{"Allow": rec.header.Values("Allow")}
	} else {
		rec.status = http.StatusNotFound
	}
	writeJSON(w, rec.status, hdr, newError(rec.status, detail).body())
}

func (s *server) panicked(r *http.Request, v any) {
	s.d.Metrics.Panics.Inc()
	s.log.Error("panic serving request", "method", r.Method, "path", r.URL.Path,
		"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
}

// statusRecorder captures the status and headers of the mux's fallback handlers.
type statusRecorder struct {
	header http.Header
	status int
}

func (s *statusRecorder) Header() http.Header         { return s.header }
func (s *statusRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
}

// writeJSON writes a complete JSON answer.
func writeJSON(w http.ResponseWriter, status int, extra http.Header, body []byte) {
	h := w.Header()
	for k, v := range extra {
		h[k] = v
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// wake calls the optional hook.
func (s *server) wake() {
	if s.d.Wake != nil {
		s.d.Wake()
	}
}

// newEvents tells the report loop that events await reporting, so a
// rejection's error report goes out within about a second, as delivery
// outcomes' do (issue 12.2).
func (s *server) newEvents() {
	if s.d.NewEvents != nil {
		s.d.NewEvents()
	}
}

// refreshPending tells gmp_pending_messages' counter that a mutation may
// have changed how many messages are unprocessed (config-metrics-cli.md §3).
func (s *server) refreshPending() {
	if s.d.QueueChanged != nil {
		s.d.QueueChanged()
	}
}
