package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/store/internal/driver"
)

func scanMessage(sc scanner, extra ...any) (store.Message, error) {
	var (
		m                           store.Message
		payload, batch, leaseOwner  sql.NullString
		deferred, final, leaseUntil sql.NullInt64
		rejected                    int64
		created, updated            int64
	)
	dest := append([]any{&m.PK, &m.TenantID, &m.ID, &m.AccountID, &m.Priority, &payload, &batch, &deferred,
		&final, &m.RetryCount, &rejected, &leaseOwner, &leaseUntil, &m.Attempt, &created, &updated}, extra...)
	if err := sc.Scan(dest...); err != nil {
		return store.Message{}, err
	}
	m.Payload = jsonRaw(payload)
	m.BatchCode = strPtr(batch)
	m.DeferredUntil = timePtr(deferred)
	m.FinalAt = timePtr(final)
	m.RejectedAtEnqueue = rejected != 0
	m.LeaseOwner = leaseOwner.String
	m.LeaseUntil = timePtr(leaseUntil)
	m.CreatedAt = fromMS(created)
	m.UpdatedAt = fromMS(updated)
	return m, nil
}

func scanEvent(sc scanner) (store.Event, error) {
	var (
		e        store.Event
		typ      string
		at       int64
		meta     sql.NullString
		reported sql.NullInt64
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

// EnqueueBatch stores the items in one durable transaction (possibly shared
// with concurrent callers) and answers per item, in order.
func (s *Store) EnqueueBatch(ctx context.Context, items []store.NewMessage, now time.Time) ([]store.EnqueueResult, error) {
	if len(items) == 0 {
		return []store.EnqueueResult{}, nil
	}
	var results []store.EnqueueResult
	err := s.write(ctx, func(w *wtx) error {
		var err error
		results, err = enqueue(w, items, now)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: enqueue: %w", err)
	}
	return results, nil
}

// enqueue applies the per-item rules of lifecycle.md §3 in request order.
func enqueue(w *wtx, items []store.NewMessage, now time.Time) ([]store.EnqueueResult, error) {
	results := make([]store.EnqueueResult, len(items))
	tenants := map[string]bool{}
	accounts := map[string]bool{}
	exists := func(cache map[string]bool, key, query string, args ...any) (bool, error) {
		if ok, seen := cache[key]; seen {
			return ok, nil
		}
		var one int
		err := w.queryRow(query, args...).Scan(&one)
		if err != nil && !isNoRows(err) {
			return false, err
		}
		cache[key] = err == nil
		return err == nil, nil
	}
	nowMS := ms(now)
	for i, it := range items {
		reason, err := driver.EnqueueRejectReason(it, func() (bool, error) {
			return exists(accounts, store.AccountKey(it.TenantID, it.AccountID), qAccountExists, it.TenantID, it.AccountID)
		})
		if err != nil {
			return nil, err
		}
		pk := it.PK
		if pk == "" {
			pk = driver.NewPK()
		}
		args := []any{pk, it.TenantID, it.ID, it.AccountID, it.Priority, nullJSON(it.Payload),
			nullStr(it.BatchCode), nullMS(it.DeferredUntil), nowMS}

		if reason != "" {
			results[i] = store.EnqueueResult{Status: store.Rejected, Reason: reason}
			if it.ID == "" {
				continue
			}
			ok, err := exists(tenants, it.TenantID, qTenantExists, it.TenantID)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			var stored string
			err = w.queryRow(qEnqueueRejected, args...).Scan(&stored)
			if isNoRows(err) {
				continue // processed by delivery: left unchanged, not stored
			}
			if err != nil {
				return nil, fmt.Errorf("item %d: %w", i, duplicate(err))
			}
			if _, err := w.exec(qInsertEvent, stored, it.TenantID, string(store.EventError), nowMS, reason, nil); err != nil {
				return nil, fmt.Errorf("item %d: event: %w", i, err)
			}
			results[i].PK = stored
			continue
		}

		var stored string
		err = w.queryRow(qEnqueue, args...).Scan(&stored)
		if err == nil {
			results[i] = store.EnqueueResult{Status: store.Queued, PK: stored}
			continue
		}
		if !isNoRows(err) {
			return nil, fmt.Errorf("item %d: %w", i, duplicate(err))
		}
		var processed bool
		if err := w.queryRow(qMessageBlock, it.TenantID, it.ID).Scan(&stored, &processed); err != nil {
			return nil, fmt.Errorf("item %d: %w", i, err)
		}
		results[i] = store.EnqueueResult{Status: driver.UnchangedStatus(processed), PK: stored}
	}
	return results, nil
}

// ListMessages lists messages with their tenant name and latest events.
func (s *Store) ListMessages(ctx context.Context, f store.MessageFilter, now time.Time) ([]store.MessageRecord, error) {
	if f.After != nil && f.TenantID == "" {
		return nil, errors.New("sqlite: list messages: paging by position needs a tenant")
	}
	var list *driver.RecordList
	err := s.readTx(ctx, func(tx *sql.Tx) (err error) {
		query, args := qListMessages, []any{f.TenantID, boolInt(f.ActiveOnly), sqlLimit(f.Limit), max(f.Offset, 0)}
		if a := f.After; a != nil {
			query = qListMessagesAfter
			args = []any{f.TenantID, boolInt(f.ActiveOnly), a.Priority, ms(a.CreatedAt), a.ID, sqlLimit(f.Limit)}
		}
		list, err = readRecords(ctx, tx, f.IncludeHistory, query, args...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: list messages: %w", err)
	}
	return list.Records(), nil
}

// GetMessage reads one message as ListMessages lists it, with its history.
func (s *Store) GetMessage(ctx context.Context, tenantID, id string) (store.MessageRecord, error) {
	var list *driver.RecordList
	err := s.readTx(ctx, func(tx *sql.Tx) (err error) {
		list, err = readRecords(ctx, tx, true, qGetMessage, tenantID, id)
		return err
	})
	if err != nil {
		return store.MessageRecord{}, fmt.Errorf("sqlite: get message %q: %w", id, err)
	}
	return list.One(id)
}

// CountBatchPending counts the unprocessed messages of one batch.
func (s *Store) CountBatchPending(ctx context.Context, tenantID, batchCode string) (int, error) {
	var n int
	if err := s.queryRow(ctx, qBatchPending, tenantID, batchCode).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: count batch pending: %w", err)
	}
	return n, nil
}

// DeleteMessages deletes the tenant's messages by client id, with their events.
func (s *Store) DeleteMessages(ctx context.Context, tenantID string, ids []string) (store.DeleteResult, error) {
	ids = driver.UniqueIDs(ids)
	res := store.DeleteResult{NotFound: []string{}, Unauthorized: []string{}}
	err := s.write(ctx, func(w *wtx) error {
		res = store.DeleteResult{NotFound: []string{}, Unauthorized: []string{}}
		var missing []string
		for _, id := range ids {
			n, err := affected(w.exec(qDeleteMessage, tenantID, id))
			if err != nil {
				return err
			}
			if n > 0 {
				res.Removed++
			} else {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		list, err := jsonList(missing)
		if err != nil {
			return err
		}
		rows, err := w.query(qIDsAnywhere, list)
		if err != nil {
			return err
		}
		defer rows.Close()
		elsewhere := map[string]bool{}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			elsewhere[id] = true
		}
		if err := rows.Err(); err != nil {
			return err
		}
		driver.AddMissing(&res, missing, elsewhere)
		return nil
	})
	if err != nil {
		return store.DeleteResult{}, fmt.Errorf("sqlite: delete messages: %w", err)
	}
	return res, nil
}

// CleanupMessages deletes finished, fully reported messages whose latest
// event was reported before cutoff.
func (s *Store) CleanupMessages(ctx context.Context, tenantID string, cutoff time.Time, limit int) (int, error) {
	var n int64
	err := s.writeRelaxed(ctx, func(w *wtx) error {
		var err error
		n, err = affected(w.exec(qCleanup, tenantID, ms(cutoff), sqlLimit(limit)))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: cleanup messages: %w", err)
	}
	return int(n), nil
}

// CountUnprocessed counts messages without a final outcome.
func (s *Store) CountUnprocessed(ctx context.Context) (int, error) {
	var n int
	if err := s.queryRow(ctx, qCountUnprocessed).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: count unprocessed: %w", err)
	}
	return n, nil
}

// Stats summarises each tenant ("" = all), by tenant id.
func (s *Store) Stats(ctx context.Context, tenantID string, now time.Time) ([]store.TenantStats, error) {
	out := []store.TenantStats{}
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		index := map[string]int{}
		if err := eachRow(ctx, tx, qStatsTenants, []any{tenantID}, func(rows *sql.Rows) error {
			var st store.TenantStats
			if err := rows.Scan(&st.TenantID); err != nil {
				return err
			}
			index[st.TenantID] = len(out)
			out = append(out, st)
			return nil
		}); err != nil {
			return err
		}
		if err := eachRow(ctx, tx, qStatsAccounts, []any{tenantID}, func(rows *sql.Rows) error {
			var id string
			var n int
			if err := rows.Scan(&id, &n); err != nil {
				return err
			}
			if i, ok := index[id]; ok {
				out[i].Accounts = n
			}
			return nil
		}); err != nil {
			return err
		}
		return eachRow(ctx, tx, qStatsMessages, []any{tenantID, ms(now)}, func(rows *sql.Rows) error {
			var st store.TenantStats
			if err := rows.Scan(&st.TenantID, &st.Pending, &st.Deferred, &st.Sent, &st.Error); err != nil {
				return err
			}
			if i, ok := index[st.TenantID]; ok {
				st.Accounts = out[i].Accounts
				out[i] = st
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: stats: %w", err)
	}
	return out, nil
}

// eachRow runs query in tx and calls fn per row.
func eachRow(ctx context.Context, tx *sql.Tx, query string, args []any, fn func(*sql.Rows) error) error {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// RewriteAuthPayloads rewrites the payloads fn changes, one write
// transaction per batch, so other writers get the lock between batches.
func (s *Store) RewriteAuthPayloads(ctx context.Context, batch int, fn func(json.RawMessage) (json.RawMessage, bool, error)) (int, error) {
	if batch <= 0 {
		batch = 500
	}
	written := 0
	for after := int64(0); ; {
		var seen, n int
		from := after // a retried transaction starts its page again
		err := s.write(ctx, func(w *wtx) error {
			type row struct {
				seq     int64
				payload string
			}
			var page []row
			rows, err := w.query(qAuthPayloads, from, batch)
			if err != nil {
				return err
			}
			for rows.Next() {
				var r row
				if err := rows.Scan(&r.seq, &r.payload); err != nil {
					rows.Close()
					return err
				}
				page = append(page, r)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
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
				if _, err := w.exec(qUpdatePayloadBySeq, string(p), r.seq); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			return written, fmt.Errorf("sqlite: rewrite auth payloads: %w", err)
		}
		written += n
		if seen < batch {
			return written, nil
		}
	}
}

// readRecords runs a query of message rows (scanMessage's columns plus the
// account name) and attaches each message's events.
func readRecords(ctx context.Context, tx *sql.Tx, includeHistory bool, query string, args ...any) (*driver.RecordList, error) {
	list := driver.NewRecordList(includeHistory)
	if err := eachRow(ctx, tx, query, args, func(rows *sql.Rows) error {
		var name sql.NullString
		m, err := scanMessage(rows, &name)
		if err != nil {
			return err
		}
		list.AddMessage(m, strPtr(name))
		return nil
	}); err != nil {
		return nil, err
	}
	if len(list.PKs()) == 0 {
		return list, nil
	}
	pks, err := jsonList(list.PKs())
	if err != nil {
		return nil, err
	}
	err = eachRow(ctx, tx, qEventsOfMessages, []any{pks}, func(rows *sql.Rows) error {
		e, err := scanEvent(rows)
		if err != nil {
			return err
		}
		return list.AddEvent(e)
	})
	return list, err
}
