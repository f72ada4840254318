package sqlite

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
)

// holdLeader starts a write that blocks inside the transaction until the
// returned release is called, so later writes queue behind it.
func holdLeader(t *testing.T, s *Store) (release func()) {
	t.Helper()
	entered := make(chan struct{})
	unblock := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.write(context.Background(), func(*wtx) error {
			close(entered)
			<-unblock
			return nil
		})
	}()
	<-entered
	var once sync.Once
	release = func() {
		once.Do(func() {
			close(unblock)
			if err := <-done; err != nil {
				t.Errorf("held leader's write: %v", err)
			}
		})
	}
	t.Cleanup(release)
	return release
}

// waitQueued polls until n writes wait behind the leader.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s.commit.mu.Lock()
		got := len(s.commit.queue)
		s.commit.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queued writes = %d, want %d", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestGroupCommitSharesOneTransaction queues several requests behind a busy
// leader and checks they commit together, a failing one rolled back alone,
// and each caller's data is committed when its call returns.
func TestGroupCommitSharesOneTransaction(t *testing.T) {
	t.Parallel()
	s, _ := openTest(t, Options{})
	seed(t, s)
	ctx := context.Background()
	now := time.UnixMilli(1_700_000_000_000)
	existing, err := s.EnqueueBatch(ctx, []store.NewMessage{msg("taken")}, now)
	if err != nil {
		t.Fatalf("EnqueueBatch: %v", err)
	}

	release := holdLeader(t, s)
	const writers = 8
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		groups  = map[*wtx]int{}
		errs    = make([]error, writers)
		visible = make([]bool, writers)
	)
	for i := range writers {
		wg.Go(func() {
			var items []store.NewMessage
			if i == 3 {
				// Its first item is stored, then the second collides on pk: the
				// whole request must roll back, and only it.
				dup := msg("dup-pk")
				dup.PK = existing[0].PK
				items = []store.NewMessage{msg("doomed"), dup}
			} else {
				items = []store.NewMessage{msg(fmt.Sprintf("w%d", i))}
			}
			errs[i] = s.write(ctx, func(w *wtx) error {
				mu.Lock()
				groups[w]++
				mu.Unlock()
				_, err := enqueue(w, items, now)
				return err
			})
			if errs[i] == nil {
				// Read through the read pool: only committed data is visible there.
				recs, err := s.ListMessages(ctx, store.MessageFilter{TenantID: "t1"}, now)
				if err == nil {
					for _, r := range recs {
						visible[i] = visible[i] || r.ID == items[0].ID
					}
				}
			}
		})
	}
	waitQueued(t, s, writers)
	release()
	wg.Wait()

	if len(groups) != 1 {
		t.Errorf("the %d queued writes ran in %d transactions, want 1 shared transaction", writers, len(groups))
	}
	for i, err := range errs {
		switch {
		case i == 3 && !errors.Is(err, store.ErrDuplicate):
			t.Errorf("writer 3 (duplicate pk) = %v, want ErrDuplicate", err)
		case i != 3 && err != nil:
			t.Errorf("writer %d: %v", i, err)
		case i != 3 && !visible[i]:
			t.Errorf("writer %d returned before its message was committed", i)
		}
	}
	recs, err := s.ListMessages(ctx, store.MessageFilter{TenantID: "t1"}, now)
	if err != nil {
		t.Fatalf("ListMessages: %v", err)
	}
	ids := map[string]bool{}
	for _, r := range recs {
		ids[r.ID] = true
	}
	if ids["doomed"] {
		t.Errorf("the failed request's first item was stored; its savepoint should have rolled it back")
	}
	if len(recs) != writers { // "taken" plus seven writers
		t.Errorf("stored %d messages, want %d", len(recs), writers)
	}
}

// TestGroupCommitCancelWhileQueued: a caller whose context ends before its
// request is taken gets ctx.Err() and nothing is written.
func TestGroupCommitCancelWhileQueued(t *testing.T) {
	t.Parallel()
	s, _ := openTest(t, Options{})
	release := holdLeader(t, s)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := s.UpsertTenant(ctx, store.Tenant{ID: "cancelled", Active: true})
		done <- err
	}()
	waitQueued(t, s, 1)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("UpsertTenant with cancelled ctx = %v, want context.Canceled", err)
	}
	release()
	if _, err := s.GetTenant(context.Background(), "cancelled"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetTenant(cancelled) = %v, want ErrNotFound: the withdrawn write must not run", err)
	}
}

// TestGroupCommitOverloaded: a write that waits too long for the writer
// fails with ErrOverloaded and is not applied.
func TestGroupCommitOverloaded(t *testing.T) {
	t.Parallel()
	s, _ := openTest(t, Options{OverloadAfter: 20 * time.Millisecond})
	release := holdLeader(t, s)
	_, err := s.UpsertTenant(context.Background(), store.Tenant{ID: "late", Active: true})
	if !errors.Is(err, store.ErrOverloaded) {
		t.Fatalf("UpsertTenant behind a stuck writer = %v, want ErrOverloaded", err)
	}
	release()
	if _, err := s.GetTenant(context.Background(), "late"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetTenant(late) = %v, want ErrNotFound", err)
	}
	if _, err := s.UpsertTenant(context.Background(), store.Tenant{ID: "after", Active: true}); err != nil {
		t.Fatalf("UpsertTenant once the writer is free: %v", err)
	}
}

// TestGroupCommitPanicIsAnError: a panicking request fails alone and the
// committer keeps working.
func TestGroupCommitPanicIsAnError(t *testing.T) {
	t.Parallel()
	s, _ := openTest(t, Options{})
	err := s.write(context.Background(), func(*wtx) error { panic("boom") })
	if err == nil {
		t.Fatal("panicking write returned nil, want an error")
	}
	if _, err := s.UpsertTenant(context.Background(), store.Tenant{ID: "t", Active: true}); err != nil {
		t.Fatalf("UpsertTenant after a panicking write: %v", err)
	}
}

// TestGroupCommitConcurrent hammers enqueue and outcomes from many
// goroutines (run with -race) and checks every answer against the data.
func TestGroupCommitConcurrent(t *testing.T) {
	t.Parallel()
	s, _ := openTest(t, Options{})
	seed(t, s)
	ctx := context.Background()
	now := time.UnixMilli(1_700_000_000_000)
	const workers, calls, perCall = 16, 10, 5

	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for g := range workers {
		wg.Go(func() {
			for c := range calls {
				items := make([]store.NewMessage, perCall)
				for i := range items {
					items[i] = msg(fmt.Sprintf("g%d-c%d-i%d", g, c, i))
				}
				res, err := s.EnqueueBatch(ctx, items, now)
				if err != nil {
					errs <- err
					return
				}
				for i, r := range res {
					if r.Status != store.Queued || r.PK == "" {
						errs <- fmt.Errorf("item %s: %+v, want Queued", items[i].ID, r)
						return
					}
				}
				claims, err := s.Claim(ctx, store.ClaimRequest{Owner: fmt.Sprintf("o%d", g), Now: now, Lease: time.Hour, Limit: 2})
				if err != nil {
					errs <- err
					return
				}
				for _, cl := range claims {
					err := s.RecordOutcome(ctx, store.Outcome{MessagePK: cl.Message.PK, Owner: cl.Message.LeaseOwner,
						Attempt: cl.Message.Attempt, Kind: store.OutcomeSent, At: now})
					if err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	stats, err := s.Stats(ctx, "t1", now)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	total := stats[0].Pending + stats[0].Sent
	if total != workers*calls*perCall || stats[0].Sent != workers*calls*2 {
		t.Fatalf("stats = %+v, want %d messages of which %d sent", stats[0], workers*calls*perCall, workers*calls*2)
	}
}

// TestSynchronousModeFollowsTheGroup: a group of relaxed writes commits with
// synchronous=NORMAL; any group carrying a durable write (an enqueue) commits
// FULL, so relaxed bookkeeping never weakens an acknowledged enqueue.
func TestSynchronousModeFollowsTheGroup(t *testing.T) {
	t.Parallel()
	s, _ := openTest(t, Options{})
	ctx := context.Background()
	mode := func(w *wtx) (int, error) {
		var m int
		err := w.queryRow("PRAGMA synchronous").Scan(&m)
		return m, err
	}
	const normal, full = 1, 2
	check := func(name string, relaxed []bool, want int) {
		t.Helper()
		release := holdLeader(t, s)
		got := make([]int, len(relaxed))
		errs := make(chan error, len(relaxed))
		for i, r := range relaxed {
			fn := func(w *wtx) error {
				var err error
				got[i], err = mode(w)
				return err
			}
			go func() {
				if r {
					errs <- s.writeRelaxed(ctx, fn)
				} else {
					errs <- s.write(ctx, fn)
				}
			}()
		}
		waitQueued(t, s, len(relaxed))
		release()
		for range relaxed {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		for i, m := range got {
			if m != want {
				t.Errorf("%s: request %d ran with synchronous=%d, want %d", name, i, m, want)
			}
		}
	}
	check("relaxed only", []bool{true, true, true}, normal)
	check("one durable among relaxed", []bool{true, false, true}, full)
	check("relaxed again", []bool{true}, normal)
	check("durable alone", []bool{false}, full)
}
