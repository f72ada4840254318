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

// GetInstance returns the instance settings, or the defaults when none are stored.
func (s *Store) GetInstance(ctx context.Context) (store.Instance, error) {
	inst := driver.DefaultInstance()
	var created, updated int64
	err := s.once(ctx, func() error {
		return s.pool.QueryRow(ctx, qGetInstance).Scan(&inst.Name, &inst.APIToken, &inst.Edition, &inst.BounceEnabled,
			&inst.BounceIMAPHost, &inst.BounceIMAPPort, &inst.BounceIMAPUser, &inst.BounceIMAPPassword,
			&inst.BounceIMAPFolder, &inst.BounceIMAPSSL, &inst.BouncePollInterval, &inst.BounceReturnPath,
			&created, &updated)
	})
	if isNoRows(err) {
		return inst, nil
	}
	if err != nil {
		return store.Instance{}, fmt.Errorf("postgres: get instance: %w", err)
	}
	inst.CreatedAt = fromMS(created)
	inst.UpdatedAt = fromMS(updated)
	return inst, nil
}

// PutInstance stores the instance settings (created_at kept once set).
func (s *Store) PutInstance(ctx context.Context, inst store.Instance) error {
	created, updated := driver.RowTimes(inst.CreatedAt, inst.UpdatedAt, s.now)
	_, err := s.pool.Exec(ctx, qPutInstance, inst.Name, inst.APIToken, inst.Edition, inst.BounceEnabled,
		inst.BounceIMAPHost, inst.BounceIMAPPort, inst.BounceIMAPUser, inst.BounceIMAPPassword,
		inst.BounceIMAPFolder, inst.BounceIMAPSSL, inst.BouncePollInterval, inst.BounceReturnPath,
		ms(created), ms(updated))
	if err != nil {
		return fmt.Errorf("postgres: put instance: %w", err)
	}
	return nil
}

func scanTenant(sc scanner) (store.Tenant, error) {
	var (
		t                     store.Tenant
		auth                  *string
		rateLimits, largeFile *string
		keyExpires, prevUntil *int64
		created, updated      int64
		suspended             []string
	)
	err := sc.Scan(&t.ID, &t.Name, &auth, &t.ClientBaseURL, &t.ClientSyncPath, &t.ClientAttachmentPath,
		&rateLimits, &largeFile, &t.Active, &t.APIKeyHash, &keyExpires, &t.SigningSecret, &t.PrevSigningSecret,
		&prevUntil, &created, &updated, &t.ClientURLByTenant, &suspended)
	if err != nil {
		return store.Tenant{}, err
	}
	if t.ClientAuth, err = driver.DecodeClientAuth(auth); err != nil {
		return store.Tenant{}, fmt.Errorf("tenant %q: %w", t.ID, err)
	}
	t.RateLimits = jsonRaw(rateLimits)
	t.LargeFileConfig = jsonRaw(largeFile)
	t.APIKeyExpiresAt = timePtr(keyExpires)
	t.PrevSigningSecretUntil = timePtr(prevUntil)
	t.CreatedAt = fromMS(created)
	t.UpdatedAt = fromMS(updated)
	t.SuspendedBatches = driver.NormalizeSuspended(suspended)
	return t, nil
}

// UpsertTenant creates or replaces the tenant's payload fields.
func (s *Store) UpsertTenant(ctx context.Context, t store.Tenant) (bool, error) {
	if t.ID == "" {
		return false, errors.New("postgres: upsert tenant: empty id")
	}
	auth, err := driver.EncodeClientAuth(t.ClientAuth)
	if err != nil {
		return false, fmt.Errorf("postgres: upsert tenant: %w", err)
	}
	createdAt, updated := driver.RowTimes(t.CreatedAt, t.UpdatedAt, s.now)
	var created bool
	err = s.pool.QueryRow(ctx, qUpsertTenant, t.ID, t.Name, auth, t.ClientBaseURL, t.ClientSyncPath,
		t.ClientAttachmentPath, nullJSON(t.RateLimits), nullJSON(t.LargeFileConfig), t.Active,
		ms(createdAt), ms(updated), t.ClientURLByTenant).Scan(&created)
	if err != nil {
		return false, fmt.Errorf("postgres: upsert tenant %q: %w", t.ID, err)
	}
	return created, nil
}

// GetTenant returns one tenant (store.ErrNotFound if unknown).
func (s *Store) GetTenant(ctx context.Context, id string) (store.Tenant, error) {
	t, err := scanTenant(s.pool.QueryRow(ctx, qGetTenant, id))
	if isNoRows(err) {
		return store.Tenant{}, fmt.Errorf("postgres: get tenant: tenant %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Tenant{}, fmt.Errorf("postgres: get tenant: %w", err)
	}
	return t, nil
}

// ListTenants returns the tenants by id.
func (s *Store) ListTenants(ctx context.Context, activeOnly bool) ([]store.Tenant, error) {
	rows, err := s.pool.Query(ctx, qListTenants, activeOnly)
	if err != nil {
		return nil, fmt.Errorf("postgres: list tenants: %w", err)
	}
	out, err := collectList(rows, func(r pgx.CollectableRow) (store.Tenant, error) { return scanTenant(r) })
	if err != nil {
		return nil, fmt.Errorf("postgres: list tenants: %w", err)
	}
	return out, nil
}

// DeleteTenant removes the tenant and everything it owns (foreign keys
// cascade; idempotency records are keyed by scope and removed here).
func (s *Store) DeleteTenant(ctx context.Context, id string) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, qDeleteTenantIdempotency, id); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, qDeleteTenant, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("tenant %q: %w", id, store.ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: delete tenant: %w", err)
	}
	return nil
}

// SetAPIKey stores the key hash ("" revokes) and its expiry.
func (s *Store) SetAPIKey(ctx context.Context, tenantID, hash string, expiresAt *time.Time) error {
	if hash == "" {
		expiresAt = nil
	}
	tag, err := s.pool.Exec(ctx, qSetAPIKey, hash, msPtr(expiresAt), ms(s.now()), tenantID)
	if err != nil {
		return fmt.Errorf("postgres: set api key: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: set api key: tenant %q: %w", tenantID, store.ErrTenantNotFound)
	}
	return nil
}

// TenantByAPIKey finds the tenant whose key has this hash and is live at now.
func (s *Store) TenantByAPIKey(ctx context.Context, hash string, now time.Time) (store.Tenant, error) {
	if hash == "" {
		return store.Tenant{}, fmt.Errorf("postgres: tenant by api key: %w", store.ErrNotFound)
	}
	var t store.Tenant
	err := s.once(ctx, func() (err error) {
		t, err = scanTenant(s.pool.QueryRow(ctx, qTenantByAPIKey, hash, ms(now)))
		return err
	})
	if isNoRows(err) {
		return store.Tenant{}, fmt.Errorf("postgres: tenant by api key: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.Tenant{}, fmt.Errorf("postgres: tenant by api key: %w", err)
	}
	return t, nil
}

// SetSigningSecret rotates the signing secret; "" removes both secrets.
func (s *Store) SetSigningSecret(ctx context.Context, tenantID, secret string, prevUntil *time.Time) error {
	now := ms(s.now())
	var (
		n   int64
		err error
	)
	if secret == "" {
		tag, e := s.pool.Exec(ctx, qClearSigningSecrets, now, tenantID)
		n, err = tag.RowsAffected(), e
	} else {
		tag, e := s.pool.Exec(ctx, qSetSigningSecret, msPtr(prevUntil), secret, now, tenantID)
		n, err = tag.RowsAffected(), e
	}
	if err != nil {
		return fmt.Errorf("postgres: set signing secret: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("postgres: set signing secret: tenant %q: %w", tenantID, store.ErrTenantNotFound)
	}
	return nil
}

// Suspend suspends the whole tenant (batchCode nil) or one batch.
func (s *Store) Suspend(ctx context.Context, tenantID string, batchCode *string) (store.SuspendResult, error) {
	return s.suspension(ctx, "suspend", tenantID, batchCode, func(tx pgx.Tx, code *string) error {
		if code == nil {
			if _, err := tx.Exec(ctx, qSuspendClear, tenantID); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, qSuspendAdd, tenantID, store.SuspendAll)
			return err
		}
		var full bool
		if err := tx.QueryRow(ctx, qSuspendedAll, tenantID).Scan(&full); err != nil || full {
			return err // a batch suspension under "*" is a no-op
		}
		_, err := tx.Exec(ctx, qSuspendAdd, tenantID, *code)
		return err
	})
}

// Activate lifts the whole suspension (batchCode nil) or one batch's, and
// wakes every instance (NOTIFY, sent at commit).
func (s *Store) Activate(ctx context.Context, tenantID string, batchCode *string) (store.SuspendResult, error) {
	return s.suspension(ctx, "activate", tenantID, batchCode, func(tx pgx.Tx, code *string) error {
		if code == nil {
			if _, err := tx.Exec(ctx, qSuspendClear, tenantID); err != nil {
				return err
			}
		} else {
			var full bool
			if err := tx.QueryRow(ctx, qSuspendedAll, tenantID).Scan(&full); err != nil {
				return err
			}
			if full {
				return fmt.Errorf("tenant %q: %w", tenantID, store.ErrFullySuspended)
			}
			if _, err := tx.Exec(ctx, qSuspendRemove, tenantID, *code); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, qNotifyWork)
		return err
	})
}

// suspension runs change for an existing tenant (its row locked, so changes
// to one tenant apply one at a time) and reports the new state. A batch code
// "*" means the whole tenant.
func (s *Store) suspension(ctx context.Context, op, tenantID string, batchCode *string,
	change func(tx pgx.Tx, code *string) error) (store.SuspendResult, error) {
	code := driver.SuspensionBatch(batchCode)
	var res store.SuspendResult
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var one int
		err := tx.QueryRow(ctx, qLockTenant, tenantID).Scan(&one)
		if isNoRows(err) {
			return fmt.Errorf("tenant %q: %w", tenantID, store.ErrTenantNotFound)
		}
		if err != nil {
			return err
		}
		if err := change(tx, code); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, qSuspendedOf, tenantID)
		if err != nil {
			return err
		}
		codes, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		res.SuspendedBatches = driver.NormalizeSuspended(codes)
		return tx.QueryRow(ctx, qPendingOfTenant, tenantID, code).Scan(&res.PendingMessages)
	})
	if err != nil {
		return store.SuspendResult{}, fmt.Errorf("postgres: %s: %w", op, err)
	}
	return res, nil
}
