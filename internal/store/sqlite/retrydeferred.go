package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
)

// qRetryDeferred clears the deferral of a tenant's retry-deferred messages;
// ?3 NULL means every batch.
const qRetryDeferred = `
UPDATE messages SET deferred_until = NULL, updated_at = ?2
WHERE tenant_id = ?1 AND state = 0 AND retry_count > 0 AND deferred_until > ?2
  AND (?3 IS NULL OR batch_code = ?3)`

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
