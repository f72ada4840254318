package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailproxy/mailproxy/internal/attach"
	"github.com/mailproxy/mailproxy/internal/delivery"
	"github.com/mailproxy/mailproxy/internal/metrics"
	"github.com/mailproxy/mailproxy/internal/smtppool"
	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/store/sqlite"
	"github.com/mailproxy/mailproxy/internal/testsmtp"
)

const benchConns = 3

// BenchmarkDelivery measures, in one run, enqueue→SMTP delivery through the
// whole engine (SQLite store, dispatcher, pool, MIME) on one account, and the
// raw ceiling: a plain go-smtp client sending ready-made bytes to the same
// kind of server over the same number of connections.
func BenchmarkDelivery(b *testing.B) {
	b.Run(fmt.Sprintf("raw-ceiling/conns=%d", benchConns), benchRawCeiling)
	b.Run(fmt.Sprintf("engine/conns=%d", benchConns), benchEngine)
}

func benchRawCeiling(b *testing.B) {
	srv := testsmtp.Start(b, testsmtp.Options{Discard: true})
	body := []byte("From: s@example.com\r\nTo: r@example.com\r\nSubject: bench\r\n\r\nhello\r\n")
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	per := (b.N + benchConns - 1) / benchConns
	for c := range benchConns {
		n := min(per, b.N-c*per)
		if n <= 0 {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := smtp.Dial(srv.Addr())
			if err != nil {
				b.Error(err)
				return
			}
			defer cl.Close()
			for range n {
				if err := cl.SendMail("s@example.com", []string{"r@example.com"}, strings.NewReader(string(body))); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

func benchEngine(b *testing.B) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	srv := testsmtp.Start(b, testsmtp.Options{Discard: true})
	if _, err := st.UpsertTenant(ctx, store.Tenant{ID: "t1", Active: true}); err != nil {
		b.Fatal(err)
	}
	noTLS := false
	if err := st.UpsertAccount(ctx, store.Account{TenantID: "t1", ID: "acc", Host: "127.0.0.1", Port: srv.Port(),
		TTL: 300, LimitBehavior: "defer", UseTLS: &noTLS}); err != nil {
		b.Fatal(err)
	}
	// Enqueue outside the timer: this measures delivery, not the API.
	for i := 0; i < b.N; i += 500 {
		var items []store.NewMessage
		for j := i; j < min(i+500, b.N); j++ {
			id := fmt.Sprintf("m%07d", j)
			raw, _ := json.Marshal(store.Payload{ID: id, TenantID: "t1", AccountID: "acc", From: "s@example.com",
				To: []string{"r@example.com"}, Subject: "bench", Body: "hello", Priority: 2})
			items = append(items, store.NewMessage{ID: id, TenantID: "t1", AccountID: "acc", Priority: 2, Payload: raw})
		}
		if _, err := st.EnqueueBatch(ctx, items, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	pool := smtppool.New(smtppool.Options{Size: benchConns})
	defer pool.Close(ctx)
	sender, err := delivery.NewSender(delivery.SenderOptions{Pool: pool})
	if err != nil {
		b.Fatal(err)
	}
	m := metrics.New()
	fetcher, err := attach.New(attach.Options{Metrics: m})
	if err != nil {
		b.Fatal(err)
	}
	d := New(st, sender, fetcher, Options{Owner: "bench", MaxSends: benchConns, MaxSendsPerAccount: benchConns,
		BatchSizePerAccount: 50, Metrics: m})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	b.ResetTimer()
	start := time.Now()
	go func() { done <- d.Run(rctx) }()
	if err := srv.WaitForCount(ctx, b.N); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	<-done
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}
