package cli

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/mailproxy/mailproxy/pkg/client"
)

type tenantsCmd struct {
	List          tenantsListCmd          `cmd:"" help:"List tenants (admin)."`
	Show          tenantsShowCmd          `cmd:"" help:"Show one tenant as JSON."`
	Add           tenantsAddCmd           `cmd:"" help:"Create a tenant, or replace every field of an existing one (admin)."`
	Update        tenantsUpdateCmd        `cmd:"" help:"Change the given fields of a tenant."`
	Delete        tenantsDeleteCmd        `cmd:"" help:"Delete a tenant with its accounts and messages (admin)."`
	APIKey        tenantsAPIKeyCmd        `cmd:"" name:"api-key" help:"Issue a new API key for a tenant; the old one stops working (admin)."`
	RevokeKey     tenantsRevokeKeyCmd     `cmd:"" name:"revoke-key" help:"Revoke a tenant's API key (admin)."`
	SigningSecret tenantsSigningSecretCmd `cmd:"" name:"signing-secret" help:"Create (or --delete) the secret that signs a tenant's delivery reports."`
	SyncStatus    tenantsSyncStatusCmd    `cmd:"" name:"sync-status" help:"Show every tenant's client-sync state (admin)."`
}

type tenantsListCmd struct {
	ActiveOnly bool `help:"Only active tenants."`
}

func (c *tenantsListCmd) Run(e *env) error {
	a, err := e.api()
	if err != nil {
		return err
	}
	tenants, err := a.ListTenants(e.ctx, c.ActiveOnly)
	if err != nil {
		return err
	}
	if e.flags.JSON {
		return writeJSON(e.stdout, tenants)
	}
	t := newTable(e.stdout, "ID", "NAME", "ACTIVE", "CLIENT_BASE_URL", "SIGNING_SECRET")
	for _, tn := range tenants {
		t.row(tn.ID, tn.Name, yesNo(tn.Active), tn.ClientBaseURL, yesNo(tn.SigningSecretSet))
	}
	return t.flush()
}

type tenantsShowCmd struct {
	ID string `arg:"" optional:"" help:"Tenant id (default --tenant)."`
}

func (c *tenantsShowCmd) Run(e *env) error {
	a, id, err := e.tenantTarget(c.ID)
	if err != nil {
		return err
	}
	tn, err := a.GetTenant(e.ctx, id)
	if err != nil {
		return err
	}
	return writeJSON(e.stdout, tn)
}

// tenantFields are the TenantPayload flags shared by add and update; unset flags are nil.
type tenantFields struct {
	Name            *string `help:"Display name." placeholder:"NAME"`
	BaseURL         *string `name:"base-url" placeholder:"URL" help:"client_base_url: where reports and endpoint attachments go."`
	SyncPath        *string `name:"sync-path" placeholder:"PATH" help:"client_sync_path (default /mail-proxy/sync)."`
	AttachmentPath  *string `name:"attachment-path" placeholder:"PATH" help:"client_attachment_path (default /mail-proxy/attachments)."`
	AuthMethod      *string `name:"auth-method" enum:"none,bearer,basic" placeholder:"none|bearer|basic" help:"client_auth method: none, bearer or basic."`
	AuthToken       *string `name:"auth-token" placeholder:"TOKEN" help:"client_auth bearer token."`
	AuthUser        *string `name:"auth-user" placeholder:"USER" help:"client_auth basic user."`
	AuthPassword    *string `name:"auth-password" placeholder:"PASSWORD" help:"client_auth basic password."`
	RateLimits      *string `name:"rate-limits" help:"rate_limits as a JSON object." placeholder:"JSON"`
	LargeFileConfig *string `name:"large-file-config" help:"large_file_config as a JSON object." placeholder:"JSON"`
	Active          *bool   `negatable:"" help:"Whether the tenant is active (--no-active to deactivate)."`
}

func (f tenantFields) clientAuth() *client.ClientAuth {
	if f.AuthMethod == nil && f.AuthToken == nil && f.AuthUser == nil && f.AuthPassword == nil {
		return nil
	}
	ca := &client.ClientAuth{Method: deref(f.AuthMethod), Token: deref(f.AuthToken), User: deref(f.AuthUser), Password: deref(f.AuthPassword)}
	if ca.Method == "" {
		switch {
		case ca.Token != "":
			ca.Method = "bearer"
		case ca.User != "":
			ca.Method = "basic"
		default:
			ca.Method = "none"
		}
	}
	return ca
}

func (f tenantFields) jsonObjects() (rate, large json.RawMessage, err error) {
	parse := func(flag string, s *string) (json.RawMessage, error) {
		if s == nil {
			return nil, nil
		}
		var obj map[string]any
		if err := json.Unmarshal([]byte(*s), &obj); err != nil {
			return nil, usageErrorf("--%s must be a JSON object: %v", flag, err)
		}
		return json.RawMessage(*s), nil
	}
	if rate, err = parse("rate-limits", f.RateLimits); err != nil {
		return nil, nil, err
	}
	if large, err = parse("large-file-config", f.LargeFileConfig); err != nil {
		return nil, nil, err
	}
	return rate, large, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

type tenantsAddCmd struct {
	ID string `arg:"" help:"Tenant id."`
	tenantFields
}

func (c *tenantsAddCmd) Run(e *env) error {
	rate, large, err := c.jsonObjects()
	if err != nil {
		return err
	}
	a, err := e.api()
	if err != nil {
		return err
	}
	key, err := a.CreateTenant(e.ctx, client.Tenant{
		ID: c.ID, Name: deref(c.Name), ClientAuth: c.clientAuth(), ClientBaseURL: deref(c.BaseURL),
		ClientSyncPath: deref(c.SyncPath), ClientAttachmentPath: deref(c.AttachmentPath),
		RateLimits: rate, LargeFileConfig: large, Active: c.Active,
	})
	if err != nil {
		return err
	}
	if e.flags.JSON {
		out := map[string]any{"ok": true, "tenant_id": c.ID, "created": key != ""}
		if key != "" {
			out["api_key"] = key
		}
		return writeJSON(e.stdout, out)
	}
	if key == "" {
		_, err = fmt.Fprintf(e.stdout, "tenant %s updated (its API key is unchanged)\n", c.ID)
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "tenant %s created\napi_key: %s\n(shown only now)\n", c.ID, key)
	return err
}

type tenantsUpdateCmd struct {
	ID string `arg:"" optional:"" help:"Tenant id (default --tenant)."`
	tenantFields
}

func (c *tenantsUpdateCmd) Run(e *env) error {
	rate, large, err := c.jsonObjects()
	if err != nil {
		return err
	}
	a, id, err := e.tenantTarget(c.ID)
	if err != nil {
		return err
	}
	err = a.UpdateTenant(e.ctx, id, client.TenantUpdate{
		Name: c.Name, ClientAuth: c.clientAuth(), ClientBaseURL: c.BaseURL, ClientSyncPath: c.SyncPath,
		ClientAttachmentPath: c.AttachmentPath, RateLimits: rate, LargeFileConfig: large, Active: c.Active,
	})
	if err != nil {
		return err
	}
	return okLine(e, "tenant "+id+" updated")
}

type tenantsDeleteCmd struct {
	ID string `arg:"" help:"Tenant id."`
}

func (c *tenantsDeleteCmd) Run(e *env) error {
	a, err := e.api()
	if err != nil {
		return err
	}
	if err := a.DeleteTenant(e.ctx, c.ID); err != nil {
		return err
	}
	return okLine(e, "tenant "+c.ID+" deleted")
}

type tenantsAPIKeyCmd struct {
	ID        string `arg:"" optional:"" help:"Tenant id (default --tenant)."`
	ExpiresAt string `name:"expires-at" help:"Key expiry: Unix seconds, RFC 3339, or a duration from now (720h)." placeholder:"TIME"`
}

func (c *tenantsAPIKeyCmd) Run(e *env) error {
	var expires *int64
	if c.ExpiresAt != "" {
		ts, err := parseExpiry(c.ExpiresAt)
		if err != nil {
			return usageErrorf("--expires-at: %v", err)
		}
		expires = &ts
	}
	a, id, err := e.tenantTarget(c.ID)
	if err != nil {
		return err
	}
	key, err := a.CreateAPIKey(e.ctx, id, expires)
	if err != nil {
		return err
	}
	if e.flags.JSON {
		return writeJSON(e.stdout, map[string]any{"ok": true, "tenant_id": id, "api_key": key})
	}
	_, err = fmt.Fprintln(e.stdout, key)
	return err
}

type tenantsRevokeKeyCmd struct {
	ID string `arg:"" optional:"" help:"Tenant id (default --tenant)."`
}

func (c *tenantsRevokeKeyCmd) Run(e *env) error {
	a, id, err := e.tenantTarget(c.ID)
	if err != nil {
		return err
	}
	if err := a.RevokeAPIKey(e.ctx, id); err != nil {
		return err
	}
	return okLine(e, "API key of tenant "+id+" revoked")
}

type tenantsSigningSecretCmd struct {
	ID     string `arg:"" optional:"" help:"Tenant id (default --tenant)."`
	Delete bool   `help:"Remove the secret: reports are no longer signed."`
}

func (c *tenantsSigningSecretCmd) Run(e *env) error {
	a, id, err := e.tenantTarget(c.ID)
	if err != nil {
		return err
	}
	if c.Delete {
		if err := a.DeleteSigningSecret(e.ctx, id); err != nil {
			return err
		}
		return okLine(e, "signing secret of tenant "+id+" removed")
	}
	secret, err := a.CreateSigningSecret(e.ctx, id)
	if err != nil {
		return err
	}
	if e.flags.JSON {
		return writeJSON(e.stdout, map[string]any{"ok": true, "tenant_id": id, "signing_secret": secret})
	}
	_, err = fmt.Fprintln(e.stdout, secret)
	return err
}

type tenantsSyncStatusCmd struct{}

func (tenantsSyncStatusCmd) Run(e *env) error {
	a, err := e.api()
	if err != nil {
		return err
	}
	st, err := a.SyncStatus(e.ctx)
	if err != nil {
		return err
	}
	if e.flags.JSON {
		return writeJSON(e.stdout, st)
	}
	t := newTable(e.stdout, "ID", "ACTIVE", "LAST_SYNC", "DUE", "DND", "PENDING_REPORTS", "FAILURES", "LAST_ERROR")
	for _, s := range st.Tenants {
		t.row(s.ID, yesNo(s.Active), optTS(s.LastSyncTS), yesNo(s.NextSyncDue), yesNo(s.InDND),
			itoa(s.PendingReports), itoa(s.ConsecutiveFailures), s.LastError)
	}
	return t.flush()
}

// parseExpiry reads Unix seconds, an RFC 3339 time, or a duration from now.
func parseExpiry(s string) (int64, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
		return n, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.Unix(), nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return time.Now().Add(d).Unix(), nil
	}
	return 0, fmt.Errorf("%q is not Unix seconds, an RFC 3339 time or a duration like 720h", s)
}
