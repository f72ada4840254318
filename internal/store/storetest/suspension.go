package storetest

import (
	"errors"
	"slices"
	"testing"

	"github.com/mailproxy/mailproxy/internal/store"
)

// suspensionCases cover Suspend, Activate and their effect on Claim (lifecycle.md §6, api.md §5).
func suspensionCases() []testCase {
	return []testCase{
		{"ResultsAndTransitions", testSuspendTransitions},
		{"ActivateBatchUnderFullSuspension", testActivateBatchUnderFull},
		{"UnknownTenant", testSuspendUnknownTenant},
		{"PendingMessagesCount", testSuspendPendingCount},
		{"FullSuspensionHoldsTenant", testSuspendFullHoldsClaims},
		{"BatchSuspensionHoldsOnlyThatBatch", testSuspendBatchHoldsClaims},
		{"ClaimTakenBeforeSuspendFinishes", testSuspendClaimFinishes},
	}
}

// suspendStep is one Suspend or Activate call and the batches it must leave.
type suspendStep struct {
	activate bool
	code     string // "" = whole tenant
	want     []string
}

func testSuspendTransitions(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	steps := []suspendStep{
		{code: "b2", want: []string{"b2"}},
		{code: "b1", want: []string{"b1", "b2"}}, // sorted
		{code: "b1", want: []string{"b1", "b2"}}, // idempotent
		{activate: true, code: "b2", want: []string{"b1"}},
		{activate: true, code: "zz", want: []string{"b1"}}, // not suspended: no change
		{want: []string{store.SuspendAll}},
		{code: "b3", want: []string{store.SuspendAll}}, // no-op under "*"
		{activate: true, want: nil},                    // clears everything, b1 and b3 included
		{code: "b4", want: []string{"b4"}},
		{activate: true, want: nil},
	}
	for i, st := range steps {
		var code *string
		if st.code != "" {
			code = ptr(st.code)
		}
		call, res, err := "Suspend", store.SuspendResult{}, error(nil)
		if st.activate {
			call = "Activate"
			res, err = h.s.Activate(h.ctx, "t1", code)
		} else {
			res, err = h.s.Suspend(h.ctx, "t1", code)
		}
		if err != nil {
			t.Fatalf("step %d: %s(t1, %q): %v", i, call, st.code, err)
		}
		if !slices.Equal(res.SuspendedBatches, st.want) {
			t.Errorf("step %d: %s(t1, %q) suspended_batches %q, want %q", i, call, st.code, res.SuspendedBatches, st.want)
		}
		tn, err := h.s.GetTenant(h.ctx, "t1")
		if err != nil {
			t.Fatalf("GetTenant: %v", err)
		}
		if !slices.Equal(tn.SuspendedBatches, st.want) {
			t.Errorf("step %d: after %s(t1, %q) GetTenant suspended batches %q, want %q", i, call, st.code, tn.SuspendedBatches, st.want)
		}
	}
}

func testActivateBatchUnderFull(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	if _, err := h.s.Suspend(h.ctx, "t1", nil); err != nil {
		t.Fatalf("Suspend(t1): %v", err)
	}
	if _, err := h.s.Activate(h.ctx, "t1", ptr("b1")); !errors.Is(err, store.ErrFullySuspended) {
		t.Errorf("Activate(t1, b1) under \"*\": err %v, want ErrFullySuspended", err)
	}
	tn, err := h.s.GetTenant(h.ctx, "t1")
	if err != nil || !slices.Equal(tn.SuspendedBatches, []string{store.SuspendAll}) {
		t.Errorf("after the failed Activate: suspended %q, %v; want still [*]", tn.SuspendedBatches, err)
	}
}

func testSuspendUnknownTenant(t *testing.T, h *harness) {
	for _, code := range []*string{nil, ptr("b1")} {
		if _, err := h.s.Suspend(h.ctx, "ghost", code); !errors.Is(err, store.ErrTenantNotFound) {
			t.Errorf("Suspend(ghost, %v): err %v, want ErrTenantNotFound", code, err)
		}
		if _, err := h.s.Activate(h.ctx, "ghost", code); !errors.Is(err, store.ErrTenantNotFound) {
			t.Errorf("Activate(ghost, %v): err %v, want ErrTenantNotFound", code, err)
		}
	}
}

func testSuspendPendingCount(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.tenantWithAccount("t2")
	h.enqueueQueued(at(0),
		msg("t1", "b1-ready", "acc", batch("b1")),
		msg("t1", "b1-deferred", "acc", batch("b1"), deferredUntil(at(9999))),
		msg("t1", "b1-sent", "acc", batch("b1")),
		msg("t1", "b2", "acc", batch("b2")),
		msg("t1", "nobatch", "acc"),
		msg("t2", "other", "acc", batch("b1")),
	)
	h.enqueue(at(0), msg("t1", "b1-rejected", "acc", batch("b1"), rejectReason("missing to")))
	c := h.claim(claimReq("o", at(1)))
	for _, cl := range c {
		if cl.Message.ID == "b1-sent" {
			h.finish(cl, store.OutcomeSent, at(2), "250 OK")
		}
	}
	// The other claims stay live: claimed messages are still unprocessed.
	for _, tc := range []struct {
		code *string
		want int
	}{
		{ptr("b1"), 2}, // ready + deferred; sent and rejected are processed
		{ptr("b2"), 1},
		{ptr("none"), 0},
		{nil, 4},
	} {
		res, err := h.s.Suspend(h.ctx, "t1", tc.code)
		if err != nil {
			t.Fatalf("Suspend(t1, %v): %v", tc.code, err)
		}
		if res.PendingMessages != tc.want {
			t.Errorf("Suspend(t1, %v) pending_messages %d, want %d", deref(tc.code), res.PendingMessages, tc.want)
		}
		res, err = h.s.Activate(h.ctx, "t1", tc.code)
		if err != nil {
			t.Fatalf("Activate(t1, %v): %v", tc.code, err)
		}
		if res.PendingMessages != tc.want {
			t.Errorf("Activate(t1, %v) pending_messages %d, want %d", deref(tc.code), res.PendingMessages, tc.want)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

func testSuspendFullHoldsClaims(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.tenantWithAccount("t2")
	h.enqueueQueued(at(0), msg("t1", "a", "acc"), msg("t1", "b", "acc", batch("b1")), msg("t2", "c", "acc"))
	if _, err := h.s.Suspend(h.ctx, "t1", nil); err != nil {
		t.Fatalf("Suspend(t1): %v", err)
	}
	if got := claimIDs(h.claim(claimReq("o", at(1)))); !slices.Equal(got, []string{"c"}) {
		t.Errorf("Claim with t1 suspended \"*\" = %q, want only t2's [c]", got)
	}
	if _, err := h.s.Activate(h.ctx, "t1", nil); err != nil {
		t.Fatalf("Activate(t1): %v", err)
	}
	got := claimIDs(h.claim(claimReq("o", at(2))))
	slices.Sort(got)
	if !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("Claim after Activate(t1) = %q, want [a b]", got)
	}
}

func testSuspendBatchHoldsClaims(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.tenantWithAccount("t2")
	h.enqueueQueued(at(0),
		msg("t1", "held", "acc", batch("b1")),
		msg("t1", "other-batch", "acc", batch("b2")),
		msg("t1", "no-batch", "acc"),
		msg("t2", "same-code-other-tenant", "acc", batch("b1")),
	)
	if _, err := h.s.Suspend(h.ctx, "t1", ptr("b1")); err != nil {
		t.Fatalf("Suspend(t1, b1): %v", err)
	}
	got := claimIDs(h.claim(claimReq("o", at(1))))
	slices.Sort(got)
	if want := []string{"no-batch", "other-batch", "same-code-other-tenant"}; !slices.Equal(got, want) {
		t.Errorf("Claim with t1/b1 suspended = %q, want %q", got, want)
	}
	if _, err := h.s.Activate(h.ctx, "t1", ptr("b1")); err != nil {
		t.Fatalf("Activate(t1, b1): %v", err)
	}
	if got := claimIDs(h.claim(claimReq("o", at(2)))); !slices.Equal(got, []string{"held"}) {
		t.Errorf("Claim after Activate(t1, b1) = %q, want [held]", got)
	}
}

func testSuspendClaimFinishes(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.enqueueQueued(at(0), msg("t1", "m1", "acc"))
	c := h.claimOne("o", at(1), "m1")
	if _, err := h.s.Suspend(h.ctx, "t1", nil); err != nil {
		t.Fatalf("Suspend(t1): %v", err)
	}
	h.finish(c, store.OutcomeSent, at(2), "250 OK")
	if r := h.record("t1", "m1"); !timeEq(r.FinalAt, ptr(at(2))) {
		t.Errorf("claim taken before the suspension: final %s, want %s", fmtTime(r.FinalAt), fmtTime(ptr(at(2))))
	}
}
