package queue

import (
	"fmt"
	"time"
)

// RetryPolicy decides what a temporary failure becomes (delivery.md §7).
type RetryPolicy struct {
	MaxRetries int             // GMP_MAX_RETRIES
	Delays     []time.Duration // GMP_RETRY_DELAYS; the last repeats
}

// Delay is the wait before retry number n+1, given n temporary failures so far.
func (p RetryPolicy) Delay(n int) time.Duration {
	if len(p.Delays) == 0 {
		return time.Minute
	}
	if n < 0 {
		n = 0
	}
	if n >= len(p.Delays) {
		n = len(p.Delays) - 1
	}
	return p.Delays[n]
}

// Exhausted reports whether a temporary failure after n earlier ones is final.
func (p RetryPolicy) Exhausted(n int) bool { return n >= p.MaxRetries }

// ExhaustedDescription is the error text of a message out of retries.
func (p RetryPolicy) ExhaustedDescription(desc string) string {
	return fmt.Sprintf("Max retries (%d) exceeded: %s", p.MaxRetries, desc)
}
