package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/mailproxy/mailproxy/internal/dkim"

	"github.com/mailproxy/mailproxy/internal/store"
)

const detailAccountNotFound = "account not found or not owned by tenant"

// Account defaults (api.md §4.1).
const (
	defaultTTL      = 300
	defaultIMAPPort = 993
)

// AccountPayload is POST /account's body (api.md §4.1). On an existing
// account, omitting host or port turns the request into a merge of the
// named fields.
type AccountPayload struct {
	_        struct{} `additionalProperties:"true"`
	ID       string   `json:"id" minLength:"1"`
	TenantID *string  `json:"tenant_id,omitempty" doc:"omitted: the key's tenant, or default with the admin token"`
	Host     string   `json:"host" minLength:"1" doc:"required unless the account exists (merge)"`
	Port     int      `json:"port" minimum:"1" maximum:"65535" doc:"required unless the account exists (merge)"`
	AccountUpdatePayload
}

// AccountUpdatePayload holds the fields PUT /account/{account_id} may change.
type AccountUpdatePayload struct {
	_              struct{} `additionalProperties:"true"`
	User           *string  `json:"user,omitempty"`
	Password       *string  `json:"password,omitempty" doc:"stored encrypted, never returned"`
	TTL            *int     `json:"ttl,omitempty" minimum:"1" default:"300" doc:"max connection age, seconds"`
	LimitPerMinute *int     `json:"limit_per_minute,omitempty" nullable:"true" doc:"null or <= 0: none"`
	LimitPerHour   *int     `json:"limit_per_hour,omitempty" nullable:"true"`
	LimitPerDay    *int     `json:"limit_per_day,omitempty" nullable:"true"`
	LimitBehavior  *string  `json:"limit_behavior,omitempty" enum:"defer,reject,error" default:"defer" doc:"error = reject"`
	UseTLS         *bool    `json:"use_tls,omitempty" nullable:"true" doc:"null = STARTTLS when offered"`
	TLSVerify      *bool    `json:"tls_verify,omitempty" default:"true"`
	BatchSize      *int     `json:"batch_size,omitempty" nullable:"true" minimum:"1"`
	IsPECAccount   *bool    `json:"is_pec_account,omitempty" default:"false"`
	IMAPHost       *string  `json:"imap_host,omitempty"`
	IMAPPort       *int     `json:"imap_port,omitempty" default:"993"`
	IMAPUser       *string  `json:"imap_user,omitempty"`
	IMAPPassword   *string  `json:"imap_password,omitempty"`
	IMAPSSL        *bool    `json:"imap_ssl,omitempty" nullable:"true"`
	DKIMDomain     *string  `json:"dkim_domain,omitempty" doc:"DKIM signing domain (d=); with dkim_selector and dkim_private_key"`
	DKIMSelector   *string  `json:"dkim_selector,omitempty" doc:"DKIM selector (s=)"`
	DKIMPrivateKey *string  `json:"dkim_private_key,omitempty" doc:"PEM private key, RSA >= 2048 bits or Ed25519; stored encrypted, never returned"`
}

// AccountInfo is an account as listed; never a password.
type AccountInfo struct {
	ID             string          `json:"id"`
	TenantID       string          `json:"tenant_id"`
	Host           string          `json:"host"`
	Port           int             `json:"port"`
	User           *string         `json:"user,omitempty"`
	TTL            int             `json:"ttl"`
	LimitPerMinute *int            `json:"limit_per_minute,omitempty"`
	LimitPerHour   *int            `json:"limit_per_hour,omitempty"`
	LimitPerDay    *int            `json:"limit_per_day,omitempty"`
	LimitBehavior  string          `json:"limit_behavior" enum:"defer,reject"`
	UseTLS         *bool           `json:"use_tls,omitempty"`
	BatchSize      *int            `json:"batch_size,omitempty"`
	CreatedAt      string          `json:"created_at,omitempty"`
	UpdatedAt      string          `json:"updated_at,omitempty"`
	IsPECAccount   bool            `json:"is_pec_account"`
	IMAPHost       *string         `json:"imap_host,omitempty"`
	IMAPPort       *int            `json:"imap_port,omitempty"`
	TLSVerify      bool            `json:"tls_verify"`
	DKIM           bool            `json:"dkim" doc:"messages are DKIM-signed (the key is never returned)"`
	DKIMDomain     *string         `json:"dkim_domain,omitempty"`
	DKIMSelector   *string         `json:"dkim_selector,omitempty"`
	RateUsage      store.RateUsage `json:"rate_usage" doc:"sends counted in the current minute, hour and day windows"`
}

// AccountsResponse is GET /accounts' answer.
type AccountsResponse struct {
	OK       bool          `json:"ok"`
	Accounts []AccountInfo `json:"accounts" nullable:"false"`
}

// defaultAccount is an account with every optional field at its default.
func defaultAccount(tenantID, id string) store.Account {
	return store.Account{TenantID: tenantID, ID: id, TTL: defaultTTL, LimitBehavior: "defer",
		TLSVerify: true, IMAPPort: ptr(defaultIMAPPort)}
}

// applyAccount sets the account fields the body names (all of them when
// !merge: omitted fields take their defaults). Host and port are handled by
// the caller.
func applyAccount(f fields, a *store.Account, merge bool) {
	named := func(name string) bool { return !merge || f.has(name) }
	def := defaultAccount(a.TenantID, a.ID)
	if named("user") {
		a.User, _ = f.str("user", false)
	}
	if named("password") {
		a.Password, _ = f.str("password", false)
	}
	if named("ttl") {
		a.TTL = def.TTL
		if n, ok := f.intRange("ttl", &one, nil); ok {
			a.TTL = int(n)
		}
	}
	limit := func(name string, dst **int) {
		if !named(name) {
			return
		}
		*dst = nil
		if n, ok := f.integer(name); ok && n > 0 {
			*dst = ptr(int(min(n, 1<<31-1)))
		}
	}
	limit("limit_per_minute", &a.LimitPerMinute)
	limit("limit_per_hour", &a.LimitPerHour)
	limit("limit_per_day", &a.LimitPerDay)
	if named("limit_behavior") {
		a.LimitBehavior = def.LimitBehavior
		if lb, ok := f.literal("limit_behavior", "defer", "reject", "error"); ok {
			a.LimitBehavior = lb
			if lb == "error" {
				a.LimitBehavior = "reject"
			}
		}
	}
	if named("use_tls") {
		a.UseTLS = nil
		if b, ok := f.boolean("use_tls"); ok {
			a.UseTLS = &b
		}
	}
	if named("tls_verify") {
		a.TLSVerify = def.TLSVerify
		if b, ok := f.boolean("tls_verify"); ok {
			a.TLSVerify = b
		}
	}
	if named("batch_size") {
		a.BatchSize = nil
		if n, ok := f.intRange("batch_size", &one, nil); ok {
			a.BatchSize = ptr(int(min(n, 1<<31-1)))
		}
	}
	if named("is_pec_account") {
		a.IsPECAccount, _ = f.boolean("is_pec_account")
	}
	if named("imap_host") {
		a.IMAPHost = f.optStr("imap_host")
	}
	if named("imap_port") {
		a.IMAPPort = def.IMAPPort
		if n, ok := f.intRange("imap_port", &one, ptr(int64(65535))); ok {
			a.IMAPPort = ptr(int(n))
		}
	}
	if named("imap_user") {
		a.IMAPUser = f.optStr("imap_user")
	}
	if named("imap_password") {
		a.IMAPPassword, _ = f.str("imap_password", false)
	}
	if named("imap_ssl") {
		a.IMAPSSL = nil
		if b, ok := f.boolean("imap_ssl"); ok {
			a.IMAPSSL = &b
		}
	}
	applyDKIM(f, a, named)
}

// applyDKIM sets the DKIM fields the body names (null or "" clears one) and
// checks the result: all three set or none, and a usable key. The key is
// never echoed in an error.
func applyDKIM(f fields, a *store.Account, named func(string) bool) {
	for _, d := range []struct {
		name string
		dst  *string
	}{{"dkim_domain", &a.DKIMDomain}, {"dkim_selector", &a.DKIMSelector}, {"dkim_private_key", &a.DKIMPrivateKey}} {
		if !named(d.name) {
			continue
		}
		*d.dst = ""
		if v := f.optStr(d.name); v != nil {
			*d.dst = strings.TrimSpace(*v)
		}
	}
	if a.DKIMDomain != "" && !validDKIMName(a.DKIMDomain) {
		f.is.valueError(at(f.loc, "dkim_domain"), jsonInput(a.DKIMDomain), "not a domain name")
	}
	if a.DKIMSelector != "" && !validDKIMName(a.DKIMSelector) {
		f.is.valueError(at(f.loc, "dkim_selector"), jsonInput(a.DKIMSelector), "not a DKIM selector")
	}
	if a.DKIMPrivateKey != "" {
		if _, err := dkim.ParsePrivateKey(a.DKIMPrivateKey); err != nil {
			f.is.valueError(at(f.loc, "dkim_private_key"), json.RawMessage(`"`+redacted+`"`), "invalid DKIM private key: "+err.Error())
		}
	}
}

// checkDKIMComplete: the account being stored has all three DKIM fields or
// none (checked after a merge, so one field may be updated alone).
func checkDKIMComplete(a store.Account) error {
	if a.DKIMDomain == "" && a.DKIMSelector == "" && a.DKIMPrivateKey == "" {
		return nil
	}
	var is issues
	for _, d := range []struct{ name, value string }{
		{"dkim_domain", a.DKIMDomain}, {"dkim_selector", a.DKIMSelector}, {"dkim_private_key", a.DKIMPrivateKey}} {
		if d.value == "" {
			is.valueError([]any{"body", d.name}, json.RawMessage("null"),
				"dkim_domain, dkim_selector and dkim_private_key go together")
		}
	}
	if is.empty() {
		return nil
	}
	return invalid(is.list)
}

// validDKIMName: dot-separated labels of letters, digits, '-' and '_'.
func validDKIMName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// readHostPort reads host and port when present (null is a type error).
func readHostPort(f fields, a *store.Account) {
	if f.has("host") {
		if h, ok := f.str("host", true); ok && f.strLen("host", h, 1, 0) {
			a.Host = h
		}
	}
	if v, ok := f.m["port"]; ok {
		if kindOf(v) == kindNull {
			f.is.add("int_type", msgIntType, at(f.loc, "port"), v, nil)
		} else if n, ok := f.intRange("port", &one, ptr(int64(65535))); ok {
			a.Port = int(n)
		}
	}
}

func (s *server) addAccount(c *call) (any, error) {
	top, aerr := parseJSONBody(c.body, false)
	if aerr != nil {
		return nil, aerr
	}
	var is issues
	f := newFields(top, []any{"body"}, &is)
	id, ok := f.str("id", true)
	if ok {
		f.strLen("id", id, 1, 0)
	}
	tenant := c.p.DefaultTenant()
	if t, ok := f.str("tenant_id", false); ok {
		tenant = t
	}
	// Type-check every field first; whether this is a merge needs the store.
	probe := defaultAccount(tenant, id)
	readHostPort(f, &probe)
	applyAccount(f, &probe, false)
	if is.empty() && probe.Host != "" {
		s.checkAccountHost(c, f, probe.Host)
	}
	if !is.empty() {
		return nil, invalid(is.list)
	}
	c.tenantID = tenant
	if err := c.p.CheckTenant(tenant); err != nil {
		return nil, err
	}
	t, err := s.st.GetTenant(c.ctx(), tenant)
	if errors.Is(err, store.ErrNotFound) {
		return nil, tenantNotFound(tenant)
	}
	if err != nil {
		return nil, err
	}
	existing, err := s.st.GetAccount(c.ctx(), tenant, id)
	exists := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	acct := probe
	if exists && (!f.has("host") || !f.has("port")) {
		acct = existing
		readHostPort(f, &acct)
		applyAccount(f, &acct, true)
	} else {
		for _, name := range []string{"host", "port"} {
			if !f.has(name) {
				f.missingField(name)
			}
		}
		if !is.empty() {
			return nil, invalid(is.list)
		}
	}
	if err := checkDKIMComplete(acct); err != nil {
		return nil, err
	}
	if f.has("host") {
		acct.HostByTenant = !c.p.Admin // judged at dial under GMP_ACCOUNT_TARGETS_PUBLIC_ONLY
	}
	if err := s.st.UpsertAccount(c.ctx(), acct); err != nil {
		return nil, s.accountError(err, tenant)
	}
	s.d.Metrics.AccountSeen(tenant, deref(t.Name), acct.ID)
	return okResponse, nil
}

func (s *server) updateAccount(c *call) (any, error) {
	top, aerr := parseJSONBody(c.body, true)
	if aerr != nil {
		return nil, aerr
	}
	id := c.r.PathValue("account_id")
	var is issues
	f := newFields(top, []any{"body"}, &is)
	probe := defaultAccount(c.tenantID, id)
	readHostPort(f, &probe)
	applyAccount(f, &probe, true)
	if is.empty() && probe.Host != "" {
		s.checkAccountHost(c, f, probe.Host)
	}
	if !is.empty() {
		return nil, invalid(is.list)
	}
	acct, err := s.st.GetAccount(c.ctx(), c.tenantID, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, badRequest(detailAccountNotFound)
	}
	if err != nil {
		return nil, err
	}
	readHostPort(f, &acct)
	applyAccount(f, &acct, true)
	if err := checkDKIMComplete(acct); err != nil {
		return nil, err
	}
	if f.has("host") {
		acct.HostByTenant = !c.p.Admin // judged at dial under GMP_ACCOUNT_TARGETS_PUBLIC_ONLY
	}
	if err := s.st.UpsertAccount(c.ctx(), acct); err != nil {
		return nil, s.accountError(err, c.tenantID)
	}
	return okResponse, nil
}

func (s *server) accountError(err error, tenant string) error {
	if errors.Is(err, store.ErrTenantNotFound) {
		return tenantNotFound(tenant)
	}
	return fmt.Errorf("upsert account: %w", err)
}

func (s *server) listAccounts(c *call) (any, error) { return s.accountList(c.ctx(), c.tenantID) }

// accountList is a tenant's accounts ("" = every tenant's) with their rate usage.
func (s *server) accountList(ctx context.Context, tenant string) (AccountsResponse, error) {
	accts, err := s.st.ListAccounts(ctx, tenant)
	if err != nil {
		return AccountsResponse{}, err
	}
	now := s.now()
	out := AccountsResponse{OK: true, Accounts: make([]AccountInfo, 0, len(accts))}
	for _, a := range accts {
		usage, err := s.st.RateUsage(ctx, a.TenantID, a.ID, now)
		if err != nil {
			return AccountsResponse{}, err
		}
		info := AccountInfo{ID: a.ID, TenantID: a.TenantID, Host: a.Host, Port: a.Port, TTL: a.TTL,
			LimitPerMinute: a.LimitPerMinute, LimitPerHour: a.LimitPerHour, LimitPerDay: a.LimitPerDay,
			LimitBehavior: a.LimitBehavior, UseTLS: a.UseTLS, BatchSize: a.BatchSize,
			CreatedAt: rfc3339(a.CreatedAt), UpdatedAt: rfc3339(a.UpdatedAt), IsPECAccount: a.IsPECAccount,
			IMAPHost: a.IMAPHost, IMAPPort: a.IMAPPort, TLSVerify: a.TLSVerify, RateUsage: usage,
			DKIM: a.DKIMDomain != "" && a.DKIMSelector != ""}
		if info.DKIM {
			info.DKIMDomain, info.DKIMSelector = ptr(a.DKIMDomain), ptr(a.DKIMSelector)
		}
		if a.User != "" {
			info.User = ptr(a.User)
		}
		out.Accounts = append(out.Accounts, info)
	}
	return out, nil
}

// accountInfo is one account as accountList gives it. Unknown: errAccountMissing.
func (s *server) accountInfo(ctx context.Context, tenant, id string) (AccountInfo, error) {
	list, err := s.accountList(ctx, tenant)
	if err != nil {
		return AccountInfo{}, err
	}
	for _, a := range list.Accounts {
		if a.ID == id {
			return a, nil
		}
	}
	return AccountInfo{}, errAccountMissing
}

func (s *server) deleteAccount(c *call) (any, error) {
	if err := s.removeAccount(c.ctx(), c.tenantID, c.r.PathValue("account_id")); err != nil {
		return nil, err
	}
	return okResponse, nil
}

// removeAccount deletes an account. Unknown account or tenant: errAccountMissing.
func (s *server) removeAccount(ctx context.Context, tenant, id string) error {
	err := s.st.DeleteAccount(ctx, tenant, id)
	if errors.Is(err, store.ErrNotFound) {
		return errAccountMissing
	}
	if err != nil {
		return err
	}
	s.refreshPending()
	return nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
