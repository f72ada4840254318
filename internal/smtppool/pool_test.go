package smtppool_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailproxy/mailproxy/internal/smtppool"
	"github.com/mailproxy/mailproxy/internal/testclock"
	"github.com/mailproxy/mailproxy/internal/testsmtp"
)

type fixture struct {
	srv   *testsmtp.Server
	pool  *smtppool.Pool
	clock *testclock.Clock
	key   smtppool.Key
	dials int
	mu    sync.Mutex
}

func setup(t *testing.T, opts smtppool.Options) *fixture {
	t.Helper()
	f := &fixture{
		srv:   testsmtp.Start(t, testsmtp.Options{}),
		clock: testclock.New(time.Unix(1_700_000_000, 0)),
		key:   smtppool.Key{Account: "t\x00a", Host: "127.0.0.1", TLSMode: "plain"},
	}
	opts.Now = f.clock.Now
	f.pool = smtppool.New(opts)
	t.Cleanup(func() { _ = f.pool.Close(context.Background()) })
	return f
}

func (f *fixture) dial(ctx context.Context) (*smtp.Client, *smtppool.Guard, error) {
	f.mu.Lock()
	f.dials++
	f.mu.Unlock()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", f.srv.Addr())
	if err != nil {
		return nil, nil, err
	}
	g := smtppool.NewGuard(nc)
	c := smtp.NewClient(g)
	c.CommandTimeout = 5 * time.Second
	if err := c.Hello("pooltest"); err != nil {
		_ = c.Close()
		return nil, nil, err
	}
	return c, g, nil
}

func (f *fixture) get(t *testing.T, maxAge time.Duration) *smtppool.Conn {
	t.Helper()
	c, err := f.pool.Get(t.Context(), f.key, maxAge, f.dial)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	return c
}

// transact sends one message on c and resets it, as delivery does.
func transact(t *testing.T, c *smtppool.Conn) {
	t.Helper()
	cl := c.Client()
	if err := cl.SendMail("a@x", []string{"b@x"}, strings.NewReader("Subject: x\r\n\r\nx\r\n")); err != nil {
		t.Fatalf("send: %v", err)
	}
	if err := cl.Reset(); err != nil {
		t.Fatalf("rset: %v", err)
	}
}

func TestReuseOneConnection(t *testing.T) {
	t.Parallel()
	f := setup(t, smtppool.Options{})
	for i := range 5 {
		c := f.get(t, 0)
		if c.Reused() != (i > 0) {
			t.Errorf("message %d: reused = %v", i, c.Reused())
		}
		transact(t, c)
		f.pool.Put(c)
	}
	if got := f.srv.Connections(); got != 1 {
		t.Errorf("server saw %d connections for 5 messages, want 1", got)
	}
	if got := f.srv.Commands("NOOP"); got != 0 {
		t.Errorf("hot reuse sent %d NOOPs", got)
	}
	if f.pool.Open(f.key) != 1 || f.pool.Idle(f.key) != 1 {
		t.Errorf("open %d idle %d", f.pool.Open(f.key), f.pool.Idle(f.key))
	}
}

func TestSizeAndWaitTimeout(t *testing.T) {
	t.Parallel()
	f := setup(t, smtppool.Options{Size: 2, WaitTimeout: 50 * time.Millisecond})
	a, b := f.get(t, 0), f.get(t, 0)
	_, err := f.pool.Get(t.Context(), f.key, 0, f.dial)
	if !errors.Is(err, smtppool.ErrWaitTimeout) || err.Error() != "Timeout waiting for SMTP connection" {
		t.Fatalf("third get: %v, want ErrWaitTimeout", err)
	}

	// A waiter gets the connection another caller puts back.
	f2 := setup(t, smtppool.Options{Size: 1, WaitTimeout: time.Minute})
	held := f2.get(t, 0)
	got := make(chan *smtppool.Conn, 1)
	go func() {
		c, err := f2.pool.Get(context.Background(), f2.key, 0, f2.dial)
		if err != nil {
			t.Errorf("waiting get: %v", err)
		}
		got <- c
	}()
	f2.pool.Put(held)
	if c := <-got; c != held {
		t.Error("waiter did not receive the returned connection")
	}

	// A cancelled context ends the wait.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := f2.pool.Get(ctx, f2.key, 0, f2.dial); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled get: %v", err)
	}
	f.pool.Put(a)
	f.pool.Put(b)
}

func TestIdleCheck(t *testing.T) {
	t.Parallel()
	f := setup(t, smtppool.Options{})
	c := f.get(t, 0)
	transact(t, c)
	f.pool.Put(c)

	f.clock.Advance(6 * time.Second)
	c2 := f.get(t, 0)
	if c2 != c || f.srv.Commands("NOOP") != 1 {
		t.Fatalf("after 6 s idle: same=%v NOOPs=%d, want the same connection checked once", c2 == c, f.srv.Commands("NOOP"))
	}
	f.pool.Put(c2)

	// The server drops everything; the check fails and a fresh dial follows.
	if err := f.srv.Down(); err != nil {
		t.Fatal(err)
	}
	if err := f.srv.Up(); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(6 * time.Second)
	c3 := f.get(t, 0)
	if c3 == c {
		t.Fatal("dead connection reused")
	}
	transact(t, c3)
	f.pool.Put(c3)
	if f.srv.Connections() != 2 || f.pool.Open(f.key) != 1 {
		t.Errorf("connections %d open %d, want 2 and 1", f.srv.Connections(), f.pool.Open(f.key))
	}
}

func TestDiscardIsNotReused(t *testing.T) {
	t.Parallel()
	f := setup(t, smtppool.Options{})
	c := f.get(t, 0)
	f.pool.Discard(c)
	if f.pool.Open(f.key) != 0 {
		t.Errorf("open after discard = %d", f.pool.Open(f.key))
	}
	c2 := f.get(t, 0)
	if c2 == c || c2.Reused() {
		t.Error("discarded connection came back")
	}
	f.pool.Put(c2)
}

func TestAgeingAndReap(t *testing.T) {
	t.Parallel()
	f := setup(t, smtppool.Options{})
	ttl := 10 * time.Second
	c := f.get(t, ttl)
	f.pool.Put(c)
	f.clock.Advance(4 * time.Second)
	c = f.get(t, ttl) // young enough, and idle under 5 s: no check
	f.pool.Put(c)
	f.clock.Advance(7 * time.Second) // 11 s old
	c2 := f.get(t, ttl)
	if c2 == c {
		t.Fatal("connection older than its TTL reused")
	}
	eventually(t, "aged connection closed with QUIT", func() bool { return f.srv.Commands("QUIT") == 1 })

	// Put on an aged connection closes it instead of keeping it.
	f.clock.Advance(11 * time.Second)
	f.pool.Put(c2)
	if f.pool.Open(f.key) != 0 {
		t.Errorf("aged connection kept on Put: open=%d", f.pool.Open(f.key))
	}

	// Reap closes connections idle past IdleTimeout.
	c3 := f.get(t, 0)
	f.pool.Put(c3)
	f.pool.Reap(t.Context())
	if f.pool.Idle(f.key) != 1 {
		t.Fatal("reap closed a fresh connection")
	}
	f.clock.Advance(61 * time.Second)
	f.pool.Reap(t.Context())
	if f.pool.Open(f.key) != 0 {
		t.Errorf("idle connection survived reap: open=%d", f.pool.Open(f.key))
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	f := setup(t, smtppool.Options{})
	a, b := f.get(t, 0), f.get(t, 0)
	f.pool.Put(a)
	if err := f.pool.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if f.srv.Commands("QUIT") != 1 {
		t.Errorf("QUITs after close = %d, want 1 (the idle one)", f.srv.Commands("QUIT"))
	}
	f.pool.Put(b) // returned after Close: closed too
	if f.srv.Commands("QUIT") != 2 {
		t.Errorf("QUITs after late put = %d, want 2", f.srv.Commands("QUIT"))
	}
	if _, err := f.pool.Get(t.Context(), f.key, 0, f.dial); !errors.Is(err, smtppool.ErrClosed) {
		t.Errorf("get after close: %v", err)
	}
}

func TestRunStopsWithContext(t *testing.T) {
	t.Parallel()
	f := setup(t, smtppool.Options{ReapInterval: time.Millisecond, IdleTimeout: time.Nanosecond})
	c := f.get(t, 0)
	f.pool.Put(c)
	f.clock.Advance(time.Second)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.pool.Run(ctx) }()
	eventually(t, "Run reaps the idle connection", func() bool { return f.pool.Open(f.key) == 0 })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func TestGuardInterrupts(t *testing.T) {
	t.Parallel()
	srv := testsmtp.Start(t, testsmtp.Options{Faults: []testsmtp.Fault{testsmtp.Stall(testsmtp.StageMail)}})
	nc, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	g := smtppool.NewGuard(nc)
	c := smtp.NewClient(g)
	defer c.Close()
	if err := c.Hello("x"); err != nil {
		t.Fatal(err)
	}

	// The phase limit cuts go-smtp's own 5-minute command timeout short.
	stop := g.Within(t.Context(), 50*time.Millisecond)
	err = c.Mail("a@x", nil)
	stop()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("stalled MAIL under a 50 ms limit: %v", err)
	}

	// Limit re-caps a running phase.
	nc3, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	g3 := smtppool.NewGuard(nc3)
	c3 := smtp.NewClient(g3)
	defer c3.Close()
	if err := c3.Hello("x"); err != nil {
		t.Fatal(err)
	}
	stop = g3.Within(t.Context(), 0)
	g3.Limit(50 * time.Millisecond)
	err = c3.Mail("a@x", nil)
	stop()
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("stalled MAIL after Limit: %v", err)
	}

	// A cancelled context interrupts too.
	nc2, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	g2 := smtppool.NewGuard(nc2)
	c2 := smtp.NewClient(g2)
	defer c2.Close()
	if err := c2.Hello("x"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	stop = g2.Within(ctx, 0)
	defer stop()
	time.AfterFunc(20*time.Millisecond, cancel)
	if err := c2.Mail("a@x", nil); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("stalled MAIL after cancel: %v", err)
	}
}

func TestDiscardWakesWaiter(t *testing.T) {
	t.Parallel()
	f := setup(t, smtppool.Options{Size: 1, WaitTimeout: time.Minute})
	held := f.get(t, 0)
	got := make(chan *smtppool.Conn, 1)
	go func() {
		c, err := f.pool.Get(context.Background(), f.key, 0, f.dial)
		if err != nil {
			t.Errorf("waiting get: %v", err)
		}
		got <- c
	}()
	f.pool.Discard(held)
	c := <-got
	if c == nil || c == held {
		t.Fatal("waiter did not get a fresh connection after Discard")
	}
	f.pool.Put(c)
}

func TestConcurrentUseStaysWithinSize(t *testing.T) {
	t.Parallel()
	f := setup(t, smtppool.Options{Size: 2, WaitTimeout: time.Minute})
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				c, err := f.pool.Get(t.Context(), f.key, 0, f.dial)
				if err != nil {
					t.Errorf("get: %v", err)
					return
				}
				if n := f.pool.Open(f.key); n > 2 {
					t.Errorf("open = %d > size 2", n)
				}
				if err := c.Client().SendMail("a@x", []string{"b@x"}, strings.NewReader("x\r\n")); err != nil {
					t.Errorf("send: %v", err)
				}
				f.pool.Put(c)
			}
		}()
	}
	wg.Wait()
	if f.srv.Count() != 60 || f.srv.Connections() > 2 {
		t.Errorf("messages %d over %d connections, want 60 over at most 2", f.srv.Count(), f.srv.Connections())
	}
}

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		<-time.After(5 * time.Millisecond)
	}
}
