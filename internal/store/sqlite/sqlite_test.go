package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
)

// openTest opens a fresh store in a temp dir, closed at cleanup.
func openTest(t testing.TB, opts Options) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "test.db")
	s, err := Open(context.Background(), path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, path
}

// seed creates tenant t1 with account a1.
func seed(t testing.TB, s *Store) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.UpsertTenant(ctx, store.Tenant{ID: "t1", Active: true}); err != nil {
		t.Fatalf("UpsertTenant: %v", err)
	}
	if err := s.UpsertAccount(ctx, store.Account{TenantID: "t1", ID: "a1", Host: "127.0.0.1", Port: 25, TTL: 300, LimitBehavior: "defer"}); err != nil {
		t.Fatalf("UpsertAccount: %v", err)
	}
}

func msg(id string) store.NewMessage {
	return store.NewMessage{TenantID: "t1", ID: id, AccountID: "a1", Priority: store.PriorityMedium,
		Payload: json.RawMessage(`{"id":"` + id + `","subject":"s"}`)}
}

// TestLifecycleSmoke walks one message through enqueue, claim, outcome,
// report and cleanup on the real driver.
func TestLifecycleSmoke(t *testing.T) {
	t.Parallel()
	s, _ := openTest(t, Options{})
	seed(t, s)
	ctx := context.Background()
	now := time.UnixMilli(1_700_000_000_000).UTC()

	res, err := s.EnqueueBatch(ctx, []store.NewMessage{msg("m1"), {TenantID: "t1", ID: "m2", AccountID: "nope"}}, now)
	if err != nil {
		t.Fatalf("EnqueueBatch: %v", err)
	}
	if res[0].Status != store.Queued || res[0].PK == "" {
		t.Fatalf("m1 result = %+v, want Queued with pk", res[0])
	}
	if res[1].Status != store.Rejected || res[1].Reason != "account not found for tenant" || res[1].PK == "" {
		t.Fatalf("m2 result = %+v, want stored rejection", res[1])
	}

	claims, err := s.Claim(ctx, store.ClaimRequest{Owner: "w1", Now: now, Lease: time.Minute, Limit: 10})
	if err != nil {
		t.Fatalf("Claim: %v", err)
	}
	if len(claims) != 1 || claims[0].Message.ID != "m1" || claims[0].Account == nil || claims[0].Message.Attempt != 1 {
		t.Fatalf("claims = %+v, want m1 with account, attempt 1", claims)
	}
	again, err := s.EnqueueBatch(ctx, []store.NewMessage{msg("m1")}, now)
	if err != nil || again[0].Status != store.SendingInProgress {
		t.Fatalf("re-enqueue while leased = %+v, %v; want SendingInProgress", again, err)
	}

	m := claims[0].Message
	err = s.RecordOutcome(ctx, store.Outcome{MessagePK: m.PK, Owner: "w1", Attempt: m.Attempt, Kind: store.OutcomeSent, At: now.Add(time.Second)})
	if err != nil {
		t.Fatalf("RecordOutcome: %v", err)
	}
	err = s.RecordOutcome(ctx, store.Outcome{MessagePK: m.PK, Owner: "w1", Attempt: m.Attempt, Kind: store.OutcomeSent, At: now})
	if !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("second outcome err = %v, want ErrLeaseLost", err)
	}
	again, err = s.EnqueueBatch(ctx, []store.NewMessage{msg("m1")}, now)
	if err != nil || again[0].Status != store.AlreadySent {
		t.Fatalf("re-enqueue after sent = %+v, %v; want AlreadySent", again, err)
	}

	recs, err := s.ListMessages(ctx, store.MessageFilter{TenantID: "t1", IncludeHistory: true}, now)
	if err != nil {
		t.Fatalf("ListMessages: %v", err)
	}
	if len(recs) != 2 {
		t.Fatalf("ListMessages returned %d records, want 2", len(recs))
	}
	for _, r := range recs {
		if r.Final == nil || len(r.History) != 1 {
			t.Errorf("record %s: final %v, history %d; want a final event and one history entry", r.ID, r.Final, len(r.History))
		}
	}

	evs, err := s.UnreportedEvents(ctx, "t1", 0)
	if err != nil || len(evs) != 2 {
		t.Fatalf("UnreportedEvents = %d, %v; want 2", len(evs), err)
	}
	ids := []int64{evs[0].ID, evs[1].ID}
	if err := s.MarkReported(ctx, ids, now); err != nil {
		t.Fatalf("MarkReported: %v", err)
	}
	n, err := s.CleanupMessages(ctx, "t1", now.Add(time.Hour), 0)
	if err != nil || n != 2 {
		t.Fatalf("CleanupMessages = %d, %v; want 2", n, err)
	}
}

// A store closed while others still call it answers errors: no race, no
// panic, and Close may be called again.
func TestCallsDuringAndAfterCloseFailCleanly(t *testing.T) {
	t.Parallel()
	s, _ := openTest(t, Options{})
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 50 {
				_, _ = s.CountUnprocessed(ctx)
				_, _ = s.ListTenants(ctx, false)
			}
		})
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	if _, err := s.CountUnprocessed(ctx); err == nil {
		t.Fatal("a read after Close succeeded")
	}
	if _, err := s.UpsertTenant(ctx, store.Tenant{ID: "late", Active: true}); err == nil {
		t.Fatal("a write after Close succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
