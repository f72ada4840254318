package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
)

// ClientAuth is how the proxy authenticates to the tenant's application.
// Token and Password read back as "********".
type ClientAuth struct {
	Method   string `json:"method"` // none, bearer, basic
	Token    string `json:"token,omitempty"`
	User     string `json:"user,omitempty"`
	Password string `json:"password,omitempty"`
}

// Tenant is the TenantPayload of POST /tenant (api.md §4.2). On an existing
// id every field is replaced; omitted ones take their defaults.
type Tenant struct {
	ID                   string          `json:"id"`
	Name                 string          `json:"name,omitempty"`
	ClientAuth           *ClientAuth     `json:"client_auth,omitempty"`
	ClientBaseURL        string          `json:"client_base_url,omitempty"`
	ClientSyncPath       string          `json:"client_sync_path,omitempty"`       // "" → /mail-proxy/sync
	ClientAttachmentPath string          `json:"client_attachment_path,omitempty"` // "" → /mail-proxy/attachments
	RateLimits           json.RawMessage `json:"rate_limits,omitempty"`
	LargeFileConfig      json.RawMessage `json:"large_file_config,omitempty"`
	Active               *bool           `json:"active,omitempty"` // nil → true
}

// TenantUpdate is the body of PUT /tenant/{id}: only non-nil fields change.
type TenantUpdate struct {
	Name                 *string         `json:"name,omitempty"`
	ClientAuth           *ClientAuth     `json:"client_auth,omitempty"`
	ClientBaseURL        *string         `json:"client_base_url,omitempty"`
	ClientSyncPath       *string         `json:"client_sync_path,omitempty"`
	ClientAttachmentPath *string         `json:"client_attachment_path,omitempty"`
	RateLimits           json.RawMessage `json:"rate_limits,omitempty"`
	LargeFileConfig      json.RawMessage `json:"large_file_config,omitempty"`
	Active               *bool           `json:"active,omitempty"`
}

// TenantInfo is a tenant as read back.
type TenantInfo struct {
	ID                   string          `json:"id"`
	Name                 string          `json:"name,omitempty"`
	ClientAuth           *ClientAuth     `json:"client_auth,omitempty"`
	ClientBaseURL        string          `json:"client_base_url,omitempty"`
	ClientSyncPath       string          `json:"client_sync_path,omitempty"`
	ClientAttachmentPath string          `json:"client_attachment_path,omitempty"`
	RateLimits           json.RawMessage `json:"rate_limits,omitempty"`
	LargeFileConfig      json.RawMessage `json:"large_file_config,omitempty"`
	Active               bool            `json:"active"`
	CreatedAt            string          `json:"created_at,omitempty"`
	UpdatedAt            string          `json:"updated_at,omitempty"`
	SuspendedBatches     []string        `json:"suspended_batches,omitempty"`
	SigningSecretSet     bool            `json:"signing_secret_set"`
}

// CreateTenant creates or replaces a tenant. It returns the new tenant's API
// key, shown only now; "" when the id existed (its key is kept).
func (c *Client) CreateTenant(ctx context.Context, t Tenant) (string, error) {
	var resp struct {
		APIKey string `json:"api_key"`
	}
	err := c.do(ctx, http.MethodPost, "/tenant", nil, t, &resp)
	return resp.APIKey, err
}

// GetTenant reads one tenant.
func (c *Client) GetTenant(ctx context.Context, tenantID string) (TenantInfo, error) {
	var resp TenantInfo
	err := c.do(ctx, http.MethodGet, tenantPath(tenantID), nil, nil, &resp)
	return resp, err
}

// ListTenants lists tenants by id; activeOnly drops inactive ones.
func (c *Client) ListTenants(ctx context.Context, activeOnly bool) ([]TenantInfo, error) {
	q := url.Values{}
	if activeOnly {
		q.Set("active_only", "true")
	}
	var resp struct {
		Tenants []TenantInfo `json:"tenants"`
	}
	err := c.do(ctx, http.MethodGet, "/tenants", q, nil, &resp)
	return resp.Tenants, err
}

// UpdateTenant changes the fields set in u.
func (c *Client) UpdateTenant(ctx context.Context, tenantID string, u TenantUpdate) error {
	return c.do(ctx, http.MethodPut, tenantPath(tenantID), nil, u, nil)
}

// DeleteTenant deletes a tenant with its accounts and messages.
func (c *Client) DeleteTenant(ctx context.Context, tenantID string) error {
	return c.do(ctx, http.MethodDelete, tenantPath(tenantID), nil, nil, nil)
}

// CreateAPIKey issues a new key for the tenant (the old one stops working);
// expiresAt (Unix s) is optional.
func (c *Client) CreateAPIKey(ctx context.Context, tenantID string, expiresAt *int64) (string, error) {
	body := struct {
		ExpiresAt *int64 `json:"expires_at,omitempty"`
	}{expiresAt}
	var resp struct {
		APIKey string `json:"api_key"`
	}
	err := c.do(ctx, http.MethodPost, tenantPath(tenantID)+"/api-key", nil, body, &resp)
	return resp.APIKey, err
}

// RevokeAPIKey removes the tenant's key.
func (c *Client) RevokeAPIKey(ctx context.Context, tenantID string) error {
	return c.do(ctx, http.MethodDelete, tenantPath(tenantID)+"/api-key", nil, nil, nil)
}

// CreateSigningSecret makes a new "whsec_…" secret for signing the tenant's
// delivery reports, returned only now.
func (c *Client) CreateSigningSecret(ctx context.Context, tenantID string) (string, error) {
	var resp struct {
		SigningSecret string `json:"signing_secret"`
	}
	err := c.do(ctx, http.MethodPost, tenantPath(tenantID)+"/signing-secret", nil, nil, &resp)
	return resp.SigningSecret, err
}

// DeleteSigningSecret stops signing the tenant's reports.
func (c *Client) DeleteSigningSecret(ctx context.Context, tenantID string) error {
	return c.do(ctx, http.MethodDelete, tenantPath(tenantID)+"/signing-secret", nil, nil, nil)
}

// SyncStatus is the answer of GET /tenants/sync-status.
type SyncStatus struct {
	OK                  bool               `json:"ok"`
	SyncIntervalSeconds float64            `json:"sync_interval_seconds"`
	Tenants             []TenantSyncStatus `json:"tenants"`
}

// TenantSyncStatus is one tenant's client-sync state.
type TenantSyncStatus struct {
	ID                  string   `json:"id"`
	Name                string   `json:"name,omitempty"`
	Active              bool     `json:"active"`
	ClientBaseURL       string   `json:"client_base_url,omitempty"`
	LastSyncTS          *int64   `json:"last_sync_ts,omitempty"`
	NextSyncDue         bool     `json:"next_sync_due"`
	InDND               bool     `json:"in_dnd"`
	DNDUntil            *float64 `json:"dnd_until,omitempty"`
	PendingReports      int      `json:"pending_reports"`
	ConsecutiveFailures int      `json:"consecutive_failures"`
	LastError           string   `json:"last_error,omitempty"`
}

// SyncStatus reports every tenant's client-sync state (admin).
func (c *Client) SyncStatus(ctx context.Context) (SyncStatus, error) {
	var resp SyncStatus
	err := c.do(ctx, http.MethodGet, "/tenants/sync-status", nil, nil, &resp)
	return resp, err
}

func tenantPath(tenantID string) string { return "/tenant/" + url.PathEscape(tenantID) }
