package metrics

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
)

const (
	// pendingInterval bounds how often gmp_pending_messages is recounted.
	pendingInterval = 250 * time.Millisecond
	// pendingTimeout bounds one count.
	pendingTimeout = 5 * time.Second
	// pendingCostFactor spaces counts by at least this many times the last
	// count's duration: a count reads the whole queue index (0.1 s of CPU at
	// a million queued messages on SQLite, which every 250 ms was 40 % of a
	// core), so the gauge costs at most a tenth of one however long the queue.
	pendingCostFactor = 10
)

// PendingOptions configure a PendingCounter.
type PendingOptions struct {
	Count  func(ctx context.Context) (int, error) // store.Store.CountUnprocessed
	Every  time.Duration                          // recount this often as well (0: only when woken)
	Logger *slog.Logger
}

// PendingCounter is the one writer of gmp_pending_messages. Its Run recounts
// the unprocessed messages when woken (an enqueue, a deletion, an outcome)
// and every Every, one count at a time, without a COUNT per event: counts
// start at least pendingInterval and pendingCostFactor × the last count's
// duration apart, and the last count always starts after the last wake.
type PendingCounter struct {
	m    *Metrics
	opts PendingOptions
	log  *slog.Logger
	wake chan struct{} // buffered(1): a count is wanted
	last time.Time     // when the last count started; Run's own
	took time.Duration // how long it took; Run's own
}

// NewPendingCounter builds the gauge's writer; it counts nothing until
// Refresh or Run.
func (m *Metrics) NewPendingCounter(opts PendingOptions) *PendingCounter {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &PendingCounter{m: m, opts: opts, log: log, wake: make(chan struct{}, 1)}
}

// Wake asks for a count soon. It never blocks.
func (p *PendingCounter) Wake() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Refresh counts once now: at startup, before anyone scrapes. Not concurrent
// with Run.
func (p *PendingCounter) Refresh(ctx context.Context) { p.count(ctx) }

// Run counts whenever woken (and every Every) until ctx ends.
func (p *PendingCounter) Run(ctx context.Context) error {
	var tick <-chan time.Time
	if p.opts.Every > 0 {
		t := time.NewTicker(p.opts.Every)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.wake:
		case <-tick:
		}
		if wait := max(pendingInterval, pendingCostFactor*p.took) - time.Since(p.last); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
		select { // the count about to start covers every wake so far
		case <-p.wake:
		default:
		}
		p.count(ctx)
	}
}

func (p *PendingCounter) count(ctx context.Context) {
	defer func() {
		if v := recover(); v != nil {
			p.m.Panics.Inc()
			p.log.Error("panic counting gmp_pending_messages", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		}
	}()
	p.last = time.Now()
	cctx, cancel := context.WithTimeout(ctx, pendingTimeout)
	defer cancel()
	n, err := p.opts.Count(cctx)
	p.took = time.Since(p.last)
	if err != nil {
		// Stopping: the store may already be closed. A store fault is the
		// API's to log (its storeHealth), once per outage.
		if ctx.Err() == nil && store.FaultOf(err) == store.FaultNone {
			p.log.Warn("count unprocessed messages", "error", err)
		}
		return
	}
	p.m.Pending.Set(float64(n))
}
