package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/store/internal/driver"
)

// messageDest lists the scan destinations of messageCols.
type messageDest struct {
	m                           store.Message
	deferred, final, leaseUntil *int64
	leaseOwner                  *string
	payload                     *string
	created, updated            int64
}

func (d *messageDest) targets() []any {
	return []any{&d.m.PK, &d.m.TenantID, &d.m.ID, &d.m.AccountID, &d.m.Priority, &d.payload, &d.m.BatchCode,
		&d.deferred, &d.final, &d.m.RetryCount, &d.m.RejectedAtEnqueue, &d.leaseOwner, &d.leaseUntil,
		&d.m.Attempt, &d.created, &d.updated}
}

func (d *messageDest) message() store.Message {
	m := d.m
	m.Payload = jsonRaw(d.payload)
	m.DeferredUntil = timePtr(d.deferred)
	m.FinalAt = timePtr(d.final)
	if d.leaseOwner != nil {
		m.LeaseOwner = *d.leaseOwner
	}
	m.LeaseUntil = timePtr(d.leaseUntil)
	m.CreatedAt = fromMS(d.created)
	m.UpdatedAt = fromMS(d.updated)
	return m
}

func scanEvent(sc scanner) (store.Event, error) {
	var (
		e        store.Event
		typ      string
		at       int64
		meta     *string
		reported *int64
	)
	if err := sc.Scan(&e.ID, &e.MessagePK, &e.TenantID, &e.MessageID, &typ, &at, &e.Description, &meta,
		&reported); err != nil {
		return store.Event{}, err
	}
	e.Type = store.EventType(typ)
	e.At = fromMS(at)
	e.Metadata = jsonRaw(meta)
	e.ReportedAt = timePtr(reported)
	return e, nil
}

// msgKey names one message by tenant and client id.
type msgKey struct{ tenantID, id string }

// EnqueueBatch stores the items in one transaction and answers per item, in
// order. Items go to the database in rounds of distinct (tenant, id) keys
// (an id repeated in the batch lands in a later round), each round as two
// multi-row statements: one for queued items, one for rejected ones with
// their error events. When anything was queued or stored as rejected (its
// error event awaits a report), NOTIFY follows the commit (notifyCommitted
// says why not inside the transaction).
func (s *Store) EnqueueBatch(ctx context.Context, items []store.NewMessage, now time.Time) ([]store.EnqueueResult, error) {
	if len(items) == 0 {
		return []store.EnqueueResult{}, nil
	}
	// PKs are chosen once, so a retried transaction writes the same rows.
	pks := make([]string, len(items))
	for i, it := range items {
		pks[i] = it.PK
		if pks[i] == "" {
			pks[i] = driver.NewPK()
		}
	}
	rounds := enqueueRounds(items)
	if len(rounds) == 1 {
		return s.enqueueOneRound(ctx, items, pks, rounds[0], now)
	}
	var (
		results []store.EnqueueResult
		queued  bool
	)
	err := s.tx(ctx, func(tx pgx.Tx) error {
		results = make([]store.EnqueueResult, len(items))
		tenants, accounts, err := existing(ctx, tx, items)
		if err != nil {
			return err
		}
		queued = false
		for _, round := range rounds {
			q, err := enqueueRound(ctx, tx, items, pks, round, tenants, accounts, now, results)
			if err != nil {
				return err
			}
			queued = queued || q
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: enqueue: %w", duplicate(err))
	}
	if queued || anyStored(results) {
		s.notifyCommitted(ctx)
	}
	return results, nil
}

// enqueueRounds groups item indexes so that no round holds one (tenant, id)
// twice; the n-th occurrence of a key goes to round n, keeping request order.
func enqueueRounds(items []store.NewMessage) [][]int {
	seen := map[msgKey]int{}
	var rounds [][]int
	for i, it := range items {
		r := 0
		if it.ID != "" {
			k := msgKey{it.TenantID, it.ID}
			r = seen[k]
			seen[k] = r + 1
		}
		for len(rounds) <= r {
			rounds = append(rounds, nil)
		}
		rounds[r] = append(rounds[r], i)
	}
	return rounds
}

// existing reads which of the items' tenants and (tenant, account) pairs
// exist, in one round trip.
func existing(ctx context.Context, tx pgx.Tx, items []store.NewMessage) (map[string]bool, map[msgKey]bool, error) {
	b := &pgx.Batch{}
	tenants, accounts := queueExisting(b, items)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, nil, fmt.Errorf("look up tenants and accounts: %w", err)
	}
	return tenants, accounts, nil
}

// queueExisting adds the lookups of the items' tenants and (tenant,
// account) pairs to b; the maps fill as b's results are read.
func queueExisting(b *pgx.Batch, items []store.NewMessage) (map[string]bool, map[msgKey]bool) {
	var tenantIDs, accTenants, accIDs []string
	seenT, seenA := map[string]bool{}, map[msgKey]bool{}
	for _, it := range items {
		if !seenT[it.TenantID] {
			seenT[it.TenantID] = true
			tenantIDs = append(tenantIDs, it.TenantID)
		}
		k := msgKey{it.TenantID, it.AccountID}
		if !seenA[k] {
			seenA[k] = true
			accTenants = append(accTenants, it.TenantID)
			accIDs = append(accIDs, it.AccountID)
		}
	}
	tenants, accounts := map[string]bool{}, map[msgKey]bool{}
	b.Queue(qTenantsExisting, tenantIDs).Query(func(rows pgx.Rows) error {
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		for _, id := range ids {
			tenants[id] = true
		}
		return err
	})
	b.Queue(qAccountsExisting, accTenants, accIDs).Query(func(rows pgx.Rows) error {
		var t, a string
		_, err := pgx.ForEachRow(rows, []any{&t, &a}, func() error {
			accounts[msgKey{t, a}] = true
			return nil
		})
		return err
	})
	return tenants, accounts
}

// enqueueArgs are one statement's items as parallel arrays (enqueueInput).
type enqueueArgs struct {
	index                   []int
	pk, tenant, id, account []string
	priority                []int64
	payload, batch          []*string
	deferred                []*int64
	reason                  []string
	byKey                   map[msgKey]int // key -> item index
	returned                map[msgKey]bool
}

func newEnqueueArgs() *enqueueArgs {
	return &enqueueArgs{byKey: map[msgKey]int{}, returned: map[msgKey]bool{}}
}

func (a *enqueueArgs) add(i int, it store.NewMessage, pk, reason string) {
	a.index = append(a.index, i)
	a.pk = append(a.pk, pk)
	a.tenant = append(a.tenant, it.TenantID)
	a.id = append(a.id, it.ID)
	a.account = append(a.account, it.AccountID)
	a.priority = append(a.priority, int64(it.Priority))
	a.payload = append(a.payload, nullJSON(it.Payload))
	a.batch = append(a.batch, it.BatchCode)
	a.deferred = append(a.deferred, msPtr(it.DeferredUntil))
	a.reason = append(a.reason, reason)
	a.byKey[msgKey{it.TenantID, it.ID}] = i
}

func (a *enqueueArgs) args(now int64) []any {
	return []any{a.pk, a.tenant, a.id, a.account, a.priority, a.payload, a.batch, a.deferred, a.reason, now}
}

// enqueueRound applies one round (distinct keys) and fills its results. It
// reports whether any item was queued.
func enqueueRound(ctx context.Context, tx pgx.Tx, items []store.NewMessage, pks []string, round []int,
	tenants map[string]bool, accounts map[msgKey]bool, now time.Time, results []store.EnqueueResult) (bool, error) {
	queue, reject := classifyRound(items, pks, round, tenants, accounts, results)
	b := &pgx.Batch{}
	queueWrites(b, queue, reject, ms(now), results)
	if b.Len() == 0 {
		return false, nil
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return false, err
	}

	// Queued items the upsert left alone are processed or being sent.
	var blockTenants, blockIDs []string
	for _, i := range queue.index {
		k := msgKey{items[i].TenantID, items[i].ID}
		if !queue.returned[k] {
			blockTenants = append(blockTenants, k.tenantID)
			blockIDs = append(blockIDs, k.id)
		}
	}
	if len(blockIDs) > 0 {
		rows, err := tx.Query(ctx, qMessageBlocks, blockTenants, blockIDs)
		if err != nil {
			return false, err
		}
		var (
			tenant, id, pk string
			processed      bool
		)
		_, err = pgx.ForEachRow(rows, []any{&tenant, &id, &pk, &processed}, func() error {
			results[queue.byKey[msgKey{tenant, id}]] = store.EnqueueResult{Status: driver.UnchangedStatus(processed), PK: pk}
			return nil
		})
		if err != nil {
			return false, err
		}
	}
	return len(queue.returned) > 0, nil
}

// classifyRound splits one round into the items to queue and the rejected
// items to store as errors (those with an id and a known tenant), and fills
// the rejections' results.
func classifyRound(items []store.NewMessage, pks []string, round []int, tenants map[string]bool,
	accounts map[msgKey]bool, results []store.EnqueueResult) (queue, reject *enqueueArgs) {
	queue, reject = newEnqueueArgs(), newEnqueueArgs()
	for _, i := range round {
		it := items[i]
		reason, _ := driver.EnqueueRejectReason(it, func() (bool, error) {
			return accounts[msgKey{it.TenantID, it.AccountID}], nil
		})
		if reason == "" {
			queue.add(i, it, pks[i], "")
			continue
		}
		results[i] = store.EnqueueResult{Status: store.Rejected, Reason: reason}
		if it.ID != "" && tenants[it.TenantID] {
			reject.add(i, it, pks[i], reason)
		}
	}
	return queue, reject
}

// queueWrites adds the round's upsert and rejected-items statements to b;
// their rows fill results and the args' returned sets.
func queueWrites(b *pgx.Batch, queue, reject *enqueueArgs, nowMS int64, results []store.EnqueueResult) {
	collect := func(a *enqueueArgs, onRow func(i int, pk string)) func(pgx.Rows) error {
		return func(rows pgx.Rows) error {
			var tenant, id, pk string
			_, err := pgx.ForEachRow(rows, []any{&tenant, &id, &pk}, func() error {
				k := msgKey{tenant, id}
				i, ok := a.byKey[k]
				if !ok {
					return fmt.Errorf("unexpected row %s/%s", tenant, id)
				}
				a.returned[k] = true
				onRow(i, pk)
				return nil
			})
			return err
		}
	}
	if len(queue.index) > 0 {
		b.Queue(qEnqueue, queue.args(nowMS)...).Query(collect(queue, func(i int, pk string) {
			results[i] = store.EnqueueResult{Status: store.Queued, PK: pk}
		}))
	}
	if len(reject.index) > 0 {
		b.Queue(qEnqueueRejected, reject.args(nowMS)...).Query(collect(reject, func(i int, pk string) {
			results[i].PK = pk
		}))
	}
}

// ListMessages lists messages with their tenant name and latest events, from
// one snapshot.
func (s *Store) ListMessages(ctx context.Context, f store.MessageFilter, now time.Time) ([]store.MessageRecord, error) {
	if f.After != nil && f.TenantID == "" {
		return nil, errors.New("postgres: list messages: paging by position needs a tenant")
	}
	var list *driver.RecordList
	err := s.readTx(ctx, func(tx pgx.Tx) (err error) {
		query, args := qListMessages, []any{f.TenantID, f.ActiveOnly, sqlLimit(f.Limit), max(f.Offset, 0)}
		if a := f.After; a != nil {
			query = qListMessagesAfter
			args = []any{f.TenantID, f.ActiveOnly, a.Priority, ms(a.CreatedAt), a.ID, sqlLimit(f.Limit)}
		}
		list, err = readRecords(ctx, tx, f.IncludeHistory, query, args...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list messages: %w", err)
	}
	return list.Records(), nil
}

// GetMessage reads one message as ListMessages lists it, with its history.
func (s *Store) GetMessage(ctx context.Context, tenantID, id string) (store.MessageRecord, error) {
	var list *driver.RecordList
	err := s.readTx(ctx, func(tx pgx.Tx) (err error) {
		list, err = readRecords(ctx, tx, true, qGetMessage, tenantID, id)
		return err
	})
	if err != nil {
		return store.MessageRecord{}, fmt.Errorf("postgres: get message %q: %w", id, err)
	}
	return list.One(id)
}

// CountBatchPending counts the unprocessed messages of one batch.
func (s *Store) CountBatchPending(ctx context.Context, tenantID, batchCode string) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, qBatchPending, tenantID, batchCode).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: count batch pending: %w", err)
	}
	return n, nil
}

// DeleteMessages deletes the tenant's messages by client id, with their events.
func (s *Store) DeleteMessages(ctx context.Context, tenantID string, ids []string) (store.DeleteResult, error) {
	ids = driver.UniqueIDs(ids)
	var res store.DeleteResult
	err := s.tx(ctx, func(tx pgx.Tx) error {
		res = store.DeleteResult{NotFound: []string{}, Unauthorized: []string{}}
		if len(ids) == 0 {
			return nil
		}
		rows, err := tx.Query(ctx, qDeleteMessages, tenantID, ids)
		if err != nil {
			return err
		}
		gone, err := collectSet(rows)
		if err != nil {
			return err
		}
		res.Removed = len(gone)
		var missing []string
		for _, id := range ids {
			if !gone[id] {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		rows, err = tx.Query(ctx, qIDsAnywhere, missing)
		if err != nil {
			return err
		}
		elsewhere, err := collectSet(rows)
		if err != nil {
			return err
		}
		driver.AddMissing(&res, missing, elsewhere)
		return nil
	})
	if err != nil {
		return store.DeleteResult{}, fmt.Errorf("postgres: delete messages: %w", err)
	}
	return res, nil
}

// CleanupMessages deletes finished, fully reported messages whose latest
// event was reported before cutoff.
func (s *Store) CleanupMessages(ctx context.Context, tenantID string, cutoff time.Time, limit int) (int, error) {
	tag, err := s.pool.Exec(ctx, qCleanup, tenantID, ms(cutoff), sqlLimit(limit))
	if err != nil {
		return 0, fmt.Errorf("postgres: cleanup messages: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// CountUnprocessed counts messages without a final outcome.
func (s *Store) CountUnprocessed(ctx context.Context) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, qCountUnprocessed).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: count unprocessed: %w", err)
	}
	return n, nil
}

// Stats summarises each tenant ("" = all), by tenant id.
func (s *Store) Stats(ctx context.Context, tenantID string, now time.Time) ([]store.TenantStats, error) {
	rows, err := s.pool.Query(ctx, qStats, tenantID, ms(now))
	if err != nil {
		return nil, fmt.Errorf("postgres: stats: %w", err)
	}
	out := []store.TenantStats{}
	var st store.TenantStats
	_, err = pgx.ForEachRow(rows, []any{&st.TenantID, &st.Accounts, &st.Pending, &st.Deferred, &st.Sent, &st.Error},
		func() error {
			out = append(out, st)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("postgres: stats: %w", err)
	}
	return out, nil
}

// RewriteAuthPayloads rewrites the payloads fn changes, one transaction per
// batch, its rows locked until the batch commits.
func (s *Store) RewriteAuthPayloads(ctx context.Context, batch int, fn func(json.RawMessage) (json.RawMessage, bool, error)) (int, error) {
	if batch <= 0 {
		batch = 500
	}
	written := 0
	for after := int64(0); ; {
		var seen, n int
		from := after // a retried transaction starts its page again
		err := s.tx(ctx, func(tx pgx.Tx) error {
			type row struct {
				seq     int64
				payload string
			}
			rows, err := tx.Query(ctx, qAuthPayloads, from, batch)
			if err != nil {
				return err
			}
			page, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
				var v row
				err := r.Scan(&v.seq, &v.payload)
				return v, err
			})
			if err != nil {
				return err
			}
			seen, n = len(page), 0
			for _, r := range page {
				after = r.seq
				p, changed, err := fn(json.RawMessage(r.payload))
				if err != nil {
					return fmt.Errorf("message seq %d: %w", r.seq, err)
				}
				if !changed {
					continue
				}
				if _, err := tx.Exec(ctx, qUpdatePayloadBySeq, string(p), r.seq); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			return written, fmt.Errorf("postgres: rewrite auth payloads: %w", err)
		}
		written += n
		if seen < batch {
			return written, nil
		}
	}
}

// readRecords runs a query of message rows (messageDest's columns plus the
// account name) and attaches each message's events.
func readRecords(ctx context.Context, tx pgx.Tx, includeHistory bool, query string, args ...any) (*driver.RecordList, error) {
	list := driver.NewRecordList(includeHistory)
	rows, err := tx.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	var (
		d    messageDest
		name *string
	)
	if _, err := pgx.ForEachRow(rows, append(d.targets(), &name), func() error {
		list.AddMessage(d.message(), name)
		name = nil
		return nil
	}); err != nil || len(list.PKs()) == 0 {
		return list, err
	}
	erows, err := tx.Query(ctx, qEventsOfMessages, list.PKs())
	if err != nil {
		return nil, err
	}
	defer erows.Close()
	for erows.Next() {
		e, err := scanEvent(erows)
		if err != nil {
			return nil, err
		}
		if err := list.AddEvent(e); err != nil {
			return nil, err
		}
	}
	return list, erows.Err()
}
