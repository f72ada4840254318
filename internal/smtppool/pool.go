// Package smtppool keeps open SMTP client connections per account so that
// consecutive messages skip the dial, TLS handshake, EHLO and AUTH.
//
// How Get picks a connection for a key:
//  1. Take the most recently used idle connection (LIFO, so spare ones age
//     out). One past the account's max age or idle past IdleTimeout is
//     closed instead.
//  2. A connection idle longer than CheckAfter is probed with NOOP
//     (CheckTimeout); if the probe fails it is closed and a new one is
//     dialled in its place.
//  3. With no idle connection and fewer than Size open (idle included),
//     dial a new one.
//  4. Otherwise wait for a Put or Discard, at most WaitTimeout
//     (ErrWaitTimeout) or until ctx ends.
//
// The caller returns every connection: Put after a healthy transaction
// (already reset with RSET), Discard after a network error, a timeout or a
// 421. Run reaps idle and aged connections in the background; Close sends
// QUIT to all.
package smtppool

import (
	"context"
	"errors"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Key identifies one pool: connections are shared only between messages
// with the same key.
type Key struct {
	Account      string // tenant and account id
	Host         string
	Port         int
	User         string
	PasswordHash string // hex SHA-256, never the password
	TLSMode      string // e.g. "implicit", "starttls", "auto", "plain"
}

// Options configure a Pool; zero fields take the defaults in brackets.
type Options struct {
	Size         int           // open connections per key, idle included [5]
	WaitTimeout  time.Duration // longest wait for a free slot [30s]
	CheckAfter   time.Duration // idle time after which NOOP checks a connection [5s]
	CheckTimeout time.Duration // the NOOP's limit [5s]
	IdleTimeout  time.Duration // idle connections close after this [60s]
	ReapInterval time.Duration // how often Run reaps [5s]
	QuitTimeout  time.Duration // QUIT's limit on close [5s]
	// Now is the clock; default time.Now. Tests move it to age connections.
	Now    func() time.Time
	Logger *slog.Logger
}

func (o *Options) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if o.Size <= 0 {
		o.Size = 5
	}
	def(&o.WaitTimeout, 30*time.Second)
	def(&o.CheckAfter, 5*time.Second)
	def(&o.CheckTimeout, 5*time.Second)
	def(&o.IdleTimeout, 60*time.Second)
	def(&o.ReapInterval, 5*time.Second)
	def(&o.QuitTimeout, 5*time.Second)
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// ErrWaitTimeout: every connection of the key stayed busy for WaitTimeout.
var ErrWaitTimeout error = waitTimeoutError{}

// The contract fixes this text (delivery.md §4), capital letter included.
type waitTimeoutError struct{}

func (waitTimeoutError) Error() string   { return "Timeout waiting for SMTP connection" }
func (waitTimeoutError) Timeout() bool   { return true }
func (waitTimeoutError) Temporary() bool { return true }

// ErrClosed is returned by Get after Close.
var ErrClosed = errors.New("smtppool: pool closed")

// DialFunc opens a ready connection (greeted, TLS and AUTH done), with the
// client built on top of the returned Guard.
type DialFunc func(ctx context.Context) (*smtp.Client, *Guard, error)

// Conn is one pooled connection, owned by the caller between Get and Put
// or Discard.
type Conn struct {
	client   *smtp.Client
	guard    *Guard
	key      Key
	created  time.Time
	lastUsed time.Time
	maxAge   time.Duration
	reused   bool
}

// Client is the SMTP client.
func (c *Conn) Client() *smtp.Client { return c.client }

// Reused reports whether the connection served an earlier transaction.
func (c *Conn) Reused() bool { return c.reused }

// Within bounds the next commands by d and ctx (see Guard.Within).
func (c *Conn) Within(ctx context.Context, d time.Duration) (stop func()) {
	return c.guard.Within(ctx, d)
}

// Limit re-caps the current Within phase (see Guard.Limit).
func (c *Conn) Limit(d time.Duration) { c.guard.Limit(d) }

type bucket struct {
	idle    []*Conn
	open    int           // idle + in use + dialling
	waiters int           // callers blocked in Get
	freed   chan struct{} // closed (and replaced) when a slot or idle conn frees up, if anyone waits
}

// Pool is a set of per-key connection pools. Safe for concurrent use.
type Pool struct {
	opts Options

	mu      sync.Mutex
	buckets map[Key]*bucket
	closed  bool
}

// New makes an empty pool; it starts no goroutines.
func New(opts Options) *Pool {
	opts.defaults()
	return &Pool{opts: opts, buckets: make(map[Key]*bucket)}
}

// Get returns a connection for key, reusing an idle one or dialling with
// dial. maxAge (the account's TTL, 0 = none) bounds the connection's life.
func (p *Pool) Get(ctx context.Context, key Key, maxAge time.Duration, dial DialFunc) (*Conn, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, ErrClosed
		}
		b := p.buckets[key]
		if b == nil {
			b = &bucket{freed: make(chan struct{})}
			p.buckets[key] = b
		}
		now := p.opts.Now()
		var stale []*Conn
		var c *Conn
		for len(b.idle) > 0 && c == nil {
			last := b.idle[len(b.idle)-1]
			b.idle = b.idle[:len(b.idle)-1]
			if p.expired(last, now) {
				stale = append(stale, last)
				continue
			}
			c = last
		}
		if len(stale) > 0 {
			b.open -= len(stale)
			p.signalLocked(b)
		}
		gotSlot := c == nil && b.open < p.opts.Size
		if gotSlot {
			b.open++
		}
		wait := b.freed
		if c == nil && !gotSlot {
			b.waiters++
		}
		p.mu.Unlock()

		if len(stale) > 0 {
			// Say goodbye off the caller's path: a dead server must not delay it.
			go p.quitAll(stale)
		}
		if c != nil {
			if now.Sub(c.lastUsed) <= p.opts.CheckAfter || p.check(ctx, c) == nil {
				c.reused = true
				return c, nil
			}
			p.closeConn(c) // a failed check just dials anew, in the same slot
			gotSlot = true
		}
		if gotSlot {
			return p.dial(ctx, key, maxAge, dial)
		}

		if timer == nil {
			timer = time.NewTimer(p.opts.WaitTimeout)
		}
		err := func() error {
			defer p.unwait(b)
			select {
			case <-wait:
				return nil
			case <-timer.C:
				return ErrWaitTimeout
			case <-ctx.Done():
				return ctx.Err()
			}
		}()
		if err != nil {
			return nil, err
		}
	}
}

func (p *Pool) dial(ctx context.Context, key Key, maxAge time.Duration, dial DialFunc) (*Conn, error) {
	client, guard, err := dial(ctx)
	if err != nil {
		p.release(key)
		return nil, err
	}
	now := p.opts.Now()
	return &Conn{client: client, guard: guard, key: key, created: now, lastUsed: now, maxAge: maxAge}, nil
}

// check probes an idle connection with NOOP.
func (p *Pool) check(ctx context.Context, c *Conn) error {
	stop := c.guard.Within(ctx, p.opts.CheckTimeout)
	defer stop()
	return c.client.Noop()
}

// Put returns a healthy connection (reset with RSET) for reuse.
func (p *Pool) Put(c *Conn) {
	p.mu.Lock()
	now := p.opts.Now()
	b := p.buckets[c.key]
	if p.closed || b == nil || (c.maxAge > 0 && now.Sub(c.created) >= c.maxAge) {
		p.releaseLocked(c.key)
		p.mu.Unlock()
		p.quit(context.Background(), c)
		return
	}
	c.lastUsed = now
	b.idle = append(b.idle, c)
	p.signalLocked(b)
	p.mu.Unlock()
}

// Discard closes a connection that must not be reused.
func (p *Pool) Discard(c *Conn) {
	p.release(c.key)
	p.closeConn(c)
}

// Open is the number of open connections for key, idle included.
func (p *Pool) Open(key Key) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if b := p.buckets[key]; b != nil {
		return b.open
	}
	return 0
}

// Idle is the number of idle connections for key.
func (p *Pool) Idle(key Key) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if b := p.buckets[key]; b != nil {
		return len(b.idle)
	}
	return 0
}

// Run reaps idle and aged connections every ReapInterval until ctx ends.
func (p *Pool) Run(ctx context.Context) error {
	t := time.NewTicker(p.opts.ReapInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			p.Reap(ctx)
		}
	}
}

// Reap closes the idle connections that are past their idle timeout or age.
func (p *Pool) Reap(ctx context.Context) {
	p.mu.Lock()
	now := p.opts.Now()
	var stale []*Conn
	for key, b := range p.buckets {
		keep := b.idle[:0]
		for _, c := range b.idle {
			if p.expired(c, now) {
				stale = append(stale, c)
				b.open--
			} else {
				keep = append(keep, c)
			}
		}
		clear(b.idle[len(keep):])
		b.idle = keep
		p.signalLocked(b)
		if b.open == 0 && b.waiters == 0 {
			delete(p.buckets, key)
		}
	}
	p.mu.Unlock()
	for _, c := range stale {
		p.quit(ctx, c)
	}
}

// Close sends QUIT to every idle connection (each within QuitTimeout, all
// within ctx); connections still in use get QUIT when they are returned.
func (p *Pool) Close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	var all []*Conn
	for key, b := range p.buckets {
		all = append(all, b.idle...)
		b.open -= len(b.idle)
		b.idle = nil
		p.signalLocked(b)
		if b.open == 0 && b.waiters == 0 {
			delete(p.buckets, key)
		}
	}
	p.mu.Unlock()

	var wg sync.WaitGroup
	for _, c := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer p.recoverPanic()
			p.quit(ctx, c)
		}()
	}
	wg.Wait()
	return ctx.Err()
}

// quitAll closes connections in the background, each within QuitTimeout.
func (p *Pool) quitAll(conns []*Conn) {
	defer p.recoverPanic()
	for _, c := range conns {
		p.quit(context.Background(), c)
	}
}

func (p *Pool) recoverPanic() {
	if r := recover(); r != nil {
		p.opts.Logger.Error("smtppool: panic in quit", "panic", r, "stack", string(debug.Stack()))
	}
}

func (p *Pool) expired(c *Conn, now time.Time) bool {
	return now.Sub(c.lastUsed) >= p.opts.IdleTimeout ||
		(c.maxAge > 0 && now.Sub(c.created) >= c.maxAge)
}

func (p *Pool) release(key Key) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.releaseLocked(key)
}

func (p *Pool) releaseLocked(key Key) {
	b := p.buckets[key]
	if b == nil {
		return
	}
	b.open--
	p.signalLocked(b)
	if b.open <= 0 && len(b.idle) == 0 && b.waiters == 0 {
		delete(p.buckets, key)
	}
}

func (p *Pool) unwait(b *bucket) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b.waiters--
}

func (p *Pool) signalLocked(b *bucket) {
	if b.waiters == 0 {
		return
	}
	close(b.freed)
	b.freed = make(chan struct{})
}

// quit says goodbye politely, and closes regardless.
func (p *Pool) quit(ctx context.Context, c *Conn) {
	stop := c.guard.Within(ctx, p.opts.QuitTimeout)
	err := c.client.Quit()
	stop()
	if err != nil {
		p.opts.Logger.Debug("smtppool: quit", "host", c.key.Host, "err", err)
		p.closeConn(c)
	}
}

func (p *Pool) closeConn(c *Conn) {
	if err := c.client.Close(); err != nil {
		p.opts.Logger.Debug("smtppool: close", "host", c.key.Host, "err", err)
	}
}
