package client

import (
	"context"
	"net/http"
)

// Suppression is one address a tenant no longer sends to.
type Suppression struct {
	Address   string `json:"address"`
	Reason    string `json:"reason"`
	Source    string `json:"source"` // bounce, complaint or manual
	CreatedAt string `json:"created_at"`
}

// ListSuppressions lists the tenant's suppressed addresses.
func (c *Client) ListSuppressions(ctx context.Context, tenantID string) ([]Suppression, error) {
	var resp struct {
		Suppressions []Suppression `json:"suppressions"`
	}
	err := c.do(ctx, http.MethodGet, "/suppressions", tenantQuery(tenantID), nil, &resp)
	return resp.Suppressions, err
}

// AddSuppressions suppresses addresses for the tenant; it returns how many
// were not suppressed before.
func (c *Client) AddSuppressions(ctx context.Context, tenantID string, addresses []string, reason string) (int, error) {
	body := map[string]any{"addresses": addresses}
	if tenantID != "" {
		body["tenant_id"] = tenantID
	}
	if reason != "" {
		body["reason"] = reason
	}
	var resp struct {
		Added int `json:"added"`
	}
	err := c.do(ctx, http.MethodPost, "/suppressions", nil, body, &resp)
	return resp.Added, err
}

// RemoveSuppression removes one address from the tenant's list; it returns
// 1 if it was there, else 0.
func (c *Client) RemoveSuppression(ctx context.Context, tenantID, address string) (int, error) {
	q := tenantQuery(tenantID)
	q.Set("address", address)
	var resp struct {
		Removed int `json:"removed"`
	}
	err := c.do(ctx, http.MethodDelete, "/suppressions", q, nil, &resp)
	return resp.Removed, err
}
