package postgres_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/store/postgres"
	"github.com/mailproxy/mailproxy/internal/store/postgres/pgtest"
)

// benchPayload is a realistic normalised payload (about 300 bytes).
var benchPayload = []byte(`{"id":"x","tenant_id":"t1","account_id":"acc1","from":"Sender <sender@example.com>",` +
	`"to":["rcpt@example.com"],"subject":"Your order has shipped","body":"Hello, your order 12345 has shipped ` +
	`and will arrive soon. Thank you for shopping with us.","priority":2}`)

func benchMsg(id string, account string) store.NewMessage {
	return store.NewMessage{TenantID: "t1", ID: id, AccountID: account, Priority: store.PriorityMedium, Payload: benchPayload}
}

// BenchmarkEnqueue measures add-messages writes: 16 concurrent callers, each
// call one transaction of 1 or 100 messages.
func BenchmarkEnqueue(b *testing.B) {
	for _, batch := range []int{1, 100} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s := openStore(b, pgtest.Schema(b, pgtest.DSN(b)))
			seed(b, s, "acc1")
			var seq atomic.Int64
			ctx := context.Background()
			b.SetParallelism(8) // 8 x GOMAXPROCS callers
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				items := make([]store.NewMessage, batch)
				for pb.Next() {
					for i := range items {
						items[i] = benchMsg(fmt.Sprintf("m%d", seq.Add(1)), "acc1")
					}
					if _, err := s.EnqueueBatch(ctx, items, time.Now()); err != nil {
						b.Errorf("EnqueueBatch: %v", err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N*batch)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

// BenchmarkClaim measures claims of 100 rows from a queue of 100,000 (the
// architecture's performance note), by one claimer and by four claimers on
// two pools (two instances). When the queue runs dry, claims are released
// outside the timer.
func BenchmarkClaim(b *testing.B) {
	const queued, limit = 100_000, 100
	dsn := pgtest.Schema(b, pgtest.DSN(b))
	s1, s2 := openStore(b, dsn), openStore(b, dsn)
	seed(b, s1, "acc1", "acc2", "acc3", "acc4")
	ctx := context.Background()
	for start := 0; start < queued; start += 1000 {
		items := make([]store.NewMessage, 1000)
		for i := range items {
			items[i] = benchMsg(fmt.Sprintf("m%06d", start+i), fmt.Sprintf("acc%d", 1+(start+i)%4))
		}
		if _, err := s1.EnqueueBatch(ctx, items, time.UnixMilli(int64(start))); err != nil {
			b.Fatalf("EnqueueBatch: %v", err)
		}
	}
	now := time.UnixMilli(queued + 1)
	release := func(b *testing.B) {
		b.StopTimer()
		if _, err := s1.ReleaseClaims(ctx, ""); err != nil {
			b.Fatalf("ReleaseClaims: %v", err)
		}
		b.StartTimer()
	}
	claimOnce := func(b *testing.B, s *postgres.Store, owner string) int {
		claims, err := s.Claim(ctx, store.ClaimRequest{Owner: owner, Now: now, Lease: time.Hour, Limit: limit, PerAccount: 50})
		if err != nil {
			b.Errorf("Claim: %v", err)
		}
		return len(claims)
	}

	b.Run("claimers=1", func(b *testing.B) {
		release(b)
		var rows int
		start := time.Now()
		for range b.N {
			n := claimOnce(b, s1, "bench")
			if n == 0 {
				release(b)
				n = claimOnce(b, s1, "bench")
			}
			rows += n
		}
		b.ReportMetric(float64(rows)/time.Since(start).Seconds(), "rows/s")
	})
	b.Run("claimers=4,pools=2", func(b *testing.B) {
		release(b)
		var rows, dry atomic.Int64
		var worker atomic.Int64
		start := time.Now()
		b.SetParallelism(2) // 2 x GOMAXPROCS (2) = 4 claimers
		b.RunParallel(func(pb *testing.PB) {
			w := worker.Add(1)
			s := []*postgres.Store{s1, s2}[w%2]
			owner := fmt.Sprintf("bench-%d", w)
			for pb.Next() {
				n := claimOnce(b, s, owner)
				if n == 0 {
					dry.Add(1)
				}
				rows.Add(int64(n))
			}
		})
		b.ReportMetric(float64(rows.Load())/time.Since(start).Seconds(), "rows/s")
		if dry.Load() > 0 {
			b.Logf("%d claims found the queue empty (b.N*%d > %d)", dry.Load(), limit, queued)
		}
	})
}
