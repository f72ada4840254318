package api

import (
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
)

// Store faults are answered like backpressure (issue 12.8): 503 with
// Retry-After and a detail naming the condition, never a bare 500.
const (
	retryAfterUnavailable = "2"  // a restarting database is back within seconds
	retryAfterFull        = "10" // a full disk needs someone to make room
	// readyHold is how long /ready keeps reporting a write fault after the
	// latest failed write: while writes keep failing it stays not-ready; once
	// a write succeeds (or, for an unreachable database, /ready's own read
	// does) it is ready at once; with no writes at all it tries again after
	// this long.
	readyHold = 5 * time.Second
)

// storeFaultError is the answer to a request that failed on a store fault.
func storeFaultError(f store.Fault, cause error) *apiError {
	after := retryAfterUnavailable
	if f == store.FaultFull {
		after = retryAfterFull
	}
	return &apiError{status: http.StatusServiceUnavailable, detail: f.String() + ", retry later",
		header: http.Header{"Retry-After": {after}}, cause: cause}
}

// storeHealth follows whether the store takes writes, for /ready and for
// logging one line per change of state instead of one per failed request.
type storeHealth struct {
	log *slog.Logger
	now func() time.Time

	faulty atomic.Bool // fast path for succeeded on every write

	mu    sync.Mutex
	fault store.Fault
	since time.Time // the current fault began
	last  time.Time // latest failure
}

// failed records a request (or probe) that failed on fault f.
func (h *storeHealth) failed(f store.Fault, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	h.last = now
	if h.fault == f {
		return
	}
	h.fault, h.since = f, now
	h.faulty.Store(true)
	h.log.Error("store fault: answering 503 with Retry-After until writes succeed", "fault", f.String(), "error", err)
}

// succeeded records a write that worked, ending any fault.
func (h *storeHealth) succeeded() {
	if !h.faulty.Load() {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fault == store.FaultNone {
		return
	}
	h.log.Info("store recovered: writes succeed again", "fault", h.fault.String(),
		"lasted", h.now().Sub(h.since).Round(time.Millisecond).String())
	h.fault = store.FaultNone
	h.faulty.Store(false)
}

// reachable records that the store answered a read: that ends an
// unavailability, not a full disk.
func (h *storeHealth) reachable() {
	if !h.faulty.Load() {
		return
	}
	h.mu.Lock()
	f := h.fault
	h.mu.Unlock()
	if f == store.FaultUnavailable {
		h.succeeded()
	}
}

// current is the fault /ready reports: the latest, while it is recent.
func (h *storeHealth) current() store.Fault {
	if !h.faulty.Load() {
		return store.FaultNone
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.now().Sub(h.last) >= readyHold {
		return store.FaultNone
	}
	return h.fault
}
