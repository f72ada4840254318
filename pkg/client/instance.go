package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
)

// InstanceInfo is GET /instance (api.md §4.3); never a password or token.
type InstanceInfo struct {
	ID                 int    `json:"id"`
	Name               string `json:"name"`
	BounceEnabled      bool   `json:"bounce_enabled"`
	BounceIMAPHost     string `json:"bounce_imap_host,omitempty"`
	BounceIMAPPort     int    `json:"bounce_imap_port,omitempty"`
	BounceIMAPUser     string `json:"bounce_imap_user,omitempty"`
	BounceIMAPFolder   string `json:"bounce_imap_folder,omitempty"`
	BounceIMAPSSL      bool   `json:"bounce_imap_ssl"`
	BouncePollInterval int    `json:"bounce_poll_interval,omitempty"`
	BounceReturnPath   string `json:"bounce_return_path,omitempty"`
	CreatedAt          string `json:"created_at,omitempty"`
	UpdatedAt          string `json:"updated_at,omitempty"`
}

// InstanceUpdate is the body of PUT /instance: only non-nil fields change.
type InstanceUpdate struct {
	Name               *string `json:"name,omitempty"`
	BounceEnabled      *bool   `json:"bounce_enabled,omitempty"`
	BounceIMAPHost     *string `json:"bounce_imap_host,omitempty"`
	BounceIMAPPort     *int    `json:"bounce_imap_port,omitempty"`
	BounceIMAPUser     *string `json:"bounce_imap_user,omitempty"`
	BounceIMAPPassword *string `json:"bounce_imap_password,omitempty"`
	BounceIMAPFolder   *string `json:"bounce_imap_folder,omitempty"`
	BounceIMAPSSL      *bool   `json:"bounce_imap_ssl,omitempty"`
	BouncePollInterval *int    `json:"bounce_poll_interval,omitempty"`
	BounceReturnPath   *string `json:"bounce_return_path,omitempty"`
	APIToken           *string `json:"api_token,omitempty"` // ignored while GMP_API_TOKEN is set
}

// Instance reads the instance settings (admin).
func (c *Client) Instance(ctx context.Context) (InstanceInfo, error) {
	var resp InstanceInfo
	err := c.do(ctx, http.MethodGet, "/instance", nil, nil, &resp)
	return resp, err
}

// UpdateInstance changes instance settings (admin).
func (c *Client) UpdateInstance(ctx context.Context, u InstanceUpdate) error {
	return c.do(ctx, http.MethodPut, "/instance", nil, u, nil)
}

// CommandLogQuery filters GET /command-log; zero fields are not sent.
type CommandLogQuery struct {
	TenantID       string
	SinceTS        int64 // Unix s
	UntilTS        int64
	EndpointFilter string
	Limit          int // service default 100
}

// CommandLogEntry is one recorded API command.
type CommandLogEntry struct {
	ID             int64           `json:"id"`
	CommandTS      int64           `json:"command_ts"`
	Endpoint       string          `json:"endpoint"`
	TenantID       string          `json:"tenant_id,omitempty"`
	Payload        json.RawMessage `json:"payload,omitempty"`
	ResponseStatus int             `json:"response_status"`
}

// CommandLog is the answer of GET /command-log, newest first.
type CommandLog struct {
	OK       bool              `json:"ok"`
	Commands []CommandLogEntry `json:"commands"`
	Total    int               `json:"total"`
}

// CommandLog lists recorded commands (admin).
func (c *Client) CommandLog(ctx context.Context, query CommandLogQuery) (CommandLog, error) {
	q := tenantQuery(query.TenantID)
	setInt64(q, "since_ts", query.SinceTS)
	setInt64(q, "until_ts", query.UntilTS)
	if query.EndpointFilter != "" {
		q.Set("endpoint_filter", query.EndpointFilter)
	}
	setPositive(q, "limit", query.Limit)
	var resp CommandLog
	err := c.do(ctx, http.MethodGet, "/command-log", q, nil, &resp)
	return resp, err
}

func setInt64(q url.Values, key string, v int64) {
	if v > 0 {
		q.Set(key, strconv.FormatInt(v, 10))
	}
}
