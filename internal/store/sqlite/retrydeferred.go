package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
)

// RetryDeferred makes the tenant's retry-deferred messages due now.
func (s *Store) RetryDeferred(ctx context.Context, tenantID string, batchCode *string, now time.Time) (int, error) {
	var n int64
	err := s.write(ctx, func(w *wtx) error {
		var one int
		err := w.queryRow(qTenantExists, tenantID).Scan(&one)
		if isNoRows(err) {
			return fmt.Errorf("tenant %q: %w", tenantID, store.ErrTenantNotFound)
		}
		if err != nil {
			return err
		}
		res, err := w.exec(qRetryDeferred, tenantID, ms(now), batchCode)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: retry deferred: %w", err)
	}
	return int(n), nil
}
