package report

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
)

func isGone(err error) bool {
	return errors.Is(err, store.ErrNotFound)
}

// serve posts one tenant's reports for one turn. It returns when the tenant
// next needs attention (zero: only when something new happens) and whether
// it wants another turn at once (more events than one turn posts). err is a
// store failure; client failures are recorded in the sync state instead.
func (l *Loop) serve(ctx context.Context, tenantID string, forced bool) (next time.Time, more bool, err error) {
	now := l.opts.Now()
	tenant, err := l.st.GetTenant(ctx, tenantID)
	if err != nil {
		if isGone(err) {
			l.forget(tenantID)
			return time.Time{}, false, nil
		}
		return time.Time{}, false, fmt.Errorf("reading tenant: %w", err)
	}
	tg, ok := l.targetFor(tenant, now)
	if !ok {
		// No endpoint: the events wait, visible in sync-status.
		l.updatePending(ctx, tenantID)
		return time.Time{}, false, nil
	}
	state, err := l.st.GetSyncState(ctx, tenantID)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("reading sync state: %w", err)
	}
	if !forced && state.NextRetryAt != nil && state.NextRetryAt.After(now) {
		return *state.NextRetryAt, false, nil
	}
	events, err := l.st.UnreportedEvents(ctx, tenantID, l.opts.BatchSize)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("reading unreported events: %w", err)
	}
	heartbeat := !tg.Global && (forced || tenant.Active && !heartbeatDue(state, l.opts.SyncInterval).After(now))
	if !forced && len(events) > 0 && !heartbeat {
		held, until, err := l.held(ctx, tenantID, events, now)
		if err != nil {
			return time.Time{}, false, err
		}
		if held {
			return until, false, nil
		}
	}
	if len(events) == 0 && !heartbeat && (state.QueuedStreak == 0 || tg.Global) {
		return l.nextHeartbeat(tenant, tg, state), false, nil
	}

	if ok, err := l.acquire(ctx, tenantID); err != nil || !ok {
		return now.Add(leaseBusyRetry), false, err
	}
	defer l.release(ctx, tenantID)
	// Under the lease, read the state again: another instance may have
	// posted or failed since.
	if state, err = l.st.GetSyncState(ctx, tenantID); err != nil {
		return time.Time{}, false, fmt.Errorf("reading sync state: %w", err)
	}
	if forced {
		state.DNDUntil, state.NextRetryAt, state.QueuedStreak = nil, nil, 0
		l.clearHold(tenantID)
		if err := l.putState(ctx, state); err != nil {
			return time.Time{}, false, err
		}
	} else if state.NextRetryAt != nil && state.NextRetryAt.After(now) {
		return *state.NextRetryAt, false, nil
	}

	// The last answer asked for another call (queued > 0); stored, so it
	// survives a turn ending and a restart.
	resync := state.QueuedStreak > 0
	var holdUntil time.Time
	for posts := 0; ; posts++ {
		if posts == postsPerTurn {
			return time.Time{}, true, nil
		}
		if posts > 0 {
			if ok, err := l.acquire(ctx, tenantID); err != nil || !ok {
				return l.opts.Now().Add(leaseBusyRetry), false, err
			}
		}
		events, err := l.st.UnreportedEvents(ctx, tenantID, l.opts.BatchSize)
		if err != nil {
			return time.Time{}, false, fmt.Errorf("reading unreported events: %w", err)
		}
		if len(events) == 0 {
			if call := posts == 0 && heartbeat || resync && !tg.Global; !call {
				break
			}
		} else if posts > 0 && !resync {
			// Only events the client refused are left: they go with the next POST.
			if held, _, err := l.held(ctx, tenantID, events, l.opts.Now()); err != nil || held {
				if err != nil {
					return time.Time{}, false, err
				}
				break
			}
		}
		res, err := l.postBatch(ctx, tenant, tg, &state, events)
		if err != nil {
			return time.Time{}, false, err
		}
		if res.failed {
			l.updatePending(ctx, tenantID) // the backlog matters most while the client fails
			return *state.NextRetryAt, false, nil
		}
		if len(res.refused) > 0 {
			holdUntil = l.opts.Now().Add(l.opts.SyncInterval)
			l.setHold(ctx, tenantID, res.refused, len(events) == l.opts.BatchSize, holdUntil)
		} else {
			l.clearHold(tenantID)
		}
		resync = res.queued && state.QueuedStreak > 0
		if !res.progress && !resync {
			break
		}
	}
	l.updatePending(ctx, tenantID)
	next = l.nextHeartbeat(tenant, tg, state)
	if !holdUntil.IsZero() && (next.IsZero() || holdUntil.Before(next)) {
		next = holdUntil
	}
	return next, false, nil
}

// postResult is what one POST did.
type postResult struct {
	failed   bool          // the POST failed; the state holds the backoff
	progress bool          // some events were marked reported
	queued   bool          // the client answered queued > 0
	refused  []store.Event // events the client listed in "error"
}

// postBatch posts events (none: a heartbeat) and records the outcome in
// the store and in state. err is a store failure or the end of ctx.
func (l *Loop) postBatch(ctx context.Context, tenant store.Tenant, tg target, state *store.SyncState,
	events []store.Event) (postResult, error) {
	body := reportBody{Items: make([]any, 0, len(events))}
	var skipped []int64 // events of no known type: nothing to report
	for _, ev := range events {
		it, err := item(ev)
		if err != nil {
			l.log.Warn("skipping unreportable event", "tenant_id", tenant.ID, "msg_id", ev.MessageID, "err", err)
			skipped = append(skipped, ev.ID)
			continue
		}
		body.Items = append(body.Items, it)
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return postResult{}, fmt.Errorf("encoding report: %w", err)
	}
	a, postErr := l.post(ctx, tenant.ID, tg, raw)
	// The answer is recorded even when ctx ends now, so the client's
	// acceptance is not thrown away at shutdown.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeWriteTimeout)
	defer cancel()
	now := l.opts.Now()
	if postErr != nil {
		var pe *postError
		if !errors.As(postErr, &pe) {
			return postResult{}, postErr // interrupted: record nothing
		}
		state.ConsecutiveFailures++
		retry := now.Add(l.backoff(state.ConsecutiveFailures))
		state.NextRetryAt = &retry
		state.LastError = pe.Msg
		state.QueuedStreak = 0
		l.countPost(tenant.ID, pe.Result)
		l.log.Warn("delivery report POST failed", "tenant_id", tenant.ID, "result", pe.Result,
			"err", pe.Msg, "items", len(body.Items), "failures", state.ConsecutiveFailures, "retry_at", retry)
		if err := l.putState(wctx, *state); err != nil {
			return postResult{}, err
		}
		return postResult{failed: true}, nil
	}
	l.countPost(tenant.ID, resultOK)

	notFound := make(map[string]bool, len(a.NotFound))
	for _, id := range a.NotFound {
		notFound[id] = true
	}
	mark := append([]int64(nil), skipped...)
	var refused []store.Event
	for _, ev := range events {
		if a.Error[ev.MessageID] && !notFound[ev.MessageID] {
			refused = append(refused, ev)
			continue
		}
		mark = append(mark, ev.ID)
	}
	if len(mark) > 0 {
		if err := l.st.MarkReported(wctx, mark, now); err != nil {
			return postResult{}, fmt.Errorf("marking %d events reported: %w", len(mark), err)
		}
	}
	if len(a.NotFound) > 0 {
		l.log.Info("client does not know reported ids", "tenant_id", tenant.ID,
			"count", len(a.NotFound), "ids", a.NotFound[:min(len(a.NotFound), 20)])
	}
	if len(refused) > 0 {
		l.log.Info("client refused report items; they go again with the next POST",
			"tenant_id", tenant.ID, "items", len(refused))
	}

	state.LastSyncAt = &now
	state.ConsecutiveFailures = 0
	state.NextRetryAt = nil
	state.LastError = ""
	if a.NextSyncAfter != nil && a.NextSyncAfter.After(now) {
		dnd := *a.NextSyncAfter
		state.DNDUntil = &dnd
	} else {
		state.DNDUntil = nil
	}
	switch {
	case a.Queued == 0:
		state.QueuedStreak = 0
	case state.QueuedStreak < maxQueuedResyncs:
		state.QueuedStreak++
	default:
		// Ten resyncs in a row: stop; the next independent POST starts afresh.
		l.log.Info("client keeps answering queued; resyncs stopped", "tenant_id", tenant.ID,
			"resyncs", maxQueuedResyncs)
		state.QueuedStreak = 0
	}
	if err := l.putState(wctx, *state); err != nil {
		return postResult{}, err
	}
	l.log.Debug("delivery report posted", "tenant_id", tenant.ID, "items", len(body.Items),
		"marked", len(mark), "queued", a.Queued)
	return postResult{progress: len(mark) > 0, queued: a.Queued > 0, refused: refused}, nil
}

// nextHeartbeat is when the tenant's next heartbeat is due; zero when it
// gets none (global URL, inactive).
func (l *Loop) nextHeartbeat(t store.Tenant, tg target, s store.SyncState) time.Time {
	if tg.Global || !t.Active {
		return time.Time{}
	}
	return heartbeatDue(s, l.opts.SyncInterval)
}

func (l *Loop) acquire(ctx context.Context, tenantID string) (bool, error) {
	now := l.opts.Now()
	ok, err := l.st.AcquireReportLease(ctx, tenantID, l.opts.Owner, now, now.Add(l.opts.Timeout+leaseMargin))
	if err != nil {
		return false, fmt.Errorf("acquiring report lease: %w", err)
	}
	return ok, nil
}

func (l *Loop) release(ctx context.Context, tenantID string) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeWriteTimeout)
	defer cancel()
	if err := l.st.ReleaseReportLease(wctx, tenantID, l.opts.Owner); err != nil {
		l.log.Warn("releasing report lease", "tenant_id", tenantID, "err", err)
	}
}

func (l *Loop) putState(ctx context.Context, s store.SyncState) error {
	if err := l.st.PutSyncState(ctx, s); err != nil {
		return fmt.Errorf("storing sync state: %w", err)
	}
	return nil
}

// held tells whether events are all ones the client refused last time and
// the hold still runs, so posting them again now would only loop.
func (l *Loop) held(ctx context.Context, tenantID string, events []store.Event, now time.Time) (bool, time.Time, error) {
	l.mu.Lock()
	h, ok := l.holds[tenantID]
	l.mu.Unlock()
	if !ok || !now.Before(h.until) {
		return false, time.Time{}, nil
	}
	for _, ev := range events {
		if ev.ID > h.maxEventID {
			return false, time.Time{}, nil
		}
	}
	if len(events) == l.opts.BatchSize {
		// A full batch may hide newer events behind the refused ones.
		n, err := l.st.CountUnreported(ctx, tenantID)
		if err != nil {
			return false, time.Time{}, fmt.Errorf("counting unreported events: %w", err)
		}
		if n > h.count {
			return false, time.Time{}, nil
		}
	}
	return true, h.until, nil
}

// setHold holds the refused events until `until`; after a full batch it
// also remembers how many events are unreported, so newer ones are noticed.
func (l *Loop) setHold(ctx context.Context, tenantID string, refused []store.Event, fullBatch bool, until time.Time) {
	h := hold{until: until, count: len(refused)}
	for _, ev := range refused {
		h.maxEventID = max(h.maxEventID, ev.ID)
	}
	if fullBatch {
		if n, err := l.st.CountUnreported(ctx, tenantID); err == nil {
			h.count = n
		}
	}
	l.mu.Lock()
	l.holds[tenantID] = h
	l.mu.Unlock()
}

func (l *Loop) clearHold(tenantID string) {
	l.mu.Lock()
	delete(l.holds, tenantID)
	l.mu.Unlock()
}

// forget drops what is kept about a deleted tenant.
func (l *Loop) forget(tenantID string) {
	l.clearHold(tenantID)
	l.opts.Metrics.ReportsPending.DeleteLabelValues(tenantID)
}

func (l *Loop) updatePending(ctx context.Context, tenantID string) {
	n, err := l.st.CountUnreported(ctx, tenantID)
	if err != nil {
		l.log.Warn("counting unreported events", "tenant_id", tenantID, "err", err)
		return
	}
	l.opts.Metrics.ReportsPending.WithLabelValues(tenantID).Set(float64(n))
}

func (l *Loop) countPost(tenantID, result string) {
	l.opts.Metrics.ReportPosts.WithLabelValues(tenantID, result).Inc()
}
