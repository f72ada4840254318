package client

import (
	"context"
	"net/http"
)

// HealthResponse is the answer of GET /health.
type HealthResponse struct {
	Status string `json:"status"`
}

// Health checks liveness (public, no token needed).
func (c *Client) Health(ctx context.Context) (HealthResponse, error) {
	var resp HealthResponse
	err := c.do(ctx, http.MethodGet, "/health", nil, nil, &resp)
	return resp, err
}

// StatusResponse is the answer of GET /status.
type StatusResponse struct {
	OK     bool `json:"ok"`
	Active bool `json:"active"` // this instance runs dispatcher and report loop
}

// Status reports whether the instance runs its dispatcher and reports.
func (c *Client) Status(ctx context.Context) (StatusResponse, error) {
	var resp StatusResponse
	err := c.do(ctx, http.MethodGet, "/status", nil, nil, &resp)
	return resp, err
}

// RunNow wakes the dispatcher and the report loop at once; tenantID ("" for
// none) restricts the report part to one tenant.
func (c *Client) RunNow(ctx context.Context, tenantID string) error {
	return c.do(ctx, http.MethodPost, "/commands/run-now", tenantQuery(tenantID), nil, nil)
}

// SuspendResponse is the answer of suspend and activate.
type SuspendResponse struct {
	OK               bool     `json:"ok"`
	TenantID         string   `json:"tenant_id"`
	BatchCode        string   `json:"batch_code,omitempty"`
	SuspendedBatches []string `json:"suspended_batches"` // ["*"] for a full suspension
	PendingMessages  int      `json:"pending_messages"`
}

// Suspend stops sending the tenant's messages, all of them or (batchCode
// not "") one batch.
func (c *Client) Suspend(ctx context.Context, tenantID, batchCode string) (SuspendResponse, error) {
	return c.suspension(ctx, "/commands/suspend", tenantID, batchCode)
}

// Activate resumes what Suspend stopped.
func (c *Client) Activate(ctx context.Context, tenantID, batchCode string) (SuspendResponse, error) {
	return c.suspension(ctx, "/commands/activate", tenantID, batchCode)
}

func (c *Client) suspension(ctx context.Context, path, tenantID, batchCode string) (SuspendResponse, error) {
	q := tenantQuery(tenantID)
	if batchCode != "" {
		q.Set("batch_code", batchCode)
	}
	var resp SuspendResponse
	err := c.do(ctx, http.MethodPost, path, q, nil, &resp)
	return resp, err
}

// RetryDeferredResponse is the answer of retry-deferred.
type RetryDeferredResponse struct {
	OK      bool `json:"ok"`
	Retried int  `json:"retried"`
}

// RetryDeferred makes the tenant's messages waiting for a retry (of one
// batch when batchCode is not "") due now.
func (c *Client) RetryDeferred(ctx context.Context, tenantID, batchCode string) (RetryDeferredResponse, error) {
	q := tenantQuery(tenantID)
	if batchCode != "" {
		q.Set("batch_code", batchCode)
	}
	var resp RetryDeferredResponse
	err := c.do(ctx, http.MethodPost, "/commands/retry-deferred", q, nil, &resp)
	return resp, err
}

// TenantStats is one tenant's row of GET /stats.
type TenantStats struct {
	TenantID string `json:"tenant_id"`
	Accounts int    `json:"accounts"`
	Pending  int    `json:"pending"`
	Deferred int    `json:"deferred"`
	Sent     int    `json:"sent"`
	Error    int    `json:"error"`
}

// Stats returns message counts per tenant (a tenant key sees its own).
func (c *Client) Stats(ctx context.Context) ([]TenantStats, error) {
	var resp struct {
		Tenants []TenantStats `json:"tenants"`
	}
	err := c.do(ctx, http.MethodGet, "/stats", nil, nil, &resp)
	return resp.Tenants, err
}
