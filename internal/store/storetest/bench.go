package storetest

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
)

// Bench runs the store's hot paths as benchmarks with one workload for every
// driver, so benchstat compares a change's cost per message across commits
// and drivers. One b.N iteration is one message (enqueued, claimed, finished
// or reported). Besides ns/op each reports cpu-µs/msg: this process's CPU
// time (user + system, from getrusage) per message, which a busy machine
// disturbs less than wall time. For PostgreSQL the server's own CPU is not
// in it.
//
// newStore returns a fresh, empty, migrated store and registers its cleanup.
func Bench(b *testing.B, newStore func(tb testing.TB) store.Store) {
	b.Run("Enqueue/batch=1/workers=1", func(b *testing.B) { benchEnqueue(b, newStore(b), 1, 1) })
	b.Run("Enqueue/batch=1/workers=16", func(b *testing.B) { benchEnqueue(b, newStore(b), 1, 16) })
	b.Run("Enqueue/batch=100/workers=4", func(b *testing.B) { benchEnqueue(b, newStore(b), 100, 4) })
	b.Run("Claim/limit=100", func(b *testing.B) { benchClaim(b, newStore(b)) })
	b.Run("RecordOutcome/workers=16", func(b *testing.B) { benchOutcome(b, newStore(b)) })
	b.Run("ReportBatch/size=1000", func(b *testing.B) { benchReport(b, newStore(b)) })
}

// benchPayload is a normalised message with a 256-byte body (about 500
// bytes of JSON), the suite's message.
func benchPayload(id string) json.RawMessage {
	p := store.Payload{ID: id, TenantID: "t1", AccountID: "a1", From: "Sender <sender@example.com>",
		To: []string{"rcpt@example.com"}, Subject: "Your order has shipped", Body: strings.Repeat("lorem ipsum ", 22)[:256],
		Headers: map[string]string{"X-Campaign": "spring"}, Priority: store.PriorityMedium}
	raw, err := json.Marshal(p)
	if err != nil {
		panic(err)
	}
	return raw
}

func benchSeed(b *testing.B, s store.Store) {
	b.Helper()
	ctx := context.Background()
	if _, err := s.UpsertTenant(ctx, store.Tenant{ID: "t1", Active: true}); err != nil {
		b.Fatalf("UpsertTenant: %v", err)
	}
	if err := s.UpsertAccount(ctx, store.Account{TenantID: "t1", ID: "a1", Host: "127.0.0.1", Port: 25, TTL: 300, LimitBehavior: "defer"}); err != nil {
		b.Fatalf("UpsertAccount: %v", err)
	}
}

// cpuClock measures this process's CPU time.
type cpuClock struct{ start time.Duration }

func startCPU() cpuClock { return cpuClock{start: processCPU()} }

// report adds the CPU per message of the n messages since start.
func (c cpuClock) report(b *testing.B, n int) {
	if n > 0 && c.start > 0 {
		b.ReportMetric(float64(processCPU()-c.start)/float64(time.Microsecond)/float64(n), "cpu-µs/msg")
	}
}

// fill enqueues n messages (ids prefix0..) in calls of 500 and returns them
// claimed when claim is set.
func fill(b *testing.B, s store.Store, prefix string, n int, now time.Time, claim bool) []store.Claim {
	b.Helper()
	ctx := context.Background()
	var claims []store.Claim
	for lo := 0; lo < n; lo += 500 {
		items := make([]store.NewMessage, 0, 500)
		for i := lo; i < min(lo+500, n); i++ {
			id := prefix + strconv.Itoa(i)
			items = append(items, store.NewMessage{TenantID: "t1", ID: id, AccountID: "a1",
				Priority: store.PriorityMedium, Payload: benchPayload(id)})
		}
		if _, err := s.EnqueueBatch(ctx, items, now); err != nil {
			b.Fatalf("EnqueueBatch: %v", err)
		}
		if claim {
			c, err := s.Claim(ctx, store.ClaimRequest{Owner: "bench", Now: now, Lease: time.Hour, Limit: len(items)})
			if err != nil {
				b.Fatalf("Claim: %v", err)
			}
			claims = append(claims, c...)
		}
	}
	return claims
}

// parallelMessages runs do over messages 0..n-1 from workers goroutines,
// step messages per call.
func parallelMessages(b *testing.B, n, workers, step int, do func(lo, hi int) error) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for {
				lo := int(next.Add(int64(step))) - step
				if lo >= n {
					return
				}
				if err := do(lo, min(lo+step, n)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

func benchEnqueue(b *testing.B, s store.Store, batch, workers int) {
	benchSeed(b, s)
	ctx := context.Background()
	payload := benchPayload("x")
	b.ResetTimer()
	cpu := startCPU()
	parallelMessages(b, b.N, workers, batch, func(lo, hi int) error {
		items := make([]store.NewMessage, 0, hi-lo)
		for i := lo; i < hi; i++ {
			items = append(items, store.NewMessage{TenantID: "t1", ID: "m" + strconv.Itoa(i), AccountID: "a1",
				Priority: store.PriorityMedium, Payload: payload})
		}
		_, err := s.EnqueueBatch(ctx, items, time.Now())
		return err
	})
	b.StopTimer()
	cpu.report(b, b.N)
}

func benchClaim(b *testing.B, s store.Store) {
	benchSeed(b, s)
	ctx := context.Background()
	now := time.Now()
	fill(b, s, "m", b.N, now, false)
	b.ResetTimer()
	cpu := startCPU()
	claimed := 0
	for claimed < b.N {
		c, err := s.Claim(ctx, store.ClaimRequest{Owner: "bench", Now: now, Lease: time.Hour, Limit: 100, PerAccount: 100})
		if err != nil {
			b.Fatal(err)
		}
		if len(c) == 0 {
			b.Fatalf("claimed %d of %d, then none", claimed, b.N)
		}
		claimed += len(c)
	}
	b.StopTimer()
	cpu.report(b, claimed)
}

func benchOutcome(b *testing.B, s store.Store) {
	benchSeed(b, s)
	ctx := context.Background()
	now := time.Now()
	claims := fill(b, s, "m", b.N, now, true)
	if len(claims) != b.N {
		b.Fatalf("claimed %d of %d", len(claims), b.N)
	}
	b.ResetTimer()
	cpu := startCPU()
	parallelMessages(b, b.N, 16, 1, func(i, _ int) error {
		m := claims[i].Message
		return s.RecordOutcome(ctx, store.Outcome{MessagePK: m.PK, Owner: m.LeaseOwner, Attempt: m.Attempt,
			Kind: store.OutcomeSent, At: now, Description: "250 2.0.0 OK queued"})
	})
	b.StopTimer()
	cpu.report(b, b.N)
}

func benchReport(b *testing.B, s store.Store) {
	benchSeed(b, s)
	ctx := context.Background()
	now := time.Now()
	claims := fill(b, s, "m", b.N, now, true)
	for _, c := range claims {
		m := c.Message
		if err := s.RecordOutcome(ctx, store.Outcome{MessagePK: m.PK, Owner: m.LeaseOwner, Attempt: m.Attempt,
			Kind: store.OutcomeSent, At: now, Description: "250 OK"}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	cpu := startCPU()
	reported := 0
	for reported < b.N {
		events, err := s.UnreportedEvents(ctx, "t1", 1000)
		if err != nil {
			b.Fatal(err)
		}
		if len(events) == 0 {
			b.Fatalf("reported %d of %d, then none left", reported, b.N)
		}
		ids := make([]int64, len(events))
		for i, e := range events {
			ids[i] = e.ID
		}
		if err := s.MarkReported(ctx, ids, now); err != nil {
			b.Fatal(err)
		}
		reported += len(events)
	}
	b.StopTimer()
	cpu.report(b, reported)
}
