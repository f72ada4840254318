package storetest

import (
	"errors"
	"slices"
	"testing"

	"github.com/mailproxy/mailproxy/internal/store"
)

// retryDeferredCases cover RetryDeferred (issue 12.7).
func retryDeferredCases() []testCase {
	return []testCase{
		{"OnlyRetryDeferredOfTenantAndBatch", testRetryDeferredSelects},
		{"UnknownTenant", testRetryDeferredUnknownTenant},
	}
}

// deferClaim records a deferral of the claimed message until `until`, with the
// given retry count (0 = a rate-limit deferral of a never-failed message).
func (h *harness) deferClaim(c store.Claim, when, until int, retryCount int) {
	h.t.Helper()
	if err := h.s.RecordOutcome(h.ctx, store.Outcome{
		MessagePK: c.Message.PK, Owner: c.Message.LeaseOwner, Attempt: c.Message.Attempt,
		Kind: store.OutcomeDeferred, At: at(when), Description: "451 try later",
		DeferredUntil: ptr(at(until)), RetryCount: retryCount,
	}); err != nil {
		h.t.Fatalf("RecordOutcome(deferred, %q): %v", c.Message.ID, err)
	}
}

func testRetryDeferredSelects(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.tenantWithAccount("t2")
	h.enqueueQueued(at(0),
		msg("t1", "retry", "acc"),
		msg("t1", "retry-b1", "acc", batch("b1")),
		msg("t1", "rate-limited", "acc"),
		msg("t2", "other-tenant", "acc"),
	)
	for _, c := range h.claim(claimReq("o", at(1))) {
		retries := 1
		if c.Message.ID == "rate-limited" {
			retries = 0
		}
		h.deferClaim(c, 2, 3600, retries)
	}
	h.enqueueQueued(at(3), msg("t1", "scheduled", "acc", deferredUntil(at(3600))))

	n, err := h.s.RetryDeferred(h.ctx, "t1", ptr("b1"), at(10))
	if err != nil || n != 1 {
		t.Fatalf("RetryDeferred(t1, b1) = %d, %v; want 1", n, err)
	}
	if got := claimIDs(h.claim(claimReq("o", at(11)))); !slices.Equal(got, []string{"retry-b1"}) {
		t.Errorf("Claim after RetryDeferred(t1, b1) = %q, want [retry-b1]", got)
	}
	n, err = h.s.RetryDeferred(h.ctx, "t1", nil, at(20))
	if err != nil || n != 1 {
		t.Fatalf("RetryDeferred(t1) = %d, %v; want 1 (retry; not the claimed, scheduled or rate-limited ones)", n, err)
	}
	r := h.record("t1", "retry")
	if r.DeferredUntil != nil || r.RetryCount != 1 {
		t.Errorf("retried message: deferred_until %s retry_count %d, want none and 1", fmtTime(r.DeferredUntil), r.RetryCount)
	}
	if got := claimIDs(h.claim(claimReq("o", at(21)))); !slices.Equal(got, []string{"retry"}) {
		t.Errorf("Claim after RetryDeferred(t1) = %q, want [retry]", got)
	}
	if n, err := h.s.RetryDeferred(h.ctx, "t1", nil, at(30)); err != nil || n != 0 {
		t.Errorf("second RetryDeferred(t1) = %d, %v; want 0", n, err)
	}
	if got := h.record("t1", "scheduled"); !timeEq(got.DeferredUntil, ptr(at(3600))) {
		t.Errorf("client-scheduled message deferred_until %s, want %s", fmtTime(got.DeferredUntil), fmtTime(ptr(at(3600))))
	}
	if got := h.record("t2", "other-tenant"); !timeEq(got.DeferredUntil, ptr(at(3600))) {
		t.Errorf("other tenant's message deferred_until %s, want %s", fmtTime(got.DeferredUntil), fmtTime(ptr(at(3600))))
	}
}

func testRetryDeferredUnknownTenant(t *testing.T, h *harness) {
	if _, err := h.s.RetryDeferred(h.ctx, "nobody", nil, at(0)); !errors.Is(err, store.ErrTenantNotFound) {
		t.Errorf("RetryDeferred(nobody): %v, want ErrTenantNotFound", err)
	}
}
