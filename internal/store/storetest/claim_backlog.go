package storetest

import (
	"fmt"
	"slices"
	"testing"

	"github.com/mailproxy/mailproxy/internal/store"
)

// testClaimBehindCappedBacklog: an account's backlog, older than every
// other message and longer than a claim's page, is capped per account; the
// claim still finds the other accounts' messages behind it, whichever side
// of it they sort on, and with only the capped account left it takes just
// its cap.
func testClaimBehindCappedBacklog(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.account("t1", "aaa")
	h.account("t1", "big")
	h.account("t1", "zzz")
	h.tenantWithAccount("t2")
	var backlog []store.NewMessage
	for i := range 300 {
		backlog = append(backlog, msg("t1", fmt.Sprintf("big-%03d", i), "big"))
	}
	h.enqueueQueued(at(0), backlog...)
	h.enqueueQueued(at(1), msg("t1", "aaa-0", "aaa"), msg("t1", "zzz-0", "zzz"), msg("t2", "t2-0", "acc"))

	req := claimReq("o", at(10))
	req.Limit, req.PerAccount = 10, 2
	got := claimIDs(h.claim(req))
	slices.Sort(got)
	if want := []string{"aaa-0", "big-000", "big-001", "t2-0", "zzz-0"}; !slices.Equal(got, want) {
		t.Errorf("Claim behind a capped backlog = %q, want %q", got, want)
	}
	got = claimIDs(h.claim(req))
	if want := []string{"big-002", "big-003"}; !slices.Equal(got, want) {
		t.Errorf("Claim with only the capped account left = %q, want %q", got, want)
	}
	req.SkipAccounts = map[string]bool{store.AccountKey("t1", "big"): true}
	if got := h.claim(req); len(got) != 0 {
		t.Errorf("Claim skipping the only account with messages = %q, want none", claimIDs(got))
	}
}
