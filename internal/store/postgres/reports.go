package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailproxy/mailproxy/internal/store"
)

// UnreportedEvents returns the tenant's unreported events in (At, ID) order.
func (s *Store) UnreportedEvents(ctx context.Context, tenantID string, limit int) ([]store.Event, error) {
	rows, err := s.pool.Query(ctx, qUnreportedEvents, tenantID, sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("postgres: unreported events: %w", err)
	}
	out, err := collectList(rows, func(r pgx.CollectableRow) (store.Event, error) { return scanEvent(r) })
	if err != nil {
		return nil, fmt.Errorf("postgres: unreported events: %w", err)
	}
	return out, nil
}

// TenantsWithUnreported lists the tenants that have unreported events.
func (s *Store) TenantsWithUnreported(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, qTenantsWithUnreported)
	if err != nil {
		return nil, fmt.Errorf("postgres: tenants with unreported: %w", err)
	}
	out, err := collectList(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: tenants with unreported: %w", err)
	}
	return out, nil
}

// CountUnreported counts a tenant's unreported events ("" = all tenants).
func (s *Store) CountUnreported(ctx context.Context, tenantID string) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, qCountUnreported, tenantID).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: count unreported: %w", err)
	}
	return n, nil
}

// MarkReported sets the events' reported time.
func (s *Store) MarkReported(ctx context.Context, eventIDs []int64, at time.Time) error {
	if len(eventIDs) == 0 {
		return nil
	}
	if _, err := s.pool.Exec(ctx, qMarkReported, ms(at), eventIDs); err != nil {
		return fmt.Errorf("postgres: mark reported: %w", err)
	}
	return nil
}

// GetSyncState returns the tenant's sync state (zero state if none).
func (s *Store) GetSyncState(ctx context.Context, tenantID string) (store.SyncState, error) {
	st := store.SyncState{TenantID: tenantID}
	var lastSync, dnd, nextRetry *int64
	err := s.pool.QueryRow(ctx, qGetSyncState, tenantID).Scan(&lastSync, &dnd, &st.ConsecutiveFailures, &nextRetry,
		&st.LastError, &st.QueuedStreak)
	if isNoRows(err) {
		return st, nil
	}
	if err != nil {
		return store.SyncState{}, fmt.Errorf("postgres: get sync state: %w", err)
	}
	st.LastSyncAt = timePtr(lastSync)
	st.DNDUntil = timePtr(dnd)
	st.NextRetryAt = timePtr(nextRetry)
	return st, nil
}

// PutSyncState stores the tenant's sync state; the report lease is kept.
func (s *Store) PutSyncState(ctx context.Context, st store.SyncState) error {
	_, err := s.pool.Exec(ctx, qPutSyncState, st.TenantID, msPtr(st.LastSyncAt), msPtr(st.DNDUntil),
		st.ConsecutiveFailures, msPtr(st.NextRetryAt), st.LastError, st.QueuedStreak)
	if isForeignKey(err) {
		return fmt.Errorf("postgres: put sync state: tenant %q: %w", st.TenantID, store.ErrTenantNotFound)
	}
	if err != nil {
		return fmt.Errorf("postgres: put sync state: %w", err)
	}
	return nil
}

// AcquireReportLease gives owner the tenant's report slot until `until` if
// it is free, expired or already owner's. One conditional upsert: exclusive
// across instances (qAcquireReportLease).
func (s *Store) AcquireReportLease(ctx context.Context, tenantID, owner string, now, until time.Time) (bool, error) {
	if owner == "" {
		return false, errors.New("postgres: acquire report lease: empty owner")
	}
	var one int
	err := s.pool.QueryRow(ctx, qAcquireReportLease, tenantID, owner, ms(now), ms(until)).Scan(&one)
	switch {
	case err == nil:
		return true, nil
	case isNoRows(err):
		return false, nil
	case isForeignKey(err):
		return false, fmt.Errorf("postgres: acquire report lease: tenant %q: %w", tenantID, store.ErrTenantNotFound)
	default:
		return false, fmt.Errorf("postgres: acquire report lease: %w", err)
	}
}

// ReleaseReportLease frees the tenant's report slot if owner holds it.
func (s *Store) ReleaseReportLease(ctx context.Context, tenantID, owner string) error {
	if _, err := s.pool.Exec(ctx, qReleaseReportLease, tenantID, owner); err != nil {
		return fmt.Errorf("postgres: release report lease: %w", err)
	}
	return nil
}
