package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
)

// maxGroup bounds the requests one commit carries, so a leader's own call
// is not held up indefinitely by a long queue behind it.
const maxGroup = 256

// writeFunc is one request's work inside the shared transaction. It must not
// keep w after returning. Results go to variables the caller owns; they are
// used only when the request's error is nil.
type writeFunc func(w *wtx) error

// writeReq is one queued write.
type writeReq struct {
	fn      writeFunc
	relaxed bool // may commit with synchronous=NORMAL (see writeRelaxed)
	err     error
	done    chan struct{} // closed once err is final (committed or failed)
	lead    chan struct{} // closed when this waiter is made leader

	// Guarded by committer.mu.
	taken    bool
	promoted bool
}

// committer implements group commit without a background goroutine: a
// caller that finds no leader becomes it, runs one group of queued requests
// in one transaction, answers them, then hands leadership to the first
// request still queued (or resigns).
type committer struct {
	overloadAfter time.Duration

	mu      sync.Mutex
	queue   []*writeReq
	leading bool
}

// write runs fn in the shared write transaction and returns once the
// transaction holding it has committed (nil) or failed. The commit is
// synchronous=FULL: on stable storage before write returns.
func (s *Store) write(ctx context.Context, fn writeFunc) error {
	return s.submit(ctx, fn, false)
}

// writeRelaxed is write for bookkeeping whose loss on power failure only
// repeats work that is at-least-once anyway (claims, outcomes, report marks):
// its group may commit with synchronous=NORMAL, which in WAL mode still
// survives a process crash (kill -9), and the next FULL commit syncs the log
// under it. A group with any durable request commits FULL.
func (s *Store) writeRelaxed(ctx context.Context, fn writeFunc) error {
	return s.submit(ctx, fn, true)
}

func (s *Store) submit(ctx context.Context, fn writeFunc, relaxed bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c := &s.commit
	r := &writeReq{fn: fn, relaxed: relaxed, done: make(chan struct{}), lead: make(chan struct{})}

	c.mu.Lock()
	c.queue = append(c.queue, r)
	if !c.leading {
		c.leading = true
		r.promoted = true
		close(r.lead)
	}
	c.mu.Unlock()

	timer := time.NewTimer(c.overloadAfter)
	defer timer.Stop()
	select {
	case <-r.done:
		return r.err
	case <-r.lead:
		s.lead()
		<-r.done
		return r.err
	case <-ctx.Done():
		if c.withdraw(r) {
			return ctx.Err()
		}
	case <-timer.C:
		if c.withdraw(r) {
			return fmt.Errorf("sqlite: write waited over %s: %w", c.overloadAfter, store.ErrOverloaded)
		}
	}
	// Taken or promoted: the request runs; wait for its answer.
	select {
	case <-r.done:
	case <-r.lead:
		s.lead()
		<-r.done
	}
	return r.err
}

// withdraw removes r from the queue if no leader has taken or been handed it.
func (c *committer) withdraw(r *writeReq) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.taken || r.promoted {
		return false
	}
	for i, q := range c.queue {
		if q == r {
			c.queue = append(c.queue[:i], c.queue[i+1:]...)
			return true
		}
	}
	return false
}

// lead runs one group (which includes the leader's own request, at the
// queue's head) and passes leadership on.
func (s *Store) lead() {
	c := &s.commit
	c.mu.Lock()
	n := min(len(c.queue), maxGroup)
	group := make([]*writeReq, n)
	copy(group, c.queue[:n])
	c.queue = append(c.queue[:0], c.queue[n:]...)
	for _, r := range group {
		r.taken = true
	}
	c.mu.Unlock()

	s.runGroup(group)

	c.mu.Lock()
	if len(c.queue) > 0 {
		next := c.queue[0]
		next.promoted = true
		close(next.lead)
	} else {
		c.leading = false
	}
	c.mu.Unlock()

	for _, r := range group {
		close(r.done)
	}
}

// runGroup executes the group in one immediate transaction. With more than
// one request each runs under its own SAVEPOINT, so a failing request is
// rolled back alone and the others still commit.
//
// The transaction is driven with plain BEGIN/COMMIT on the dedicated writer
// connection, so the statements prepared on it once are reused by every
// transaction (a database/sql Tx would re-bind them each time).
func (s *Store) runGroup(group []*writeReq) {
	// The transaction serves several callers: none of their contexts may
	// cancel it. busy_timeout bounds the wait for the file lock.
	ctx := context.Background()
	fail := func(err error) {
		for _, r := range group {
			if r.err == nil {
				r.err = err
			}
		}
	}
	w := &wtx{s: s, ctx: ctx}
	if err := s.setSynchronous(ctx, group); err != nil {
		fail(err)
		return
	}
	if _, err := s.wconn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		fail(fmt.Errorf("sqlite: begin: %w", err))
		return
	}
	rollback := func() {
		// A COMMIT that failed on a full disk has rolled back already: that
		// is no news (the callers get the commit's error).
		if _, err := s.wconn.ExecContext(ctx, "ROLLBACK"); err != nil && !strings.Contains(err.Error(), "no transaction is active") {
			s.log.Warn("sqlite rollback", "err", err)
		}
	}
	ok := 0
	if len(group) == 1 {
		r := group[0]
		r.err = w.run(r.fn)
		if r.err == nil {
			ok = 1
		}
	} else {
		for _, r := range group {
			if _, err := s.wconn.ExecContext(ctx, "SAVEPOINT req"); err != nil {
				rollback()
				fail(fmt.Errorf("sqlite: savepoint: %w", err))
				return
			}
			r.err = w.run(r.fn)
			if r.err == nil {
				ok++
			} else if _, err := s.wconn.ExecContext(ctx, "ROLLBACK TO req"); err != nil {
				rollback()
				fail(fmt.Errorf("sqlite: rollback to savepoint: %w", err))
				return
			}
			if _, err := s.wconn.ExecContext(ctx, "RELEASE req"); err != nil {
				rollback()
				fail(fmt.Errorf("sqlite: release savepoint: %w", err))
				return
			}
		}
	}
	if ok == 0 {
		rollback()
		return
	}
	if _, err := s.wconn.ExecContext(ctx, "COMMIT"); err != nil {
		rollback()
		fail(fmt.Errorf("sqlite: commit: %w", err))
	}
}

// setSynchronous puts the writer connection in the mode the group needs
// (FULL if any request is durable), switching only on a change. Only the
// leader touches the connection, so syncRelaxed needs no lock.
func (s *Store) setSynchronous(ctx context.Context, group []*writeReq) error {
	relaxed := true
	for _, r := range group {
		relaxed = relaxed && r.relaxed
	}
	if relaxed == s.syncRelaxed {
		return nil
	}
	mode := "FULL"
	if relaxed {
		mode = "NORMAL"
	}
	if _, err := s.wconn.ExecContext(ctx, "PRAGMA synchronous="+mode); err != nil {
		return fmt.Errorf("sqlite: synchronous=%s: %w", mode, err)
	}
	s.syncRelaxed = relaxed
	return nil
}

// wtx is the shared write transaction as one request sees it.
type wtx struct {
	s   *Store
	ctx context.Context
}

// run calls fn, turning a panic into that request's error so one bad
// request cannot wedge every writer behind it.
func (w *wtx) run(fn writeFunc) (err error) {
	defer func() {
		if p := recover(); p != nil {
			w.s.log.Error("sqlite write panicked", "panic", p)
			err = fmt.Errorf("sqlite: write panicked: %v", p)
		}
	}()
	return fn(w)
}

// prepared returns query's statement, prepared once on the writer connection.
func (w *wtx) prepared(query string) (*sql.Stmt, error) {
	return w.s.writeStmt(w.ctx, query)
}

func (w *wtx) exec(query string, args ...any) (sql.Result, error) {
	st, err := w.prepared(query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(w.ctx, args...)
}

func (w *wtx) query(query string, args ...any) (*sql.Rows, error) {
	st, err := w.prepared(query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(w.ctx, args...)
}

func (w *wtx) queryRow(query string, args ...any) row {
	st, err := w.prepared(query)
	if err != nil {
		return row{err: err}
	}
	return row{r: st.QueryRowContext(w.ctx, args...)}
}

// row is a *sql.Row that can also carry a preparation error.
type row struct {
	r   *sql.Row
	err error
}

func (r row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	return r.r.Scan(dest...)
}

// affected returns RowsAffected or an error.
func affected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// execOne runs a write that must change a row: missing is the error when
// it changed none (an unknown key).
func (w *wtx) execOne(missing error, query string, args ...any) error {
	n, err := affected(w.exec(query, args...))
	if err != nil {
		return err
	}
	if n == 0 {
		return missing
	}
	return nil
}

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }
