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

// errWindowFull rolls a reservation back; the decision says which window.
var errWindowFull = errors.New("rate window full")

// ReserveRate takes one slot in every configured window, or none if any is
// full: one conditional upsert per window in minute, hour, day order, in one
// transaction that the first full window rolls back. Concurrent
// reservations, from any instance, queue on the counter rows' locks and see
// each other's counts, so a window never grants more than its limit.
func (s *Store) ReserveRate(ctx context.Context, req store.RateRequest) (store.RateDecision, error) {
	limits, unlimited := req.Limits()
	if unlimited {
		return store.RateDecision{OK: true}, nil
	}
	win := driver.Windows(req.Now)
	var dec store.RateDecision
	err := s.tx(ctx, func(tx pgx.Tx) error {
		dec = store.RateDecision{OK: true}
		for i, lim := range limits {
			if lim <= 0 {
				continue
			}
			var n int
			err := tx.QueryRow(ctx, qRateReserve, req.TenantID, req.AccountID, win[i].Span, win[i].Start,
				win[i].End, lim).Scan(&n)
			switch {
			case isNoRows(err):
				dec = store.RateDecision{Window: win[i].Span, WindowEnd: fromMS(win[i].End)}
				return errWindowFull
			case isForeignKey(err):
				return fmt.Errorf("tenant %q: %w", req.TenantID, store.ErrTenantNotFound)
			case err != nil:
				return err
			}
		}
		return nil
	})
	if errors.Is(err, errWindowFull) {
		return dec, nil
	}
	if err != nil {
		return store.RateDecision{}, fmt.Errorf("postgres: reserve rate: %w", err)
	}
	return dec, nil
}

// RateUsage returns the counts of the windows containing now.
func (s *Store) RateUsage(ctx context.Context, tenantID, accountID string, now time.Time) (store.RateUsage, error) {
	win := driver.Windows(now)
	rows, err := s.pool.Query(ctx, qRateUsage, tenantID, accountID, win[0].Start, win[1].Start, win[2].Start)
	if err != nil {
		return store.RateUsage{}, fmt.Errorf("postgres: rate usage: %w", err)
	}
	var (
		u    store.RateUsage
		span string
		n    int
	)
	_, err = pgx.ForEachRow(rows, []any{&span, &n}, func() error {
		driver.SetUsage(&u, span, n)
		return nil
	})
	if err != nil {
		return store.RateUsage{}, fmt.Errorf("postgres: rate usage: %w", err)
	}
	return u, nil
}
