package metrics

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// TestPendingCounterSpacesCounts: a burst of wakes costs one count per
// pendingInterval, a slow count spaces the next by pendingCostFactor × its
// duration, and the last count starts after the last wake.
func TestPendingCounterSpacesCounts(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var counts, queued atomic.Int64
		var took atomic.Int64 // how long a count takes, in ns
		m := New()
		p := m.NewPendingCounter(PendingOptions{Count: func(ctx context.Context) (int, error) {
			counts.Add(1)
			time.Sleep(time.Duration(took.Load()))
			return int(queued.Load()), nil
		}})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = p.Run(ctx) }()

		for range 100 { // a burst within one interval
			queued.Add(1)
			p.Wake()
			time.Sleep(time.Millisecond)
		}
		time.Sleep(pendingInterval)
		synctest.Wait()
		if n := counts.Load(); n != 2 {
			t.Errorf("a burst of 100 wakes over 100 ms made %d counts, want 2 (the first at once, one after the burst)", n)
		}
		if got := gauge(t, m); got != 100 {
			t.Errorf("gmp_pending_messages %v after the burst, want 100", got)
		}

		took.Store(int64(100 * time.Millisecond)) // a slow count: the next waits 10 × 100 ms
		p.Wake()
		time.Sleep(300 * time.Millisecond) // the slow count starts (150 ms) and ends
		synctest.Wait()
		before := counts.Load()
		queued.Add(1)
		p.Wake()
		time.Sleep(800 * time.Millisecond) // 950 ms after the slow count started
		synctest.Wait()
		if n := counts.Load(); n != before {
			t.Errorf("counted again %d times within 10 × the last count's duration", n-before)
		}
		time.Sleep(200 * time.Millisecond)
		synctest.Wait()
		if n := counts.Load(); n != before+1 {
			t.Errorf("%d counts after the spaced wake, want %d", n, before+1)
		}
		if got := gauge(t, m); got != 101 {
			t.Errorf("gmp_pending_messages %v, want 101", got)
		}
		cancel()
		<-done
	})
}

func gauge(t *testing.T, m *Metrics) float64 {
	t.Helper()
	var pb dto.Metric
	if err := m.Pending.Write(&pb); err != nil {
		t.Fatal(err)
	}
	return pb.GetGauge().GetValue()
}
