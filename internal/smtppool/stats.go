package smtppool

import "sort"

// KeyState is the state of the connections of one pool key, for display.
type KeyState struct {
	Account string // Key.Account: tenant and account id
	Host    string
	Port    int
	Open    int // idle + in use + dialling
	Idle    int
	Waiting int // callers blocked in Get for a free slot
}

// States is a snapshot of every key with open connections or waiters,
// sorted by account, host and port. It never exposes credentials.
func (p *Pool) States() []KeyState {
	p.mu.Lock()
	out := make([]KeyState, 0, len(p.buckets))
	for k, b := range p.buckets {
		if b.open == 0 && b.waiters == 0 && len(b.idle) == 0 {
			continue
		}
		out = append(out, KeyState{Account: k.Account, Host: k.Host, Port: k.Port,
			Open: b.open, Idle: len(b.idle), Waiting: b.waiters})
	}
	p.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Account != b.Account {
			return a.Account < b.Account
		}
		if a.Host != b.Host {
			return a.Host < b.Host
		}
		return a.Port < b.Port
	})
	return out
}
