package sqlite

import (
	"context"
	"fmt"
	"time"

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

// ReserveRate takes one slot in every configured window, or none if any is full.
func (s *Store) ReserveRate(ctx context.Context, req store.RateRequest) (store.RateDecision, error) {
	limits := [3]int{req.PerMinute, req.PerHour, req.PerDay}
	if limits[0] <= 0 && limits[1] <= 0 && limits[2] <= 0 {
		return store.RateDecision{OK: true}, nil
	}
	win := windowsAt(req.Now)
	var dec store.RateDecision
	err := s.write(ctx, func(w *wtx) error {
		for i, lim := range limits {
			if lim <= 0 {
				continue
			}
			var n int
			err := w.queryRow(qRateCount, req.TenantID, req.AccountID, win[i].span, win[i].start).Scan(&n)
			if err != nil && !isNoRows(err) {
				return err
			}
			if n >= lim {
				dec = store.RateDecision{Window: win[i].span, WindowEnd: fromMS(win[i].end)}
				return nil
			}
		}
		for i, lim := range limits {
			if lim <= 0 {
				continue
			}
			if _, err := w.exec(qRateIncrement, req.TenantID, req.AccountID, win[i].span, win[i].start, win[i].end); err != nil {
				if isForeignKey(err) {
					return fmt.Errorf("tenant %q: %w", req.TenantID, store.ErrTenantNotFound)
				}
				return err
			}
		}
		dec = store.RateDecision{OK: true}
		return nil
	})
	if err != nil {
		return store.RateDecision{}, fmt.Errorf("sqlite: reserve rate: %w", err)
	}
	return dec, nil
}

// RateUsage returns the counts of the windows containing now.
func (s *Store) RateUsage(ctx context.Context, tenantID, accountID string, now time.Time) (store.RateUsage, error) {
	win := windowsAt(now)
	rows, err := s.query(ctx, qRateUsage, tenantID, accountID, win[0].start, win[1].start, win[2].start)
	if err != nil {
		return store.RateUsage{}, fmt.Errorf("sqlite: rate usage: %w", err)
	}
	defer rows.Close()
	var u store.RateUsage
	for rows.Next() {
		var span string
		var n int
		if err := rows.Scan(&span, &n); err != nil {
			return store.RateUsage{}, fmt.Errorf("sqlite: rate usage: %w", err)
		}
		switch span {
		case "minute":
			u.Minute = n
		case "hour":
			u.Hour = n
		case "day":
			u.Day = n
		}
	}
	if err := rows.Err(); err != nil {
		return store.RateUsage{}, fmt.Errorf("sqlite: rate usage: %w", err)
	}
	return u, nil
}
