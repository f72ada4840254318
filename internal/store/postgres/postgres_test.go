package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/store/postgres"
	"github.com/mailproxy/mailproxy/internal/store/postgres/pgtest"
)

// base is a fixed, minute-aligned instant the tests reason from.
var base = time.Unix(1767225600, 0).UTC()

// openStore opens a store (its own pool) on dsn, closed at cleanup.
func openStore(t testing.TB, dsn string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), dsn, postgres.Options{MaxConns: 6})
	if err != nil {
		t.Fatalf("postgres.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// twoStores opens two stores, with separate pools, on one fresh schema: two
// mail-proxy instances sharing a database.
func twoStores(t testing.TB) (*postgres.Store, *postgres.Store, string) {
	t.Helper()
	dsn := pgtest.Schema(t, pgtest.DSN(t))
	return openStore(t, dsn), openStore(t, dsn), dsn
}

// seed creates tenant t1 with the given accounts.
func seed(t testing.TB, s store.Store, accounts ...string) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.UpsertTenant(ctx, store.Tenant{ID: "t1", Active: true}); err != nil {
		t.Fatalf("UpsertTenant: %v", err)
	}
	for _, id := range accounts {
		a := store.Account{TenantID: "t1", ID: id, Host: "127.0.0.1", Port: 2525, TTL: 300, LimitBehavior: "defer"}
		if err := s.UpsertAccount(ctx, a); err != nil {
			t.Fatalf("UpsertAccount(%s): %v", id, err)
		}
	}
}

func newMsg(id, account string) store.NewMessage {
	return store.NewMessage{TenantID: "t1", ID: id, AccountID: account, Priority: store.PriorityMedium,
		Payload: json.RawMessage(`{"id":"` + id + `","subject":"s"}`)}
}

// Two instances claiming, sending and claiming again concurrently never hold
// the same message, and between them send every message exactly once.
func TestTwoStoresClaimDisjoint(t *testing.T) {
	t.Parallel()
	const total, claimersPerStore, perClaim = 900, 3, 7
	a, b, _ := twoStores(t)
	seed(t, a, "acc1", "acc2", "acc3")
	ctx := context.Background()
	for start := 0; start < total; start += 300 {
		items := make([]store.NewMessage, 300)
		for i := range items {
			items[i] = newMsg(fmt.Sprintf("m%04d", start+i), fmt.Sprintf("acc%d", 1+(start+i)%3))
		}
		if _, err := a.EnqueueBatch(ctx, items, base); err != nil {
			t.Fatalf("EnqueueBatch: %v", err)
		}
	}

	var (
		mu      sync.Mutex
		holder  = map[string]string{} // id -> owner that claimed it
		sentBy  = map[string]int{}
		rounds  atomic.Int64
		wg      sync.WaitGroup
		stores  = []*postgres.Store{a, b}
		claimed atomic.Int64
	)
	for si, s := range stores {
		for c := range claimersPerStore {
			owner := fmt.Sprintf("store%d-claimer%d", si, c)
			wg.Go(func() {
				defer func() {
					if r := recover(); r != nil {
						t.Errorf("%s panicked: %v", owner, r)
					}
				}()
				for range total { // bounded: every round claims one or stops
					claims, err := s.Claim(ctx, store.ClaimRequest{Owner: owner, Now: base.Add(time.Second),
						Lease: time.Minute, Limit: perClaim, PerAccount: 3})
					if err != nil {
						t.Errorf("%s: Claim: %v", owner, err)
						return
					}
					if len(claims) == 0 {
						return
					}
					rounds.Add(1)
					claimed.Add(int64(len(claims)))
					mu.Lock()
					for _, cl := range claims {
						if prev, dup := holder[cl.Message.ID]; dup {
							t.Errorf("message %s claimed by %s while %s held it", cl.Message.ID, owner, prev)
						}
						holder[cl.Message.ID] = owner
					}
					mu.Unlock()
					for _, cl := range claims {
						err := s.RecordOutcome(ctx, store.Outcome{MessagePK: cl.Message.PK, Owner: owner,
							Attempt: cl.Message.Attempt, Kind: store.OutcomeSent, At: base.Add(2 * time.Second)})
						if err != nil {
							t.Errorf("%s: RecordOutcome(%s): %v", owner, cl.Message.ID, err)
							continue
						}
						mu.Lock()
						sentBy[cl.Message.ID]++
						mu.Unlock()
					}
				}
			})
		}
	}
	wg.Wait()
	if len(holder) != total || claimed.Load() != total {
		t.Errorf("claimed %d distinct messages in %d claims, want all %d exactly once", len(holder), claimed.Load(), total)
	}
	for id, n := range sentBy {
		if n != 1 {
			t.Errorf("message %s recorded sent %d times", id, n)
		}
	}
	perStore := map[string]int{}
	for _, owner := range holder {
		perStore[owner[:6]]++
	}
	t.Logf("%d claim rounds; messages per store: %v", rounds.Load(), perStore)
	if n, err := b.CountUnprocessed(ctx); err != nil || n != 0 {
		t.Errorf("CountUnprocessed = %d, %v; want 0", n, err)
	}
}

// A dead instance's claims are taken over by another once their lease has
// expired, not before; the dead one's late outcome is refused.
func TestLeaseTakeoverAcrossStores(t *testing.T) {
	t.Parallel()
	a, b, _ := twoStores(t)
	seed(t, a, "acc")
	ctx := context.Background()
	if _, err := a.EnqueueBatch(ctx, []store.NewMessage{newMsg("m1", "acc"), newMsg("m2", "acc")}, base); err != nil {
		t.Fatalf("EnqueueBatch: %v", err)
	}
	req := func(owner string, at time.Duration) store.ClaimRequest {
		return store.ClaimRequest{Owner: owner, Now: base.Add(at), Lease: 30 * time.Second, Limit: 10, PerAccount: 10}
	}
	dead, err := a.Claim(ctx, req("a", 0))
	if err != nil || len(dead) != 2 {
		t.Fatalf("a's Claim = %d claims, %v; want 2", len(dead), err)
	}
	if got, err := b.Claim(ctx, req("b", 29*time.Second)); err != nil || len(got) != 0 {
		t.Fatalf("b's Claim while a's lease is live = %d claims, %v; want none", len(got), err)
	}
	next, ok, err := b.NextDue(ctx, base.Add(29*time.Second))
	if err != nil || !ok || !next.Equal(base.Add(30*time.Second)) {
		t.Errorf("b's NextDue = %s, %v, %v; want the lease expiry %s", next, ok, err, base.Add(30*time.Second))
	}
	taken, err := b.Claim(ctx, req("b", 30*time.Second))
	if err != nil || len(taken) != 2 {
		t.Fatalf("b's Claim at lease expiry = %d claims, %v; want both", len(taken), err)
	}
	for _, c := range taken {
		if c.Message.LeaseOwner != "b" || c.Message.Attempt != 2 {
			t.Errorf("taken over %s: owner %q attempt %d, want b and 2", c.Message.ID, c.Message.LeaseOwner, c.Message.Attempt)
		}
	}
	err = a.RecordOutcome(ctx, store.Outcome{MessagePK: dead[0].Message.PK, Owner: "a", Attempt: dead[0].Message.Attempt,
		Kind: store.OutcomeSent, At: base.Add(31 * time.Second)})
	if !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("the dead owner's late outcome: err %v, want ErrLeaseLost", err)
	}
	for _, c := range taken {
		if err := b.RecordOutcome(ctx, store.Outcome{MessagePK: c.Message.PK, Owner: "b", Attempt: c.Message.Attempt,
			Kind: store.OutcomeSent, At: base.Add(32 * time.Second)}); err != nil {
			t.Errorf("the new owner's outcome for %s: %v", c.Message.ID, err)
		}
	}
	recs, err := a.ListMessages(ctx, store.MessageFilter{TenantID: "t1", IncludeHistory: true}, base)
	if err != nil {
		t.Fatalf("ListMessages: %v", err)
	}
	for _, r := range recs {
		if r.FinalAt == nil || len(r.History) != 1 || r.History[0].Type != store.EventSent {
			t.Errorf("%s: final %v history %v, want sent once", r.ID, r.FinalAt, r.History)
		}
	}
}

// Reservations racing from two instances grant exactly the limit in a window.
func TestRateLimitExactAcrossStores(t *testing.T) {
	t.Parallel()
	const perStore, limit = 30, 7
	a, b, _ := twoStores(t)
	seed(t, a, "acc")
	ctx := context.Background()
	for w, now := range []time.Time{base.Add(5 * time.Second), base.Add(65 * time.Second)} {
		var (
			granted atomic.Int32
			wg      sync.WaitGroup
			start   = make(chan struct{})
		)
		for _, s := range []*postgres.Store{a, b} {
			for range perStore {
				wg.Go(func() {
					<-start
					d, err := s.ReserveRate(ctx, store.RateRequest{TenantID: "t1", AccountID: "acc", Now: now,
						PerMinute: limit, PerHour: 1000, PerDay: 10000})
					if err != nil {
						t.Errorf("ReserveRate: %v", err)
						return
					}
					if d.OK {
						granted.Add(1)
					} else if d.Window != "minute" {
						t.Errorf("denied by %q, want minute", d.Window)
					}
				})
			}
		}
		close(start)
		wg.Wait()
		if g := granted.Load(); g != limit {
			t.Errorf("window %d: %d reservations from 2 stores against limit %d granted %d, want exactly %d",
				w, 2*perStore, limit, g, limit)
		}
		for name, s := range map[string]*postgres.Store{"a": a, "b": b} {
			u, err := s.RateUsage(ctx, "t1", "acc", now)
			if err != nil || u.Minute != limit || u.Hour != limit*(w+1) {
				t.Errorf("store %s RateUsage in window %d = %+v, %v; want minute %d hour %d", name, w, u, err, limit, limit*(w+1))
			}
		}
	}
}

// Exactly one of many instances racing for a tenant's report lease gets it.
func TestReportLeaseExclusiveAcrossStores(t *testing.T) {
	t.Parallel()
	a, b, _ := twoStores(t)
	seed(t, a)
	ctx := context.Background()
	for round := range 5 {
		now := base.Add(time.Duration(round) * time.Minute)
		var (
			winners sync.Map
			n       atomic.Int32
			wg      sync.WaitGroup
			start   = make(chan struct{})
		)
		for si, s := range []*postgres.Store{a, b} {
			for g := range 8 {
				owner := fmt.Sprintf("round%d-store%d-%d", round, si, g)
				wg.Go(func() {
					<-start
					ok, err := s.AcquireReportLease(ctx, "t1", owner, now, now.Add(30*time.Second))
					if err != nil {
						t.Errorf("AcquireReportLease(%s): %v", owner, err)
					}
					if ok {
						n.Add(1)
						winners.Store(owner, true)
					}
				})
			}
		}
		close(start)
		wg.Wait()
		if n.Load() != 1 {
			var names []string
			winners.Range(func(k, _ any) bool { names = append(names, k.(string)); return true })
			t.Errorf("round %d: %d owners got the lease (%v), want exactly 1", round, n.Load(), names)
		}
	}
}

// Overlapping batches from two instances (same ids, opposite orders) all
// succeed and leave one message per id.
func TestConcurrentOverlappingEnqueue(t *testing.T) {
	t.Parallel()
	const ids, writers = 200, 6
	a, b, _ := twoStores(t)
	seed(t, a, "acc")
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range writers {
		s := []*postgres.Store{a, b}[w%2]
		wg.Go(func() {
			items := make([]store.NewMessage, ids)
			for i := range items {
				n := i
				if w%2 == 1 {
					n = ids - 1 - i // opposite lock order
				}
				items[i] = newMsg(fmt.Sprintf("m%03d", n), "acc")
			}
			res, err := s.EnqueueBatch(ctx, items, base.Add(time.Duration(w)*time.Second))
			if err != nil {
				t.Errorf("writer %d: EnqueueBatch: %v", w, err)
				return
			}
			for i, r := range res {
				if r.Status != store.Queued || r.PK == "" {
					t.Errorf("writer %d item %d: %+v, want Queued with a pk", w, i, r)
				}
			}
		})
	}
	wg.Wait()
	if n, err := a.CountUnprocessed(ctx); err != nil || n != ids {
		t.Errorf("CountUnprocessed = %d, %v; want %d (one message per id)", n, err, ids)
	}
}

// Instances started together on a fresh schema migrate it once, in turn.
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	t.Parallel()
	dsn := pgtest.Schema(t, pgtest.DSN(t))
	var wg sync.WaitGroup
	stores := make([]*postgres.Store, 3)
	for i := range stores {
		wg.Go(func() {
			s, err := postgres.Open(context.Background(), dsn, postgres.Options{MaxConns: 2})
			if err != nil {
				t.Errorf("Open %d: %v", i, err)
				return
			}
			stores[i] = s
		})
	}
	wg.Wait()
	for _, s := range stores {
		if s == nil {
			continue
		}
		if _, err := s.UpsertTenant(context.Background(), store.Tenant{ID: "t1", Active: true}); err != nil {
			t.Errorf("UpsertTenant on a concurrently opened store: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	var applied int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM goose_db_version WHERE version_id > 0`).Scan(&applied); err != nil {
		t.Fatalf("read goose_db_version: %v", err)
	}
	files, _ := filepath.Glob("migrations/*.sql")
	if applied != len(files) || applied == 0 {
		t.Errorf("goose_db_version holds %d applied migrations, want %d (each applied once)", applied, len(files))
	}
}

func TestOpenRejectsBadDSN(t *testing.T) {
	t.Parallel()
	for _, dsn := range []string{"", "postgres://user:hunter2@[::1", "postgres://127.0.0.1:1/x?sslmode=disable&connect_timeout=2"} {
		_, err := postgres.Open(context.Background(), dsn, postgres.Options{})
		if err == nil {
			t.Errorf("Open(%q) succeeded, want an error", dsn)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Open error %q reveals the password", err)
		}
	}
}

// notifications counts wake calls and lets a test wait for the next one.
type notifications struct{ ch chan struct{} }

func newNotifications() *notifications { return &notifications{ch: make(chan struct{}, 64)} }

func (n *notifications) wake() {
	select {
	case n.ch <- struct{}{}:
	default:
	}
}

// drain forgets wake-ups received so far.
func (n *notifications) drain() {
	for {
		select {
		case <-n.ch:
		default:
			return
		}
	}
}

// await waits, with a generous deadline, for a wake-up.
func (n *notifications) await(t *testing.T, what string) {
	t.Helper()
	select {
	case <-n.ch:
	case <-time.After(20 * time.Second):
		t.Fatalf("no wake-up within 20s after %s", what)
	}
}

// listenOn runs b.Listen until the test ends and waits until its LISTEN is
// registered (visible in pg_stat_activity under the given application name).
func listenOn(t *testing.T, s *postgres.Store, admin *pgx.Conn, appName string) *notifications {
	t.Helper()
	n := newNotifications()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Listen(ctx, n.wake) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Listen returned %v after its context ended, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Listen did not return after its context ended")
		}
	})
	waitListening(t, admin, appName)
	return n
}

// listenerPID is the backend pid of the LISTEN connection, 0 if none yet.
func listenerPID(t *testing.T, admin *pgx.Conn, appName string) int {
	t.Helper()
	var pid int
	err := admin.QueryRow(context.Background(), `
SELECT pid FROM pg_stat_activity
WHERE application_name = $1 AND query = 'LISTEN mailproxy_work' AND state = 'idle'
LIMIT 1`, appName).Scan(&pid)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		t.Fatalf("pg_stat_activity: %v", err)
	}
	return pid
}

func waitListening(t *testing.T, admin *pgx.Conn, appName string) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if pid := listenerPID(t, admin, appName); pid != 0 {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("the listener did not LISTEN within 20s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// An enqueue, an activate or a run-now on one instance wakes a Listen on
// another; a listener whose connection is killed reconnects and wakes again.
func TestListenWakesOtherStore(t *testing.T) {
	t.Parallel()
	dsn := pgtest.Schema(t, pgtest.DSN(t))
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", "mp-listener-test")
	u.RawQuery = q.Encode()
	a, b := openStore(t, dsn), openStore(t, u.String())
	seed(t, a, "acc")
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer admin.Close(ctx)

	n := listenOn(t, b, admin, "mp-listener-test")

	if _, err := a.EnqueueBatch(ctx, []store.NewMessage{newMsg("m1", "acc")}, base); err != nil {
		t.Fatalf("EnqueueBatch: %v", err)
	}
	n.await(t, "an enqueue on the other store")

	if _, err := a.Suspend(ctx, "t1", nil); err != nil {
		t.Fatalf("Suspend: %v", err)
	}
	n.drain()
	if _, err := a.Activate(ctx, "t1", nil); err != nil {
		t.Fatalf("Activate: %v", err)
	}
	n.await(t, "an activate on the other store")

	n.drain()
	if err := a.SignalWork(ctx); err != nil {
		t.Fatalf("SignalWork: %v", err)
	}
	n.await(t, "SignalWork on the other store")

	// Kill the listener's connection: it reconnects (and wakes once, as it
	// may have missed notifications), then hears the next enqueue.
	pid := listenerPID(t, admin, "mp-listener-test")
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatalf("pg_terminate_backend: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if p := listenerPID(t, admin, "mp-listener-test"); p != 0 && p != pid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the listener did not reconnect within 20s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	n.await(t, "the reconnect")
	if _, err := a.EnqueueBatch(ctx, []store.NewMessage{newMsg("m2", "acc")}, base); err != nil {
		t.Fatalf("EnqueueBatch: %v", err)
	}
	n.await(t, "an enqueue after the listener reconnected")
}
