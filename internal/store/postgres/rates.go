package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailproxy/mailproxy/internal/store"
)

// window is one fixed, epoch-aligned rate window (ratelimits.md §2).
type window struct {
	span       string
	start, end int64 // Unix ms
}

// windowsAt returns the minute, hour and day windows containing t.
func windowsAt(t time.Time) [3]window {
	now := ms(t)
	at := func(span string, length int64) window {
		start := floorDiv(now, length) * length
		return window{span: span, start: start, end: start + length}
	}
	return [3]window{at("minute", 60_000), at("hour", 3_600_000), at("day", 86_400_000)}
}

// errWindowFull rolls a reservation back; the decision says which window.
var errWindowFull = errors.New("rate window full")

// ReserveRate takes one slot in every configured window, or none if any is
// full: one conditional upsert per window in minute, hour, day order, in one
// transaction that the first full window rolls back. Concurrent
// reservations, from any instance, queue on the counter rows' locks and see
// each other's counts, so a window never grants more than its limit.
func (s *Store) ReserveRate(ctx context.Context, req store.RateRequest) (store.RateDecision, error) {
	limits := [3]int{req.PerMinute, req.PerHour, req.PerDay}
	if limits[0] <= 0 && limits[1] <= 0 && limits[2] <= 0 {
		return store.RateDecision{OK: true}, nil
	}
	win := windowsAt(req.Now)
	var dec store.RateDecision
	err := s.tx(ctx, func(tx pgx.Tx) error {
		dec = store.RateDecision{OK: true}
		for i, lim := range limits {
			if lim <= 0 {
				continue
			}
			var n int
			err := tx.QueryRow(ctx, qRateReserve, req.TenantID, req.AccountID, win[i].span, win[i].start,
				win[i].end, lim).Scan(&n)
			switch {
			case isNoRows(err):
				dec = store.RateDecision{Window: win[i].span, WindowEnd: fromMS(win[i].end)}
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
	win := windowsAt(now)
	rows, err := s.pool.Query(ctx, qRateUsage, tenantID, accountID, win[0].start, win[1].start, win[2].start)
	if err != nil {
		return store.RateUsage{}, fmt.Errorf("postgres: rate usage: %w", err)
	}
	var (
		u    store.RateUsage
		span string
		n    int
	)
	_, err = pgx.ForEachRow(rows, []any{&span, &n}, func() error {
		switch span {
		case "minute":
			u.Minute = n
		case "hour":
			u.Hour = n
		case "day":
			u.Day = n
		}
		return nil
	})
	if err != nil {
		return store.RateUsage{}, fmt.Errorf("postgres: rate usage: %w", err)
	}
	return u, nil
}
