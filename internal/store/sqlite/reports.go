package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
)

// UnreportedEvents returns the tenant's unreported events in (At, ID) order.
func (s *Store) UnreportedEvents(ctx context.Context, tenantID string, limit int) ([]store.Event, error) {
	rows, err := s.query(ctx, qUnreportedEvents, tenantID, sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("sqlite: unreported events: %w", err)
	}
	defer rows.Close()
	out := []store.Event{}
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: unreported events: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: unreported events: %w", err)
	}
	return out, nil
}

// TenantsWithUnreported lists the tenants that have unreported events.
func (s *Store) TenantsWithUnreported(ctx context.Context) ([]string, error) {
	rows, err := s.query(ctx, qTenantsWithUnreported)
	if err != nil {
		return nil, fmt.Errorf("sqlite: tenants with unreported: %w", err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("sqlite: tenants with unreported: %w", err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: tenants with unreported: %w", err)
	}
	return out, nil
}

// CountUnreported counts a tenant's unreported events ("" = all tenants).
func (s *Store) CountUnreported(ctx context.Context, tenantID string) (int, error) {
	var n int
	if err := s.queryRow(ctx, qCountUnreported, tenantID).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: count unreported: %w", err)
	}
	return n, nil
}

// MarkReported sets the events' reported time.
func (s *Store) MarkReported(ctx context.Context, eventIDs []int64, at time.Time) error {
	if len(eventIDs) == 0 {
		return nil
	}
	list, err := jsonList(eventIDs)
	if err != nil {
		return fmt.Errorf("sqlite: mark reported: %w", err)
	}
	err = s.writeRelaxed(ctx, func(w *wtx) error {
		_, err := w.exec(qMarkReported, ms(at), list)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: mark reported: %w", err)
	}
	return nil
}

// GetSyncState returns the tenant's sync state (zero state if none).
func (s *Store) GetSyncState(ctx context.Context, tenantID string) (store.SyncState, error) {
	st := store.SyncState{TenantID: tenantID}
	var lastSync, dnd, nextRetry sql.NullInt64
	err := s.queryRow(ctx, qGetSyncState, tenantID).Scan(&lastSync, &dnd, &st.ConsecutiveFailures, &nextRetry,
		&st.LastError, &st.QueuedStreak)
	if isNoRows(err) {
		return st, nil
	}
	if err != nil {
		return store.SyncState{}, fmt.Errorf("sqlite: get sync state: %w", err)
	}
	st.LastSyncAt = timePtr(lastSync)
	st.DNDUntil = timePtr(dnd)
	st.NextRetryAt = timePtr(nextRetry)
	return st, nil
}

// PutSyncState stores the tenant's sync state; the report lease is kept.
func (s *Store) PutSyncState(ctx context.Context, st store.SyncState) error {
	err := s.writeRelaxed(ctx, func(w *wtx) error {
		_, err := w.exec(qPutSyncState, st.TenantID, nullMS(st.LastSyncAt), nullMS(st.DNDUntil),
			st.ConsecutiveFailures, nullMS(st.NextRetryAt), st.LastError, st.QueuedStreak)
		if isForeignKey(err) {
			return fmt.Errorf("tenant %q: %w", st.TenantID, store.ErrTenantNotFound)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: put sync state: %w", err)
	}
	return nil
}

// AcquireReportLease gives owner the tenant's report slot until `until` if
// it is free, expired or already owner's.
func (s *Store) AcquireReportLease(ctx context.Context, tenantID, owner string, now, until time.Time) (bool, error) {
	if owner == "" {
		return false, fmt.Errorf("sqlite: acquire report lease: empty owner")
	}
	var ok bool
	err := s.writeRelaxed(ctx, func(w *wtx) error {
		var one int
		err := w.queryRow(qAcquireReportLease, tenantID, owner, ms(now), ms(until)).Scan(&one)
		switch {
		case err == nil:
			ok = true
		case isNoRows(err):
			ok = false
		case isForeignKey(err):
			return fmt.Errorf("tenant %q: %w", tenantID, store.ErrTenantNotFound)
		default:
			return err
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("sqlite: acquire report lease: %w", err)
	}
	return ok, nil
}

// ReleaseReportLease frees the tenant's report slot if owner holds it.
func (s *Store) ReleaseReportLease(ctx context.Context, tenantID, owner string) error {
	err := s.writeRelaxed(ctx, func(w *wtx) error {
		_, err := w.exec(qReleaseReportLease, tenantID, owner)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: release report lease: %w", err)
	}
	return nil
}
