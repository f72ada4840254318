package client

import (
	"context"
	"net/http"
	"net/url"
)

// Account is the AccountPayload of POST /account (api.md §4.1). A complete
// payload (host and port set) replaces the account; with host or port
// omitted on an existing account, only the fields present change.
type Account struct {
	ID             string `json:"id"`
	TenantID       string `json:"tenant_id,omitempty"`
	Host           string `json:"host,omitempty"`
	Port           int    `json:"port,omitempty"`
	User           string `json:"user,omitempty"`
	Password       string `json:"password,omitempty"`
	TTL            *int   `json:"ttl,omitempty"` // max connection age, s (300)
	LimitPerMinute *int   `json:"limit_per_minute,omitempty"`
	LimitPerHour   *int   `json:"limit_per_hour,omitempty"`
	LimitPerDay    *int   `json:"limit_per_day,omitempty"`
	LimitBehavior  string `json:"limit_behavior,omitempty"` // defer (default) or reject
	UseTLS         *bool  `json:"use_tls,omitempty"`        // nil: STARTTLS when offered
	TLSVerify      *bool  `json:"tls_verify,omitempty"`
	BatchSize      *int   `json:"batch_size,omitempty"`
	IsPECAccount   *bool  `json:"is_pec_account,omitempty"`
	IMAPHost       string `json:"imap_host,omitempty"`
	IMAPPort       *int   `json:"imap_port,omitempty"`
	IMAPUser       string `json:"imap_user,omitempty"`
	IMAPPassword   string `json:"imap_password,omitempty"`
	IMAPSSL        *bool  `json:"imap_ssl,omitempty"`
	// DKIM signing: all three, or none.
	DKIMDomain     string `json:"dkim_domain,omitempty"`
	DKIMSelector   string `json:"dkim_selector,omitempty"`
	DKIMPrivateKey string `json:"dkim_private_key,omitempty"` // PEM; stored encrypted, never returned
}

// AccountInfo is an account as listed; never a password.
type AccountInfo struct {
	ID             string     `json:"id"`
	TenantID       string     `json:"tenant_id"`
	Host           string     `json:"host"`
	Port           int        `json:"port"`
	User           string     `json:"user,omitempty"`
	TTL            int        `json:"ttl"`
	LimitPerMinute *int       `json:"limit_per_minute,omitempty"`
	LimitPerHour   *int       `json:"limit_per_hour,omitempty"`
	LimitPerDay    *int       `json:"limit_per_day,omitempty"`
	LimitBehavior  string     `json:"limit_behavior,omitempty"`
	UseTLS         *bool      `json:"use_tls,omitempty"`
	TLSVerify      *bool      `json:"tls_verify,omitempty"`
	BatchSize      *int       `json:"batch_size,omitempty"`
	CreatedAt      string     `json:"created_at,omitempty"`
	UpdatedAt      string     `json:"updated_at,omitempty"`
	IsPECAccount   bool       `json:"is_pec_account"`
	IMAPHost       string     `json:"imap_host,omitempty"`
	IMAPPort       *int       `json:"imap_port,omitempty"`
	DKIM           bool       `json:"dkim"`
	DKIMDomain     string     `json:"dkim_domain,omitempty"`
	DKIMSelector   string     `json:"dkim_selector,omitempty"`
	RateUsage      *RateUsage `json:"rate_usage,omitempty"`
}

// RateUsage counts the sends in the account's current rate windows.
type RateUsage struct {
	Minute int `json:"minute"`
	Hour   int `json:"hour"`
	Day    int `json:"day"`
}

// UpsertAccount creates or updates an SMTP account.
func (c *Client) UpsertAccount(ctx context.Context, a Account) error {
	return c.do(ctx, http.MethodPost, "/account", nil, a, nil)
}

// ListAccounts lists the tenant's accounts.
func (c *Client) ListAccounts(ctx context.Context, tenantID string) ([]AccountInfo, error) {
	var resp struct {
		Accounts []AccountInfo `json:"accounts"`
	}
	err := c.do(ctx, http.MethodGet, "/accounts", tenantQuery(tenantID), nil, &resp)
	return resp.Accounts, err
}

// DeleteAccount deletes one of the tenant's accounts.
func (c *Client) DeleteAccount(ctx context.Context, tenantID, accountID string) error {
	return c.do(ctx, http.MethodDelete, "/account/"+url.PathEscape(accountID), tenantQuery(tenantID), nil, nil)
}
