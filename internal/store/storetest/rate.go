package storetest

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
)

// rateCases cover ReserveRate, RateUsage, releasing slots and purging windows (ratelimits.md).
func rateCases() []testCase {
	return []testCase{
		{"WindowsExact", testRateWindowsExact},
		{"FirstFullWindowDecides", testRateFirstFullWindow},
		{"AllOrNothing", testRateAllOrNothing},
		{"NoLimitsAlwaysOK", testRateNoLimits},
		{"KeyedByTenantAndAccount", testRateIsolation},
		{"ReleaseGivesSlotBack", testRateRelease},
		{"ConcurrentNeverExceedsLimit", testRateConcurrent},
		{"PurgeExpiredDropsOldWindows", testRatePurge},
	}
}

// reserve reserves one slot and fails the test on error.
func (h *harness) reserve(req store.RateRequest) store.RateDecision {
	h.t.Helper()
	d, err := h.s.ReserveRate(h.ctx, req)
	if err != nil {
		h.t.Fatalf("ReserveRate(%s/%s at %s): %v", req.TenantID, req.AccountID, req.Now.UTC().Format(time.RFC3339), err)
	}
	return d
}

// usage reads the current windows' counts.
func (h *harness) usage(tenantID, accountID string, now time.Time) store.RateUsage {
	h.t.Helper()
	u, err := h.s.RateUsage(h.ctx, tenantID, accountID, now)
	if err != nil {
		h.t.Fatalf("RateUsage(%s/%s): %v", tenantID, accountID, err)
	}
	return u
}

// rateStep is one reservation at base+sec and the decision it must get.
type rateStep struct {
	sec    int
	ok     bool
	window string // for denials
	end    int    // for denials: window end, seconds after base
}

func (h *harness) checkRateSteps(label string, req store.RateRequest, steps []rateStep) {
	h.t.Helper()
	for i, st := range steps {
		req.Now = at(st.sec)
		d := h.reserve(req)
		if d.OK != st.ok {
			h.t.Errorf("%s step %d (+%ds): OK = %v, want %v (decision %+v)", label, i, st.sec, d.OK, st.ok, d)
			continue
		}
		if !st.ok && (d.Window != st.window || !d.WindowEnd.Equal(at(st.end))) {
			h.t.Errorf("%s step %d (+%ds): denied by %q ending %s, want %q ending %s",
				label, i, st.sec, d.Window, fmtTime(&d.WindowEnd), st.window, fmtTime(ptr(at(st.end))))
		}
	}
}

func testRateWindowsExact(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	for _, tc := range []struct {
		name    string
		account string
		req     store.RateRequest
		steps   []rateStep
	}{
		{
			name:    "minute limit 3",
			account: "per-minute",
			req:     store.RateRequest{PerMinute: 3},
			steps: []rateStep{
				{sec: 10, ok: true}, {sec: 20, ok: true}, {sec: 30, ok: true},
				{sec: 31, window: "minute", end: 60},
				{sec: 59, window: "minute", end: 60},
				{sec: 60, ok: true}, // next window: capacity is back exactly at the boundary
				{sec: 61, ok: true}, {sec: 119, ok: true},
				{sec: 119, window: "minute", end: 120},
			},
		},
		{
			name:    "hour limit 2",
			account: "per-hour",
			req:     store.RateRequest{PerHour: 2},
			steps: []rateStep{
				{sec: 10, ok: true}, {sec: 70, ok: true},
				{sec: 130, window: "hour", end: 3600},
				{sec: 3599, window: "hour", end: 3600},
				{sec: 3600, ok: true},
			},
		},
		{
			name:    "day limit 1",
			account: "per-day",
			req:     store.RateRequest{PerDay: 1},
			steps: []rateStep{
				{sec: 7200, ok: true},
				{sec: 7201, window: "day", end: 86400},
				{sec: 86399, window: "day", end: 86400},
				{sec: 86400, ok: true},
				{sec: 86401, window: "day", end: 2 * 86400},
			},
		},
	} {
		req := tc.req
		req.TenantID, req.AccountID = "t1", tc.account
		h.checkRateSteps(tc.name, req, tc.steps)
	}
	if u := h.usage("t1", "per-minute", at(30)); u.Minute != 3 {
		t.Errorf("RateUsage minute in the first window = %d, want 3", u.Minute)
	}
	if u := h.usage("t1", "per-minute", at(61)); u.Minute != 3 {
		t.Errorf("RateUsage minute in the second window = %d, want 3", u.Minute)
	}
	if u := h.usage("t1", "per-hour", at(100)); u.Hour != 2 {
		t.Errorf("RateUsage hour = %d, want 2", u.Hour)
	}
	if u := h.usage("t1", "per-day", at(8000)); u.Day != 1 {
		t.Errorf("RateUsage day = %d, want 1", u.Day)
	}
}

func testRateFirstFullWindow(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	req := store.RateRequest{TenantID: "t1", AccountID: "acc", PerMinute: 1, PerHour: 2, PerDay: 3}
	h.checkRateSteps("minute 1, hour 2, day 3", req, []rateStep{
		{sec: 0, ok: true},
		{sec: 1, window: "minute", end: 60},
		{sec: 60, ok: true},
		{sec: 61, window: "minute", end: 120}, // minute and hour both full: minute is checked first
		{sec: 120, window: "hour", end: 3600},
		{sec: 3600, ok: true},
		{sec: 3660, window: "day", end: 86400}, // minute and hour free again, day full
	})
}

func testRateAllOrNothing(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	req := store.RateRequest{TenantID: "t1", AccountID: "acc", PerMinute: 5, PerHour: 2, PerDay: 10}
	h.checkRateSteps("minute 5, hour 2", req, []rateStep{
		{sec: 1, ok: true}, {sec: 2, ok: true},
		{sec: 3, window: "hour", end: 3600},
		{sec: 4, window: "hour", end: 3600},
	})
	if u := h.usage("t1", "acc", at(5)); u != (store.RateUsage{Minute: 2, Hour: 2, Day: 2}) {
		t.Errorf("RateUsage after two denials = %+v, want {2 2 2}: a denied reservation increments nothing", u)
	}
}

func testRateNoLimits(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	for i := range 20 {
		d := h.reserve(store.RateRequest{TenantID: "t1", AccountID: "acc", Now: at(1), PerMinute: 0, PerHour: -1})
		if !d.OK {
			t.Fatalf("reservation %d without limits denied: %+v", i, d)
		}
	}
}

func testRateIsolation(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.account("t1", "acc2")
	h.tenantWithAccount("t2")
	full := store.RateRequest{TenantID: "t1", AccountID: "acc", Now: at(1), PerMinute: 1}
	if d := h.reserve(full); !d.OK {
		t.Fatalf("first reservation denied: %+v", d)
	}
	if d := h.reserve(full); d.OK {
		t.Fatalf("second reservation on t1/acc allowed, want denied")
	}
	for _, other := range []struct{ tenant, account string }{{"t1", "acc2"}, {"t2", "acc"}} {
		req := full
		req.TenantID, req.AccountID = other.tenant, other.account
		if d := h.reserve(req); !d.OK {
			t.Errorf("reservation on %s/%s denied by t1/acc's full window: %+v", other.tenant, other.account, d)
		}
	}
	if u := h.usage("t2", "acc", at(1)); u.Minute != 1 {
		t.Errorf("RateUsage t2/acc minute = %d, want 1", u.Minute)
	}
}

func testRateRelease(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.enqueueQueued(at(0), msg("t1", "m1", "acc"), msg("t1", "m2", "acc"))
	req := store.RateRequest{TenantID: "t1", AccountID: "acc", Now: at(50), PerMinute: 5, PerHour: 1}
	if d := h.reserve(req); !d.OK {
		t.Fatalf("first reservation denied: %+v", d)
	}
	claims := h.claim(claimReq("o", at(50)))
	if len(claims) != 2 {
		t.Fatalf("Claim = %q, want both", claimIDs(claims))
	}

	// A failed attempt ending in the next minute gives back the slots of
	// the windows containing the reservation time.
	req.Now = at(70)
	if d := h.reserve(req); d.OK || d.Window != "hour" {
		t.Fatalf("reservation with the hour full: %+v, want denied by hour", d)
	}
	c := claims[0]
	if err := h.s.RecordOutcome(h.ctx, store.Outcome{
		MessagePK: c.Message.PK, Owner: "o", Attempt: c.Message.Attempt, Kind: store.OutcomeError,
		At: at(75), Description: "550 no", ReleaseRate: &store.RateKey{TenantID: "t1", AccountID: "acc", At: at(50)},
	}); err != nil {
		t.Fatalf("RecordOutcome(error, release rate): %v", err)
	}
	if u := h.usage("t1", "acc", at(50)); u.Minute != 0 || u.Hour != 0 {
		t.Errorf("RateUsage at the reservation time after release = %+v, want minute 0 hour 0", u)
	}
	req.Now = at(80)
	if d := h.reserve(req); !d.OK {
		t.Errorf("reservation after the release denied: %+v, want the slot back", d)
	}

	// A sent outcome without ReleaseRate keeps its slot counted.
	h.finish(claims[1], store.OutcomeSent, at(81), "250 OK")
	if u := h.usage("t1", "acc", at(82)); u.Hour != 1 {
		t.Errorf("RateUsage hour after a send = %d, want 1 (sent slots stay counted)", u.Hour)
	}
}

func testRateConcurrent(t *testing.T, h *harness) {
	const goroutines, limit = 40, 7
	h.tenantWithAccount("t1")
	var (
		wg      sync.WaitGroup
		granted atomic.Int32
	)
	for range goroutines {
		wg.Go(func() {
			defer recoverTo(t)
			d, err := h.s.ReserveRate(h.ctx, store.RateRequest{
				TenantID: "t1", AccountID: "acc", Now: at(5), PerMinute: limit, PerHour: 100,
			})
			if err != nil {
				t.Errorf("ReserveRate: %v", err)
				return
			}
			if d.OK {
				granted.Add(1)
			} else if d.Window != "minute" || !d.WindowEnd.Equal(at(60)) {
				t.Errorf("denial %+v, want the minute window ending %s", d, fmtTime(ptr(at(60))))
			}
		})
	}
	wg.Wait()
	if g := granted.Load(); g != limit {
		t.Errorf("%d concurrent reservations with limit %d: %d granted, want exactly %d", goroutines, limit, g, limit)
	}
	if u := h.usage("t1", "acc", at(5)); u.Minute != limit || u.Hour != limit {
		t.Errorf("RateUsage after the race = %+v, want minute and hour %d", u, limit)
	}
}

func testRatePurge(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	all := store.RateRequest{TenantID: "t1", AccountID: "acc", PerMinute: 10, PerHour: 10, PerDay: 10}
	old, recent := all, all
	old.Now, recent.Now = at(10), at(3*86400+10)
	h.reserve(old)
	h.reserve(recent)
	if err := h.s.PurgeExpired(h.ctx, at(2*86400)); err != nil {
		t.Fatalf("PurgeExpired: %v", err)
	}
	if u := h.usage("t1", "acc", at(10)); u != (store.RateUsage{}) {
		t.Errorf("RateUsage of windows ended before the cutoff = %+v, want purged (all 0)", u)
	}
	if u := h.usage("t1", "acc", at(3*86400+10)); u != (store.RateUsage{Minute: 1, Hour: 1, Day: 1}) {
		t.Errorf("RateUsage of current windows after the purge = %+v, want {1 1 1} kept", u)
	}
}
