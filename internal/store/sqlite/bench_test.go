package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mailproxy/mailproxy/internal/store"
)

// benchPayload is a typical normalised message of about 600 bytes.
func benchPayload(id string) json.RawMessage {
	p := store.Payload{ID: id, TenantID: "t1", AccountID: "a1", From: "Sender <sender@example.com>",
		To: []string{"rcpt@example.com"}, Subject: "Your order has shipped", Body: strings.Repeat("lorem ipsum ", 40),
		Headers: map[string]string{"X-Campaign": "spring"}, Priority: 2}
	b, _ := json.Marshal(p)
	return b
}

// BenchmarkEnqueue measures EnqueueBatch throughput with concurrent callers
// sharing group commits: one b.N iteration is one call.
func BenchmarkEnqueue(b *testing.B) {
	cases := []struct {
		perCall, workers int
		callerPK         bool // the caller sets random (v4) PKs, as the API may
	}{{1, 16, false}, {100, 4, false}, {1, 16, true}, {100, 4, true}}
	for _, bc := range cases {
		name := fmt.Sprintf("batch=%d/workers=%d", bc.perCall, bc.workers)
		if bc.callerPK {
			name += "/pk=v4"
		}
		b.Run(name, func(b *testing.B) {
			s, _ := openTest(b, Options{})
			seed(b, s)
			ctx := context.Background()
			payload := benchPayload("x")
			var next atomic.Int64
			var calls atomic.Int64
			calls.Store(int64(b.N))
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			errs := make(chan error, bc.workers)
			for range bc.workers {
				wg.Go(func() {
					items := make([]store.NewMessage, bc.perCall)
					for calls.Add(-1) >= 0 {
						for i := range items {
							id := fmt.Sprintf("m%d", next.Add(1))
							items[i] = store.NewMessage{TenantID: "t1", ID: id, AccountID: "a1",
								Priority: store.PriorityMedium, Payload: payload}
							if bc.callerPK {
								items[i].PK = uuid.NewString()
							}
						}
						if _, err := s.EnqueueBatch(ctx, items, time.Now()); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N*bc.perCall)/elapsed.Seconds(), "msgs/s")
		})
	}
}

// BenchmarkClaim measures claiming 100 due rows per call from a large queue
// (the partial claim index keeps this flat as the queue drains).
func BenchmarkClaim(b *testing.B) {
	s, _ := openTest(b, Options{})
	seed(b, s)
	ctx := context.Background()
	now := time.Now()
	payload := benchPayload("x")
	total := max(b.N*100, 1000)
	for i := 0; i < total; i += 500 {
		items := make([]store.NewMessage, 0, 500)
		for j := i; j < min(i+500, total); j++ {
			items = append(items, store.NewMessage{TenantID: "t1", ID: fmt.Sprintf("m%d", j), AccountID: "a1",
				Priority: j % 4, Payload: payload})
		}
		if _, err := s.EnqueueBatch(ctx, items, now); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	claimed := 0
	for range b.N {
		c, err := s.Claim(ctx, store.ClaimRequest{Owner: "w", Now: now, Lease: time.Hour, Limit: 100})
		if err != nil {
			b.Fatal(err)
		}
		claimed += len(c)
	}
	b.ReportMetric(float64(claimed)/time.Since(start).Seconds(), "rows/s")
}

// BenchmarkRecordOutcome measures sent outcomes recorded by 16 concurrent
// workers, which share group commits as enqueues do.
func BenchmarkRecordOutcome(b *testing.B) {
	s, _ := openTest(b, Options{})
	seed(b, s)
	ctx := context.Background()
	now := time.Now()
	payload := benchPayload("x")
	var claims []store.Claim
	for i := 0; i < b.N; i += 500 {
		items := make([]store.NewMessage, 0, 500)
		for j := i; j < min(i+500, b.N); j++ {
			items = append(items, store.NewMessage{TenantID: "t1", ID: fmt.Sprintf("m%d", j), AccountID: "a1",
				Priority: store.PriorityMedium, Payload: payload})
		}
		if _, err := s.EnqueueBatch(ctx, items, now); err != nil {
			b.Fatal(err)
		}
		c, err := s.Claim(ctx, store.ClaimRequest{Owner: "w", Now: now, Lease: time.Hour, Limit: len(items)})
		if err != nil {
			b.Fatal(err)
		}
		claims = append(claims, c...)
	}
	var next atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(claims) {
					return
				}
				m := claims[i].Message
				if err := s.RecordOutcome(ctx, store.Outcome{MessagePK: m.PK, Owner: m.LeaseOwner, Attempt: m.Attempt,
					Kind: store.OutcomeSent, At: now, Description: "250 OK"}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(claims))/elapsed.Seconds(), "outcomes/s")
}
