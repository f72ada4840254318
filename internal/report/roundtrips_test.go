package report

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
)

// countingStore counts the loop's store calls by method: its round trips.
type countingStore struct {
	Store
	mu    sync.Mutex
	calls map[string]int
}

func (c *countingStore) count(name string) {
	c.mu.Lock()
	c.calls[name]++
	c.mu.Unlock()
}

func (c *countingStore) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.calls {
		n += v
	}
	return n
}

func (c *countingStore) ListTenants(ctx context.Context, activeOnly bool) ([]store.Tenant, error) {
	c.count("ListTenants")
	return c.Store.ListTenants(ctx, activeOnly)
}

func (c *countingStore) GetTenant(ctx context.Context, id string) (store.Tenant, error) {
	c.count("GetTenant")
	return c.Store.GetTenant(ctx, id)
}

func (c *countingStore) TenantsWithUnreported(ctx context.Context) ([]string, error) {
	c.count("TenantsWithUnreported")
	return c.Store.TenantsWithUnreported(ctx)
}

func (c *countingStore) UnreportedEvents(ctx context.Context, tenantID string, limit int) ([]store.Event, error) {
	c.count("UnreportedEvents")
	return c.Store.UnreportedEvents(ctx, tenantID, limit)
}

func (c *countingStore) CountUnreported(ctx context.Context, tenantID string) (int, error) {
	c.count("CountUnreported")
	return c.Store.CountUnreported(ctx, tenantID)
}

func (c *countingStore) MarkReported(ctx context.Context, eventIDs []int64, at time.Time) error {
	c.count("MarkReported")
	return c.Store.MarkReported(ctx, eventIDs, at)
}

func (c *countingStore) GetSyncState(ctx context.Context, tenantID string) (store.SyncState, error) {
	c.count("GetSyncState")
	return c.Store.GetSyncState(ctx, tenantID)
}

func (c *countingStore) PutSyncState(ctx context.Context, s store.SyncState) error {
	c.count("PutSyncState")
	return c.Store.PutSyncState(ctx, s)
}

func (c *countingStore) AcquireReportLease(ctx context.Context, tenantID, owner string, now, until time.Time) (bool, error) {
	c.count("AcquireReportLease")
	return c.Store.AcquireReportLease(ctx, tenantID, owner, now, until)
}

func (c *countingStore) ReleaseReportLease(ctx context.Context, tenantID, owner string) error {
	c.count("ReleaseReportLease")
	return c.Store.ReleaseReportLease(ctx, tenantID, owner)
}

// TestServeRoundTrips pins the store round trips of serving one tenant with
// a few events in one POST, so a change that adds one is seen.
func TestServeRoundTrips(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	rc := newReceiver(t, okReply)
	e.tenant("t1", rc.srv.URL, nil)
	for _, id := range []string{"m1", "m2", "m3"} {
		e.sent("t1", id)
	}
	cs := &countingStore{Store: e.st, calls: map[string]int{}}
	l := e.loop(Options{})
	l.st = cs
	next, more, err := l.serve(e.ctx, "t1", false)
	if err != nil || more {
		t.Fatalf("serve = %v, %v, %v", next, more, err)
	}
	if rc.count() != 1 || e.unreported("t1") != 0 {
		t.Fatalf("%d POSTs, %d unreported; want 1 POST and none left", rc.count(), e.unreported("t1"))
	}
	const want = 12
	if n := cs.total(); n != want {
		t.Errorf("serving one tenant took %d store round trips, want %d: %v", n, want, cs.calls)
	}
}
