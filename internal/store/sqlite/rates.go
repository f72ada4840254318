package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/store/internal/driver"
)

// ReserveRate takes one slot in every configured window, or none if any is full.
func (s *Store) ReserveRate(ctx context.Context, req store.RateRequest) (store.RateDecision, error) {
	limits, unlimited := req.Limits()
	if unlimited {
		return store.RateDecision{OK: true}, nil
	}
	win := driver.Windows(req.Now)
	var dec store.RateDecision
	err := s.write(ctx, func(w *wtx) error {
		for i, lim := range limits {
			if lim <= 0 {
				continue
			}
			var n int
			err := w.queryRow(qRateCount, req.TenantID, req.AccountID, win[i].Span, win[i].Start).Scan(&n)
			if err != nil && !isNoRows(err) {
				return err
			}
			if n >= lim {
				dec = store.RateDecision{Window: win[i].Span, WindowEnd: fromMS(win[i].End)}
				return nil
			}
		}
		for i, lim := range limits {
			if lim <= 0 {
				continue
			}
			if _, err := w.exec(qRateIncrement, req.TenantID, req.AccountID, win[i].Span, win[i].Start, win[i].End); err != nil {
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
	win := driver.Windows(now)
	rows, err := s.query(ctx, qRateUsage, tenantID, accountID, win[0].Start, win[1].Start, win[2].Start)
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
		driver.SetUsage(&u, span, n)
	}
	if err := rows.Err(); err != nil {
		return store.RateUsage{}, fmt.Errorf("sqlite: rate usage: %w", err)
	}
	return u, nil
}
