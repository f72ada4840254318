package queue

import (
	"context"
	"sync"
	"time"
)

// tenantNames caches tenant names for metric labels, so a send does not read
// the tenant row every time. Entries refresh after a minute.
type tenantNames struct {
	st Store
	mu sync.Mutex
	m  map[string]tenantName
}

type tenantName struct {
	name    string
	fetched time.Time
}

func newTenantNames(st Store) *tenantNames {
	return &tenantNames{st: st, m: map[string]tenantName{}}
}

func (c *tenantNames) name(ctx context.Context, tenantID string) string {
	c.mu.Lock()
	e, ok := c.m[tenantID]
	c.mu.Unlock()
	if ok && time.Since(e.fetched) < time.Minute {
		return e.name
	}
	name := ""
	if t, err := c.st.GetTenant(ctx, tenantID); err == nil && t.Name != nil {
		name = *t.Name
	}
	c.mu.Lock()
	c.m[tenantID] = tenantName{name: name, fetched: time.Now()}
	c.mu.Unlock()
	return name
}
