package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/store/internal/driver"
)

// Dashboard reads (store.Store.Overview, SearchMessages).
const (
	// qOverviewCounts: the state partition of /stats per account, plus the
	// processed messages with a bounce event (probed on events_message).
	qOverviewCounts = `
SELECT m.tenant_id, m.account_id,
       coalesce(sum(m.final_at IS NULL AND (m.deferred_until IS NULL OR m.deferred_until <= ?2)), 0),
       coalesce(sum(m.final_at IS NULL AND m.deferred_until > ?2), 0),
       coalesce(sum(m.final_type = 'sent'), 0),
       coalesce(sum(m.final_type = 'error'), 0),
       coalesce(sum(m.state = 2 AND EXISTS (SELECT 1 FROM events e WHERE e.message_pk = m.pk AND e.type = 'bounce')), 0)
FROM messages m WHERE (?1 = '' OR m.tenant_id = ?1)
GROUP BY m.tenant_id, m.account_id ORDER BY m.tenant_id, m.account_id`

	// qOldestDue walks the claim index's rows (state 0 = queued).
	qOldestDue = `
SELECT ` + messageCols + `
FROM messages m
WHERE m.state = 0 AND (?1 = '' OR m.tenant_id = ?1) AND (m.deferred_until IS NULL OR m.deferred_until <= ?2)
ORDER BY coalesce(m.deferred_until, m.created_at), m.seq
LIMIT 1`

	// qThroughput ranges over messages_final (tenant_id, final_at) per tenant.
	qThroughput = `
SELECT m.final_at / 60000, coalesce(sum(m.final_type = 'sent'), 0), coalesce(sum(m.final_type = 'error'), 0)
FROM messages m
WHERE m.state = 2 AND m.tenant_id IN (SELECT id FROM tenants WHERE ?1 = '' OR id = ?1)
  AND m.final_at >= ?2 AND m.final_at <= ?3 AND m.rejected_at_enqueue = 0
GROUP BY 1 ORDER BY 1`

	// qSearchMessages filters by the optional fields of store.MessageSearch.
	qSearchMessages = `
SELECT ` + messageCols + `, t.name
FROM messages m JOIN tenants t ON t.id = m.tenant_id
WHERE (?1 = '' OR m.tenant_id = ?1) AND (?2 = '' OR m.account_id = ?2) AND (?3 = '' OR m.id = ?3)
  AND (?4 = '' OR m.batch_code = ?4)
  AND (?5 = ''
       OR (?5 = 'pending' AND m.final_at IS NULL AND (m.deferred_until IS NULL OR m.deferred_until <= ?6))
       OR (?5 = 'deferred' AND m.final_at IS NULL AND m.deferred_until > ?6)
       OR (?5 = 'sent' AND m.final_type = 'sent')
       OR (?5 = 'error' AND m.final_type = 'error')
       OR (?5 = 'bounced' AND m.state = 2 AND EXISTS (SELECT 1 FROM events e WHERE e.message_pk = m.pk AND e.type = 'bounce')))
  AND (?7 = '' OR json_extract(m.payload, '$.subject') LIKE ?7 ESCAPE '\'
       OR json_extract(m.payload, '$.to') LIKE ?7 ESCAPE '\'
       OR json_extract(m.payload, '$.cc') LIKE ?7 ESCAPE '\'
       OR json_extract(m.payload, '$.bcc') LIKE ?7 ESCAPE '\')
ORDER BY m.seq DESC
LIMIT ?8 OFFSET ?9`
)

// Overview reads counts, the oldest due message and recent throughput in one
// read transaction.
func (s *Store) Overview(ctx context.Context, tenantID string, now, since time.Time) (store.QueueOverview, error) {
	out := store.QueueOverview{Counts: []store.AccountCounts{}, Throughput: []store.MinuteOutcomes{}}
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		out = store.QueueOverview{Counts: []store.AccountCounts{}, Throughput: []store.MinuteOutcomes{}}
		if err := eachRow(ctx, tx, qOverviewCounts, []any{tenantID, ms(now)}, func(rows *sql.Rows) error {
			var c store.AccountCounts
			if err := rows.Scan(&c.TenantID, &c.AccountID, &c.Pending, &c.Deferred, &c.Sent, &c.Error, &c.Bounced); err != nil {
				return err
			}
			out.Counts = append(out.Counts, c)
			return nil
		}); err != nil {
			return fmt.Errorf("counts: %w", err)
		}
		m, err := scanMessage(tx.QueryRowContext(ctx, qOldestDue, tenantID, ms(now)))
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return fmt.Errorf("oldest due: %w", err)
		default:
			out.OldestDue = &m
		}
		return eachRow(ctx, tx, qThroughput, []any{tenantID, ms(since), ms(now)}, func(rows *sql.Rows) error {
			var minute int64
			var p store.MinuteOutcomes
			if err := rows.Scan(&minute, &p.Sent, &p.Error); err != nil {
				return err
			}
			p.Minute = time.Unix(minute*60, 0).UTC()
			out.Throughput = append(out.Throughput, p)
			return nil
		})
	})
	if err != nil {
		return store.QueueOverview{}, fmt.Errorf("sqlite: overview: %w", err)
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
	err := s.readTx(ctx, func(tx *sql.Tx) (err error) {
		list, err = readRecords(ctx, tx, f.IncludeHistory, qSearchMessages, f.TenantID, f.AccountID, f.ID,
			f.BatchCode, f.State, ms(now), text, sqlLimit(f.Limit), max(f.Offset, 0))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: search messages: %w", err)
	}
	return list.Records(), nil
}
