// Package report is client sync: it POSTs each tenant's unreported delivery
// events to its client application as {"delivery_report":[...]}, doubles
// that call as a heartbeat, and never loses a report (client-sync.md). It
// also runs automatic retention of reported messages (lifecycle.md §7).
//
// The loop:
//  1. Sleeps until Wake (an outcome happened), RunNow, the earliest
//     per-tenant hint (heartbeat due, do-not-disturb end, backoff retry),
//     or the next full pass, every SyncInterval.
//  2. A pass picks the tenants to serve: those with unreported events that
//     have an endpoint and are not in failure backoff, those forced by
//     RunNow, and active tenants with their own client_base_url whose
//     heartbeat is due (never synced, last sync + SyncInterval passed, or
//     do-not-disturb ended). A full pass reads every tenant and rebuilds the
//     hints; a Wake pass reads only tenants with events, a timer pass also
//     the tenants whose hint is due.
//  3. Tenants are served by at most Concurrency workers from a FIFO queue, so
//     a slow or broken endpoint holds one worker, never the others; a tenant
//     is served by one worker at a time, and across instances by whoever
//     holds its stored report lease.
//  4. Serving posts the oldest BatchSize events in (event_ts, id) order and
//     reads the answer: success marks them reported (except ids the client
//     listed in "error"), stores the last sync time and do-not-disturb, and
//     posts again at once while events remain or "queued" > 0 (at most 10
//     queued resyncs in a row); failure marks nothing and stores a backoff
//     of 5 s, 15 s, 60 s, then SyncInterval.
//  5. Everything a restart needs (reported marks, last sync, do-not-disturb,
//     backoff, failures) is in the store; memory holds only scheduling hints.
package report

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"

	"github.com/mailproxy/mailproxy/internal/metrics"
	"github.com/mailproxy/mailproxy/internal/netguard"
	"github.com/mailproxy/mailproxy/internal/store"
)

// Defaults of Options.
const (
	DefaultBatchSize    = 1000
	DefaultTimeout      = 30 * time.Second
	DefaultSyncInterval = 300 * time.Second
	DefaultConcurrency  = 8
	DefaultUserAgent    = "mail-proxy"
)

// DefaultBackoff is the failure backoff before it settles on SyncInterval.
var defaultBackoff = []time.Duration{5 * time.Second, 15 * time.Second, 60 * time.Second}

const (
	// maxQueuedResyncs bounds immediate resyncs asked for by "queued" > 0.
	maxQueuedResyncs = 10
	// postsPerTurn bounds the POSTs of one tenant before it yields its
	// worker to the next tenant in the queue (it is requeued at the back).
	postsPerTurn = 10
	// leaseMargin is added to Timeout for the report lease of one POST.
	leaseMargin = 10 * time.Second
	// leaseBusyRetry is when to look again at a tenant whose lease another
	// instance holds.
	leaseBusyRetry = time.Second
	// passErrorRetry is when to try again after a pass failed on the store.
	passErrorRetry = time.Second
	// minTimer keeps the loop from spinning on a time already past.
	minTimer = 10 * time.Millisecond
	// storeWriteTimeout bounds the bookkeeping written after an answer,
	// which is written even while shutting down.
	storeWriteTimeout = 10 * time.Second
)

// Options configure a Loop. Zero values take the defaults above.
type Options struct {
	Owner          string        // instance id, for the per-tenant report lease
	BatchSize      int           // GMP_REPORT_BATCH_SIZE
	Timeout        time.Duration // GMP_CLIENT_SYNC_TIMEOUT: one POST
	SyncInterval   time.Duration // GMP_SYNC_INTERVAL: heartbeats and the fallback cycle
	GlobalURL      string        // GMP_CLIENT_SYNC_URL
	GlobalUser     string        // GMP_CLIENT_SYNC_USER
	GlobalPassword string        // GMP_CLIENT_SYNC_PASSWORD
	GlobalToken    string        // GMP_CLIENT_SYNC_TOKEN (wins over basic)
	GlobalSecret   string        // GMP_CLIENT_SYNC_SECRET (whsec_...)
	Concurrency    int           // tenants served at once
	UserAgent      string        // "mail-proxy/<version>"
	// Backoff is the wait after the 1st, 2nd, ... consecutive failure;
	// after the last entry the wait is SyncInterval.
	Backoff []time.Duration
	Logger  *slog.Logger
	Metrics *metrics.Metrics // required
	Now     func() time.Time
	// ClientURLAllowPrivate: a client_base_url set with the tenant's own
	// key may be loopback or private (GMP_CLIENT_URL_ALLOW_PRIVATE); one
	// set by the admin, and GMP_CLIENT_SYNC_URL, always may.
	ClientURLAllowPrivate bool
	// HTTPClient, when set, is used as given for every POST. The default
	// clients dial through the address policy (netguard) and follow no
	// redirect: a redirect is a failure naming it.
	HTTPClient *http.Client
}

// Loop is the client-sync loop of one instance.
type Loop struct {
	st   Store
	opts Options
	log  *slog.Logger
	// passFaults logs a database outage once, not on every pass.
	passFaults store.FaultLog
	client     *http.Client // admin-set origins and the global URL
	// tenantClient posts to a client_base_url the tenant set itself.
	tenantClient *http.Client

	kick   chan struct{} // Wake and RunNow: run a pass
	retime chan struct{} // a hint changed: reset the timer

	mu        sync.Mutex
	forced    map[string]bool // RunNow targets not yet served
	fullPass  bool            // RunNow(""): look at every tenant
	busy      map[string]bool // tenants queued or being served
	again     map[string]bool // busy tenants asked for again; value: forced
	queue     []job
	workers   int
	lastFull  time.Time            // the last pass over every tenant
	hints     map[string]time.Time // tenant -> when it next needs a look; "" = a full pass
	holds     map[string]hold
	workersWG sync.WaitGroup
}

// job is one tenant to serve.
type job struct {
	tenantID string
	forced   bool
}

// hold remembers that the client refused every remaining event of a tenant
// (its "error" list): they go out again with the next POST (a new event, a
// heartbeat, run-now), not in a tight loop.
type hold struct {
	maxEventID int64
	count      int
	until      time.Time
}

// New builds a loop; it starts no goroutines.
func New(st Store, opts Options) *Loop {
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = DefaultSyncInterval
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.UserAgent == "" {
		opts.UserAgent = DefaultUserAgent
	}
	if opts.Backoff == nil {
		opts.Backoff = defaultBackoff
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Owner == "" {
		opts.Owner = "report-" + uuid.NewString()
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	client, tenantClient := opts.HTTPClient, opts.HTTPClient
	if client == nil {
		co := netguard.ClientOptions{Timeout: opts.Timeout}
		client = netguard.Policy{Level: netguard.Private}.HTTPClient(co)
		tenantClient = netguard.Policy{Level: netguard.LevelFor(opts.ClientURLAllowPrivate)}.HTTPClient(co)
	}
	return &Loop{
		st: st, opts: opts, log: logger.With("component", "report"), client: client, tenantClient: tenantClient,
		kick:   make(chan struct{}, 1),
		retime: make(chan struct{}, 1),
		forced: map[string]bool{},
		busy:   map[string]bool{},
		again:  map[string]bool{},
		holds:  map[string]hold{},
		hints:  map[string]time.Time{},
	}
}

// Wake asks for prompt reporting of new outcomes; it never blocks.
func (l *Loop) Wake() { signal(l.kick) }

// RunNow asks for a pass now; it never blocks. With a tenant id it also
// clears that tenant's do-not-disturb and backoff and forces a sync (a
// heartbeat if it has no events and its own client_base_url). "" checks all
// tenants, heartbeats included.
func (l *Loop) RunNow(tenantID string) {
	l.mu.Lock()
	if tenantID == "" {
		l.fullPass = true
	} else {
		l.forced[tenantID] = true
	}
	l.mu.Unlock()
	signal(l.kick)
}

// minKickGap is the shortest time between two passes started by kicks: a
// burst of thousands of outcomes per second costs a few passes, well inside
// the one-second promptness target.
const minKickGap = 50 * time.Millisecond

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Run serves tenants until ctx ends, then waits for its workers (an
// interrupted POST marks nothing) and returns nil.
func (l *Loop) Run(ctx context.Context) error {
	defer l.workersWG.Wait()
	timer := time.NewTimer(0) // the first pass checks every tenant
	defer timer.Stop()
	var lastPass time.Time
	for {
		var due []string
		full := false
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
			full, due = l.takeDue(l.opts.Now())
		case <-l.retime:
			l.resetTimer(timer)
			continue
		case <-l.kick:
			// A send burst kicks once per outcome: let kicks within
			// minKickGap of the previous pass share the next one. Real
			// time, not opts.Now: this only bounds the passes' CPU.
			if wait := minKickGap - time.Since(lastPass); wait > 0 {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(wait):
				}
				select { // the kicks that came meanwhile are served by this pass
				case <-l.kick:
				default:
				}
			}
		}
		lastPass = time.Now()
		l.mu.Lock()
		full = full || l.fullPass
		l.fullPass = false
		l.mu.Unlock()
		jobs, err := l.pass(ctx, full, due)
		l.opts.Metrics.LoopRan("reports")
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			l.passFaults.Failed(l.log, "report pass failed", err)
			l.scheduleAt("", l.opts.Now().Add(passErrorRetry))
		} else {
			l.passFaults.Succeeded(l.log, "report pass")
		}
		for _, j := range jobs {
			l.dispatch(ctx, j)
		}
		l.resetTimer(timer)
	}
}

// Cycle runs one full pass over all tenants and serves every due tenant to
// completion before returning (test mode calls it after run-now).
func (l *Loop) Cycle(ctx context.Context) error {
	l.mu.Lock()
	l.fullPass = false
	l.mu.Unlock()
	jobs, err := l.pass(ctx, true, nil)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(l.opts.Concurrency)
	for _, j := range jobs {
		l.mu.Lock()
		if l.busy[j.tenantID] {
			// The running loop serves it; tell it to go again.
			l.again[j.tenantID] = l.again[j.tenantID] || j.forced
			l.mu.Unlock()
			continue
		}
		l.busy[j.tenantID] = true
		l.mu.Unlock()
		g.Go(func() error {
			for {
				more := l.turn(gctx, j)
				l.mu.Lock()
				f, ok := l.again[j.tenantID]
				delete(l.again, j.tenantID)
				if (!more && !ok) || gctx.Err() != nil {
					delete(l.busy, j.tenantID)
					l.mu.Unlock()
					return nil
				}
				l.mu.Unlock()
				j.forced = f
			}
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// dispatch hands a job to a free worker or queues it; a tenant already
// queued or being served is only marked to go again.
func (l *Loop) dispatch(ctx context.Context, j job) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.busy[j.tenantID] {
		l.again[j.tenantID] = l.again[j.tenantID] || j.forced
		return
	}
	l.busy[j.tenantID] = true
	if l.workers >= l.opts.Concurrency {
		l.queue = append(l.queue, j)
		return
	}
	l.workers++
	l.workersWG.Add(1)
	go l.worker(ctx, j)
}

// worker serves jobs until the queue is empty. A tenant that wants more is
// put at the back of the queue, so each tenant gets its turn.
func (l *Loop) worker(ctx context.Context, j job) {
	defer l.workersWG.Done()
	for {
		more := l.turn(ctx, j)
		l.mu.Lock()
		if ctx.Err() != nil {
			for _, q := range l.queue {
				delete(l.busy, q.tenantID)
				delete(l.again, q.tenantID)
			}
			l.queue = nil
			delete(l.busy, j.tenantID)
			delete(l.again, j.tenantID)
			l.workers--
			l.mu.Unlock()
			return
		}
		if f, ok := l.again[j.tenantID]; ok || more {
			delete(l.again, j.tenantID)
			l.queue = append(l.queue, job{tenantID: j.tenantID, forced: f})
		} else {
			delete(l.busy, j.tenantID)
		}
		if len(l.queue) == 0 {
			l.workers--
			l.mu.Unlock()
			return
		}
		j = l.queue[0]
		l.queue = l.queue[1:]
		l.mu.Unlock()
	}
}

// turn serves one tenant once, recovering a panic, and schedules the next
// time the tenant needs attention. more asks for another turn at once.
func (l *Loop) turn(ctx context.Context, j job) (more bool) {
	defer func() {
		if r := recover(); r != nil {
			l.log.Error("report worker panicked", "tenant_id", j.tenantID,
				"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			l.opts.Metrics.Panics.Inc()
			l.scheduleAt(j.tenantID, l.opts.Now().Add(passErrorRetry))
			more = false
		}
	}()
	next, more, err := l.serve(ctx, j.tenantID, j.forced)
	if err != nil && ctx.Err() == nil {
		l.log.Warn("report sync failed on the store", "tenant_id", j.tenantID, "err", err)
		next = l.opts.Now().Add(passErrorRetry)
	}
	l.scheduleAt(j.tenantID, next)
	return more && ctx.Err() == nil
}

// scheduleAt records when a tenant next needs a look (zero: only when
// something happens); tenantID "" asks for a full pass at t.
func (l *Loop) scheduleAt(tenantID string, t time.Time) {
	l.mu.Lock()
	if t.IsZero() {
		delete(l.hints, tenantID)
	} else {
		l.hints[tenantID] = t
	}
	l.mu.Unlock()
	signal(l.retime)
}

// takeDue removes and returns the tenants whose look is due at now; full is
// true when a pass over every tenant is due (every SyncInterval).
func (l *Loop) takeDue(now time.Time) (full bool, due []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	full = !now.Before(l.lastFull.Add(l.opts.SyncInterval))
	for id, t := range l.hints {
		if t.After(now) {
			continue
		}
		delete(l.hints, id)
		if id == "" {
			full = true
		} else {
			due = append(due, id)
		}
	}
	return full, due
}

// resetTimer sets the timer to the earliest hint or the next full pass.
func (l *Loop) resetTimer(timer *time.Timer) {
	l.mu.Lock()
	next := l.lastFull.Add(l.opts.SyncInterval)
	for _, t := range l.hints {
		if t.Before(next) {
			next = t
		}
	}
	l.mu.Unlock()
	timer.Reset(max(next.Sub(l.opts.Now()), minTimer))
}

// pass decides which tenants to serve now: those with unreported events,
// those forced by RunNow, the due ones and, in a full pass, every active
// tenant (heartbeats).
func (l *Loop) pass(ctx context.Context, full bool, due []string) ([]job, error) {
	now := l.opts.Now()
	l.mu.Lock()
	forced := l.forced
	l.forced = map[string]bool{}
	if full {
		l.lastFull = now
		clear(l.hints) // recomputed by this pass and the workers
	}
	l.mu.Unlock()
	jobs, err := l.choose(ctx, full, forced, due, now)
	if err != nil {
		// Keep the run-now requests and due tenants for the next pass.
		l.mu.Lock()
		for id := range forced {
			l.forced[id] = true
		}
		l.mu.Unlock()
		for _, id := range due {
			l.scheduleAt(id, now.Add(passErrorRetry))
		}
	}
	return jobs, err
}

func (l *Loop) choose(ctx context.Context, full bool, forced map[string]bool, due []string, now time.Time) ([]job, error) {
	withEvents, err := l.st.TenantsWithUnreported(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing tenants with unreported events: %w", err)
	}
	hasEvents := make(map[string]bool, len(withEvents))
	for _, id := range withEvents {
		hasEvents[id] = true
	}
	tenants := map[string]*store.Tenant{}
	var order []string
	if full {
		all, err := l.st.ListTenants(ctx, false)
		if err != nil {
			return nil, fmt.Errorf("listing tenants: %w", err)
		}
		for i := range all {
			t := &all[i]
			if t.Active || hasEvents[t.ID] || forced[t.ID] {
				tenants[t.ID] = t
				order = append(order, t.ID)
			}
		}
	} else {
		seen := make(map[string]bool, len(withEvents)+len(forced)+len(due))
		for _, ids := range [][]string{withEvents, slices.Collect(maps.Keys(forced)), due} {
			for _, id := range ids {
				if !seen[id] {
					seen[id] = true
					order = append(order, id)
				}
			}
		}
	}
	var jobs []job
	for _, id := range order {
		if forced[id] {
			jobs = append(jobs, job{tenantID: id, forced: true})
			continue
		}
		l.mu.Lock()
		busy := l.busy[id]
		if busy && hasEvents[id] {
			// Its worker may have looked before these events: go again.
			if _, ok := l.again[id]; !ok {
				l.again[id] = false
			}
		}
		l.mu.Unlock()
		if busy {
			continue
		}
		t := tenants[id]
		if t == nil {
			got, err := l.st.GetTenant(ctx, id)
			if err != nil {
				if isGone(err) {
					continue
				}
				return jobs, fmt.Errorf("reading tenant %s: %w", id, err)
			}
			t = &got
		}
		tg, ok := l.targetFor(*t, now)
		if !ok {
			if full && hasEvents[id] {
				l.updatePending(ctx, id)
			}
			continue
		}
		state, err := l.st.GetSyncState(ctx, id)
		if err != nil {
			return jobs, fmt.Errorf("reading sync state of %s: %w", id, err)
		}
		if state.NextRetryAt != nil && state.NextRetryAt.After(now) {
			l.scheduleAt(id, *state.NextRetryAt)
			continue
		}
		if hasEvents[id] {
			jobs = append(jobs, job{tenantID: id})
			continue
		}
		if tg.Global || !t.Active {
			continue
		}
		if at := heartbeatDue(state, l.opts.SyncInterval); !at.After(now) {
			jobs = append(jobs, job{tenantID: id})
		} else {
			l.scheduleAt(id, at)
		}
	}
	return jobs, nil
}

// heartbeatDue is when a tenant with its own URL and no events should be
// called (client-sync.md §2): at once if never synced, at do-not-disturb's
// end exactly, else a SyncInterval after the last success.
func heartbeatDue(s store.SyncState, interval time.Duration) time.Time {
	switch {
	case s.DNDUntil != nil:
		return *s.DNDUntil
	case s.LastSyncAt == nil:
		return time.Time{}
	default:
		return s.LastSyncAt.Add(interval)
	}
}

// backoff is the wait after the n-th consecutive failure (n >= 1).
func (l *Loop) backoff(n int) time.Duration {
	if n >= 1 && n <= len(l.opts.Backoff) {
		return l.opts.Backoff[n-1]
	}
	return l.opts.SyncInterval
}

// HeartbeatDue tells whether tenant t, with sync state s, is due a heartbeat
// at now (sync-status' next_sync_due): active, its own client_base_url, not
// in failure backoff, and never synced, past do-not-disturb, or a
// SyncInterval since the last success.
func HeartbeatDue(t store.Tenant, s store.SyncState, interval time.Duration, now time.Time) bool {
	if !t.Active || t.ClientBaseURL == nil || strings.TrimSpace(*t.ClientBaseURL) == "" {
		return false
	}
	if s.NextRetryAt != nil && s.NextRetryAt.After(now) {
		return false
	}
	return !heartbeatDue(s, interval).After(now)
}
