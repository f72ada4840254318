package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/store/internal/driver"
)

// accountDest lists the scan destinations of accountCols for a.
func accountDest(a *store.Account, created, updated *int64) []any {
	return []any{&a.TenantID, &a.ID, &a.Host, &a.Port, &a.User, &a.Password, &a.TTL, &a.LimitPerMinute,
		&a.LimitPerHour, &a.LimitPerDay, &a.LimitBehavior, &a.UseTLS, &a.TLSVerify, &a.BatchSize, &a.IsPECAccount,
		&a.IMAPHost, &a.IMAPPort, &a.IMAPUser, &a.IMAPPassword, &a.IMAPSSL, created, updated,
		&a.DKIMDomain, &a.DKIMSelector, &a.DKIMPrivateKey, &a.HostByTenant}
}

func scanAccount(sc scanner) (store.Account, error) {
	var (
		a                store.Account
		created, updated int64
	)
	if err := sc.Scan(accountDest(&a, &created, &updated)...); err != nil {
		return store.Account{}, err
	}
	a.CreatedAt = fromMS(created)
	a.UpdatedAt = fromMS(updated)
	return a, nil
}

// UpsertAccount creates or replaces every field of the account (created_at kept).
func (s *Store) UpsertAccount(ctx context.Context, a store.Account) error {
	if a.ID == "" {
		return errors.New("postgres: upsert account: empty id")
	}
	created, updated := driver.RowTimes(a.CreatedAt, a.UpdatedAt, s.now)
	_, err := s.pool.Exec(ctx, qUpsertAccount, a.TenantID, a.ID, a.Host, a.Port, a.User, a.Password, a.TTL,
		a.LimitPerMinute, a.LimitPerHour, a.LimitPerDay, a.LimitBehavior, a.UseTLS, a.TLSVerify, a.BatchSize,
		a.IsPECAccount, a.IMAPHost, a.IMAPPort, a.IMAPUser, a.IMAPPassword, a.IMAPSSL, ms(created), ms(updated),
		a.DKIMDomain, a.DKIMSelector, a.DKIMPrivateKey, a.HostByTenant)
	if isForeignKey(err) {
		return fmt.Errorf("postgres: upsert account %q: tenant %q: %w", a.ID, a.TenantID, store.ErrTenantNotFound)
	}
	if err != nil {
		return fmt.Errorf("postgres: upsert account %q: %w", a.ID, err)
	}
	return nil
}

// GetAccount returns one account (store.ErrNotFound if unknown).
func (s *Store) GetAccount(ctx context.Context, tenantID, id string) (store.Account, error) {
	a, err := scanAccount(s.pool.QueryRow(ctx, qGetAccount, tenantID, id))
	if isNoRows(err) {
		return store.Account{}, fmt.Errorf("postgres: account %q of tenant %q: %w", id, tenantID, store.ErrNotFound)
	}
	if err != nil {
		return store.Account{}, fmt.Errorf("postgres: get account: %w", err)
	}
	return a, nil
}

// ListAccounts returns the accounts of one tenant ("" = all) by tenant, id.
func (s *Store) ListAccounts(ctx context.Context, tenantID string) ([]store.Account, error) {
	rows, err := s.pool.Query(ctx, qListAccounts, tenantID)
	if err != nil {
		return nil, fmt.Errorf("postgres: list accounts: %w", err)
	}
	out, err := collectList(rows, func(r pgx.CollectableRow) (store.Account, error) { return scanAccount(r) })
	if err != nil {
		return nil, fmt.Errorf("postgres: list accounts: %w", err)
	}
	return out, nil
}

// DeleteAccount removes the account; its messages stay.
func (s *Store) DeleteAccount(ctx context.Context, tenantID, id string) error {
	tag, err := s.pool.Exec(ctx, qDeleteAccount, tenantID, id)
	if err != nil {
		return fmt.Errorf("postgres: delete account: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: delete account: account %q of tenant %q: %w", id, tenantID, store.ErrNotFound)
	}
	return nil
}
