package attach

import (
	"sync"
)

// flights makes concurrent requests for the same cache key share one fetch.
type flights struct {
	mu sync.Mutex
	m  map[string]*flight
}

type flight struct {
	done    chan struct{}
	data    []byte
	err     *Error
	waiters int // followers that joined; guarded by flights.mu
}

// join returns the flight running for key, or starts one: then lead is true
// and the caller must run the fetch and call land.
func (g *flights) join(key string) (fl *flight, lead bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if fl, ok := g.m[key]; ok {
		fl.waiters++
		return fl, false
	}
	if g.m == nil {
		g.m = map[string]*flight{}
	}
	fl = &flight{done: make(chan struct{})}
	g.m[key] = fl
	return fl, true
}

// land publishes the leader's result and lets the next request start anew.
func (g *flights) land(key string, fl *flight, data []byte, err *Error) {
	fl.data, fl.err = data, err
	g.mu.Lock()
	delete(g.m, key)
	g.mu.Unlock()
	close(fl.done)
}

// waiting returns how many followers joined the flight running for key.
func (g *flights) waiting(key string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if fl, ok := g.m[key]; ok {
		return fl.waiters
	}
	return 0
}
