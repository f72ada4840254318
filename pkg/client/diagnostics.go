package client

import (
	"context"
	"net/http"
	"net/url"
)

// Diagnostics is GET /instance/diagnostics' answer (admin only).
type Diagnostics struct {
	OK       bool     `json:"ok"`
	Problems []string `json:"problems"`
	Queue    struct {
		Pending   int `json:"pending"`
		Deferred  int `json:"deferred"`
		ByAccount []struct {
			TenantID  string `json:"tenant_id"`
			AccountID string `json:"account_id"`
			Pending   int    `json:"pending"`
			Deferred  int    `json:"deferred"`
		} `json:"by_account"`
	} `json:"queue"`
	OldestDue *struct {
		TenantID       string  `json:"tenant_id"`
		ID             string  `json:"id"`
		AccountID      string  `json:"account_id"`
		DueTS          int64   `json:"due_ts"`
		WaitingSeconds float64 `json:"waiting_seconds"`
	} `json:"oldest_due"`
	Loops []struct {
		Name       string   `json:"name"`
		Running    bool     `json:"running"`
		LastRunTS  *float64 `json:"last_run_ts"`
		SecondsAgo *float64 `json:"seconds_ago"`
	} `json:"loops"`
	Reports []struct {
		TenantID            string `json:"tenant_id"`
		Pending             int    `json:"pending"`
		ConsecutiveFailures int    `json:"consecutive_failures"`
		LastError           string `json:"last_error"`
		NextRetryTS         *int64 `json:"next_retry_ts"`
	} `json:"reports"`
	Accounts []struct {
		TenantID      string   `json:"tenant_id"`
		AccountID     string   `json:"account_id"`
		Server        string   `json:"server"`
		OK            bool     `json:"ok"`
		TLS           string   `json:"tls"`
		Authenticated bool     `json:"authenticated"`
		Error         string   `json:"error"`
		Dialogue      []string `json:"dialogue"`
	} `json:"accounts"`
	Scheduler struct {
		Active   bool `json:"active"`
		TestMode bool `json:"test_mode"`
	} `json:"scheduler"`
}

// Diagnostics reads the instance's health; checkAccounts also logs in to
// every account's SMTP server (nothing is sent).
func (c *Client) Diagnostics(ctx context.Context, checkAccounts bool) (Diagnostics, error) {
	var out Diagnostics
	q := url.Values{"check_accounts": {"false"}}
	if checkAccounts {
		q.Set("check_accounts", "true")
	}
	err := c.do(ctx, http.MethodGet, "/instance/diagnostics", q, nil, &out)
	return out, err
}

// TestSendRequest is one message for TestSend.
type TestSendRequest struct {
	TenantID  string `json:"tenant_id"`
	AccountID string `json:"account_id"`
	From      string `json:"from"`
	To        string `json:"to"`
	Subject   string `json:"subject,omitempty"`
	Body      string `json:"body,omitempty"`
}

// TestSendResult is the SMTP session of a test send.
type TestSendResult struct {
	OK       bool     `json:"ok"`
	Dialogue []string `json:"dialogue"`
	Response string   `json:"response"`
	Error    string   `json:"error"`
	TLS      string   `json:"tls"`
}

// TestSend sends one message through an account now, outside the queue (admin only).
func (c *Client) TestSend(ctx context.Context, req TestSendRequest) (TestSendResult, error) {
	var out TestSendResult
	err := c.do(ctx, http.MethodPost, "/instance/test-send", nil, req, &out)
	return out, err
}
