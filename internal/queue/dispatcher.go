// Package queue is the dispatcher: it turns stored, due messages into SMTP
// transactions within the instance's concurrency limits.
//
// The algorithm, one goroutine asleep until there is work:
//  1. Wait for a kick (enqueue, activate, run-now, a NOTIFY from another
//     instance), a finished send, the timer of the earliest future due time
//     (store.NextDue), or the fallback poll interval.
//  2. Claim at most as many due messages as there are free send slots, in
//     priority and FIFO order, skipping accounts whose lanes are full. The
//     claim stamps a lease, so no other instance can take them.
//  3. Hand each claim to its account's lane, which runs at most
//     MaxSendsPerAccount attempts at once; all lanes share MaxSends slots.
//  4. An attempt resolves the account, reserves the rate-limit slot, fetches
//     attachments, builds the MIME message, sends it on a pooled connection
//     and records the outcome in one transaction while it still holds the
//     lease. The report loop is woken after every outcome.
//  5. Leases of claims still held are renewed every third of their length.
//     On shutdown claiming stops, running attempts get the drain timeout,
//     and claims not yet started are released.
package queue

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/mailproxy/mailproxy/internal/attach"
	"github.com/mailproxy/mailproxy/internal/delivery"
	"github.com/mailproxy/mailproxy/internal/metrics"
	"github.com/mailproxy/mailproxy/internal/store"
)

// Store is the part of store.Store the dispatcher uses: claims and their
// leases, outcomes, rate reservations, and tenants for names and fetches.
type Store interface {
	Claim(ctx context.Context, req store.ClaimRequest) ([]store.Claim, error)
	RenewLease(ctx context.Context, owner string, pks []string, until time.Time) ([]string, error)
	RecordOutcome(ctx context.Context, o store.Outcome) error
	// LastEvent tells a repeated rate-limit deferral from a first one.
	LastEvent(ctx context.Context, messagePK string) (store.Event, error)
	NextDue(ctx context.Context, now time.Time) (time.Time, bool, error)
	ReserveRate(ctx context.Context, req store.RateRequest) (store.RateDecision, error)
	GetTenant(ctx context.Context, id string) (store.Tenant, error)
}

// Sender sends one built message through an account (delivery.Sender).
type Sender interface {
	Send(ctx context.Context, acct store.Account, msg *delivery.Message) (delivery.Result, error)
}

// Fetcher fetches a message's attachments (attach.Fetcher).
type Fetcher interface {
	FetchAll(ctx context.Context, tenant store.Tenant, atts []store.Attachment) ([]attach.Content, error)
}

// Options configure a Dispatcher. Zero values take the spec's defaults.
type Options struct {
	Owner               string // instance id stamped on claims
	MaxSends            int    // GMP_MAX_SENDS
	MaxSendsPerAccount  int    // GMP_MAX_SENDS_PER_ACCOUNT
	BatchSizePerAccount int    // GMP_BATCH_SIZE_PER_ACCOUNT
	Retry               RetryPolicy
	Lease               time.Duration // GMP_CLAIM_LEASE_SECONDS
	PollInterval        time.Duration // GMP_SEND_LOOP_INTERVAL: fallback only
	ShutdownTimeout     time.Duration // GMP_SHUTDOWN_TIMEOUT
	TestMode            bool          // claim only during a RunNow drain (GMP_TEST_MODE, as proxy decided it)
	LogActivity         bool          // GMP_LOG_DELIVERY_ACTIVITY
	BounceReturnPath    string        // envelope sender when bounce processing is on
	MIME                delivery.BuildOptions

	Logger  *slog.Logger
	Metrics *metrics.Metrics // required
	Now     func() time.Time
	// OnOutcome is called after every recorded outcome (wakes the report loop).
	OnOutcome func(tenantID string)
	// OnIdle is called in test mode when a RunNow drain finds nothing more due.
	OnIdle func(ctx context.Context)
}

// Dispatcher claims and sends due messages. Create it with New, run it with Run.
type Dispatcher struct {
	st    Store
	send  Sender
	fetch Fetcher
	opts  Options
	log   *slog.Logger
	// claimFaults logs a database outage once, not on every claim round.
	claimFaults store.FaultLog

	kick    chan struct{} // buffered(1): new work may be due
	done    chan struct{} // buffered: an attempt finished
	runNow  chan struct{} // buffered(1): test-mode drain request
	tenants *tenantNames

	mu       sync.Mutex
	inFlight int                  // claims held: running or in a lane's backlog
	running  int                  // attempts running, at most MaxSends
	lanes    map[string]*lane     // by store.AccountKey
	held     map[string]heldClaim // pk → claim still leased by us (running or in a lane's backlog)
}

type heldClaim struct {
	attempt int
	started bool
}

// lane is one account's queue of claims and its running attempts.
type lane struct {
	running int
	queue   []store.Claim
}

// New builds a dispatcher; it starts nothing until Run.
func New(st Store, send Sender, fetch Fetcher, opts Options) *Dispatcher {
	if opts.MaxSends <= 0 {
		opts.MaxSends = 10
	}
	if opts.MaxSendsPerAccount <= 0 {
		opts.MaxSendsPerAccount = 3
	}
	if opts.BatchSizePerAccount <= 0 {
		opts.BatchSizePerAccount = 50
	}
	if opts.Lease <= 0 {
		opts.Lease = 60 * time.Second
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 500 * time.Millisecond
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 30 * time.Second
	}
	if opts.Retry.MaxRetries == 0 && len(opts.Retry.Delays) == 0 {
		opts.Retry = RetryPolicy{MaxRetries: 5, Delays: []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour, 2 * time.Hour}}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Dispatcher{
		st: st, send: send, fetch: fetch, opts: opts, log: opts.Logger,
		kick:    make(chan struct{}, 1),
		done:    make(chan struct{}, opts.MaxSends),
		runNow:  make(chan struct{}, 1),
		tenants: newTenantNames(st),
		lanes:   map[string]*lane{},
		held:    map[string]heldClaim{},
	}
}

// Wake tells the dispatcher that new work may be due. It never blocks.
func (d *Dispatcher) Wake() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// RunNow asks for an immediate round; in test mode it starts a drain that
// dispatches until nothing due remains, then calls OnIdle.
func (d *Dispatcher) RunNow() {
	select {
	case d.runNow <- struct{}{}:
	default:
	}
	d.Wake()
}

// Run dispatches until ctx ends, then drains: running attempts get
// ShutdownTimeout to finish, claims not yet started are released.
func (d *Dispatcher) Run(ctx context.Context) error {
	// Attempts outlive ctx's cancellation so that a graceful stop lets
	// in-flight SMTP transactions finish; sendCancel ends them at the drain deadline.
	sendCtx, sendCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer sendCancel()
	var workers sync.WaitGroup

	// Renewal runs on its own, so a slow claim or store call in this loop
	// can never let a held lease lapse.
	renewCtx, stopRenew := context.WithCancel(context.WithoutCancel(ctx))
	renewDone := make(chan struct{})
	go d.renewLoop(renewCtx, renewDone)
	defer func() { stopRenew(); <-renewDone }()
	beat := time.NewTicker(5 * time.Second)
	defer beat.Stop()
	timer := time.NewTimer(0)
	defer timer.Stop()

	draining := false // test mode: a RunNow drain is under way
	for {
		d.heartbeat()
		claimed := 0
		if !d.opts.TestMode || draining {
			n, err := d.claimRound(ctx, sendCtx, &workers)
			switch {
			case err != nil && ctx.Err() == nil:
				d.claimFaults.Failed(d.log, "claim failed", err)
			case err == nil:
				d.claimFaults.Succeeded(d.log, "claims")
			}
			claimed = n
		}
		if draining && claimed == 0 && d.idle() {
			draining = false
			if d.opts.OnIdle != nil {
				d.opts.OnIdle(ctx)
			}
		}

		wait := d.opts.PollInterval
		if claimed > 0 {
			wait = 0 // more may be due right away
		} else if !d.opts.TestMode && d.idle() {
			// While sends run, their completions wake the loop; only an idle
			// dispatcher needs the timer of the next due message.
			if next, ok, err := d.st.NextDue(ctx, d.opts.Now()); err == nil && ok {
				if until := next.Sub(d.opts.Now()); until < wait {
					wait = max(until, time.Millisecond)
				}
			}
		}
		if d.opts.TestMode && !draining {
			wait = time.Hour // no timers in test mode; only RunNow
		}
		resetTimer(timer, wait)

		// Only work can start a claim round: a kick, a finished send, run-now
		// or the due timer. The heartbeat tick is served in place, with the
		// timer left running.
	sleep:
		for {
			select {
			case <-ctx.Done():
				return d.drain(sendCancel, &workers)
			case <-d.kick:
				break sleep
			case <-d.done:
				break sleep
			case <-d.runNow:
				draining = d.opts.TestMode
				break sleep
			case <-timer.C:
				break sleep
			case <-beat.C:
				d.heartbeat()
			}
		}
	}
}

// heartbeat tells diagnostics and mailproxy_loop_last_run_timestamp_seconds that the loop runs.
func (d *Dispatcher) heartbeat() {
	d.opts.Metrics.LoopRan("dispatcher")
}

func resetTimer(t *time.Timer, d time.Duration) {
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
	t.Reset(d)
}

func (d *Dispatcher) idle() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.inFlight == 0
}

// claimRound claims due messages into the lanes and starts what fits.
//
// Lanes keep a claimed backlog of up to BatchSizePerAccount messages (the
// spec's claim round per account), so a busy account costs one claim
// transaction per batch rather than one per send. While a backlog exists a
// round only claims once half a batch (and at least MaxSends rows) fits, so
// claims stay large and a busy account is not rescanned after every send.
func (d *Dispatcher) claimRound(ctx, sendCtx context.Context, workers *sync.WaitGroup) (int, error) {
	d.mu.Lock()
	free := d.opts.MaxSends + d.opts.BatchSizePerAccount - d.inFlight
	queued := 0
	skip := map[string]bool{}
	for key, l := range d.lanes {
		queued += len(l.queue)
		if l.running+len(l.queue) >= d.opts.BatchSizePerAccount {
			skip[key] = true
		}
	}
	d.mu.Unlock()
	if free <= 0 || (queued > 0 && free < max(d.opts.MaxSends, d.opts.BatchSizePerAccount/2)) {
		return 0, nil
	}
	claims, err := d.st.Claim(ctx, store.ClaimRequest{
		Owner:        d.opts.Owner,
		Now:          d.opts.Now(),
		Lease:        d.opts.Lease,
		Limit:        free,
		PerAccount:   d.opts.BatchSizePerAccount,
		SkipAccounts: skip,
	})
	if err != nil {
		return 0, fmt.Errorf("claim: %w", err)
	}
	d.mu.Lock()
	touched := map[*lane]bool{}
	for _, c := range claims {
		key := store.AccountKey(c.Message.TenantID, c.Message.AccountID)
		l := d.lanes[key]
		if l == nil {
			l = &lane{}
			d.lanes[key] = l
		}
		l.queue = append(l.queue, c)
		touched[l] = true
		d.inFlight++
		d.held[c.Message.PK] = heldClaim{attempt: c.Message.Attempt}
	}
	// A message claimed now may outrank a lane's backlog: keep lanes in the
	// claim order (priority, then arrival).
	for l := range touched {
		slices.SortStableFunc(l.queue, func(a, b store.Claim) int {
			if c := cmp.Compare(a.Message.Priority, b.Message.Priority); c != 0 {
				return c
			}
			return a.Message.CreatedAt.Compare(b.Message.CreatedAt)
		})
	}
	d.startLanesLocked(sendCtx, workers)
	d.mu.Unlock()
	return len(claims), nil
}

// startLanesLocked starts queued attempts while the instance (MaxSends) and
// their lanes (MaxSendsPerAccount) have room.
func (d *Dispatcher) startLanesLocked(sendCtx context.Context, workers *sync.WaitGroup) {
	for key, l := range d.lanes {
		for d.running < d.opts.MaxSends && l.running < d.opts.MaxSendsPerAccount && len(l.queue) > 0 {
			c := l.queue[0]
			l.queue = l.queue[1:]
			l.running++
			d.running++
			h := d.held[c.Message.PK]
			h.started = true
			d.held[c.Message.PK] = h
			workers.Add(1)
			go d.runAttempt(sendCtx, workers, key, c)
		}
		if l.running == 0 && len(l.queue) == 0 {
			delete(d.lanes, key)
		}
	}
}

// runAttempt runs one attempt, frees its lane slot as soon as SMTP is done
// (the pooled connection can carry the next message at once), then records
// the outcome. Concurrent outcomes share group commits; the claim stays held,
// and its lease renewed, until its outcome is written.
func (d *Dispatcher) runAttempt(sendCtx context.Context, workers *sync.WaitGroup, key string, c store.Claim) {
	defer workers.Done()
	res, ok := d.safeAttempt(sendCtx, c)

	d.mu.Lock()
	d.running--
	if l := d.lanes[key]; l != nil {
		l.running--
	}
	d.startLanesLocked(sendCtx, workers)
	d.mu.Unlock()

	if ok && d.record(sendCtx, c.Message, res.outcome) && res.count != nil {
		res.count()
	}

	d.mu.Lock()
	delete(d.held, c.Message.PK)
	d.inFlight--
	if l := d.lanes[key]; l != nil && l.running == 0 && len(l.queue) == 0 {
		delete(d.lanes, key)
	}
	d.mu.Unlock()
	select {
	case d.done <- struct{}{}:
	default:
	}
}

// safeAttempt runs attempt, turning a panic into a logged, counted failure
// whose claim is left to expire (ok=false: nothing to record).
func (d *Dispatcher) safeAttempt(ctx context.Context, c store.Claim) (res result, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			d.log.Error("panic in delivery attempt", "msg_id", c.Message.ID, "tenant_id", c.Message.TenantID,
				"panic", r, "stack", string(debug.Stack()))
			d.opts.Metrics.Panics.Inc()
			ok = false
		}
	}()
	return d.attempt(ctx, c), true
}

// drain stops the instance's sending: unstarted claims are released, running
// attempts get ShutdownTimeout, then are cancelled.
func (d *Dispatcher) drain(sendCancel context.CancelFunc, workers *sync.WaitGroup) error {
	bg := context.Background()
	d.mu.Lock()
	var unstarted []store.Claim
	for key, l := range d.lanes {
		unstarted = append(unstarted, l.queue...)
		d.inFlight -= len(l.queue)
		l.queue = nil
		if l.running == 0 {
			delete(d.lanes, key)
		}
	}
	for _, c := range unstarted {
		delete(d.held, c.Message.PK)
	}
	d.mu.Unlock()
	for _, c := range unstarted {
		err := d.st.RecordOutcome(bg, store.Outcome{MessagePK: c.Message.PK, Owner: d.opts.Owner,
			Attempt: c.Message.Attempt, Kind: store.OutcomeRelease, At: d.opts.Now()})
		if err != nil && !errors.Is(err, store.ErrLeaseLost) {
			d.log.Warn("release claim at shutdown", "msg_id", c.Message.ID, "err", err)
		}
	}
	finished := make(chan struct{})
	go func() { workers.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(d.opts.ShutdownTimeout):
		d.log.Warn("shutdown timeout: cancelling in-flight sends")
		sendCancel()
		<-finished
	}
	return nil
}

// renewLoop renews held leases every third of their length until ctx ends
// (after the drain, so claims still draining keep their leases).
func (d *Dispatcher) renewLoop(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	defer func() {
		if r := recover(); r != nil {
			d.log.Error("panic in lease renewal", "panic", r, "stack", string(debug.Stack()))
			d.opts.Metrics.Panics.Inc()
		}
	}()
	t := time.NewTicker(d.opts.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.renewLeases(ctx)
		}
	}
}

// renewLeases extends the leases of every claim this instance still holds.
func (d *Dispatcher) renewLeases(ctx context.Context) {
	d.mu.Lock()
	pks := make([]string, 0, len(d.held))
	for pk := range d.held {
		pks = append(pks, pk)
	}
	d.mu.Unlock()
	if len(pks) == 0 {
		return
	}
	if _, err := d.st.RenewLease(ctx, d.opts.Owner, pks, d.opts.Now().Add(d.opts.Lease)); err != nil && ctx.Err() == nil {
		d.log.Warn("renew leases", "err", err)
	}
}

// jsonObject marshals a metadata map; it cannot fail for the maps built here.
func jsonObject(m map[string]any) json.RawMessage {
	b, err := json.Marshal(m)
	if err != nil {
		return nil
	}
	return b
}
