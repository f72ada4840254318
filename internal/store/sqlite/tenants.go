package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/store/internal/driver"
)

// GetInstance returns the instance settings, or the defaults when none are stored.
func (s *Store) GetInstance(ctx context.Context) (store.Instance, error) {
	inst := driver.DefaultInstance()
	var (
		host, user, returnPath sql.NullString
		enabled, ssl           int64
		created, updated       int64
	)
	err := s.queryRow(ctx, qGetInstance).Scan(&inst.Name, &inst.APIToken, &inst.Edition, &enabled, &host,
		&inst.BounceIMAPPort, &user, &inst.BounceIMAPPassword, &inst.BounceIMAPFolder, &ssl,
		&inst.BouncePollInterval, &returnPath, &created, &updated)
	if isNoRows(err) {
		return inst, nil
	}
	if err != nil {
		return store.Instance{}, fmt.Errorf("sqlite: get instance: %w", err)
	}
	inst.BounceEnabled = enabled != 0
	inst.BounceIMAPSSL = ssl != 0
	inst.BounceIMAPHost = strPtr(host)
	inst.BounceIMAPUser = strPtr(user)
	inst.BounceReturnPath = strPtr(returnPath)
	inst.CreatedAt = fromMS(created)
	inst.UpdatedAt = fromMS(updated)
	return inst, nil
}

// PutInstance stores the instance settings (created_at kept once set).
func (s *Store) PutInstance(ctx context.Context, inst store.Instance) error {
	created, updated := driver.RowTimes(inst.CreatedAt, inst.UpdatedAt, s.now)
	err := s.write(ctx, func(w *wtx) error {
		_, err := w.exec(qPutInstance, inst.Name, inst.APIToken, inst.Edition, boolInt(inst.BounceEnabled),
			nullStr(inst.BounceIMAPHost), inst.BounceIMAPPort, nullStr(inst.BounceIMAPUser),
			inst.BounceIMAPPassword, inst.BounceIMAPFolder, boolInt(inst.BounceIMAPSSL),
			inst.BouncePollInterval, nullStr(inst.BounceReturnPath), ms(created), ms(updated))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: put instance: %w", err)
	}
	return nil
}

func scanTenant(sc scanner) (store.Tenant, error) {
	var (
		t                                         store.Tenant
		name, auth, baseURL, syncPath, attachPath sql.NullString
		rateLimits, largeFile                     sql.NullString
		active, urlByTenant                       int64
		keyExpires, prevUntil                     sql.NullInt64
		created, updated                          int64
	)
	err := sc.Scan(&t.ID, &name, &auth, &baseURL, &syncPath, &attachPath, &rateLimits, &largeFile, &active,
		&t.APIKeyHash, &keyExpires, &t.SigningSecret, &t.PrevSigningSecret, &prevUntil, &created, &updated, &urlByTenant)
	if err != nil {
		return store.Tenant{}, err
	}
	t.Name = strPtr(name)
	if t.ClientAuth, err = driver.DecodeClientAuth(strPtr(auth)); err != nil {
		return store.Tenant{}, fmt.Errorf("tenant %q: %w", t.ID, err)
	}
	t.ClientBaseURL = strPtr(baseURL)
	t.ClientSyncPath = strPtr(syncPath)
	t.ClientAttachmentPath = strPtr(attachPath)
	t.RateLimits = jsonRaw(rateLimits)
	t.LargeFileConfig = jsonRaw(largeFile)
	t.Active = active != 0
	t.ClientURLByTenant = urlByTenant != 0
	t.APIKeyExpiresAt = timePtr(keyExpires)
	t.PrevSigningSecretUntil = timePtr(prevUntil)
	t.CreatedAt = fromMS(created)
	t.UpdatedAt = fromMS(updated)
	return t, nil
}

// suspendedOf reads one tenant's suspended batches (never nil).
func suspendedOf(rows *sql.Rows, err error) ([]string, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var code string
		if err := rows.Scan(&code); err != nil {
			return nil, err
		}
		out = append(out, code)
	}
	return driver.NormalizeSuspended(out), rows.Err()
}

// UpsertTenant creates or replaces the tenant's payload fields.
func (s *Store) UpsertTenant(ctx context.Context, t store.Tenant) (bool, error) {
	if t.ID == "" {
		return false, fmt.Errorf("sqlite: upsert tenant: empty id")
	}
	auth, err := driver.EncodeClientAuth(t.ClientAuth)
	if err != nil {
		return false, fmt.Errorf("sqlite: upsert tenant: %w", err)
	}
	createdAt, updated := driver.RowTimes(t.CreatedAt, t.UpdatedAt, s.now)
	var created bool
	err = s.write(ctx, func(w *wtx) error {
		var one int
		err := w.queryRow(qTenantExists, t.ID).Scan(&one)
		switch {
		case isNoRows(err):
			created = true
		case err != nil:
			return err
		}
		_, err = w.exec(qUpsertTenant, t.ID, nullStr(t.Name), nullStr(auth), nullStr(t.ClientBaseURL),
			nullStr(t.ClientSyncPath), nullStr(t.ClientAttachmentPath), nullJSON(t.RateLimits),
			nullJSON(t.LargeFileConfig), boolInt(t.Active), ms(createdAt), ms(updated), boolInt(t.ClientURLByTenant))
		return err
	})
	if err != nil {
		return false, fmt.Errorf("sqlite: upsert tenant %q: %w", t.ID, err)
	}
	return created, nil
}

// GetTenant returns one tenant (store.ErrNotFound if unknown).
func (s *Store) GetTenant(ctx context.Context, id string) (store.Tenant, error) {
	var t store.Tenant
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		var err error
		t, err = scanTenant(tx.QueryRowContext(ctx, qGetTenant, id))
		if isNoRows(err) {
			return fmt.Errorf("tenant %q: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		t.SuspendedBatches, err = suspendedOf(tx.QueryContext(ctx, qSuspendedOf, id))
		return err
	})
	if err != nil {
		return store.Tenant{}, fmt.Errorf("sqlite: get tenant: %w", err)
	}
	return t, nil
}

// ListTenants returns the tenants by id.
func (s *Store) ListTenants(ctx context.Context, activeOnly bool) ([]store.Tenant, error) {
	out := []store.Tenant{}
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, qListTenants, boolInt(activeOnly))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			t, err := scanTenant(rows)
			if err != nil {
				return err
			}
			t.SuspendedBatches = []string{}
			out = append(out, t)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		return fillSuspended(ctx, tx, out)
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: list tenants: %w", err)
	}
	return out, nil
}

// fillSuspended loads every tenant's suspended batches in one query.
func fillSuspended(ctx context.Context, tx *sql.Tx, tenants []store.Tenant) error {
	rows, err := tx.QueryContext(ctx, qAllSuspended)
	if err != nil {
		return err
	}
	defer rows.Close()
	byID := map[string][]string{}
	for rows.Next() {
		var id, code string
		if err := rows.Scan(&id, &code); err != nil {
			return err
		}
		byID[id] = append(byID[id], code)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for i := range tenants {
		if codes, ok := byID[tenants[i].ID]; ok {
			tenants[i].SuspendedBatches = driver.NormalizeSuspended(codes)
		}
	}
	return nil
}

// DeleteTenant removes the tenant and everything it owns (foreign keys
// cascade; idempotency records are keyed by scope and removed here).
func (s *Store) DeleteTenant(ctx context.Context, id string) error {
	err := s.write(ctx, func(w *wtx) error {
		if _, err := w.exec(qDeleteTenantIdempotency, id); err != nil {
			return err
		}
		return w.execOne(fmt.Errorf("tenant %q: %w", id, store.ErrNotFound), qDeleteTenant, id)
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete tenant: %w", err)
	}
	return nil
}

// SetAPIKey stores the key hash ("" revokes) and its expiry.
func (s *Store) SetAPIKey(ctx context.Context, tenantID, hash string, expiresAt *time.Time) error {
	if hash == "" {
		expiresAt = nil
	}
	now := s.now()
	err := s.write(ctx, func(w *wtx) error {
		return w.execOne(fmt.Errorf("tenant %q: %w", tenantID, store.ErrTenantNotFound), qSetAPIKey, hash, nullMS(expiresAt), ms(now), tenantID)
	})
	if err != nil {
		return fmt.Errorf("sqlite: set api key: %w", err)
	}
	return nil
}

// TenantByAPIKey finds the tenant whose key has this hash and is live at now.
func (s *Store) TenantByAPIKey(ctx context.Context, hash string, now time.Time) (store.Tenant, error) {
	if hash == "" {
		return store.Tenant{}, fmt.Errorf("sqlite: tenant by api key: %w", store.ErrNotFound)
	}
	var t store.Tenant
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		var err error
		t, err = scanTenant(tx.QueryRowContext(ctx, qTenantByAPIKey, hash, ms(now)))
		if isNoRows(err) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		t.SuspendedBatches, err = suspendedOf(tx.QueryContext(ctx, qSuspendedOf, t.ID))
		return err
	})
	if err != nil {
		return store.Tenant{}, fmt.Errorf("sqlite: tenant by api key: %w", err)
	}
	return t, nil
}

// SetSigningSecret rotates the signing secret; "" removes both secrets.
func (s *Store) SetSigningSecret(ctx context.Context, tenantID, secret string, prevUntil *time.Time) error {
	now := s.now()
	err := s.write(ctx, func(w *wtx) error {
		missing := fmt.Errorf("tenant %q: %w", tenantID, store.ErrTenantNotFound)
		if secret == "" {
			return w.execOne(missing, qClearSigningSecrets, ms(now), tenantID)
		}
		return w.execOne(missing, qSetSigningSecret, nullMS(prevUntil), secret, ms(now), tenantID)
	})
	if err != nil {
		return fmt.Errorf("sqlite: set signing secret: %w", err)
	}
	return nil
}

// Suspend suspends the whole tenant (batchCode nil) or one batch.
func (s *Store) Suspend(ctx context.Context, tenantID string, batchCode *string) (store.SuspendResult, error) {
	return s.suspension(ctx, "suspend", tenantID, batchCode, func(w *wtx, code *string) error {
		if code == nil {
			if _, err := w.exec(qSuspendClear, tenantID); err != nil {
				return err
			}
			_, err := w.exec(qSuspendAdd, tenantID, store.SuspendAll)
			return err
		}
		full, err := suspendedAll(w, tenantID)
		if err != nil || full {
			return err // a batch suspension under "*" is a no-op
		}
		_, err = w.exec(qSuspendAdd, tenantID, *code)
		return err
	})
}

// Activate lifts the whole suspension (batchCode nil) or one batch's.
func (s *Store) Activate(ctx context.Context, tenantID string, batchCode *string) (store.SuspendResult, error) {
	return s.suspension(ctx, "activate", tenantID, batchCode, func(w *wtx, code *string) error {
		if code == nil {
			_, err := w.exec(qSuspendClear, tenantID)
			return err
		}
		full, err := suspendedAll(w, tenantID)
		if err != nil {
			return err
		}
		if full {
			return fmt.Errorf("tenant %q: %w", tenantID, store.ErrFullySuspended)
		}
		_, err = w.exec(qSuspendRemove, tenantID, *code)
		return err
	})
}

func suspendedAll(w *wtx, tenantID string) (bool, error) {
	var one int
	err := w.queryRow(qSuspendedAll, tenantID).Scan(&one)
	if isNoRows(err) {
		return false, nil
	}
	return err == nil, err
}

// suspension runs change for an existing tenant and reports the new state.
// A batch code "*" means the whole tenant.
func (s *Store) suspension(ctx context.Context, op, tenantID string, batchCode *string,
	change func(w *wtx, code *string) error) (store.SuspendResult, error) {
	code := driver.SuspensionBatch(batchCode)
	var res store.SuspendResult
	err := s.write(ctx, func(w *wtx) error {
		var one int
		err := w.queryRow(qTenantExists, tenantID).Scan(&one)
		if isNoRows(err) {
			return fmt.Errorf("tenant %q: %w", tenantID, store.ErrTenantNotFound)
		}
		if err != nil {
			return err
		}
		if err := change(w, code); err != nil {
			return err
		}
		res.SuspendedBatches, err = suspendedOf(w.query(qSuspendedOf, tenantID))
		if err != nil {
			return err
		}
		return w.queryRow(qPendingOfTenant, tenantID, nullStr(code)).Scan(&res.PendingMessages)
	})
	if err != nil {
		return store.SuspendResult{}, fmt.Errorf("sqlite: %s: %w", op, err)
	}
	return res, nil
}
