package smtppool

import (
	"context"
	"net"
	"sync"
	"time"
)

// Guard wraps the network connection under an *smtp.Client so that a phase
// of work can be bounded by a deadline and a context. go-smtp sets its own
// deadline before each command and clears it after; Guard caps those
// deadlines at the phase limit, so writes between commands (the DATA body)
// are bounded too, and a cancelled context forces every deadline into the
// past, interrupting whatever is blocked.
type Guard struct {
	net.Conn

	mu          sync.Mutex
	limit       time.Time // zero: no cap
	interrupted bool
	phase       uint64 // bumped by Within and stop, so a late interruption is void
}

// NewGuard wraps c. Build the TLS layer and the smtp.Client on top of it.
func NewGuard(c net.Conn) *Guard { return &Guard{Conn: c} }

// Within bounds the work until stop is called: every deadline is capped at
// now+d (d <= 0: no cap) and ctx ending interrupts the connection. stop
// must be called once the phase is over.
func (g *Guard) Within(ctx context.Context, d time.Duration) (stop func()) {
	g.mu.Lock()
	g.phase++
	phase := g.phase
	g.interrupted = false
	g.limit = time.Time{}
	if d > 0 {
		g.limit = time.Now().Add(d)
	}
	_ = g.setLocked(time.Time{})
	g.mu.Unlock()

	cancel := context.AfterFunc(ctx, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.phase != phase {
			return // the phase ended before the context did
		}
		g.interrupted = true
		_ = g.Conn.SetDeadline(expired())
	})
	return func() {
		cancel()
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.phase != phase {
			return
		}
		g.phase++
		g.limit = time.Time{}
		g.interrupted = false
		_ = g.Conn.SetDeadline(time.Time{})
	}
}

// Limit re-caps the current phase at now+d (d <= 0: no cap), without
// touching its context; the DATA body uses it to get its own allowance.
func (g *Guard) Limit(d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.limit = time.Time{}
	if d > 0 {
		g.limit = time.Now().Add(d)
	}
	_ = g.setLocked(time.Time{})
}

// effective returns the deadline to apply for a requested one. Callers hold mu.
func (g *Guard) effective(t time.Time) time.Time {
	if g.interrupted {
		return expired()
	}
	if !g.limit.IsZero() && (t.IsZero() || t.After(g.limit)) {
		return g.limit
	}
	return t
}

// setLocked applies t (capped) to both directions; the lock serialises it
// with an interruption so the past deadline cannot be overwritten.
func (g *Guard) setLocked(t time.Time) error { return g.Conn.SetDeadline(g.effective(t)) }

// SetDeadline implements net.Conn, capped by the current phase.
func (g *Guard) SetDeadline(t time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.setLocked(t)
}

// SetReadDeadline implements net.Conn, capped by the current phase.
func (g *Guard) SetReadDeadline(t time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.Conn.SetReadDeadline(g.effective(t))
}

// SetWriteDeadline implements net.Conn, capped by the current phase.
func (g *Guard) SetWriteDeadline(t time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.Conn.SetWriteDeadline(g.effective(t))
}

// expired is a deadline that has always passed.
func expired() time.Time { return time.Unix(1, 0) }
