package report

import (
	"context"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
)

// Store is the part of store.Store the loop uses: tenants, their unreported
// events and sync state, and the per-tenant report lease.
type Store interface {
	ListTenants(ctx context.Context, activeOnly bool) ([]store.Tenant, error)
	GetTenant(ctx context.Context, id string) (store.Tenant, error)
	TenantsWithUnreported(ctx context.Context) ([]string, error)
	UnreportedEvents(ctx context.Context, tenantID string, limit int) ([]store.Event, error)
	CountUnreported(ctx context.Context, tenantID string) (int, error)
	MarkReported(ctx context.Context, eventIDs []int64, at time.Time) error
	GetSyncState(ctx context.Context, tenantID string) (store.SyncState, error)
	PutSyncState(ctx context.Context, s store.SyncState) error
	AcquireReportLease(ctx context.Context, tenantID, owner string, now, until time.Time) (bool, error)
	ReleaseReportLease(ctx context.Context, tenantID, owner string) error
}

// Cleaner is the part of store.Store retention uses.
type Cleaner interface {
	CleanupMessages(ctx context.Context, tenantID string, cutoff time.Time, limit int) (int, error)
}
