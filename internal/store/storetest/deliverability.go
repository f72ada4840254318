package storetest

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/mailproxy/mailproxy/internal/store"
)

func deliverabilityCases() []testCase {
	return []testCase{
		{"SuppressionsAddListRemove", testSuppressions},
		{"SuppressionsGoWithTheirTenant", testSuppressionsTenantDelete},
		{"FindMessagesByPKAndClientID", testFindMessages},
		{"AddBounceOnceAndReported", testAddBounce},
		{"LeaseOneHolder", testLease},
	}
}

func testSuppressions(t *testing.T, h *harness) {
	h.tenant("t1")
	h.tenant("t2")
	added, err := h.s.AddSuppressions(h.ctx, []store.Suppression{
		{TenantID: "t1", Address: "Bob@Example.COM", Reason: "5.1.1 user unknown", Source: store.SuppressedByBounce, CreatedAt: at(1)},
		{TenantID: "t1", Address: "alice@example.com", Source: store.SuppressedManually, CreatedAt: at(2)},
		{TenantID: "t2", Address: "bob@example.com", Source: store.SuppressedByComplaint, CreatedAt: at(3)},
	})
	if err != nil || added != 3 {
		t.Fatalf("AddSuppressions = %d, %v; want 3", added, err)
	}
	// Adding an address again (any case) keeps the first entry.
	added, err = h.s.AddSuppressions(h.ctx, []store.Suppression{{TenantID: "t1", Address: "BOB@example.com", Reason: "again", Source: store.SuppressedManually, CreatedAt: at(9)}})
	if err != nil || added != 0 {
		t.Errorf("re-adding = %d, %v; want 0", added, err)
	}
	list, err := h.s.ListSuppressions(h.ctx, "t1")
	if err != nil || len(list) != 2 {
		t.Fatalf("ListSuppressions = %+v, %v", list, err)
	}
	if list[0].Address != "alice@example.com" || list[1].Address != "bob@example.com" || list[1].Reason != "5.1.1 user unknown" ||
		list[1].Source != store.SuppressedByBounce || !list[1].CreatedAt.Equal(at(1)) || list[0].TenantID != "t1" {
		t.Errorf("ListSuppressions = %+v", list)
	}
	got, err := h.s.SuppressedAmong(h.ctx, "t1", []string{"ALICE@example.com", "carol@example.com", "bob@EXAMPLE.com"})
	if err != nil || len(got) != 2 || !got["alice@example.com"] || !got["bob@example.com"] {
		t.Errorf("SuppressedAmong = %v, %v", got, err)
	}
	if got, _ := h.s.SuppressedAmong(h.ctx, "t1", nil); len(got) != 0 {
		t.Errorf("SuppressedAmong(nil) = %v", got)
	}
	n, err := h.s.RemoveSuppression(h.ctx, "t1", "Bob@Example.com")
	if err != nil || n != 1 {
		t.Errorf("RemoveSuppression = %d, %v", n, err)
	}
	if n, _ := h.s.RemoveSuppression(h.ctx, "t1", "bob@example.com"); n != 0 {
		t.Errorf("second RemoveSuppression = %d", n)
	}
	if got, _ := h.s.SuppressedAmong(h.ctx, "t2", []string{"bob@example.com"}); !got["bob@example.com"] {
		t.Error("removing t1's entry touched t2's")
	}
	if _, err := h.s.AddSuppressions(h.ctx, []store.Suppression{{TenantID: "ghost", Address: "a@b.c", Source: store.SuppressedManually}}); !errors.Is(err, store.ErrTenantNotFound) {
		t.Errorf("unknown tenant: %v, want ErrTenantNotFound", err)
	}
}

func testSuppressionsTenantDelete(t *testing.T, h *harness) {
	h.tenant("t1")
	if _, err := h.s.AddSuppressions(h.ctx, []store.Suppression{{TenantID: "t1", Address: "a@example.com", Source: store.SuppressedManually}}); err != nil {
		t.Fatal(err)
	}
	if err := h.s.DeleteTenant(h.ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	h.tenant("t1")
	if list, err := h.s.ListSuppressions(h.ctx, "t1"); err != nil || len(list) != 0 {
		t.Errorf("after re-creating the tenant: %+v, %v", list, err)
	}
}

func testFindMessages(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.tenantWithAccount("t2")
	pk1 := h.enqueueQueued(at(0), msg("t1", "order-1", "acc"))[0]
	pk2 := h.enqueueQueued(at(5), msg("t2", "order-1", "acc"))[0]
	h.enqueueQueued(at(6), msg("t1", "other", "acc"))
	got, err := h.s.FindMessages(h.ctx, store.MessageLookup{ClientID: "order-1"})
	if err != nil || len(got) != 2 || got[0].PK != pk2 || got[1].PK != pk1 {
		t.Fatalf("by client id = %+v, %v; want t2's then t1's", got, err)
	}
	got, err = h.s.FindMessages(h.ctx, store.MessageLookup{PK: pk1, ClientID: "order-1"})
	if err != nil || len(got) != 2 || got[0].PK != pk1 {
		t.Errorf("by pk and client id = %+v, %v; want pk first, no duplicate", got, err)
	}
	if got, err := h.s.FindMessages(h.ctx, store.MessageLookup{PK: "nope"}); err != nil || len(got) != 0 {
		t.Errorf("unknown pk = %+v, %v", got, err)
	}
}

func testAddBounce(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	pk := h.enqueueQueued(at(0), msg("t1", "m1", "acc"))[0]
	h.sendNow("m1", at(1))
	meta := json.RawMessage(`{"bounce_type":"hard","bounce_code":"5.1.1","bounce_reason":"user unknown"}`)
	ev := store.Event{MessagePK: pk, At: at(60), Description: "5.1.1 user unknown", Metadata: meta}
	for i, want := range []bool{true, false} {
		added, err := h.s.AddBounce(h.ctx, ev)
		if err != nil || added != want {
			t.Fatalf("AddBounce #%d = %v, %v; want %v", i+1, added, err, want)
		}
	}
	other := ev
	other.Metadata = json.RawMessage(`{"bounce_type":"soft","bounce_code":"4.2.2","bounce_reason":"mailbox full"}`)
	if added, err := h.s.AddBounce(h.ctx, other); err != nil || !added {
		t.Errorf("a different bounce = %v, %v", added, err)
	}
	if _, err := h.s.AddBounce(h.ctx, store.Event{MessagePK: "nope", At: at(60)}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown message: %v", err)
	}
	r := h.record("t1", "m1")
	if r.Bounce == nil || r.Bounce.Type != store.EventBounce || string(r.Bounce.Metadata) != string(other.Metadata) {
		t.Errorf("listed bounce = %+v", r.Bounce)
	}
	if r.Final == nil || r.Final.Type != store.EventSent {
		t.Errorf("final event %+v, want the sent one", r.Final)
	}
	evs, err := h.s.UnreportedEvents(h.ctx, "t1", 10)
	if err != nil {
		t.Fatal(err)
	}
	bounces := 0
	for _, e := range evs {
		if e.Type == store.EventBounce {
			bounces++
			if e.MessageID != "m1" || e.TenantID != "t1" {
				t.Errorf("unreported bounce %+v", e)
			}
		}
	}
	if bounces != 2 {
		t.Errorf("%d unreported bounces, want 2", bounces)
	}
}

func testLease(t *testing.T, h *harness) {
	ok := func(owner string, now, until int) bool {
		t.Helper()
		got, err := h.s.AcquireLease(h.ctx, "bounce-poller", owner, at(now), at(until))
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if !ok("a", 0, 60) {
		t.Fatal("a free lease was refused")
	}
	if ok("b", 30, 90) {
		t.Error("b took a's live lease")
	}
	if !ok("a", 50, 110) {
		t.Error("a could not renew")
	}
	if !ok("b", 111, 170) {
		t.Error("b could not take the expired lease")
	}
	if ok("a", 120, 180) {
		t.Error("a took b's live lease back")
	}
	if !ok("b", 130, 130) { // b gives it up
		t.Error("b could not give its lease up")
	}
	if !ok("a", 130, 190) {
		t.Error("a could not take a lease given up at this instant")
	}
	if got, err := h.s.AcquireLease(h.ctx, "other", "a", at(120), at(180)); err != nil || !got {
		t.Errorf("a second name = %v, %v", got, err)
	}
}
