package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailproxy/mailproxy/internal/store"
)

// RetryDeferred makes the tenant's retry-deferred messages due now and,
// when there were any, wakes every instance (NOTIFY, sent at commit).
func (s *Store) RetryDeferred(ctx context.Context, tenantID string, batchCode *string, now time.Time) (int, error) {
	var n int64
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var one int
		err := tx.QueryRow(ctx, qLockTenant, tenantID).Scan(&one)
		if isNoRows(err) {
			return fmt.Errorf("tenant %q: %w", tenantID, store.ErrTenantNotFound)
		}
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, qRetryDeferred, tenantID, ms(now), batchCode)
		if err != nil {
			return err
		}
		if n = tag.RowsAffected(); n > 0 {
			_, err = tx.Exec(ctx, qNotifyWork)
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: retry deferred: %w", err)
	}
	return int(n), nil
}
