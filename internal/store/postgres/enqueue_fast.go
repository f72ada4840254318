package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/store/internal/driver"
)

// enqueueOneRound stores a batch whose (tenant, id) keys are all distinct
// (every single-message request) in one transaction of two round trips:
//
//  1. BEGIN with the tenant and account lookups;
//  2. the upsert, the rejected items, the state of every key the upsert may
//     have left alone, and COMMIT;
//
// then the NOTIFY after the commit (notifyCommitted says why not inside).
// The general path costs four before the NOTIFY (BEGIN, lookups, writes,
// COMMIT), plus one more when an item was left alone.
func (s *Store) enqueueOneRound(ctx context.Context, items []store.NewMessage, pks []string, round []int, now time.Time) ([]store.EnqueueResult, error) {
	var results []store.EnqueueResult
	var err error
	reconnected := false
	for attempt := range txAttempts {
		results, err = s.enqueueOneRoundOnce(ctx, items, pks, round, now)
		if s.reconnectOnce(ctx, err, &reconnected) {
			continue
		}
		if !retryable(err) || ctx.Err() != nil {
			break
		}
		s.log.Debug("postgres: enqueue retried", "sqlstate", sqlState(err), "attempt", attempt+1)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: enqueue: %w", duplicate(err))
	}
	if anyStored(results) {
		s.notifyCommitted(ctx)
	}
	return results, nil
}

// anyStored reports whether an item was queued, or rejected and stored with
// an error event (which wakes the others' report loops).
func anyStored(results []store.EnqueueResult) bool {
	for _, r := range results {
		if r.Status == store.Queued || (r.Status == store.Rejected && r.PK != "") {
			return true
		}
	}
	return false
}

func (s *Store) enqueueOneRoundOnce(ctx context.Context, items []store.NewMessage, pks []string, round []int, now time.Time) (results []store.EnqueueResult, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			rollbackOrClose(conn)
		}
		// A connection left inside a transaction is destroyed by Release.
		conn.Release()
	}()

	b := &pgx.Batch{}
	b.Queue("BEGIN")
	tenants, accounts := queueExisting(b, items)
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("look up tenants and accounts: %w", err)
	}

	results = make([]store.EnqueueResult, len(items))
	queue, reject := classifyRound(items, pks, round, tenants, accounts, results)
	b = &pgx.Batch{}
	queueWrites(b, queue, reject, ms(now), results)
	if len(queue.index) > 0 {
		// Rows of keys the upsert returned are its own: only the others
		// (processed, or under a live claim) are read here.
		b.Queue(qMessageBlocks, queue.tenant, queue.id).Query(func(rows pgx.Rows) error {
			var (
				tenant, id, pk string
				processed      bool
			)
			_, err := pgx.ForEachRow(rows, []any{&tenant, &id, &pk, &processed}, func() error {
				k := msgKey{tenant, id}
				if !queue.returned[k] {
					results[queue.byKey[k]] = store.EnqueueResult{Status: driver.UnchangedStatus(processed), PK: pk}
				}
				return nil
			})
			return err
		})
	}
	b.Queue("COMMIT")
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return nil, err
	}
	if tx := conn.Conn().PgConn().TxStatus(); tx != 'I' {
		// COMMIT answered but the session is still in a (failed) transaction.
		return nil, fmt.Errorf("enqueue: commit left the transaction in state %q", tx)
	}
	return results, nil
}

// rollbackOrClose ends a failed transaction on conn, or closes conn when
// even that fails, so it never returns to the pool mid-transaction.
func rollbackOrClose(conn *pgxpool.Conn) {
	if conn.Conn().PgConn().TxStatus() == 'I' {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, "ROLLBACK"); err != nil {
		_ = conn.Conn().Close(ctx)
	}
}
