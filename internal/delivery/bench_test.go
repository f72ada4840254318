package delivery_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailproxy/mailproxy/internal/delivery"
	"github.com/mailproxy/mailproxy/internal/smtppool"
	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/testsmtp"
)

// parallel runs work b.N times spread over n goroutines and reports msgs/s.
func parallel(b *testing.B, n int, work func(worker int) error) {
	b.Helper()
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	b.ResetTimer()
	start := time.Now()
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if err := work(w); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkRawCeiling is the sink's ceiling: a bare go-smtp client sending
// a small ready-made message over already open connections, nothing else.
func BenchmarkRawCeiling(b *testing.B) {
	var raw bytes.Buffer
	m, err := delivery.Build(benchPayload(), "bench-pk", nil, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	if _, err := m.WriteTo(&raw); err != nil {
		b.Fatal(err)
	}
	for _, conns := range []int{1, 3} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			srv := testsmtp.Start(b, testsmtp.Options{Discard: true})
			clients := make([]*smtp.Client, conns)
			for i := range clients {
				c, err := smtp.Dial(srv.Addr())
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = c.Close() })
				if err := c.Hello("bench"); err != nil {
					b.Fatal(err)
				}
				clients[i] = c
			}
			parallel(b, conns, func(w int) error {
				return clients[w].SendMail("sender@example.com", []string{"rcpt@example.net"}, bytes.NewReader(raw.Bytes()))
			})
		})
	}
}

// BenchmarkSender is the same traffic through Build and Sender over the
// pool: the per-message cost of mailproxy's SMTP path.
//
// The rset variant sends RSET after every message (ResetAfterSuccess), to
// show what that costs.
func BenchmarkSender(b *testing.B) {
	for _, bc := range []struct {
		senders int
		rset    bool
	}{{1, false}, {3, false}, {1, true}} {
		name := fmt.Sprintf("senders=%d", bc.senders)
		if bc.rset {
			name += "/rset"
		}
		senders := bc.senders
		b.Run(name, func(b *testing.B) {
			srv := testsmtp.Start(b, testsmtp.Options{Discard: true})
			pool := smtppool.New(smtppool.Options{})
			b.Cleanup(func() { _ = pool.Close(context.Background()) })
			sender, err := delivery.NewSender(delivery.SenderOptions{Pool: pool, HeloName: "bench", ResetAfterSuccess: bc.rset})
			if err != nil {
				b.Fatal(err)
			}
			acct := store.Account{TenantID: "t", ID: "a", Host: srv.Host(), Port: srv.Port(), TTL: 300, UseTLS: ptr(false), TLSVerify: true}
			p := benchPayload()
			ctx := context.Background()
			parallel(b, senders, func(int) error {
				m, err := delivery.Build(p, "bench-pk", nil, time.Now())
				if err != nil {
					return err
				}
				_, err = sender.Send(ctx, acct, m)
				return err
			})
			if got := srv.Connections(); got > int64(senders) {
				b.Errorf("%d connections for %d senders", got, senders)
			}
		})
	}
}

func benchPayload() store.Payload {
	return store.Payload{
		ID: "bench", From: "Sender <sender@example.com>", To: []string{"rcpt@example.net"},
		Subject: "benchmark message", Body: "A small plain-text body of a benchmark message.\n",
	}
}

// BenchmarkBuild is the MIME cost of one small message: Build and render.
func BenchmarkBuild(b *testing.B) {
	p := benchPayload()
	now := time.Now()
	for b.Loop() {
		m, err := delivery.Build(p, "bench-pk", nil, now)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := m.WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
