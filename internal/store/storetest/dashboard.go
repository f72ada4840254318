package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mailproxy/mailproxy/internal/store"
)

// dashboardCases cover the dashboard's reads: Overview and SearchMessages.
func dashboardCases() []testCase {
	return []testCase{
		{"OverviewCountsOldestDueThroughput", testDashboardOverview},
		{"OverviewEmpty", testDashboardOverviewEmpty},
		{"SearchFiltersOrderPaging", testDashboardSearch},
	}
}

func recipients(to ...string) msgOption {
	return func(b *msgBuilder) { b.p.To = to }
}

// dashboardSeed stores, at now = at(200):
//
//	t1/acc:  p1 pending, d1 deferred to at(500), r1 rejected (error), p2 pending (batch B1, created at(10))
//	t1/acc2: s1 sent at(61) and bounced at(150), e1 error at(125)
//	t2/acc:  x1 pending (batch B1)
func dashboardSeed(h *harness) {
	h.t.Helper()
	h.tenantWithAccount("t1")
	h.account("t1", "acc2")
	h.tenantWithAccount("t2")
	h.enqueueQueued(at(0),
		msg("t1", "p1", "acc"),
		msg("t1", "d1", "acc", deferredUntil(at(500))),
		msg("t1", "s1", "acc2", subject("Invoice 50% off_now"), recipients("Alice@Example.COM")),
		msg("t1", "e1", "acc2"),
		msg("t2", "x1", "acc", batch("B1")),
	)
	h.enqueue(at(0), msg("t1", "r1", "acc", rejectReason("missing to")))
	h.enqueueQueued(at(10), msg("t1", "p2", "acc", batch("B1")))
	for _, c := range h.claim(claimReq("o", at(60))) {
		switch c.Message.ID {
		case "s1":
			h.finish(c, store.OutcomeSent, at(61), "250 OK")
		case "e1":
			h.finish(c, store.OutcomeError, at(125), "550 no")
		default:
			h.finish(c, store.OutcomeRelease, at(61), "")
		}
	}
	s1 := h.record("t1", "s1")
	if added, err := h.s.AddBounce(h.ctx, store.Event{MessagePK: s1.PK, At: at(150), Description: "5.1.1 user unknown",
		Metadata: []byte(`{"bounce_type":"hard"}`)}); err != nil || !added {
		h.t.Fatalf("AddBounce(s1) = %v, %v; want added", added, err)
	}
}

func testDashboardOverview(t *testing.T, h *harness) {
	dashboardSeed(h)
	now := at(200)
	all, err := h.s.Overview(h.ctx, "", now, now.Add(-time.Hour))
	if err != nil {
		t.Fatalf("Overview(all): %v", err)
	}
	wantCounts := []store.AccountCounts{
		{TenantID: "t1", AccountID: "acc", Pending: 2, Deferred: 1, Error: 1},
		{TenantID: "t1", AccountID: "acc2", Sent: 1, Error: 1, Bounced: 1},
		{TenantID: "t2", AccountID: "acc", Pending: 1},
	}
	if diff := cmp.Diff(wantCounts, all.Counts); diff != "" {
		t.Errorf("Overview(all).Counts differs (-want +got):\n%s", diff)
	}
	if all.OldestDue == nil || all.OldestDue.ID != "p1" || all.OldestDue.TenantID != "t1" {
		t.Errorf("Overview(all).OldestDue = %+v, want t1/p1 (due since at(0), stored first)", all.OldestDue)
	}
	minute := func(sec int) time.Time { return at(sec).Truncate(time.Minute).UTC() }
	wantTP := []store.MinuteOutcomes{{Minute: minute(61), Sent: 1}, {Minute: minute(125), Error: 1}}
	if diff := cmp.Diff(wantTP, all.Throughput); diff != "" {
		t.Errorf("Overview(all).Throughput differs (-want +got; the rejected r1 must not count):\n%s", diff)
	}

	t2, err := h.s.Overview(h.ctx, "t2", now, at(90))
	if err != nil {
		t.Fatalf("Overview(t2): %v", err)
	}
	if diff := cmp.Diff(wantCounts[2:], t2.Counts); diff != "" {
		t.Errorf("Overview(t2).Counts differs (-want +got):\n%s", diff)
	}
	if t2.OldestDue == nil || t2.OldestDue.ID != "x1" {
		t.Errorf("Overview(t2).OldestDue = %+v, want x1", t2.OldestDue)
	}
	if len(t2.Throughput) != 0 {
		t.Errorf("Overview(t2).Throughput = %+v, want none (t2 has no outcome)", t2.Throughput)
	}
	t1, err := h.s.Overview(h.ctx, "t1", now, at(90))
	if err != nil {
		t.Fatalf("Overview(t1): %v", err)
	}
	if diff := cmp.Diff(wantTP[1:], t1.Throughput); diff != "" {
		t.Errorf("Overview(t1, since at(90)).Throughput differs (-want +got):\n%s", diff)
	}
	// At at(600) d1's deferral has ended: due since at(500), after p1's at(0).
	later, err := h.s.Overview(h.ctx, "t1", at(600), at(0))
	if err != nil {
		t.Fatalf("Overview(t1, at(600)): %v", err)
	}
	if later.Counts[0].Deferred != 0 || later.Counts[0].Pending != 3 {
		t.Errorf("Overview(t1, at(600)).Counts[0] = %+v, want pending 3, deferred 0", later.Counts[0])
	}
}

func testDashboardOverviewEmpty(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	ov, err := h.s.Overview(h.ctx, "", at(0), at(-3600))
	if err != nil {
		t.Fatalf("Overview: %v", err)
	}
	if ov.Counts == nil || len(ov.Counts) != 0 || ov.OldestDue != nil || ov.Throughput == nil || len(ov.Throughput) != 0 {
		t.Errorf("Overview of an empty queue = %+v, want empty (non-nil) lists and no oldest", ov)
	}
}

func testDashboardSearch(t *testing.T, h *harness) {
	dashboardSeed(h)
	now := at(200)
	for _, tc := range []struct {
		name string
		f    store.MessageSearch
		want []string
	}{
		{"tenant, newest first", store.MessageSearch{TenantID: "t1"}, []string{"p2", "r1", "e1", "s1", "d1", "p1"}},
		{"all tenants", store.MessageSearch{}, []string{"p2", "r1", "x1", "e1", "s1", "d1", "p1"}},
		{"other tenant", store.MessageSearch{TenantID: "t2"}, []string{"x1"}},
		{"unknown tenant", store.MessageSearch{TenantID: "ghost"}, nil},
		{"pending", store.MessageSearch{TenantID: "t1", State: store.StatePending}, []string{"p2", "p1"}},
		{"deferred", store.MessageSearch{TenantID: "t1", State: store.StateDeferred}, []string{"d1"}},
		{"sent", store.MessageSearch{TenantID: "t1", State: store.StateSent}, []string{"s1"}},
		{"error", store.MessageSearch{TenantID: "t1", State: store.StateError}, []string{"r1", "e1"}},
		{"bounced", store.MessageSearch{TenantID: "t1", State: store.StateBounced}, []string{"s1"}},
		{"bounced elsewhere", store.MessageSearch{TenantID: "t2", State: store.StateBounced}, nil},
		{"account", store.MessageSearch{TenantID: "t1", AccountID: "acc2"}, []string{"e1", "s1"}},
		{"batch across tenants", store.MessageSearch{BatchCode: "B1"}, []string{"p2", "x1"}},
		{"exact id", store.MessageSearch{ID: "e1"}, []string{"e1"}},
		{"recipient, any case", store.MessageSearch{Text: "alice@example.com"}, []string{"s1"}},
		{"subject, any case", store.MessageSearch{Text: "INVOICE"}, []string{"s1"}},
		{"literal percent", store.MessageSearch{Text: "%"}, []string{"s1"}},
		{"literal underscore", store.MessageSearch{Text: "_"}, []string{"s1"}},
		{"no match", store.MessageSearch{Text: "nobody@nowhere"}, nil},
		{"limit and offset", store.MessageSearch{TenantID: "t1", Limit: 2, Offset: 1}, []string{"r1", "e1"}},
		{"offset past the end", store.MessageSearch{TenantID: "t1", Limit: 2, Offset: 10}, nil},
		{"filters combine", store.MessageSearch{TenantID: "t1", State: store.StatePending, BatchCode: "B1"}, []string{"p2"}},
	} {
		recs, err := h.s.SearchMessages(h.ctx, tc.f, now)
		if err != nil {
			t.Fatalf("%s: SearchMessages(%+v): %v", tc.name, tc.f, err)
		}
		if got := recordIDs(recs); !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
			t.Errorf("%s: SearchMessages(%+v) = %q, want %q", tc.name, tc.f, got, tc.want)
		}
	}

	recs, err := h.s.SearchMessages(h.ctx, store.MessageSearch{TenantID: "t1", ID: "e1", IncludeHistory: true}, now)
	if err != nil || len(recs) != 1 {
		t.Fatalf("SearchMessages(e1 with history) = %d records, %v; want 1", len(recs), err)
	}
	r := recs[0]
	if got := eventTypes(r.History); !slices.Equal(got, []store.EventType{store.EventError}) {
		t.Errorf("e1 history = %v, want [error]", got)
	}
	if r.LatestError == nil || r.LatestError.Description != "550 no" || r.TenantName == nil || *r.TenantName != "t1 name" {
		t.Errorf("e1 record = %+v, want latest error \"550 no\" and tenant name", r)
	}
	plain, err := h.s.SearchMessages(h.ctx, store.MessageSearch{ID: "e1"}, now)
	if err != nil || len(plain) != 1 || plain[0].History != nil || plain[0].LatestError == nil {
		t.Errorf("SearchMessages(e1 without history) = %+v, %v; want latest error and no history", plain, err)
	}
}
