package sqlite

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
)

// TestClaimPagesPastCappedAccount: when one account's backlog fills its cap,
// the claim keeps paging (rows share priority and created_at, so only seq
// orders them) and still finds the other account's messages behind it.
func TestClaimPagesPastCappedAccount(t *testing.T) {
	t.Parallel()
	s, _ := openTest(t, Options{})
	seed(t, s)
	ctx := context.Background()
	if err := s.UpsertAccount(ctx, store.Account{TenantID: "t1", ID: "a2", Host: "127.0.0.1", Port: 25}); err != nil {
		t.Fatalf("UpsertAccount: %v", err)
	}
	now := time.UnixMilli(1_700_000_000_000)
	var items []store.NewMessage
	for i := range 300 {
		items = append(items, msg(fmt.Sprintf("a1-%03d", i)))
	}
	for i := range 3 {
		m := msg(fmt.Sprintf("a2-%d", i))
		m.AccountID = "a2"
		items = append(items, m)
	}
	if _, err := s.EnqueueBatch(ctx, items, now); err != nil {
		t.Fatalf("EnqueueBatch: %v", err)
	}
	claims, err := s.Claim(ctx, store.ClaimRequest{Owner: "o", Now: now, Lease: time.Minute, Limit: 10, PerAccount: 5})
	if err != nil {
		t.Fatalf("Claim: %v", err)
	}
	var got []string
	for _, c := range claims {
		got = append(got, c.Message.ID)
	}
	want := []string{"a1-000", "a1-001", "a1-002", "a1-003", "a1-004", "a2-0", "a2-1", "a2-2"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("claimed %v, want %v", got, want)
	}

	// SkipAccounts leaves a1 out entirely; a2 is already leased.
	claims, err = s.Claim(ctx, store.ClaimRequest{Owner: "o", Now: now, Lease: time.Minute, Limit: 10,
		SkipAccounts: map[string]bool{store.AccountKey("t1", "a1"): true}})
	if err != nil {
		t.Fatalf("Claim: %v", err)
	}
	if len(claims) != 0 {
		t.Fatalf("claim skipping a1 returned %d rows, want 0", len(claims))
	}
}
