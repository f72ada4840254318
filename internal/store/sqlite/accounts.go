package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/store/internal/driver"
)

func scanAccount(sc scanner) (store.Account, error) {
	var (
		a                                  store.Account
		perMin, perHour, perDay, batchSize sql.NullInt64
		useTLS, imapPort, imapSSL          sql.NullInt64
		tlsVerify, isPEC, hostByTenant     int64
		imapHost, imapUser                 sql.NullString
		created, updated                   int64
	)
	err := sc.Scan(&a.TenantID, &a.ID, &a.Host, &a.Port, &a.User, &a.Password, &a.TTL, &perMin, &perHour,
		&perDay, &a.LimitBehavior, &useTLS, &tlsVerify, &batchSize, &isPEC, &imapHost, &imapPort, &imapUser,
		&a.IMAPPassword, &imapSSL, &created, &updated, &a.DKIMDomain, &a.DKIMSelector, &a.DKIMPrivateKey, &hostByTenant)
	if err != nil {
		return store.Account{}, err
	}
	a.LimitPerMinute = intPtr(perMin)
	a.LimitPerHour = intPtr(perHour)
	a.LimitPerDay = intPtr(perDay)
	a.UseTLS = boolPtr(useTLS)
	a.TLSVerify = tlsVerify != 0
	a.BatchSize = intPtr(batchSize)
	a.IsPECAccount = isPEC != 0
	a.HostByTenant = hostByTenant != 0
	a.IMAPHost = strPtr(imapHost)
	a.IMAPPort = intPtr(imapPort)
	a.IMAPUser = strPtr(imapUser)
	a.IMAPSSL = boolPtr(imapSSL)
	a.CreatedAt = fromMS(created)
	a.UpdatedAt = fromMS(updated)
	return a, nil
}

// UpsertAccount creates or replaces every field of the account (created_at kept).
func (s *Store) UpsertAccount(ctx context.Context, a store.Account) error {
	if a.ID == "" {
		return fmt.Errorf("sqlite: upsert account: empty id")
	}
	created, updated := driver.RowTimes(a.CreatedAt, a.UpdatedAt, s.now)
	err := s.write(ctx, func(w *wtx) error {
		var one int
		err := w.queryRow(qTenantExists, a.TenantID).Scan(&one)
		if isNoRows(err) {
			return fmt.Errorf("tenant %q: %w", a.TenantID, store.ErrTenantNotFound)
		}
		if err != nil {
			return err
		}
		_, err = w.exec(qUpsertAccount, a.TenantID, a.ID, a.Host, a.Port, a.User, a.Password, a.TTL,
			nullInt(a.LimitPerMinute), nullInt(a.LimitPerHour), nullInt(a.LimitPerDay), a.LimitBehavior,
			nullBool(a.UseTLS), boolInt(a.TLSVerify), nullInt(a.BatchSize), boolInt(a.IsPECAccount),
			nullStr(a.IMAPHost), nullInt(a.IMAPPort), nullStr(a.IMAPUser), a.IMAPPassword, nullBool(a.IMAPSSL),
			ms(created), ms(updated), a.DKIMDomain, a.DKIMSelector, a.DKIMPrivateKey, boolInt(a.HostByTenant))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: upsert account %q: %w", a.ID, err)
	}
	return nil
}

// GetAccount returns one account (store.ErrNotFound if unknown).
func (s *Store) GetAccount(ctx context.Context, tenantID, id string) (store.Account, error) {
	a, err := scanAccount(s.queryRow(ctx, qGetAccount, tenantID, id))
	if isNoRows(err) {
		return store.Account{}, fmt.Errorf("sqlite: account %q of tenant %q: %w", id, tenantID, store.ErrNotFound)
	}
	if err != nil {
		return store.Account{}, fmt.Errorf("sqlite: get account: %w", err)
	}
	return a, nil
}

// ListAccounts returns the accounts of one tenant ("" = all) by tenant, id.
func (s *Store) ListAccounts(ctx context.Context, tenantID string) ([]store.Account, error) {
	rows, err := s.query(ctx, qListAccounts, tenantID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list accounts: %w", err)
	}
	defer rows.Close()
	out := []store.Account{}
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list accounts: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list accounts: %w", err)
	}
	return out, nil
}

// DeleteAccount removes the account; its messages stay.
func (s *Store) DeleteAccount(ctx context.Context, tenantID, id string) error {
	err := s.write(ctx, func(w *wtx) error {
		return w.execOne(fmt.Errorf("account %q of tenant %q: %w", id, tenantID, store.ErrNotFound), qDeleteAccount, tenantID, id)
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete account: %w", err)
	}
	return nil
}
