package storetest

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mailproxy/mailproxy/internal/store"
)

// reportCases cover unreported events, marking, sync state and the report lease (client-sync.md §2–4).
func reportCases() []testCase {
	return []testCase{
		{"UnreportedInEventOrder", testReportsOrder},
		{"MarkReportedAndCount", testReportsMark},
		{"TenantsWithUnreported", testReportsTenants},
		{"SyncStateRoundTrip", testReportsSyncState},
		{"ReportLease", testReportsLease},
		{"ReportLeaseConcurrentOneWinner", testReportsLeaseConcurrent},
	}
}

// eventLabel names an event by message id and type for failure messages.
func eventLabel(e store.Event) string { return e.MessageID + ":" + string(e.Type) }

func eventLabels(events []store.Event) []string {
	labels := make([]string, len(events))
	for i, e := range events {
		labels[i] = eventLabel(e)
	}
	return labels
}

// seedReportEvents creates, for tenant t1, events at different times across
// several messages and returns their labels in (event_ts, id) order.
func seedReportEvents(t *testing.T, h *harness) []string {
	t.Helper()
	h.tenantWithAccount("t1")
	// r1 and r2: rejected in one batch at +1s (same event_ts: id order = insertion).
	h.enqueue(at(1), msg("t1", "r1", "acc", rejectReason("missing to")), msg("t1", "r2", "acc", rejectReason("missing from")))
	h.enqueueQueued(at(2), msg("t1", "a", "acc"), msg("t1", "b", "acc"))
	for _, c := range h.claim(claimReq("o", at(3))) {
		switch c.Message.ID {
		case "a": // deferred at +10s, sent at +20s
			if err := h.s.RecordOutcome(h.ctx, store.Outcome{
				MessagePK: c.Message.PK, Owner: "o", Attempt: c.Message.Attempt, Kind: store.OutcomeDeferred,
				At: at(10), Description: "451 later", DeferredUntil: ptr(at(15)), RetryCount: 1,
			}); err != nil {
				t.Fatalf("RecordOutcome(deferred a): %v", err)
			}
		case "b": // sent at +5s
			h.finish(c, store.OutcomeSent, at(5), "250 OK")
		}
	}
	h.finish(h.claimOne("o", at(15), "a"), store.OutcomeSent, at(20), "250 OK")
	return []string{"r1:error", "r2:error", "b:sent", "a:deferred", "a:sent"}
}

func testReportsOrder(t *testing.T, h *harness) {
	want := seedReportEvents(t, h)
	events, err := h.s.UnreportedEvents(h.ctx, "t1", 100)
	if err != nil {
		t.Fatalf("UnreportedEvents: %v", err)
	}
	if got := eventLabels(events); !slices.Equal(got, want) {
		t.Errorf("UnreportedEvents = %q, want %q ((event_ts, id) order)", got, want)
	}
	for i := 1; i < len(events); i++ {
		if events[i].At.Equal(events[i-1].At) && events[i].ID <= events[i-1].ID {
			t.Errorf("events %s and %s share event_ts but ids %d, %d are not increasing",
				eventLabel(events[i-1]), eventLabel(events[i]), events[i-1].ID, events[i].ID)
		}
	}
	for _, e := range events {
		if e.TenantID != "t1" || e.MessagePK == "" || e.ReportedAt != nil {
			t.Errorf("event %s: tenant %q pk %q reported %s, want t1, a pk, unreported", eventLabel(e), e.TenantID, e.MessagePK, fmtTime(e.ReportedAt))
		}
	}
	limited, err := h.s.UnreportedEvents(h.ctx, "t1", 2)
	if err != nil {
		t.Fatalf("UnreportedEvents(limit 2): %v", err)
	}
	if got := eventLabels(limited); !slices.Equal(got, want[:2]) {
		t.Errorf("UnreportedEvents(limit 2) = %q, want the first two %q", got, want[:2])
	}
	if n, err := h.s.CountUnreported(h.ctx, "t1"); err != nil || n != len(want) {
		t.Errorf("CountUnreported = %d, %v; want %d", n, err, len(want))
	}
}

func testReportsMark(t *testing.T, h *harness) {
	want := seedReportEvents(t, h)
	events, err := h.s.UnreportedEvents(h.ctx, "t1", 100)
	if err != nil || len(events) != len(want) {
		t.Fatalf("UnreportedEvents = %q, %v; want %d events", eventLabels(events), err, len(want))
	}
	// Mark the first and the fourth: what is left keeps its order.
	if err := h.s.MarkReported(h.ctx, []int64{events[0].ID, events[3].ID}, at(100)); err != nil {
		t.Fatalf("MarkReported: %v", err)
	}
	rest, err := h.s.UnreportedEvents(h.ctx, "t1", 100)
	if err != nil {
		t.Fatalf("UnreportedEvents after marking: %v", err)
	}
	if got, wantRest := eventLabels(rest), []string{want[1], want[2], want[4]}; !slices.Equal(got, wantRest) {
		t.Errorf("UnreportedEvents after marking = %q, want %q", got, wantRest)
	}
	if n, err := h.s.CountUnreported(h.ctx, "t1"); err != nil || n != 3 {
		t.Errorf("CountUnreported after marking = %d, %v; want 3", n, err)
	}
	a := h.record("t1", "a")
	if len(a.History) != 2 || !timeEq(a.History[0].ReportedAt, ptr(at(100))) || a.History[1].ReportedAt != nil {
		t.Errorf("a's history reported_ts = %v, want [+100s, nil]", a.History)
	}
	if a.LatestEvent == nil || a.LatestEvent.Type != store.EventSent || a.LatestEvent.ReportedAt != nil {
		t.Errorf("a's LatestEvent = %+v, want the unreported sent event", a.LatestEvent)
	}
	if err := h.s.MarkReported(h.ctx, nil, at(101)); err != nil {
		t.Errorf("MarkReported(no ids): %v, want a no-op", err)
	}
}

func testReportsTenants(t *testing.T, h *harness) {
	for _, id := range []string{"t1", "t2", "t3"} {
		h.tenantWithAccount(id)
	}
	h.enqueue(at(0), msg("t1", "x", "acc", rejectReason("missing to")), msg("t3", "y", "acc", rejectReason("missing to")))
	h.enqueueQueued(at(0), msg("t2", "queued-only", "acc"))
	got, err := h.s.TenantsWithUnreported(h.ctx)
	if err != nil {
		t.Fatalf("TenantsWithUnreported: %v", err)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"t1", "t3"}) {
		t.Errorf("TenantsWithUnreported = %q, want [t1 t3]", got)
	}
	events, err := h.s.UnreportedEvents(h.ctx, "t1", 10)
	if err != nil || len(events) != 1 {
		t.Fatalf("UnreportedEvents(t1) = %q, %v; want one event", eventLabels(events), err)
	}
	if err := h.s.MarkReported(h.ctx, []int64{events[0].ID}, at(1)); err != nil {
		t.Fatalf("MarkReported: %v", err)
	}
	if got, err := h.s.TenantsWithUnreported(h.ctx); err != nil || !slices.Equal(got, []string{"t3"}) {
		t.Errorf("TenantsWithUnreported after marking t1's event = %q, %v; want [t3]", got, err)
	}
	if n, err := h.s.CountUnreported(h.ctx, "t2"); err != nil || n != 0 {
		t.Errorf("CountUnreported(t2) = %d, %v; want 0", n, err)
	}
}

func testReportsSyncState(t *testing.T, h *harness) {
	h.tenant("t1")
	h.tenant("t2")
	zero, err := h.s.GetSyncState(h.ctx, "t1")
	if err != nil {
		t.Fatalf("GetSyncState with nothing stored: %v, want the zero state", err)
	}
	zero.TenantID = "" // a driver may or may not fill in the id of an empty state
	if diff := cmp.Diff(store.SyncState{}, zero, cmpOpts); diff != "" {
		t.Errorf("GetSyncState with nothing stored differs from the zero state (-want +got):\n%s", diff)
	}

	full := store.SyncState{
		TenantID:            "t1",
		LastSyncAt:          ptr(at(100)),
		DNDUntil:            ptr(at(400)),
		ConsecutiveFailures: 3,
		NextRetryAt:         ptr(at(160)),
		LastError:           "HTTP 503",
		QueuedStreak:        2,
	}
	if err := h.s.PutSyncState(h.ctx, full); err != nil {
		t.Fatalf("PutSyncState: %v", err)
	}
	got, err := h.s.GetSyncState(h.ctx, "t1")
	if err != nil {
		t.Fatalf("GetSyncState: %v", err)
	}
	if diff := cmp.Diff(full, got, cmpOpts); diff != "" {
		t.Errorf("GetSyncState after PutSyncState differs (-want +got):\n%s", diff)
	}
	if other, err := h.s.GetSyncState(h.ctx, "t2"); err != nil || other.LastSyncAt != nil || other.ConsecutiveFailures != 0 {
		t.Errorf("GetSyncState(t2) = %+v, %v; want t2 untouched", other, err)
	}

	// Overwriting with cleared fields clears them.
	cleared := store.SyncState{TenantID: "t1", LastSyncAt: ptr(at(500))}
	if err := h.s.PutSyncState(h.ctx, cleared); err != nil {
		t.Fatalf("PutSyncState(cleared): %v", err)
	}
	got, err = h.s.GetSyncState(h.ctx, "t1")
	if err != nil {
		t.Fatalf("GetSyncState: %v", err)
	}
	if diff := cmp.Diff(cleared, got, cmpOpts); diff != "" {
		t.Errorf("GetSyncState after overwriting differs (-want +got):\n%s", diff)
	}
}

func testReportsLease(t *testing.T, h *harness) {
	h.tenant("t1")
	h.tenant("t2")
	steps := []struct {
		tenant, owner string
		now, until    int
		want          bool
	}{
		{"t1", "a", 0, 30, true},
		{"t1", "b", 10, 40, false}, // held by a
		{"t2", "b", 10, 40, true},  // per tenant
		{"t1", "a", 20, 50, true},  // a renews its own
		{"t1", "b", 49, 80, false}, // a's renewal holds until +50s
		{"t1", "b", 51, 80, true},  // expired: b takes over
		{"t1", "a", 60, 90, false},
	}
	for i, st := range steps {
		got, err := h.s.AcquireReportLease(h.ctx, st.tenant, st.owner, at(st.now), at(st.until))
		if err != nil {
			t.Fatalf("step %d: AcquireReportLease(%s, %s): %v", i, st.tenant, st.owner, err)
		}
		if got != st.want {
			t.Errorf("step %d: AcquireReportLease(%s, %s, +%ds) = %v, want %v", i, st.tenant, st.owner, st.now, got, st.want)
		}
	}
	// Releasing someone else's lease does nothing; the holder's release frees it.
	if err := h.s.ReleaseReportLease(h.ctx, "t1", "a"); err != nil {
		t.Fatalf("ReleaseReportLease(t1, a): %v", err)
	}
	if got, err := h.s.AcquireReportLease(h.ctx, "t1", "a", at(61), at(91)); err != nil || got {
		t.Errorf("AcquireReportLease(t1, a) after a non-holder's release = %v, %v; want false (b holds it)", got, err)
	}
	if err := h.s.ReleaseReportLease(h.ctx, "t1", "b"); err != nil {
		t.Fatalf("ReleaseReportLease(t1, b): %v", err)
	}
	if got, err := h.s.AcquireReportLease(h.ctx, "t1", "a", at(62), at(92)); err != nil || !got {
		t.Errorf("AcquireReportLease(t1, a) after the holder released = %v, %v; want true", got, err)
	}
}

func testReportsLeaseConcurrent(t *testing.T, h *harness) {
	const owners = 12
	h.tenant("t1")
	var (
		wg      sync.WaitGroup
		winners atomic.Int32
	)
	for i := range owners {
		wg.Go(func() {
			defer recoverTo(t)
			ok, err := h.s.AcquireReportLease(h.ctx, "t1", fmt.Sprintf("owner-%d", i), at(0), at(30))
			if err != nil {
				t.Errorf("AcquireReportLease(owner-%d): %v", i, err)
			}
			if ok {
				winners.Add(1)
			}
		})
	}
	wg.Wait()
	if n := winners.Load(); n != 1 {
		t.Errorf("%d owners racing for one free report lease: %d won, want exactly 1", owners, n)
	}
}
