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
