package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
)

// claimCases cover Claim, leases, RenewLease and ReleaseClaims (delivery.md §1–2).
func claimCases() []testCase {
	return []testCase{
		{"PriorityThenFIFO", testClaimPriorityThenFIFO},
		{"SameInstantInInsertionOrder", testClaimInsertionOrder},
		{"DeferredNotClaimedBeforeDue", testClaimDeferred},
		{"MillisecondPrecision", testClaimMillisecondPrecision},
		{"SetsLeaseAttemptAndAccount", testClaimSetsLease},
		{"MissingAccountClaimedWithNilAccount", testClaimMissingAccount},
		{"LimitTotal", testClaimLimit},
		{"PerAccountCapAndBatchSize", testClaimPerAccountCap},
		{"SkipAccounts", testClaimSkipAccounts},
		{"BehindCappedBacklog", testClaimBehindCappedBacklog},
		{"TenantFilter", testClaimTenantFilter},
		{"LeaseExclusiveBetweenOwners", testClaimLeaseExclusive},
		{"ExpiredLeaseReclaimedAndStaleOutcomeLost", testClaimExpiredLease},
		{"SameOwnerStaleAttemptLost", testClaimSameOwnerStaleAttempt},
		{"ConcurrentClaimsDisjoint", testClaimConcurrent},
		{"RenewLease", testClaimRenewLease},
		{"ReleaseClaims", testClaimReleaseClaims},
	}
}

// claimOrder claims one message at a time and returns the ids in claim order.
func (h *harness) claimOrder(now time.Time, max int) []string {
	h.t.Helper()
	var ids []string
	for range max {
		req := claimReq("o", now)
		req.Limit = 1
		claims := h.claim(req)
		if len(claims) == 0 {
			break
		}
		if len(claims) > 1 {
			h.t.Fatalf("Claim with Limit 1 returned %d claims", len(claims))
		}
		ids = append(ids, claims[0].Message.ID)
	}
	return ids
}

func testClaimPriorityThenFIFO(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.enqueueQueued(at(0), msg("t1", "low1", "acc", priority(store.PriorityLow)))
	h.enqueueQueued(at(1), msg("t1", "med1", "acc", priority(store.PriorityMedium)))
	h.enqueueQueued(at(2), msg("t1", "imm1", "acc", priority(store.PriorityImmediate)))
	h.enqueueQueued(at(3), msg("t1", "med2", "acc", priority(store.PriorityMedium)))
	h.enqueueQueued(at(4), msg("t1", "high1", "acc", priority(store.PriorityHigh)))
	h.enqueueQueued(at(5), msg("t1", "imm2", "acc", priority(store.PriorityImmediate)))
	want := []string{"imm1", "imm2", "high1", "med1", "med2", "low1"}
	if got := h.claimOrder(at(10), 10); !slices.Equal(got, want) {
		t.Errorf("claim order = %q, want %q (priority, then created_at)", got, want)
	}
}

func testClaimInsertionOrder(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	// Same priority and created_at: the batch's order decides, not the id.
	h.enqueueQueued(at(0), msg("t1", "zz", "acc"), msg("t1", "aa", "acc"), msg("t1", "mm", "acc"))
	want := []string{"zz", "aa", "mm"}
	if got := h.claimOrder(at(1), 10); !slices.Equal(got, want) {
		t.Errorf("claim order within one batch = %q, want insertion order %q", got, want)
	}
}

func testClaimDeferred(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.enqueueQueued(at(0),
		msg("t1", "later", "acc", deferredUntil(at(100))),
		msg("t1", "past", "acc", deferredUntil(at(-50))),
	)
	first := h.claim(claimReq("o", at(10)))
	if got := claimIDs(first); !slices.Equal(got, []string{"past"}) {
		t.Fatalf("Claim at +10s = %q, want [past]: a future deferred_ts is not due", got)
	}
	h.finish(first[0], store.OutcomeSent, at(11), "250 OK")
	if r := h.record("t1", "later"); !timeEq(r.DeferredUntil, ptr(at(100))) {
		t.Errorf("listed deferred_until before the attempt %s, want %s", fmtTime(r.DeferredUntil), fmtTime(ptr(at(100))))
	}
	if got := h.claim(claimReq("o", at(99))); len(got) != 0 {
		t.Errorf("Claim 1s before deferred_ts = %q, want none", claimIDs(got))
	}
	// deferred_ts not in the future (equal to now) is due.
	c := h.claimOne("o", at(100), "later")
	if c.Message.DeferredUntil != nil {
		t.Errorf("claimed message DeferredUntil %s, want nil (claiming clears it)", fmtTime(c.Message.DeferredUntil))
	}
	if r := h.record("t1", "later"); r.DeferredUntil != nil {
		t.Errorf("listed deferred_until after the claim %s, want nil", fmtTime(r.DeferredUntil))
	}
}

func testClaimSetsLease(t *testing.T, h *harness) {
	h.tenant("t1")
	h.account("t1", "acc", func(a *store.Account) {
		a.DKIMDomain, a.DKIMSelector, a.DKIMPrivateKey = "example.com", "s1", "key-acc"
		a.HostByTenant = true
	})
	pk := h.enqueueQueued(at(0), msg("t1", "m1", "acc", batch("b1")))[0]
	req := claimReq("inst-a", at(5))
	req.Lease = 90 * time.Second
	claims := h.claim(req)
	if len(claims) != 1 {
		t.Fatalf("Claim = %q, want [m1]", claimIDs(claims))
	}
	m := claims[0].Message
	if m.PK != pk || m.TenantID != "t1" || m.AccountID != "acc" || m.BatchCode == nil || *m.BatchCode != "b1" {
		t.Errorf("claimed message pk %q tenant %q account %q batch %v, want %q t1 acc b1", m.PK, m.TenantID, m.AccountID, m.BatchCode, pk)
	}
	if payloadSubject(t, m.Payload) != "subject of m1" {
		t.Errorf("claimed message payload subject %q, want \"subject of m1\"", payloadSubject(t, m.Payload))
	}
	if m.LeaseOwner != "inst-a" || !timeEq(m.LeaseUntil, ptr(at(95))) || m.Attempt != 1 {
		t.Errorf("claimed message owner %q lease %s attempt %d, want inst-a, %s, 1",
			m.LeaseOwner, fmtTime(m.LeaseUntil), m.Attempt, fmtTime(ptr(at(95))))
	}
	a := claims[0].Account
	if a == nil {
		t.Fatal("Claim.Account is nil for an existing account")
	}
	if a.TenantID != "t1" || a.ID != "acc" || a.Host != "127.0.0.1" || a.Port != 2525 || a.Password != "secret-acc" {
		t.Errorf("Claim.Account = %+v, want t1/acc at 127.0.0.1:2525 with its password", *a)
	}
	if !a.HostByTenant {
		t.Error("Claim.Account HostByTenant = false, want the stored true")
	}
	if a.DKIMDomain != "example.com" || a.DKIMSelector != "s1" || a.DKIMPrivateKey != "key-acc" {
		t.Errorf("Claim.Account DKIM = %q %q %q, want the stored ones", a.DKIMDomain, a.DKIMSelector, a.DKIMPrivateKey)
	}
	r := h.record("t1", "m1")
	if r.LeaseOwner != "inst-a" || !timeEq(r.LeaseUntil, ptr(at(95))) || r.Attempt != 1 {
		t.Errorf("listed message owner %q lease %s attempt %d, want the claim's", r.LeaseOwner, fmtTime(r.LeaseUntil), r.Attempt)
	}
}

func testClaimMissingAccount(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.enqueueQueued(at(0), msg("t1", "m1", "acc"))
	if err := h.s.DeleteAccount(h.ctx, "t1", "acc"); err != nil {
		t.Fatalf("DeleteAccount: %v", err)
	}
	c := h.claimOne("o", at(1), "m1")
	if c.Account != nil {
		t.Errorf("Claim.Account = %+v after the account was deleted, want nil", *c.Account)
	}
}

func testClaimLimit(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.account("t1", "acc2")
	h.enqueueQueued(at(0),
		msg("t1", "a-low", "acc", priority(store.PriorityLow)),
		msg("t1", "a-imm", "acc", priority(store.PriorityImmediate)),
		msg("t1", "b-high", "acc2", priority(store.PriorityHigh)),
		msg("t1", "b-med", "acc2", priority(store.PriorityMedium)),
		msg("t1", "a-med", "acc", priority(store.PriorityMedium)),
	)
	req := claimReq("o", at(1))
	req.Limit = 3
	got := claimIDs(h.claim(req))
	slices.Sort(got)
	if want := []string{"a-imm", "b-high", "b-med"}; !slices.Equal(got, want) {
		t.Errorf("Claim with Limit 3 = %q, want the 3 best %q", got, want)
	}
	if rest := claimIDs(h.claim(claimReq("o", at(1)))); len(rest) != 2 {
		t.Errorf("second Claim = %q, want the 2 remaining", rest)
	}
}

func testClaimPerAccountCap(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.account("t1", "sized", func(a *store.Account) { a.BatchSize = ptr(3) })
	for i := range 5 {
		h.enqueueQueued(at(i), msg("t1", fmt.Sprintf("plain-%d", i), "acc"), msg("t1", fmt.Sprintf("sized-%d", i), "sized"))
	}
	req := claimReq("o", at(10))
	req.PerAccount = 2
	got := claimIDs(h.claim(req))
	slices.Sort(got)
	want := []string{"plain-0", "plain-1", "sized-0", "sized-1", "sized-2"}
	if !slices.Equal(got, want) {
		t.Errorf("Claim with PerAccount 2 and batch_size 3 = %q, want %q (oldest first, cap per account)", got, want)
	}
	// The next round takes the next ones.
	got = claimIDs(h.claim(req))
	slices.Sort(got)
	want = []string{"plain-2", "plain-3", "sized-3", "sized-4"}
	if !slices.Equal(got, want) {
		t.Errorf("second Claim round = %q, want %q", got, want)
	}
}

func testClaimSkipAccounts(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.account("t1", "acc2")
	h.tenantWithAccount("t2") // same account id "acc" under another tenant
	h.enqueueQueued(at(0), msg("t1", "t1-acc", "acc"), msg("t1", "t1-acc2", "acc2"), msg("t2", "t2-acc", "acc"))
	req := claimReq("o", at(1))
	req.SkipAccounts = map[string]bool{store.AccountKey("t1", "acc"): true}
	got := claimIDs(h.claim(req))
	slices.Sort(got)
	if want := []string{"t1-acc2", "t2-acc"}; !slices.Equal(got, want) {
		t.Errorf("Claim skipping t1/acc = %q, want %q", got, want)
	}
	if rest := claimIDs(h.claim(claimReq("o", at(1)))); !slices.Equal(rest, []string{"t1-acc"}) {
		t.Errorf("Claim without skips = %q, want [t1-acc]", rest)
	}
}

func testClaimTenantFilter(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.tenantWithAccount("t2")
	h.enqueueQueued(at(0), msg("t1", "a", "acc"), msg("t2", "b", "acc"), msg("t1", "c", "acc"))
	req := claimReq("o", at(1))
	req.TenantID = "t2"
	if got := claimIDs(h.claim(req)); !slices.Equal(got, []string{"b"}) {
		t.Errorf("Claim for tenant t2 = %q, want [b]", got)
	}
	for _, c := range h.claim(claimReq("o", at(1))) {
		if c.Message.TenantID != "t1" {
			t.Errorf("unfiltered Claim returned %s/%s, already claimed", c.Message.TenantID, c.Message.ID)
		}
	}
}

func testClaimLeaseExclusive(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.enqueueQueued(at(0), msg("t1", "m1", "acc"), msg("t1", "m2", "acc"))
	if got := h.claim(claimReq("a", at(0))); len(got) != 2 {
		t.Fatalf("owner a claims %q, want both", claimIDs(got))
	}
	for _, sec := range []int{0, 30, 59} {
		if got := h.claim(claimReq("b", at(sec))); len(got) != 0 {
			t.Errorf("owner b at +%ds claims %q while a's lease (to +60s) is live, want none", sec, claimIDs(got))
		}
		if got := h.claim(claimReq("a", at(sec))); len(got) != 0 {
			t.Errorf("owner a at +%ds claims %q again under its own live lease, want none", sec, claimIDs(got))
		}
	}
}

func testClaimExpiredLease(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.enqueueQueued(at(0), msg("t1", "m1", "acc"))
	stale := h.claimOne("a", at(0), "m1") // lease to +60s
	rescued := h.claimOne("b", at(61), "m1")
	if rescued.Message.Attempt != stale.Message.Attempt+1 {
		t.Errorf("rescued claim attempt %d, want %d", rescued.Message.Attempt, stale.Message.Attempt+1)
	}
	if rescued.Message.LeaseOwner != "b" {
		t.Errorf("rescued claim owner %q, want b", rescued.Message.LeaseOwner)
	}
	err := h.s.RecordOutcome(h.ctx, store.Outcome{
		MessagePK: stale.Message.PK, Owner: "a", Attempt: stale.Message.Attempt, Kind: store.OutcomeSent, At: at(62),
	})
	if !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("stale owner's outcome: err %v, want ErrLeaseLost", err)
	}
	if r := h.record("t1", "m1"); r.FinalAt != nil || len(r.History) != 0 || r.LeaseOwner != "b" {
		t.Errorf("after the stale outcome: final %s history %v owner %q, want nothing recorded and b still owning",
			fmtTime(r.FinalAt), eventTypes(r.History), r.LeaseOwner)
	}
	h.finish(rescued, store.OutcomeSent, at(63), "250 OK")
	if r := h.record("t1", "m1"); !timeEq(r.FinalAt, ptr(at(63))) {
		t.Errorf("after the rescuer's outcome: final %s, want %s", fmtTime(r.FinalAt), fmtTime(ptr(at(63))))
	}
}

func testClaimSameOwnerStaleAttempt(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.enqueueQueued(at(0), msg("t1", "m1", "acc"))
	first := h.claimOne("a", at(0), "m1")
	second := h.claimOne("a", at(100), "m1") // same owner after expiry
	if second.Message.Attempt != first.Message.Attempt+1 {
		t.Fatalf("reclaim attempt %d, want %d", second.Message.Attempt, first.Message.Attempt+1)
	}
	err := h.s.RecordOutcome(h.ctx, store.Outcome{
		MessagePK: first.Message.PK, Owner: "a", Attempt: first.Message.Attempt, Kind: store.OutcomeError, At: at(101),
	})
	if !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("outcome of the earlier attempt by the same owner: err %v, want ErrLeaseLost", err)
	}
	h.finish(second, store.OutcomeSent, at(102), "250 OK")
}

func testClaimConcurrent(t *testing.T, h *harness) {
	const messages, claimers = 60, 4
	h.tenantWithAccount("t1")
	items := make([]store.NewMessage, messages)
	for i := range items {
		items[i] = msg("t1", fmt.Sprintf("m%02d", i), "acc")
	}
	h.enqueueQueued(at(0), items...)

	var (
		mu      sync.Mutex
		claimed = map[string]string{} // id -> owner
		wg      sync.WaitGroup
	)
	for c := range claimers {
		owner := fmt.Sprintf("owner-%d", c)
		wg.Go(func() {
			defer recoverTo(t)
			for range messages { // bounded: each round claims at least one or stops
				req := claimReq(owner, at(1))
				req.Limit = 5
				got, err := h.s.Claim(h.ctx, req)
				if err != nil {
					t.Errorf("%s: Claim: %v", owner, err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, cl := range got {
					if prev, dup := claimed[cl.Message.ID]; dup {
						t.Errorf("message %s claimed by %s and %s under one live lease", cl.Message.ID, prev, owner)
					}
					claimed[cl.Message.ID] = owner
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(claimed) != messages {
		t.Errorf("concurrent claimers took %d distinct messages, want all %d", len(claimed), messages)
	}
}

// RenewLease and ReleaseClaims take no `now`: a driver may judge "still
// holds" by owner alone or against its clock, so these cases run at farAt
// times, where both readings agree that every lease is live.
func testClaimRenewLease(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	pks := h.enqueueQueued(farAt(0), msg("t1", "m1", "acc"), msg("t1", "m2", "acc"))
	if got := h.claim(claimReq("a", farAt(0))); len(got) != 2 {
		t.Fatalf("Claim = %q, want both", claimIDs(got))
	}
	renewed, err := h.s.RenewLease(h.ctx, "a", []string{pks[0]}, farAt(300))
	if err != nil || !slices.Equal(renewed, []string{pks[0]}) {
		t.Fatalf("RenewLease(a, [m1]) = %q, %v; want [%s]", renewed, err, pks[0])
	}
	if r := h.record("t1", "m1"); !timeEq(r.LeaseUntil, ptr(farAt(300))) {
		t.Errorf("m1 lease after renewal %s, want %s", fmtTime(r.LeaseUntil), fmtTime(ptr(farAt(300))))
	}
	// At +100s only m2's lease has expired.
	b := h.claimOne("b", farAt(100), "m2")

	renewed, err = h.s.RenewLease(h.ctx, "a", pks, farAt(400))
	if err != nil || !slices.Equal(renewed, []string{pks[0]}) {
		t.Errorf("RenewLease(a, [m1 m2]) after b took m2 = %q, %v; want only [%s]", renewed, err, pks[0])
	}
	renewed, err = h.s.RenewLease(h.ctx, "b", []string{pks[0]}, farAt(400))
	if err != nil || len(renewed) != 0 {
		t.Errorf("RenewLease(b, [m1]) for a's claim = %q, %v; want none", renewed, err)
	}
	if r := h.record("t1", "m2"); r.LeaseOwner != "b" || !timeEq(r.LeaseUntil, b.Message.LeaseUntil) {
		t.Errorf("m2 owner %q lease %s, want b's claim untouched", r.LeaseOwner, fmtTime(r.LeaseUntil))
	}
}

func testClaimReleaseClaims(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.tenantWithAccount("t2")
	h.enqueueQueued(farAt(0), msg("t1", "a1", "acc"), msg("t1", "a2", "acc"), msg("t2", "b1", "acc"))
	reqA := claimReq("a", farAt(0))
	reqA.TenantID = "t1"
	if got := h.claim(reqA); len(got) != 2 {
		t.Fatalf("a claims %q, want a1 a2", claimIDs(got))
	}
	bClaim := h.claimOne("b", farAt(0), "b1")

	n, err := h.s.ReleaseClaims(h.ctx, "a")
	if err != nil || n != 2 {
		t.Fatalf("ReleaseClaims(a) = %d, %v; want 2", n, err)
	}
	for _, id := range []string{"a1", "a2"} {
		if r := h.record("t1", id); r.LeaseOwner != "" || r.LeaseUntil != nil || len(r.History) != 0 {
			t.Errorf("%s after release: owner %q lease %s history %v, want unclaimed and no event",
				id, r.LeaseOwner, fmtTime(r.LeaseUntil), eventTypes(r.History))
		}
	}
	got := claimIDs(h.claim(claimReq("c", farAt(1))))
	slices.Sort(got)
	if !slices.Equal(got, []string{"a1", "a2"}) {
		t.Errorf("Claim after ReleaseClaims(a) = %q, want a's released [a1 a2] only", got)
	}

	n, err = h.s.ReleaseClaims(h.ctx, "")
	if err != nil || n != 3 {
		t.Errorf("ReleaseClaims(\"\") = %d, %v; want 3 (every live claim)", n, err)
	}
	err = h.s.RecordOutcome(h.ctx, store.Outcome{
		MessagePK: bClaim.Message.PK, Owner: "b", Attempt: bClaim.Message.Attempt, Kind: store.OutcomeSent, At: farAt(2),
	})
	if !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("outcome after the claim was released: err %v, want ErrLeaseLost", err)
	}
}

func testClaimMillisecondPrecision(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	due := at(1).Add(500 * time.Millisecond)
	h.enqueueQueued(at(0), msg("t1", "m1", "acc", deferredUntil(due)))
	if r := h.record("t1", "m1"); !timeEq(r.DeferredUntil, &due) {
		t.Errorf("stored deferred_until %s, want %s (times keep milliseconds)", fmtTime(r.DeferredUntil), fmtTime(&due))
	}
	if got := h.claim(claimReq("o", due.Add(-time.Millisecond))); len(got) != 0 {
		t.Errorf("Claim 1 ms before deferred_until = %q, want none", claimIDs(got))
	}
	req := claimReq("o", due)
	req.Lease = 1500 * time.Millisecond
	c := h.claim(req)
	if len(c) != 1 || !timeEq(c[0].Message.LeaseUntil, ptr(due.Add(1500*time.Millisecond))) {
		t.Fatalf("Claim at deferred_until = %q, want m1 leased until %s", claimIDs(c), fmtTime(ptr(due.Add(1500*time.Millisecond))))
	}
	sentAt := due.Add(250 * time.Millisecond)
	h.finish(c[0], store.OutcomeSent, sentAt, "250 OK")
	r := h.record("t1", "m1")
	if !timeEq(r.FinalAt, &sentAt) || len(r.History) != 1 || !r.History[0].At.Equal(sentAt) {
		t.Errorf("final %s event %v, want both at %s", fmtTime(r.FinalAt), r.History, fmtTime(&sentAt))
	}
}
