package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mailproxy/mailproxy/internal/store"
)

// messageCases cover listing, reading one message, a batch's count, deletion, cleanup, counts, stats, NextDue and payload rewrites (api.md §4.4, §5, lifecycle.md §7).
func messageCases() []testCase {
	return []testCase{
		{"ListOrderAndFilters", testMessagesList},
		{"ListPagesAfterCursor", testMessagesListAfter},
		{"GetMessage", testMessagesGet},
		{"CountBatchPending", testMessagesCountBatchPending},
		{"DeleteMessages", testMessagesDelete},
		{"CleanupRule", testMessagesCleanup},
		{"CleanupAllTenantsWithLimit", testMessagesCleanupAllLimit},
		{"CountUnprocessed", testMessagesCountUnprocessed},
		{"Stats", testMessagesStats},
		{"NextDue", testMessagesNextDue},
		{"RewriteAuthPayloads", testMessagesRewriteAuthPayloads},
	}
}

// list runs ListMessages with a filter.
func (h *harness) list(f store.MessageFilter) []string {
	h.t.Helper()
	recs, err := h.s.ListMessages(h.ctx, f, at(0))
	if err != nil {
		h.t.Fatalf("ListMessages(%+v): %v", f, err)
	}
	return recordIDs(recs)
}

func testMessagesList(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.tenantWithAccount("t2")
	h.enqueueQueued(at(0), msg("t1", "low", "acc", priority(store.PriorityLow)))
	h.enqueueQueued(at(1), msg("t1", "med-b", "acc"), msg("t1", "med-a", "acc")) // same created_at: id order
	h.enqueueQueued(at(2), msg("t1", "imm", "acc", priority(store.PriorityImmediate)))
	h.enqueueQueued(at(3), msg("t1", "med-0", "acc")) // later created_at than med-a/med-b
	h.enqueueQueued(at(4), msg("t2", "other", "acc"))
	h.sendNow("imm", at(5))

	all := []string{"imm", "med-a", "med-b", "med-0", "low"}
	for _, tc := range []struct {
		name string
		f    store.MessageFilter
		want []string
	}{
		{"all of t1", store.MessageFilter{TenantID: "t1"}, all},
		{"active only", store.MessageFilter{TenantID: "t1", ActiveOnly: true}, []string{"med-a", "med-b", "med-0", "low"}},
		{"limit", store.MessageFilter{TenantID: "t1", Limit: 2}, all[:2]},
		{"limit and offset", store.MessageFilter{TenantID: "t1", Limit: 2, Offset: 2}, all[2:4]},
		{"offset past the end", store.MessageFilter{TenantID: "t1", Limit: 2, Offset: 10}, nil},
		{"other tenant", store.MessageFilter{TenantID: "t2"}, []string{"other"}},
		{"unknown tenant", store.MessageFilter{TenantID: "ghost"}, nil},
	} {
		if got := h.list(tc.f); !slices.Equal(got, tc.want) {
			t.Errorf("ListMessages %s = %q, want %q (priority, created_at, id)", tc.name, got, tc.want)
		}
	}
	everyone := h.list(store.MessageFilter{})
	slices.Sort(everyone)
	if want := []string{"imm", "low", "med-0", "med-a", "med-b", "other"}; !slices.Equal(everyone, want) {
		t.Errorf("ListMessages of all tenants = %q, want %q", everyone, want)
	}
	if r := h.record("t2", "other"); r.TenantName == nil || *r.TenantName != "t2 name" {
		t.Errorf("t2's message TenantName %v, want \"t2 name\"", r.TenantName)
	}
}

// testMessagesListAfter pages through a listing by position: the pages
// join up to the whole listing, in order, with or without active_only, and
// events still fold into their records.
func testMessagesListAfter(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.tenantWithAccount("t2")
	h.enqueueQueued(at(0), msg("t1", "low", "acc", priority(store.PriorityLow)))
	h.enqueueQueued(at(1), msg("t1", "med-b", "acc"), msg("t1", "med-a", "acc"), msg("t1", "med-c", "acc"))
	h.enqueueQueued(at(2), msg("t1", "imm", "acc", priority(store.PriorityImmediate)))
	h.enqueueQueued(at(3), msg("t1", "med-0", "acc"))
	h.enqueueQueued(at(4), msg("t2", "other", "acc"))
	h.sendNow("imm", at(5))
	for _, tc := range []struct {
		name   string
		active bool
		want   []string
	}{
		{"all", false, []string{"imm", "med-a", "med-b", "med-c", "med-0", "low"}},
		{"active only", true, []string{"med-a", "med-b", "med-c", "med-0", "low"}},
	} {
		for _, size := range []int{1, 2, 4, 100} {
			var got []string
			cur := store.ListStart
			for page := 0; page < 20; page++ {
				recs, err := h.s.ListMessages(h.ctx, store.MessageFilter{TenantID: "t1", ActiveOnly: tc.active,
					IncludeHistory: true, Limit: size, After: &cur}, at(0))
				if err != nil {
					t.Fatalf("ListMessages after %+v: %v", cur, err)
				}
				for i := range recs {
					got = append(got, recs[i].ID)
					if recs[i].ID == "imm" && (len(recs[i].History) != 1 || recs[i].Final == nil) {
						t.Errorf("paged record imm has history %v, final %v; want its sent event", recs[i].History, recs[i].Final)
					}
				}
				if len(recs) < size {
					break
				}
				cur = recs[len(recs)-1].Cursor()
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("%s in pages of %d = %q, want %q", tc.name, size, got, tc.want)
			}
		}
	}
	if _, err := h.s.ListMessages(h.ctx, store.MessageFilter{After: &store.ListStart}, at(0)); err == nil {
		t.Error("paging by position without a tenant: no error")
	}
}

// testMessagesGet reads single messages: the record is the listing's, with
// history; another tenant's id, an unknown id or tenant is ErrNotFound; and
// tenant "" takes the first in listing order among the tenants.
func testMessagesGet(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.tenantWithAccount("t2")
	h.enqueueQueued(at(0), msg("t1", "same", "acc", priority(store.PriorityLow)), msg("t1", "sent", "acc"),
		msg("t1", "queued", "acc", batch("b")))
	h.enqueueQueued(at(1), msg("t2", "same", "acc", priority(store.PriorityHigh)), msg("t2", "only-t2", "acc"))
	h.enqueue(at(2), msg("t1", "rejected", "acc", rejectReason("missing to")))
	h.sendNow("sent", at(3))
	for _, id := range []string{"same", "sent", "queued", "rejected"} {
		got, err := h.s.GetMessage(h.ctx, "t1", id)
		if err != nil {
			t.Fatalf("GetMessage(t1, %q): %v", id, err)
		}
		if diff := cmp.Diff(h.record("t1", id), got, cmpOpts); diff != "" {
			t.Errorf("GetMessage(t1, %q) differs from its listing with history (-list +get):\n%s", id, diff)
		}
	}
	if r, err := h.s.GetMessage(h.ctx, "t1", "sent"); err == nil && (len(r.History) != 1 || r.Final == nil) {
		t.Errorf("GetMessage(t1, sent): history %v, final %v; want its sent event", r.History, r.Final)
	}
	if r, err := h.s.GetMessage(h.ctx, "", "same"); err != nil || r.TenantID != "t2" {
		t.Errorf("GetMessage(\"\", same) = tenant %q, %v; want t2's (high priority lists first)", r.TenantID, err)
	}
	if r, err := h.s.GetMessage(h.ctx, "", "only-t2"); err != nil || r.TenantID != "t2" || r.TenantName == nil {
		t.Errorf("GetMessage(\"\", only-t2) = tenant %q (name %v), %v; want t2's", r.TenantID, r.TenantName, err)
	}
	for _, tc := range []struct{ tenant, id string }{{"t1", "only-t2"}, {"t1", "never"}, {"ghost", "same"}, {"", "never"}} {
		if _, err := h.s.GetMessage(h.ctx, tc.tenant, tc.id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetMessage(%q, %q) error = %v, want ErrNotFound", tc.tenant, tc.id, err)
		}
	}
}

// testMessagesCountBatchPending counts a batch's unprocessed messages:
// queued, deferred and claimed ones, not sent or rejected ones, nor those
// of other batches or tenants.
func testMessagesCountBatchPending(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.tenantWithAccount("t2")
	h.enqueueQueued(at(0),
		msg("t1", "ready", "acc", batch("b1")), msg("t1", "deferred", "acc", batch("b1"), deferredUntil(at(999))),
		msg("t1", "claimed", "acc", batch("b1"), priority(store.PriorityImmediate)),
		msg("t1", "sent", "acc", batch("b1"), priority(store.PriorityHigh)),
		msg("t1", "other-batch", "acc", batch("b2")), msg("t1", "no-batch", "acc"),
		msg("t2", "t2-b1", "acc", batch("b1")))
	h.enqueue(at(0), msg("t1", "rejected", "acc", batch("b1"), rejectReason("missing to")))
	req := claimReq("o", at(1))
	req.Limit = 2
	for _, c := range h.claim(req) {
		if c.Message.ID == "sent" {
			h.finish(c, store.OutcomeSent, at(1), "250 OK")
		} else if c.Message.ID != "claimed" {
			t.Fatalf("Claim at +1s took %q, want the immediate and the high-priority message", c.Message.ID)
		}
	}
	if _, err := h.s.Suspend(h.ctx, "t2", nil); err != nil {
		t.Fatalf("Suspend: %v", err)
	}
	for _, tc := range []struct {
		tenant, batch string
		want          int
	}{
		{"t1", "b1", 3}, // ready, deferred, claimed
		{"t1", "b2", 1},
		{"t1", "never", 0},
		{"t2", "b1", 1}, // suspended still counts
		{"", "b1", 4},
		{"ghost", "b1", 0},
	} {
		if n, err := h.s.CountBatchPending(h.ctx, tc.tenant, tc.batch); err != nil || n != tc.want {
			t.Errorf("CountBatchPending(%q, %q) = %d, %v; want %d", tc.tenant, tc.batch, n, err, tc.want)
		}
	}
}

func testMessagesDelete(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.tenantWithAccount("t2")
	pks := h.enqueueQueued(at(0), msg("t1", "a", "acc"), msg("t1", "b", "acc"), msg("t2", "theirs", "acc"))
	h.enqueue(at(0), msg("t1", "rejected", "acc", rejectReason("missing to")))

	res, err := h.s.DeleteMessages(h.ctx, "t1", []string{"a", "rejected", "theirs", "nowhere"})
	if err != nil {
		t.Fatalf("DeleteMessages: %v", err)
	}
	slices.Sort(res.NotFound)
	slices.Sort(res.Unauthorized)
	want := store.DeleteResult{Removed: 2, NotFound: []string{"nowhere"}, Unauthorized: []string{"theirs"}}
	if diff := cmp.Diff(want, res, cmpOpts); diff != "" {
		t.Errorf("DeleteMessages result differs (-want +got):\n%s", diff)
	}
	if got := h.list(store.MessageFilter{TenantID: "t1"}); !slices.Equal(got, []string{"b"}) {
		t.Errorf("t1's messages after delete = %q, want [b]", got)
	}
	if got := h.list(store.MessageFilter{TenantID: "t2"}); !slices.Equal(got, []string{"theirs"}) {
		t.Errorf("t2's messages after t1's delete = %q, want [theirs] untouched", got)
	}
	// Events go with their message.
	if n, err := h.s.CountUnreported(h.ctx, "t1"); err != nil || n != 0 {
		t.Errorf("CountUnreported(t1) after deleting the rejected message = %d, %v; want 0", n, err)
	}
	if _, err := h.s.LastEvent(h.ctx, pks[0]); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LastEvent of a deleted message: err %v, want ErrNotFound", err)
	}
	// A deleted id can be submitted again as a new message.
	if pk := h.enqueueQueued(at(1), msg("t1", "a", "acc"))[0]; pk == pks[0] {
		t.Errorf("resubmitted deleted id kept its old PK %q, want a new message", pk)
	}
	if res, err := h.s.DeleteMessages(h.ctx, "t1", nil); err != nil || res.Removed != 0 {
		t.Errorf("DeleteMessages(no ids) = %+v, %v; want nothing removed", res, err)
	}
}

// reportAll marks every unreported event of tenantID reported at `when`.
func (h *harness) reportAll(tenantID string, when int) {
	h.t.Helper()
	events, err := h.s.UnreportedEvents(h.ctx, tenantID, 1000)
	if err != nil {
		h.t.Fatalf("UnreportedEvents(%s): %v", tenantID, err)
	}
	ids := make([]int64, len(events))
	for i, e := range events {
		ids[i] = e.ID
	}
	if err := h.s.MarkReported(h.ctx, ids, at(when)); err != nil {
		h.t.Fatalf("MarkReported: %v", err)
	}
}

func testMessagesCleanup(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.tenantWithAccount("t2")
	h.enqueueQueued(at(0), msg("t1", "old", "acc"), msg("t1", "recent", "acc"), msg("t1", "unreported", "acc"),
		msg("t1", "pending", "acc"), msg("t2", "other-old", "acc"))
	h.sendNow("old", at(10))
	h.sendNow("other-old", at(10))
	h.reportAll("t1", 100)
	h.reportAll("t2", 100)
	h.sendNow("recent", at(150))
	h.reportAll("t1", 500) // recent's latest reported time: +500s
	h.sendNow("unreported", at(160))
	// A rejected-at-enqueue message reported long ago is processed too.
	h.enqueue(at(20), msg("t1", "rejected", "acc", rejectReason("missing to")))
	events, err := h.s.UnreportedEvents(h.ctx, "t1", 10)
	if err != nil {
		t.Fatalf("UnreportedEvents: %v", err)
	}
	for _, e := range events {
		if e.MessageID == "rejected" {
			if err := h.s.MarkReported(h.ctx, []int64{e.ID}, at(30)); err != nil {
				t.Fatalf("MarkReported: %v", err)
			}
		}
	}

	n, err := h.s.CleanupMessages(h.ctx, "t1", at(200), 0)
	if err != nil {
		t.Fatalf("CleanupMessages(t1, cutoff +200s): %v", err)
	}
	if n != 2 {
		t.Errorf("CleanupMessages removed %d, want 2 (old, rejected)", n)
	}
	got := h.list(store.MessageFilter{TenantID: "t1"})
	slices.Sort(got)
	if want := []string{"pending", "recent", "unreported"}; !slices.Equal(got, want) {
		t.Errorf("t1's messages after cleanup = %q, want %q (unprocessed, reported after the cutoff, unreported event)", got, want)
	}
	if got := h.list(store.MessageFilter{TenantID: "t2"}); !slices.Equal(got, []string{"other-old"}) {
		t.Errorf("t2's messages after t1's cleanup = %q, want [other-old]", got)
	}
	// A message with an unreported event is never purged, however old the cutoff.
	if _, err := h.s.CleanupMessages(h.ctx, "t1", at(1_000_000), 0); err != nil {
		t.Fatalf("CleanupMessages: %v", err)
	}
	got = h.list(store.MessageFilter{TenantID: "t1"})
	slices.Sort(got)
	if want := []string{"pending", "unreported"}; !slices.Equal(got, want) {
		t.Errorf("t1's messages after a late cleanup = %q, want %q", got, want)
	}
}

func testMessagesCleanupAllLimit(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.tenantWithAccount("t2")
	h.enqueueQueued(at(0), msg("t1", "a", "acc"), msg("t1", "b", "acc"), msg("t2", "c", "acc"))
	for _, id := range []string{"a", "b", "c"} {
		h.sendNow(id, at(1))
	}
	h.reportAll("t1", 2)
	h.reportAll("t2", 2)

	n, err := h.s.CleanupMessages(h.ctx, "", at(10), 2)
	if err != nil || n != 2 {
		t.Fatalf("CleanupMessages(all, limit 2) = %d, %v; want 2", n, err)
	}
	if left := h.list(store.MessageFilter{}); len(left) != 1 {
		t.Errorf("messages left after a limited cleanup = %q, want one", left)
	}
	n, err = h.s.CleanupMessages(h.ctx, "", at(10), 2)
	if err != nil || n != 1 {
		t.Errorf("second CleanupMessages(all, limit 2) = %d, %v; want the last 1", n, err)
	}
	if left := h.list(store.MessageFilter{}); len(left) != 0 {
		t.Errorf("messages left after cleaning all tenants = %q, want none", left)
	}
}

func testMessagesCountUnprocessed(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.tenantWithAccount("t2")
	if n, err := h.s.CountUnprocessed(h.ctx); err != nil || n != 0 {
		t.Fatalf("CountUnprocessed on an empty store = %d, %v; want 0", n, err)
	}
	h.enqueueQueued(at(0),
		msg("t1", "ready", "acc"), msg("t1", "deferred", "acc", deferredUntil(at(999))),
		msg("t1", "claimed", "acc"), msg("t1", "sent", "acc"), msg("t2", "suspended", "acc"),
	)
	h.enqueue(at(0), msg("t1", "rejected", "acc", rejectReason("missing to")))
	h.sendNow("sent", at(1))
	req := claimReq("o", at(2))
	req.Limit = 2
	got := claimIDs(h.claim(req))
	slices.Sort(got)
	if !slices.Equal(got, []string{"claimed", "ready"}) {
		t.Fatalf("Claim = %q, want [claimed ready]", got)
	}
	if _, err := h.s.Suspend(h.ctx, "t2", nil); err != nil {
		t.Fatalf("Suspend: %v", err)
	}
	if n, err := h.s.CountUnprocessed(h.ctx); err != nil || n != 4 {
		t.Errorf("CountUnprocessed = %d, %v; want 4 (two claimed, deferred, suspended)", n, err)
	}
}

func testMessagesStats(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.account("t1", "acc2")
	h.tenantWithAccount("t2")
	h.enqueueQueued(at(0),
		msg("t1", "p1", "acc"), msg("t1", "p2", "acc", deferredUntil(at(50))), // due at +100s
		msg("t1", "d1", "acc", deferredUntil(at(500))),
		msg("t1", "s1", "acc"), msg("t1", "e1", "acc"),
		msg("t2", "p3", "acc"),
	)
	h.enqueue(at(0), msg("t1", "e2", "acc", rejectReason("missing to")))
	for _, c := range h.claim(claimReq("o", at(1))) {
		switch c.Message.ID {
		case "s1":
			h.finish(c, store.OutcomeSent, at(2), "250 OK")
		case "e1":
			h.finish(c, store.OutcomeError, at(2), "550 no")
		default:
			h.finish(c, store.OutcomeRelease, at(2), "")
		}
	}
	want := map[string]store.TenantStats{
		"t1": {TenantID: "t1", Accounts: 2, Pending: 2, Deferred: 1, Sent: 1, Error: 2},
		"t2": {TenantID: "t2", Accounts: 1, Pending: 1},
	}
	one, err := h.s.Stats(h.ctx, "t1", at(100))
	if err != nil {
		t.Fatalf("Stats(t1): %v", err)
	}
	if diff := cmp.Diff([]store.TenantStats{want["t1"]}, one); diff != "" {
		t.Errorf("Stats(t1) differs (-want +got):\n%s", diff)
	}
	all, err := h.s.Stats(h.ctx, "", at(100))
	if err != nil {
		t.Fatalf("Stats(all): %v", err)
	}
	for id, w := range want {
		i := slices.IndexFunc(all, func(s store.TenantStats) bool { return s.TenantID == id })
		if i < 0 {
			t.Errorf("Stats(all) = %+v, missing %s", all, id)
			continue
		}
		if diff := cmp.Diff(w, all[i]); diff != "" {
			t.Errorf("Stats(all) entry %s differs (-want +got):\n%s", id, diff)
		}
	}
	// At +600s d1 is due: it counts as pending.
	later, err := h.s.Stats(h.ctx, "t1", at(600))
	if err != nil || len(later) != 1 || later[0].Pending != 3 || later[0].Deferred != 0 {
		t.Errorf("Stats(t1) at +600s = %+v, %v; want pending 3, deferred 0", later, err)
	}
}

func testMessagesNextDue(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.tenantWithAccount("t2")
	if _, ok, err := h.s.NextDue(h.ctx, at(0)); err != nil || ok {
		t.Fatalf("NextDue on an empty store: ok %v, %v; want false", ok, err)
	}
	h.enqueueQueued(at(0),
		msg("t1", "d300", "acc", deferredUntil(at(300))),
		msg("t1", "d200", "acc", deferredUntil(at(200))),
		msg("t1", "held", "acc", batch("hold"), deferredUntil(at(50))),
		msg("t2", "suspended", "acc", deferredUntil(at(40))),
		msg("t1", "done", "acc", deferredUntil(at(30))),
	)
	if _, err := h.s.Suspend(h.ctx, "t1", ptr("hold")); err != nil {
		t.Fatalf("Suspend(t1, hold): %v", err)
	}
	if _, err := h.s.Suspend(h.ctx, "t2", nil); err != nil {
		t.Fatalf("Suspend(t2): %v", err)
	}
	h.sendNow("done", at(30)) // processed: no longer due ever

	check := func(now, want int) {
		t.Helper()
		got, ok, err := h.s.NextDue(h.ctx, at(now))
		if err != nil || !ok || !got.Equal(at(want)) {
			t.Errorf("NextDue(+%ds) = %s, %v, %v; want %s", now, fmtTime(&got), ok, err, fmtTime(ptr(at(want))))
		}
	}
	check(31, 200)
	check(250, 300)

	// A live lease becomes claimable at its expiry.
	h.enqueueQueued(at(100), msg("t1", "leased", "acc"))
	req := claimReq("o", at(100))
	req.Lease = 50 * time.Second
	if got := claimIDs(h.claim(req)); !slices.Equal(got, []string{"leased"}) {
		t.Fatalf("Claim at +100s = %q, want [leased]", got)
	}
	check(120, 150)

	if _, err := h.s.Activate(h.ctx, "t2", nil); err != nil {
		t.Fatalf("Activate(t2): %v", err)
	}
	check(35, 40)
}

// testMessagesRewriteAuthPayloads: every stored message carrying attachment
// auth (queued, sent, other tenants) gets its rewritten payload, across
// batches; a payload fn leaves unchanged is not written.
func testMessagesRewriteAuthPayloads(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.tenantWithAccount("t2")
	withAuth := func(token string) msgOption {
		return func(b *msgBuilder) {
			b.p.Attachments = []store.Attachment{{Filename: "a.txt", StoragePath: "https://files.example/a",
				Auth: &store.ClientAuth{Method: "bearer", Token: token}}}
		}
	}
	h.enqueueQueued(at(0), msg("t1", "q1", "acc", withAuth("tok-q1")), msg("t1", "plain", "acc"),
		msg("t1", "sent", "acc", withAuth("tok-sent")), msg("t2", "q2", "acc", withAuth("tok-q2")),
		msg("t1", "same", "acc", withAuth("keep")))
	h.sendNow("sent", at(1))

	n, err := h.s.RewriteAuthPayloads(h.ctx, 2, func(raw json.RawMessage) (json.RawMessage, bool, error) {
		p, _, err := store.RewriteAttachmentAuth(raw, func(a *store.ClientAuth) error {
			if a.Token != "keep" {
				a.Token = "new-" + a.Token
			}
			return nil
		})
		return p, err == nil && !bytes.Contains(raw, []byte(`"keep"`)), err
	})
	if err != nil || n != 3 {
		t.Fatalf("RewriteAuthPayloads = %d, %v; want 3", n, err)
	}
	for _, c := range []struct{ tenant, id, token string }{
		{"t1", "q1", "new-tok-q1"}, {"t1", "sent", "new-tok-sent"}, {"t2", "q2", "new-tok-q2"}, {"t1", "same", "keep"},
	} {
		p, err := store.DecodePayload(h.record(c.tenant, c.id).Payload)
		if err != nil || len(p.Attachments) != 1 || p.Attachments[0].Auth == nil || p.Attachments[0].Auth.Token != c.token {
			t.Errorf("message %s/%s: payload %+v, %v; want token %q", c.tenant, c.id, p.Attachments, err, c.token)
		} else if p.Subject != "subject of "+c.id {
			t.Errorf("message %s/%s: subject %q lost in the rewrite", c.tenant, c.id, p.Subject)
		}
	}
	if p, err := store.DecodePayload(h.record("t1", "plain").Payload); err != nil || p.Subject != "subject of plain" {
		t.Errorf("message without auth: %+v, %v", p, err)
	}
}
