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
