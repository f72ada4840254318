package api

import (
	"encoding/json"
	"errors"
	"net/url"
	"time"

	"github.com/mailproxy/mailproxy/internal/auth"
	"github.com/mailproxy/mailproxy/internal/store"
)

// Tenant defaults and constants (api.md §4.2, client-sync.md §5).
const (
	defaultTenantID       = "default" // made at first start (lifecycle.md §2)
	defaultSyncPath       = "/mail-proxy/sync"
	defaultAttachmentPath = "/mail-proxy/attachments"
	maskedSecret          = "********"
	prevSecretGrace       = 24 * time.Hour
)

// ClientAuthPayload is a tenant's credentials for its client endpoints.
type ClientAuthPayload struct {
	_        struct{} `nullable:"true"`
	Method   string   `json:"method,omitempty" enum:"none,bearer,basic" default:"none"`
	Token    *string  `json:"token,omitempty" doc:"bearer token; ******** keeps the stored one"`
	User     *string  `json:"user,omitempty"`
	Password *string  `json:"password,omitempty" doc:"basic password; ******** keeps the stored one"`
}

// TenantUpdatePayload is PUT /tenant/{tenant_id}'s body: present non-null fields change.
type TenantUpdatePayload struct {
	_                    struct{}           `additionalProperties:"true"`
	Name                 *string            `json:"name,omitempty" nullable:"true"`
	ClientAuth           *ClientAuthPayload `json:"client_auth,omitempty"`
	ClientBaseURL        *string            `json:"client_base_url,omitempty" nullable:"true" format:"uri"`
	ClientSyncPath       *string            `json:"client_sync_path,omitempty" nullable:"true" doc:"null: /mail-proxy/sync"`
	ClientAttachmentPath *string            `json:"client_attachment_path,omitempty" nullable:"true" doc:"null: /mail-proxy/attachments"`
	RateLimits           map[string]any     `json:"rate_limits,omitempty" doc:"stored only"`
	LargeFileConfig      map[string]any     `json:"large_file_config,omitempty"`
	Active               *bool              `json:"active,omitempty" default:"true"`
}

// TenantPayload is POST /tenant's body; on an existing id every field is replaced.
type TenantPayload struct {
	_  struct{} `additionalProperties:"true"`
	ID string   `json:"id" minLength:"1" maxLength:"64" doc:"not blank; no '/' or control characters"`
	TenantUpdatePayload
}

// ClientAuthInfo is client_auth as shown: secrets masked.
type ClientAuthInfo struct {
	Method   string `json:"method"`
	Token    string `json:"token,omitempty" example:"********"`
	User     string `json:"user,omitempty"`
	Password string `json:"password,omitempty" example:"********"`
}

// TenantInfo is a tenant as shown (flat for GET /tenant/{tenant_id}).
type TenantInfo struct {
	ID                   string          `json:"id"`
	Name                 *string         `json:"name,omitempty"`
	ClientAuth           *ClientAuthInfo `json:"client_auth,omitempty"`
	ClientBaseURL        *string         `json:"client_base_url,omitempty"`
	ClientSyncPath       string          `json:"client_sync_path"`
	ClientAttachmentPath string          `json:"client_attachment_path"`
	RateLimits           json.RawMessage `json:"rate_limits,omitempty"`
	LargeFileConfig      json.RawMessage `json:"large_file_config,omitempty"`
	Active               bool            `json:"active"`
	CreatedAt            string          `json:"created_at,omitempty"`
	UpdatedAt            string          `json:"updated_at,omitempty"`
	SuspendedBatches     []string        `json:"suspended_batches" nullable:"false"`
	SigningSecretSet     bool            `json:"signing_secret_set"`
}

// TenantsResponse is GET /tenants' answer.
type TenantsResponse struct {
	OK      bool         `json:"ok"`
	Tenants []TenantInfo `json:"tenants" nullable:"false"`
}

// TenantCreatedResponse is POST /tenant's answer; api_key only for a new id.
type TenantCreatedResponse struct {
	OK     bool   `json:"ok"`
	APIKey string `json:"api_key,omitempty" doc:"the new tenant's key, shown once"`
}

// APIKeyRequest is POST /tenant/{tenant_id}/api-key's optional body.
type APIKeyRequest struct {
	_         struct{} `additionalProperties:"true"`
	ExpiresAt *int64   `json:"expires_at,omitempty" nullable:"true" doc:"Unix seconds; the key is dead from then on"`
}

// APIKeyResponse carries a new key, shown once.
type APIKeyResponse struct {
	OK     bool   `json:"ok"`
	APIKey string `json:"api_key"`
}

// SigningSecretResponse carries a new signing secret, shown once.
type SigningSecretResponse struct {
	OK            bool   `json:"ok"`
	SigningSecret string `json:"signing_secret" example:"whsec_..."`
}

// SyncStatusTenant is one tenant in GET /tenants/sync-status.
type SyncStatusTenant struct {
	ID                  string  `json:"id"`
	Name                *string `json:"name,omitempty"`
	Active              bool    `json:"active"`
	ClientBaseURL       *string `json:"client_base_url,omitempty"`
	LastSyncTS          *int64  `json:"last_sync_ts,omitempty" doc:"omitted if never synced"`
	NextSyncDue         bool    `json:"next_sync_due" doc:"a POST to the client is due now"`
	InDND               bool    `json:"in_dnd" doc:"next_sync_after is in the future"`
	DNDUntil            *int64  `json:"dnd_until,omitempty"`
	PendingReports      int     `json:"pending_reports"`
	ConsecutiveFailures int     `json:"consecutive_failures"`
	LastError           string  `json:"last_error,omitempty"`
}

// SyncStatusResponse is GET /tenants/sync-status's answer.
type SyncStatusResponse struct {
	OK                  bool               `json:"ok"`
	SyncIntervalSeconds float64            `json:"sync_interval_seconds"`
	Tenants             []SyncStatusTenant `json:"tenants" nullable:"false"`
}

func tenantInfo(t store.Tenant) TenantInfo {
	info := TenantInfo{ID: t.ID, Name: t.Name, ClientBaseURL: t.ClientBaseURL,
		ClientSyncPath: defaultSyncPath, ClientAttachmentPath: defaultAttachmentPath,
		RateLimits: nonNullJSON(t.RateLimits), LargeFileConfig: nonNullJSON(t.LargeFileConfig),
		Active: t.Active, CreatedAt: rfc3339(t.CreatedAt), UpdatedAt: rfc3339(t.UpdatedAt),
		SuspendedBatches: t.SuspendedBatches, SigningSecretSet: t.SigningSecret != ""}
	if t.ClientSyncPath != nil {
		info.ClientSyncPath = *t.ClientSyncPath
	}
	if t.ClientAttachmentPath != nil {
		info.ClientAttachmentPath = *t.ClientAttachmentPath
	}
	if info.SuspendedBatches == nil {
		info.SuspendedBatches = []string{}
	}
	if ca := t.ClientAuth; ca != nil {
		info.ClientAuth = &ClientAuthInfo{Method: ca.Method, User: ca.User}
		if ca.Token != "" {
			info.ClientAuth.Token = maskedSecret
		}
		if ca.Password != "" {
			info.ClientAuth.Password = maskedSecret
		}
	}
	return info
}

// applyTenant sets the payload fields of t from the body. With partial
// (PUT) only present non-null fields change; otherwise omitted fields are
// reset to null/defaults. Masked secrets keep the stored values. byTenant
// says the caller is the tenant's own key: a client_base_url it sets meets
// the public-only address policy (netguard) unless the instance allows more.
func applyTenant(f fields, t *store.Tenant, partial, byTenant bool) {
	set := func(name string) bool {
		if partial {
			_, ok := f.raw(name)
			return ok
		}
		return true
	}
	if set("name") {
		t.Name = f.optStr("name")
	}
	if set("client_auth") {
		stored := t.ClientAuth
		t.ClientAuth = nil
		if raw, ok := f.object("client_auth"); ok {
			if ca := parseClientAuth(raw, at(f.loc, "client_auth"), f.is, true); ca != nil {
				if stored != nil && ca.Token == maskedSecret {
					ca.Token = stored.Token
				}
				if stored != nil && ca.Password == maskedSecret {
					ca.Password = stored.Password
				}
				t.ClientAuth = ca
			}
		}
	}
	if set("client_base_url") {
		t.ClientBaseURL = nil
		t.ClientURLByTenant = byTenant
		if u, ok := f.str("client_base_url", false); ok {
			if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
				f.is.valueError(at(f.loc, "client_base_url"), jsonInput(u), "client_base_url must be an absolute http or https URL")
			} else {
				t.ClientBaseURL = &u
			}
		}
	}
	if set("client_sync_path") {
		t.ClientSyncPath = f.optStr("client_sync_path")
	}
	if set("client_attachment_path") {
		t.ClientAttachmentPath = f.optStr("client_attachment_path")
	}
	if set("rate_limits") {
		t.RateLimits = nil
		if raw, ok := f.object("rate_limits"); ok {
			t.RateLimits = raw
		}
	}
	if set("large_file_config") {
		t.LargeFileConfig = nil
		if raw, ok := f.object("large_file_config"); ok {
			t.LargeFileConfig = raw
		}
	}
	if set("active") {
		t.Active = true
		if b, ok := f.boolean("active"); ok {
			t.Active = b
		}
	}
}

func isTenantMissing(err error) bool {
	return errors.Is(err, store.ErrNotFound)
}

func (s *server) addTenant(c *call) (any, error) {
	top, aerr := parseJSONBody(c.body, false)
	if aerr != nil {
		return nil, aerr
	}
	var is issues
	f := newFields(top, []any{"body"}, &is)
	id, ok := f.str("id", true)
	ok = ok && checkTenantID(f, "id", id)
	c.tenantID = id
	t := store.Tenant{ID: id}
	if ok {
		existing, err := s.st.GetTenant(c.ctx(), id)
		switch {
		case err == nil:
			t = existing
		case !isTenantMissing(err):
			return nil, err
		}
	}
	applyTenant(f, &t, false, !c.p.Admin)
	if !is.empty() {
		return nil, invalid(is.list)
	}
	created, err := s.st.UpsertTenant(c.ctx(), t)
	s.tenantsChanged()
	if err != nil {
		return nil, err
	}
	// The default tenant is made at first start without a key; configuring
	// it through the API hands out its key as for any new tenant. Other
	// tenants without a key had it revoked, which an update must not undo.
	firstKey := t.ID == defaultTenantID && t.APIKeyHash == ""
	if !created && !firstKey {
		return TenantCreatedResponse{OK: true}, nil
	}
	key, hash := auth.NewAPIKey()
	if err := s.st.SetAPIKey(c.ctx(), id, hash, nil); err != nil {
		return nil, err
	}
	return TenantCreatedResponse{OK: true, APIKey: key}, nil
}

func (s *server) listTenants(c *call) (any, error) {
	ts, err := s.st.ListTenants(c.ctx(), c.qBool("active_only"))
	if err != nil {
		return nil, err
	}
	out := TenantsResponse{OK: true, Tenants: make([]TenantInfo, 0, len(ts))}
	for _, t := range ts {
		out.Tenants = append(out.Tenants, tenantInfo(t))
	}
	return out, nil
}

func (s *server) getTenant(c *call) (any, error) {
	t, err := s.st.GetTenant(c.ctx(), c.tenantID)
	if isTenantMissing(err) {
		return nil, tenantNotFound(c.tenantID)
	}
	if err != nil {
		return nil, err
	}
	return tenantInfo(t), nil
}

func (s *server) updateTenant(c *call) (any, error) {
	top, aerr := parseJSONBody(c.body, true)
	if aerr != nil {
		return nil, aerr
	}
	t, err := s.st.GetTenant(c.ctx(), c.tenantID)
	if isTenantMissing(err) {
		return nil, tenantNotFound(c.tenantID)
	}
	if err != nil {
		return nil, err
	}
	var is issues
	applyTenant(newFields(top, []any{"body"}, &is), &t, true, !c.p.Admin)
	if !is.empty() {
		return nil, invalid(is.list)
	}
	s.tenantsChanged()
	if _, err := s.st.UpsertTenant(c.ctx(), t); err != nil {
		return nil, err
	}
	return okResponse, nil
}

func (s *server) deleteTenant(c *call) (any, error) {
	err := s.st.DeleteTenant(c.ctx(), c.tenantID)
	s.tenantsChanged()
	if isTenantMissing(err) {
		return nil, tenantNotFound(c.tenantID)
	}
	if err != nil {
		return nil, err
	}
	s.refreshPending()
	return okResponse, nil
}

// requireTenant answers 404 for an unknown tenant.
func (s *server) requireTenant(c *call) error {
	_, err := s.st.GetTenant(c.ctx(), c.tenantID)
	if isTenantMissing(err) {
		return tenantNotFound(c.tenantID)
	}
	return err
}

func (s *server) createAPIKey(c *call) (any, error) {
	top, aerr := parseJSONBody(c.body, true)
	if aerr != nil {
		return nil, aerr
	}
	var is issues
	f := newFields(top, []any{"body"}, &is)
	var expires *time.Time
	if n, ok := f.integer("expires_at"); ok {
		if t := time.Unix(n, 0); !t.After(s.now()) {
			is.valueError([]any{"body", "expires_at"}, jsonInput(n), "expires_at must be in the future")
		} else {
			expires = &t
		}
	}
	if !is.empty() {
		return nil, invalid(is.list)
	}
	if err := s.requireTenant(c); err != nil {
		return nil, err
	}
	key, hash := auth.NewAPIKey()
	if err := s.st.SetAPIKey(c.ctx(), c.tenantID, hash, expires); err != nil {
		if isTenantMissing(err) {
			return nil, tenantNotFound(c.tenantID)
		}
		return nil, err
	}
	return APIKeyResponse{OK: true, APIKey: key}, nil
}

func (s *server) revokeAPIKey(c *call) (any, error) {
	if err := s.requireTenant(c); err != nil {
		return nil, err
	}
	if err := s.st.SetAPIKey(c.ctx(), c.tenantID, "", nil); err != nil {
		if isTenantMissing(err) {
			return nil, tenantNotFound(c.tenantID)
		}
		return nil, err
	}
	return okResponse, nil
}

func (s *server) createSigningSecret(c *call) (any, error) {
	if err := s.requireTenant(c); err != nil {
		return nil, err
	}
	secret := auth.NewSigningSecret()
	until := s.now().Add(prevSecretGrace)
	if err := s.st.SetSigningSecret(c.ctx(), c.tenantID, secret, &until); err != nil {
		if isTenantMissing(err) {
			return nil, tenantNotFound(c.tenantID)
		}
		return nil, err
	}
	return SigningSecretResponse{OK: true, SigningSecret: secret}, nil
}

func (s *server) revokeSigningSecret(c *call) (any, error) {
	if err := s.requireTenant(c); err != nil {
		return nil, err
	}
	if err := s.st.SetSigningSecret(c.ctx(), c.tenantID, "", nil); err != nil {
		if isTenantMissing(err) {
			return nil, tenantNotFound(c.tenantID)
		}
		return nil, err
	}
	return okResponse, nil
}

func (s *server) syncStatus(c *call) (any, error) {
	ts, err := s.st.ListTenants(c.ctx(), false)
	if err != nil {
		return nil, err
	}
	now := s.now()
	interval := s.opts.SyncInterval
	out := SyncStatusResponse{OK: true, SyncIntervalSeconds: interval.Seconds(),
		Tenants: make([]SyncStatusTenant, 0, len(ts))}
	for _, t := range ts {
		row, _, err := s.tenantSync(c, t, interval, now)
		if err != nil {
			return nil, err
		}
		out.Tenants = append(out.Tenants, row)
	}
	return out, nil
}

// tenantSync is one tenant's report-sync status, as sync-status and the
// dashboard show it, with the stored state it was read from.
func (s *server) tenantSync(c *call, t store.Tenant, interval time.Duration, now time.Time) (SyncStatusTenant, store.SyncState, error) {
	st, err := s.st.GetSyncState(c.ctx(), t.ID)
	if err != nil {
		return SyncStatusTenant{}, st, err
	}
	pending, err := s.st.CountUnreported(c.ctx(), t.ID)
	if err != nil {
		return SyncStatusTenant{}, st, err
	}
	row := SyncStatusTenant{ID: t.ID, Name: t.Name, Active: t.Active, ClientBaseURL: t.ClientBaseURL,
		LastSyncTS: unixPtr(st.LastSyncAt), PendingReports: pending,
		ConsecutiveFailures: st.ConsecutiveFailures, LastError: st.LastError,
		NextSyncDue: syncDue(t, st, pending, interval, now)}
	if st.DNDUntil != nil && st.DNDUntil.After(now) {
		row.InDND, row.DNDUntil = true, unixPtr(st.DNDUntil)
	}
	return row, st, nil
}

// syncDue says whether the report loop would POST to the tenant now
// (client-sync.md §2): unreported events outside failure backoff, or a due
// heartbeat (active, own URL, interval elapsed or next_sync_after reached,
// not in do-not-disturb).
func syncDue(t store.Tenant, st store.SyncState, pending int, interval time.Duration, now time.Time) bool {
	if st.NextRetryAt != nil && st.NextRetryAt.After(now) {
		return false
	}
	if pending > 0 {
		return true
	}
	if !t.Active || t.ClientBaseURL == nil || *t.ClientBaseURL == "" {
		return false
	}
	if st.DNDUntil != nil {
		return !st.DNDUntil.After(now)
	}
	return st.LastSyncAt == nil || !now.Before(st.LastSyncAt.Add(interval))
}
