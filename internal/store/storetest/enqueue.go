package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/mailproxy/mailproxy/internal/store"
)

// enqueueCases cover EnqueueBatch and the upsert rules (lifecycle.md §3, api.md §3.3–3.4).
func enqueueCases() []testCase {
	return []testCase{
		{"NewItemsStoredWithPK", testEnqueueNewItems},
		{"RejectReasonStoredAsError", testEnqueueRejectReason},
		{"MissingAccountRejected", testEnqueueMissingAccount},
		{"RejectedWithoutTenantOrIDNotStored", testEnqueueRejectedNotStored},
		{"DuplicateInBatchLaterWins", testEnqueueDuplicateInBatch},
		{"ResubmitUnprocessedReplaces", testEnqueueResubmitUnprocessed},
		{"ResubmitProcessedIsAlreadySent", testEnqueueResubmitProcessed},
		{"ResubmitClaimedIsSendingInProgress", testEnqueueResubmitClaimed},
		{"ResubmitRejectedIsQueued", testEnqueueResubmitRejected},
		{"RejectingQueuedIDStoresError", testEnqueueRejectQueued},
		{"SameIDTwoTenants", testEnqueueSameIDTwoTenants},
		{"ConcurrentBatchesAllDurable", testEnqueueConcurrent},
		{"EmptyBatch", testEnqueueEmpty},
	}
}

func testEnqueueNewItems(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	givenPK := uuid.NewString()
	items := []store.NewMessage{
		msg("t1", "m1", "acc", withPK(givenPK), priority(store.PriorityHigh), batch("b1")),
		msg("t1", "m2", "acc", deferredUntil(at(500))),
	}
	pks := h.enqueueQueued(at(10), items...)
	if pks[0] != givenPK {
		t.Errorf("item with NewMessage.PK %q: result PK %q, want the given PK", givenPK, pks[0])
	}
	if pks[1] == pks[0] {
		t.Errorf("generated PK %q equals the other item's PK", pks[1])
	}

	for i, item := range items {
		r := h.record("t1", item.ID)
		want := store.Message{
			PK:            pks[i],
			TenantID:      "t1",
			ID:            item.ID,
			AccountID:     "acc",
			Priority:      item.Priority,
			Payload:       item.Payload,
			BatchCode:     item.BatchCode,
			DeferredUntil: item.DeferredUntil,
			CreatedAt:     at(10),
		}
		got := r.Message
		got.UpdatedAt = want.UpdatedAt // not specified beyond being set
		if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
			t.Errorf("stored message %q differs (-want +got):\n%s", item.ID, diff)
		}
		if len(r.History) != 0 || r.LatestEvent != nil || r.Final != nil {
			t.Errorf("new message %q: history %v, latest %v, final %v; want no events", item.ID, r.History, r.LatestEvent, r.Final)
		}
		if r.TenantName == nil || *r.TenantName != "t1 name" {
			t.Errorf("message %q: TenantName %v, want \"t1 name\"", item.ID, r.TenantName)
		}
	}
	if n, err := h.s.CountUnprocessed(h.ctx); err != nil || n != 2 {
		t.Errorf("CountUnprocessed = %d, %v; want 2", n, err)
	}
}

// checkRejectedStored asserts a message stored as rejected at enqueue at `when`.
func checkRejectedStored(t *testing.T, h *harness, tenantID, id, reason string, when int) {
	t.Helper()
	r := h.record(tenantID, id)
	if !r.RejectedAtEnqueue {
		t.Errorf("message %q: RejectedAtEnqueue = false, want true", id)
	}
	if !timeEq(r.FinalAt, ptr(at(when))) {
		t.Errorf("message %q: FinalAt %s, want %s (the enqueue time)", id, fmtTime(r.FinalAt), fmtTime(ptr(at(when))))
	}
	if len(r.History) != 1 {
		t.Fatalf("message %q: history %v, want exactly one error event", id, eventTypes(r.History))
	}
	ev := r.History[0]
	if ev.Type != store.EventError || ev.Description != reason || !ev.At.Equal(at(when)) {
		t.Errorf("message %q: event %s %q at %s, want error %q at %s",
			id, ev.Type, ev.Description, fmtTime(&ev.At), reason, fmtTime(ptr(at(when))))
	}
	if ev.MessagePK != r.PK || ev.MessageID != id || ev.TenantID != tenantID {
		t.Errorf("message %q: event names pk %q id %q tenant %q, want %q %q %q",
			id, ev.MessagePK, ev.MessageID, ev.TenantID, r.PK, id, tenantID)
	}
	if r.LatestError == nil || r.LatestError.ID != ev.ID {
		t.Errorf("message %q: LatestError %v, want the rejection event", id, r.LatestError)
	}
	if r.Final == nil || r.Final.ID != ev.ID {
		t.Errorf("message %q: Final %v, want the rejection event", id, r.Final)
	}
}

func testEnqueueRejectReason(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	res := h.enqueue(at(20), msg("t1", "bad", "acc", rejectReason("missing subject")), msg("t1", "good", "acc"))
	if res[0].Status != store.Rejected || res[0].Reason != "missing subject" {
		t.Errorf("item with RejectReason: %s %q, want Rejected \"missing subject\"", statusName(res[0].Status), res[0].Reason)
	}
	if res[1].Status != store.Queued {
		t.Errorf("valid item after a rejected one: %s, want Queued", statusName(res[1].Status))
	}
	checkRejectedStored(t, h, "t1", "bad", "missing subject", 20)

	if n, err := h.s.CountUnprocessed(h.ctx); err != nil || n != 1 {
		t.Errorf("CountUnprocessed = %d, %v; want 1 (the rejected item is processed)", n, err)
	}
	if ids := claimIDs(h.claim(claimReq("o", at(30)))); !slices.Equal(ids, []string{"good"}) {
		t.Errorf("Claim = %q, want only [good]: a rejected item is never queued", ids)
	}
	events, err := h.s.UnreportedEvents(h.ctx, "t1", 10)
	if err != nil {
		t.Fatalf("UnreportedEvents: %v", err)
	}
	if len(events) != 1 || events[0].MessageID != "bad" || events[0].Type != store.EventError {
		t.Errorf("UnreportedEvents = %v, want the one rejection error of \"bad\"", events)
	}
}

func testEnqueueMissingAccount(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	res := h.enqueue(at(5), msg("t1", "m1", "nope"))
	if res[0].Status != store.Rejected || res[0].Reason != "account not found for tenant" {
		t.Fatalf("item naming a missing account: %s %q, want Rejected \"account not found for tenant\"",
			statusName(res[0].Status), res[0].Reason)
	}
	checkRejectedStored(t, h, "t1", "m1", "account not found for tenant", 5)

	// An account of another tenant does not count.
	h.tenant("t2")
	h.account("t2", "only-t2")
	res = h.enqueue(at(6), msg("t1", "m2", "only-t2"))
	if res[0].Status != store.Rejected || res[0].Reason != "account not found for tenant" {
		t.Errorf("item naming another tenant's account: %s %q, want Rejected \"account not found for tenant\"",
			statusName(res[0].Status), res[0].Reason)
	}
}

func testEnqueueRejectedNotStored(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	res := h.enqueue(at(5),
		msg("ghost", "g1", "acc", rejectReason("missing from")), // tenant does not exist
		msg("ghost", "g2", "acc"),                               // tenant (and so account) does not exist
		msg("t1", "", "acc", rejectReason("missing id")),        // no id to store it under
	)
	wantReasons := []string{"missing from", "account not found for tenant", "missing id"}
	for i, r := range res {
		if r.Status != store.Rejected || r.Reason != wantReasons[i] {
			t.Errorf("item %d: %s %q, want Rejected %q", i, statusName(r.Status), r.Reason, wantReasons[i])
		}
	}
	if recs := h.records(""); len(recs) != 0 {
		t.Errorf("ListMessages(all) = %q, want nothing stored for an unknown tenant or an empty id", recordIDs(recs))
	}
	tenants, err := h.s.TenantsWithUnreported(h.ctx)
	if err != nil || len(tenants) != 0 {
		t.Errorf("TenantsWithUnreported = %q, %v; want none", tenants, err)
	}
}

func testEnqueueDuplicateInBatch(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	pks := h.enqueueQueued(at(5),
		msg("t1", "dup", "acc", subject("first")),
		msg("t1", "dup", "acc", subject("second"), priority(store.PriorityLow)),
	)
	if pks[0] != pks[1] {
		t.Errorf("duplicate id in one batch got PKs %q and %q, want one message", pks[0], pks[1])
	}
	recs := h.records("t1")
	if len(recs) != 1 {
		t.Fatalf("ListMessages = %q, want one message for a duplicated id", recordIDs(recs))
	}
	if s := payloadSubject(t, recs[0].Payload); s != "second" || recs[0].Priority != store.PriorityLow {
		t.Errorf("stored subject %q priority %d, want the later item: \"second\" priority %d", s, recs[0].Priority, store.PriorityLow)
	}
}

func testEnqueueResubmitUnprocessed(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.account("t1", "acc2")
	first := h.enqueueQueued(at(0), msg("t1", "m1", "acc", subject("old")))[0]
	h.enqueueQueued(at(1), msg("t1", "m2", "acc"))

	// Give m1 a deferral (retry_count 3, one event) so the reset is visible.
	c := h.claimFirst("o", at(2), "m1")
	if err := h.s.RecordOutcome(h.ctx, store.Outcome{
		MessagePK: c.Message.PK, Owner: "o", Attempt: c.Message.Attempt, Kind: store.OutcomeDeferred,
		At: at(3), Description: "451 try later", DeferredUntil: ptr(at(1000)), RetryCount: 3,
	}); err != nil {
		t.Fatalf("RecordOutcome(deferred): %v", err)
	}

	res := h.enqueue(at(10), msg("t1", "m1", "acc2", subject("new"), batch("b9"), priority(store.PriorityMedium)))
	if res[0].Status != store.Queued || res[0].PK != first {
		t.Fatalf("resubmitting an unprocessed id: %s PK %q, want Queued with the original PK %q", statusName(res[0].Status), res[0].PK, first)
	}
	r := h.record("t1", "m1")
	if r.PK != first || !r.CreatedAt.Equal(at(0)) {
		t.Errorf("replaced message: PK %q created_at %s, want PK %q and created_at kept at %s",
			r.PK, fmtTime(&r.CreatedAt), first, fmtTime(ptr(at(0))))
	}
	if r.AccountID != "acc2" || r.BatchCode == nil || *r.BatchCode != "b9" || payloadSubject(t, r.Payload) != "new" {
		t.Errorf("replaced message: account %q batch %v subject %q, want acc2, b9, \"new\"",
			r.AccountID, r.BatchCode, payloadSubject(t, r.Payload))
	}
	if r.DeferredUntil != nil || r.RetryCount != 0 || r.FinalAt != nil {
		t.Errorf("replaced message: deferred_until %s retry_count %d final %s, want nil, 0, nil",
			fmtTime(r.DeferredUntil), r.RetryCount, fmtTime(r.FinalAt))
	}
	if got := eventTypes(r.History); !slices.Equal(got, []store.EventType{store.EventDeferred}) {
		t.Errorf("replaced message history %v, want the past deferred event kept", got)
	}
	// created_at kept: m1 keeps its FIFO place ahead of m2.
	if got := h.claimOrder(at(11), 5); !slices.Equal(got, []string{"m1", "m2"}) {
		t.Errorf("claim after resubmission = %q, want [m1 m2] (m1 keeps its FIFO place)", got)
	}
}

func testEnqueueResubmitProcessed(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.enqueueQueued(at(0), msg("t1", "sent", "acc", subject("orig")), msg("t1", "failed", "acc", subject("orig")))
	claims := h.claim(claimReq("o", at(1)))
	if len(claims) != 2 {
		t.Fatalf("Claim = %q, want both messages", claimIDs(claims))
	}
	for _, c := range claims {
		kind := store.OutcomeSent
		if c.Message.ID == "failed" {
			kind = store.OutcomeError
		}
		h.finish(c, kind, at(2), "done")
	}

	for _, id := range []string{"sent", "failed"} {
		for _, item := range []store.NewMessage{
			msg("t1", id, "acc", subject("changed")),
			msg("t1", id, "acc", subject("changed"), rejectReason("missing to")),
		} {
			res := h.enqueue(at(10), item)
			want := store.AlreadySent
			if item.RejectReason != "" {
				want = store.Rejected
			}
			if res[0].Status != want {
				t.Errorf("resubmitting processed %q (reject reason %q): %s, want %s",
					id, item.RejectReason, statusName(res[0].Status), statusName(want))
			}
		}
		r := h.record("t1", id)
		if payloadSubject(t, r.Payload) != "orig" || !timeEq(r.FinalAt, ptr(at(2))) || r.RejectedAtEnqueue || len(r.History) != 1 {
			t.Errorf("processed %q after resubmissions: subject %q final %s rejected %v history %v; want it unchanged",
				id, payloadSubject(t, r.Payload), fmtTime(r.FinalAt), r.RejectedAtEnqueue, eventTypes(r.History))
		}
	}
}

func testEnqueueResubmitClaimed(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.enqueueQueued(at(0), msg("t1", "m1", "acc", subject("orig")))
	c := h.claimOne("o", at(0), "m1") // lease until at(60)

	res := h.enqueue(at(30), msg("t1", "m1", "acc", subject("changed")))
	if res[0].Status != store.SendingInProgress {
		t.Errorf("resubmitting an id under a live claim: %s, want SendingInProgress", statusName(res[0].Status))
	}
	r := h.record("t1", "m1")
	if payloadSubject(t, r.Payload) != "orig" || r.LeaseOwner != "o" {
		t.Errorf("claimed message after resubmission: subject %q owner %q, want unchanged (\"orig\", \"o\")",
			payloadSubject(t, r.Payload), r.LeaseOwner)
	}
	// The claim still holds: its outcome applies.
	if err := h.s.RecordOutcome(h.ctx, store.Outcome{
		MessagePK: c.Message.PK, Owner: "o", Attempt: c.Message.Attempt, Kind: store.OutcomeRelease, At: at(31),
	}); err != nil {
		t.Fatalf("RecordOutcome(release) after a SendingInProgress resubmission: %v", err)
	}

	// Once the lease has expired the id is no longer being sent: it is replaced.
	h.claimOne("o", at(40), "m1") // lease until at(100)
	res = h.enqueue(at(200), msg("t1", "m1", "acc", subject("after expiry")))
	if res[0].Status != store.Queued {
		t.Errorf("resubmitting after the lease expired: %s, want Queued", statusName(res[0].Status))
	}
	if s := payloadSubject(t, h.record("t1", "m1").Payload); s != "after expiry" {
		t.Errorf("subject after resubmission over an expired lease %q, want \"after expiry\"", s)
	}
}

func testEnqueueResubmitRejected(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	first := h.enqueue(at(0), msg("t1", "m1", "acc", rejectReason("missing subject")))
	if first[0].Status != store.Rejected {
		t.Fatalf("first submission: %s, want Rejected", statusName(first[0].Status))
	}
	pk := h.record("t1", "m1").PK

	res := h.enqueue(at(10), msg("t1", "m1", "acc", subject("fixed")))
	if res[0].Status != store.Queued || res[0].PK != pk {
		t.Fatalf("resubmitting a rejected id: %s PK %q, want Queued with PK %q", statusName(res[0].Status), res[0].PK, pk)
	}
	r := h.record("t1", "m1")
	if r.RejectedAtEnqueue || r.FinalAt != nil || payloadSubject(t, r.Payload) != "fixed" {
		t.Errorf("after resubmission: rejected %v final %s subject %q, want false, nil, \"fixed\"",
			r.RejectedAtEnqueue, fmtTime(r.FinalAt), payloadSubject(t, r.Payload))
	}
	if got := eventTypes(r.History); !slices.Equal(got, []store.EventType{store.EventError}) {
		t.Errorf("history after resubmission %v, want the rejection event kept", got)
	}
	h.claimOne("o", at(11), "m1")
}

func testEnqueueRejectQueued(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.enqueueQueued(at(0), msg("t1", "m1", "acc"))
	res := h.enqueue(at(5), msg("t1", "m1", "acc", rejectReason("missing to")))
	if res[0].Status != store.Rejected || res[0].Reason != "missing to" {
		t.Fatalf("rejected resubmission of a queued id: %s %q, want Rejected \"missing to\"", statusName(res[0].Status), res[0].Reason)
	}
	checkRejectedStored(t, h, "t1", "m1", "missing to", 5)
	if got := claimIDs(h.claim(claimReq("o", at(6)))); len(got) != 0 {
		t.Errorf("Claim = %q after the id was rejected, want none", got)
	}
}

func testEnqueueSameIDTwoTenants(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.tenantWithAccount("t2")
	pks := h.enqueueQueued(at(0), msg("t1", "same", "acc", subject("one")), msg("t2", "same", "acc", subject("two")))
	if pks[0] == pks[1] {
		t.Fatalf("same id under two tenants got one PK %q, want two messages", pks[0])
	}
	if s := payloadSubject(t, h.record("t1", "same").Payload); s != "one" {
		t.Errorf("t1's message subject %q, want \"one\"", s)
	}
	if s := payloadSubject(t, h.record("t2", "same").Payload); s != "two" {
		t.Errorf("t2's message subject %q, want \"two\"", s)
	}
}

func testEnqueueConcurrent(t *testing.T, h *harness) {
	const writers, perBatch = 16, 25
	h.tenantWithAccount("t1")
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			defer recoverTo(t)
			items := make([]store.NewMessage, perBatch)
			for i := range items {
				items[i] = msg("t1", fmt.Sprintf("w%02d-%02d", w, i), "acc")
			}
			res, err := h.s.EnqueueBatch(h.ctx, items, at(w))
			if err != nil {
				t.Errorf("writer %d: EnqueueBatch: %v", w, err)
				return
			}
			for i, r := range res {
				if r.Status != store.Queued {
					t.Errorf("writer %d item %d: %s %q, want Queued", w, i, statusName(r.Status), r.Reason)
				}
			}
		})
	}
	wg.Wait()
	if n, err := h.s.CountUnprocessed(h.ctx); err != nil || n != writers*perBatch {
		t.Errorf("CountUnprocessed after concurrent batches = %d, %v; want %d", n, err, writers*perBatch)
	}
	if recs := h.records("t1"); len(recs) != writers*perBatch {
		t.Errorf("ListMessages after concurrent batches: %d messages, want %d", len(recs), writers*perBatch)
	}
}

// recoverTo turns a panic in a test goroutine into a test error.
func recoverTo(t *testing.T) {
	if r := recover(); r != nil {
		t.Errorf("panic in test goroutine: %v", r)
	}
}

func testEnqueueEmpty(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	res, err := h.s.EnqueueBatch(h.ctx, nil, at(0))
	if err != nil || len(res) != 0 {
		t.Errorf("EnqueueBatch(no items) = %v, %v; want no results and no error", res, err)
	}
}
