package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/store/internal/driver"
)

// Dashboard reads (store.Store.Overview, SearchMessages).
const (
	// qOverviewCounts: the state partition of /stats per account, plus the
	// processed messages with a bounce event (probed on events_message).
	qOverviewCounts = `
SELECT m.tenant_id, m.account_id,
       count(*) FILTER (WHERE m.final_at IS NULL AND (m.deferred_until IS NULL OR m.deferred_until <= $2)),
       count(*) FILTER (WHERE m.final_at IS NULL AND m.deferred_until > $2),
       count(*) FILTER (WHERE m.final_type = 'sent'),
       count(*) FILTER (WHERE m.final_type = 'error'),
       count(*) FILTER (WHERE m.state = 2 AND EXISTS (SELECT 1 FROM events e WHERE e.message_pk = m.pk AND e.type = 'bounce'))
FROM messages m WHERE ($1 = '' OR m.tenant_id = $1)
GROUP BY m.tenant_id, m.account_id ORDER BY m.tenant_id, m.account_id`

	// qOldestDue walks the queued rows (state 0, the claim index's).
	qOldestDue = `
SELECT ` + messageCols + `
FROM messages m
WHERE m.state = 0 AND ($1 = '' OR m.tenant_id = $1) AND (m.deferred_until IS NULL OR m.deferred_until <= $2)
ORDER BY coalesce(m.deferred_until, m.created_at), m.seq
LIMIT 1`

	// qThroughput ranges over messages_final (tenant_id, final_at) per tenant.
	qThroughput = `
SELECT m.final_at / 60000 AS minute, count(*) FILTER (WHERE m.final_type = 'sent'), count(*) FILTER (WHERE m.final_type = 'error')
FROM messages m
WHERE m.state = 2 AND m.tenant_id IN (SELECT id FROM tenants WHERE $1 = '' OR id = $1)
  AND m.final_at >= $2 AND m.final_at <= $3 AND NOT m.rejected_at_enqueue
GROUP BY 1 ORDER BY 1`

	// qSearchMessages filters by the optional fields of store.MessageSearch.
	// Payloads are always JSON written by the enqueue path, so the cast holds.
	qSearchMessages = `
SELECT ` + messageCols + `, t.name
FROM messages m JOIN tenants t ON t.id = m.tenant_id
WHERE ($1 = '' OR m.tenant_id = $1) AND ($2 = '' OR m.account_id = $2) AND ($3 = '' OR m.id = $3)
  AND ($4 = '' OR m.batch_code = $4)
  AND ($5 = ''
       OR ($5 = 'pending' AND m.final_at IS NULL AND (m.deferred_until IS NULL OR m.deferred_until <= $6))
       OR ($5 = 'deferred' AND m.final_at IS NULL AND m.deferred_until > $6)
       OR ($5 = 'sent' AND m.final_type = 'sent')
       OR ($5 = 'error' AND m.final_type = 'error')
       OR ($5 = 'bounced' AND m.state = 2 AND EXISTS (SELECT 1 FROM events e WHERE e.message_pk = m.pk AND e.type = 'bounce')))
  AND ($7 = '' OR (m.payload::jsonb ->> 'subject') ILIKE $7 ESCAPE '\'
       OR (m.payload::jsonb -> 'to')::text ILIKE $7 ESCAPE '\'
       OR (m.payload::jsonb -> 'cc')::text ILIKE $7 ESCAPE '\'
       OR (m.payload::jsonb -> 'bcc')::text ILIKE $7 ESCAPE '\')
ORDER BY m.seq DESC
LIMIT $8 OFFSET $9`
)

// Overview reads counts, the oldest due message and recent throughput in one
// read transaction.
func (s *Store) Overview(ctx context.Context, tenantID string, now, since time.Time) (store.QueueOverview, error) {
	var out store.QueueOverview
	err := s.readTx(ctx, func(tx pgx.Tx) error {
		out = store.QueueOverview{Counts: []store.AccountCounts{}, Throughput: []store.MinuteOutcomes{}}
		rows, err := tx.Query(ctx, qOverviewCounts, tenantID, ms(now))
		if err != nil {
			return fmt.Errorf("counts: %w", err)
		}
		var c store.AccountCounts
		if _, err := pgx.ForEachRow(rows, []any{&c.TenantID, &c.AccountID, &c.Pending, &c.Deferred, &c.Sent, &c.Error, &c.Bounced},
			func() error { out.Counts = append(out.Counts, c); return nil }); err != nil {
			return fmt.Errorf("counts: %w", err)
		}
		var d messageDest
		err = tx.QueryRow(ctx, qOldestDue, tenantID, ms(now)).Scan(d.targets()...)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return fmt.Errorf("oldest due: %w", err)
		default:
			m := d.message()
			out.OldestDue = &m
		}
		rows, err = tx.Query(ctx, qThroughput, tenantID, ms(since), ms(now))
		if err != nil {
			return fmt.Errorf("throughput: %w", err)
		}
		var minute int64
		var p store.MinuteOutcomes
		_, err = pgx.ForEachRow(rows, []any{&minute, &p.Sent, &p.Error}, func() error {
			p.Minute = time.Unix(minute*60, 0).UTC()
			out.Throughput = append(out.Throughput, p)
			return nil
		})
		return err
	})
	if err != nil {
		return store.QueueOverview{}, fmt.Errorf("postgres: overview: %w", err)
	}
	return out, nil
}

// SearchMessages lists the messages matching f, newest first, with their events.
func (s *Store) SearchMessages(ctx context.Context, f store.MessageSearch, now time.Time) ([]store.MessageRecord, error) {
	text := ""
	if f.Text != "" {
		text = driver.LikePattern(f.Text)
	}
	var list *driver.RecordList
	err := s.readTx(ctx, func(tx pgx.Tx) (err error) {
		list, err = readRecords(ctx, tx, f.IncludeHistory, qSearchMessages, f.TenantID, f.AccountID, f.ID,
			f.BatchCode, f.State, ms(now), text, sqlLimit(f.Limit), max(f.Offset, 0))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: search messages: %w", err)
	}
	return list.Records(), nil
}
