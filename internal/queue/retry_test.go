package queue

import (
	"testing"
	"time"
)

func TestRetryPolicy(t *testing.T) {
	t.Parallel()
	p := RetryPolicy{MaxRetries: 5, Delays: []time.Duration{60 * time.Second, 300 * time.Second, 900 * time.Second, 3600 * time.Second, 7200 * time.Second}}
	tests := []struct {
		n         int
		delay     time.Duration
		exhausted bool
	}{
		{0, time.Minute, false},
		{1, 5 * time.Minute, false},
		{2, 15 * time.Minute, false},
		{3, time.Hour, false},
		{4, 2 * time.Hour, false},
		{5, 2 * time.Hour, true},
		{9, 2 * time.Hour, true},
	}
	for _, tt := range tests {
		if got := p.Delay(tt.n); got != tt.delay {
			t.Errorf("Delay(%d) = %v, want %v", tt.n, got, tt.delay)
		}
		if got := p.Exhausted(tt.n); got != tt.exhausted {
			t.Errorf("Exhausted(%d) = %v, want %v", tt.n, got, tt.exhausted)
		}
	}
	// The default schedule's last try lands about 3 h 20 min after the first.
	var total time.Duration
	for n := 0; !p.Exhausted(n); n++ {
		total += p.Delay(n)
	}
	if total != 12060*time.Second { // 60+300+900+3600+7200 s ≈ 3 h 20 min
		t.Errorf("total retry span = %v, want 3h21m0s", total)
	}
	if got := p.ExhaustedDescription("4.4.1 busy (SMTP 451)"); got != "Max retries (5) exceeded: 4.4.1 busy (SMTP 451)" {
		t.Errorf("ExhaustedDescription = %q", got)
	}
}
