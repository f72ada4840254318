package api

import (
	"net/http"
	"reflect"
	"slices"
	"time"

	"github.com/mailproxy/mailproxy/internal/auth"
	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/ui"
)

// The dashboard (/ui/) is static files that call the REST API with the
// token the user typed; the reads it needs beyond the legacy API live here,
// under /ui/api/. Every one takes an optional tenant_id: a tenant key sees
// only its own tenant (naming another is 401), the admin token sees all
// tenants or the one named.

const (
	tagDashboard = "dashboard"
	// throughputWindow is how far back the overview's chart reaches.
	throughputWindow = time.Hour
	// dashboardPageDefault and dashboardPageMax bound a message page.
	dashboardPageDefault = 50
	dashboardPageMax     = 500
)

// SessionResponse says who the presented token is.
type SessionResponse struct {
	OK       bool   `json:"ok"`
	Admin    bool   `json:"admin" doc:"the admin token: every tenant"`
	TenantID string `json:"tenant_id,omitempty" doc:"a tenant key: this tenant only"`
}

// DashboardTenantCounts is one tenant's queue in the overview.
type DashboardTenantCounts struct {
	TenantID      string                `json:"tenant_id"`
	Name          *string               `json:"name,omitempty"`
	Pending       int                   `json:"pending"`
	Deferred      int                   `json:"deferred"`
	Sent          int                   `json:"sent"`
	Error         int                   `json:"error"`
	Bounced       int                   `json:"bounced" doc:"processed messages with a bounce event (also counted as sent or error)"`
	ReportBacklog int                   `json:"report_backlog" doc:"events not yet reported to the client"`
	Accounts      []store.AccountCounts `json:"accounts" nullable:"false" doc:"the same counts per account that has messages"`
}

// OldestDue is the queued message that has been due longest.
type OldestDue struct {
	PK             string `json:"pk"`
	ID             string `json:"id"`
	TenantID       string `json:"tenant_id"`
	AccountID      string `json:"account_id"`
	CreatedTS      int64  `json:"created_ts"`
	DueTS          int64  `json:"due_ts" doc:"when it became due: its deferral end, else its creation"`
	WaitingSeconds int64  `json:"waiting_seconds"`
}

// ThroughputMinute is the final outcomes of one UTC minute.
type ThroughputMinute struct {
	MinuteTS int64 `json:"minute_ts" doc:"the minute's start, Unix seconds"`
	Sent     int   `json:"sent"`
	Error    int   `json:"error"`
}

// OverviewResponse is GET /ui/api/overview's answer.
type OverviewResponse struct {
	OK         bool                    `json:"ok"`
	NowTS      int64                   `json:"now_ts"`
	Tenants    []DashboardTenantCounts `json:"tenants" nullable:"false"`
	OldestDue  *OldestDue              `json:"oldest_due,omitempty" doc:"omitted when nothing is due"`
	Throughput []ThroughputMinute      `json:"throughput" nullable:"false" doc:"the last 60 minutes, oldest first, the current minute last"`
}

// DashboardMessagesResponse is GET /ui/api/messages' answer.
type DashboardMessagesResponse struct {
	OK       bool            `json:"ok"`
	Messages []MessageRecord `json:"messages" nullable:"false"`
	Limit    int             `json:"limit"`
	Offset   int             `json:"offset"`
	HasMore  bool            `json:"has_more" doc:"another page follows"`
}

// PoolInfo is this instance's SMTP connections for one account.
type PoolInfo struct {
	Open    int `json:"open" doc:"idle + in use + dialling"`
	Idle    int `json:"idle"`
	InUse   int `json:"in_use"`
	Waiting int `json:"waiting" doc:"sends waiting for a free connection"`
}

// DashboardAccount is an account with its connection pool state.
type DashboardAccount struct {
	AccountInfo
	Pool PoolInfo `json:"pool" doc:"this instance's pooled connections"`
}

// DashboardAccountsResponse is GET /ui/api/accounts' answer.
type DashboardAccountsResponse struct {
	OK       bool               `json:"ok"`
	Accounts []DashboardAccount `json:"accounts" nullable:"false"`
}

// DashboardTenant is a tenant's sync status and suspensions.
type DashboardTenant struct {
	ID                  string   `json:"id"`
	Name                *string  `json:"name,omitempty"`
	Active              bool     `json:"active"`
	ClientBaseURL       *string  `json:"client_base_url,omitempty"`
	SuspendedBatches    []string `json:"suspended_batches" nullable:"false" doc:"[\"*\"] for a full suspension"`
	LastSyncTS          *int64   `json:"last_sync_ts,omitempty" doc:"last successful report POST"`
	ConsecutiveFailures int      `json:"consecutive_failures"`
	LastError           string   `json:"last_error,omitempty"`
	InDND               bool     `json:"in_dnd" doc:"do-not-disturb: the client's next_sync_after is in the future"`
	DNDUntil            *int64   `json:"dnd_until,omitempty"`
	NextSyncDue         bool     `json:"next_sync_due"`
	NextAttemptTS       *int64   `json:"next_attempt_ts,omitempty" doc:"when the next report POST is expected; omitted when none is planned"`
	PendingReports      int      `json:"pending_reports"`
}

// DashboardTenantsResponse is GET /ui/api/tenants' answer.
type DashboardTenantsResponse struct {
	OK                  bool              `json:"ok"`
	SyncIntervalSeconds float64           `json:"sync_interval_seconds"`
	Tenants             []DashboardTenant `json:"tenants" nullable:"false"`
}

var qDashTenant = param{name: "tenant_id", kind: paramString,
	doc: "one tenant; a tenant key sees only its own (default), the admin token all (default) or the one named"}

func (s *server) dashboardRoutes() []*route {
	return []*route{
		{method: http.MethodGet, path: "/ui/api/session", id: "dashboardSession", summary: "Who the token is (admin or which tenant)", tag: tagDashboard,
			class: auth.Any, respType: reflect.TypeFor[SessionResponse](), handle: s.dashboardSession},
		{method: http.MethodGet, path: "/ui/api/overview", id: "dashboardOverview", summary: "Queue counts per tenant and account, oldest due message, outcomes per minute over the last hour, report backlog", tag: tagDashboard,
			class: auth.Any, params: []param{qDashTenant}, respType: reflect.TypeFor[OverviewResponse](), handle: s.dashboardOverview},
		{method: http.MethodGet, path: "/ui/api/messages", id: "dashboardMessages", summary: "Search messages, newest first, paged", tag: tagDashboard,
			class: auth.Any, params: []param{qDashTenant,
				{name: "account_id", kind: paramString, doc: "one account"},
				{name: "state", kind: paramString, doc: "pending, deferred, sent, error or bounced"},
				{name: "batch_code", kind: paramString, doc: "one batch"},
				{name: "id", kind: paramString, doc: "the exact client id"},
				{name: "q", kind: paramString, doc: "case-insensitive substring of the subject or a recipient"},
				{name: "include_history", kind: paramBool, def: false, doc: "add each message's events"},
				{name: "limit", kind: paramInt, min: &one, def: dashboardPageDefault, doc: "page size, at most 500"},
				{name: "offset", kind: paramInt, min: &zero, def: 0}},
			respType: reflect.TypeFor[DashboardMessagesResponse](), handle: s.dashboardMessages},
		{method: http.MethodGet, path: "/ui/api/accounts", id: "dashboardAccounts", summary: "Accounts with limits, rate-limit usage and connection pool state (never a password)", tag: tagDashboard,
			class: auth.Any, params: []param{qDashTenant}, respType: reflect.TypeFor[DashboardAccountsResponse](), handle: s.dashboardAccounts},
		{method: http.MethodGet, path: "/ui/api/tenants", id: "dashboardTenants", summary: "Tenants with report sync status, do-not-disturb and suspended batches", tag: tagDashboard,
			class: auth.Any, params: []param{qDashTenant}, respType: reflect.TypeFor[DashboardTenantsResponse](), handle: s.dashboardTenants},
	}
}

// mountUI serves the dashboard's static files under /ui/.
func (s *server) mountUI() {
	s.mux.Handle(http.MethodGet+" /ui/", ui.Handler())
	s.mux.Handle(http.MethodGet+" /ui", http.RedirectHandler("/ui/", http.StatusMovedPermanently))
}

// dashboardScope is the tenant a dashboard read covers ("" = all, admin only).
func dashboardScope(c *call) (string, error) {
	tenant, _ := c.qString("tenant_id")
	if !c.p.Admin {
		if tenant != "" {
			if err := c.p.CheckTenant(tenant); err != nil {
				return "", err
			}
		}
		tenant = c.p.TenantID
	}
	c.tenantID = tenant
	return tenant, nil
}

// scopedTenants lists the tenants in scope, by id.
func (s *server) scopedTenants(c *call, tenant string) ([]store.Tenant, error) {
	if tenant == "" {
		return s.st.ListTenants(c.ctx(), false)
	}
	t, err := s.st.GetTenant(c.ctx(), tenant)
	if isTenantMissing(err) {
		return nil, tenantNotFound(tenant)
	}
	if err != nil {
		return nil, err
	}
	return []store.Tenant{t}, nil
}

func (s *server) dashboardSession(c *call) (any, error) {
	return SessionResponse{OK: true, Admin: c.p.Admin, TenantID: c.p.TenantID}, nil
}

func (s *server) dashboardOverview(c *call) (any, error) {
	tenant, err := dashboardScope(c)
	if err != nil {
		return nil, err
	}
	tenants, err := s.scopedTenants(c, tenant)
	if err != nil {
		return nil, err
	}
	now := s.now()
	firstMinute := now.Truncate(time.Minute).Add(-throughputWindow + time.Minute)
	ov, err := s.st.Overview(c.ctx(), tenant, now, firstMinute)
	if err != nil {
		return nil, err
	}
	out := OverviewResponse{OK: true, NowTS: now.Unix(), Tenants: make([]DashboardTenantCounts, 0, len(tenants))}
	index := map[string]int{}
	for _, t := range tenants {
		backlog, err := s.st.CountUnreported(c.ctx(), t.ID)
		if err != nil {
			return nil, err
		}
		index[t.ID] = len(out.Tenants)
		out.Tenants = append(out.Tenants, DashboardTenantCounts{TenantID: t.ID, Name: t.Name,
			ReportBacklog: backlog, Accounts: []store.AccountCounts{}})
	}
	for _, ac := range ov.Counts {
		i, ok := index[ac.TenantID]
		if !ok { // a tenant created after the listing
			continue
		}
		tc := &out.Tenants[i]
		tc.Pending += ac.Pending
		tc.Deferred += ac.Deferred
		tc.Sent += ac.Sent
		tc.Error += ac.Error
		tc.Bounced += ac.Bounced
		tc.Accounts = append(tc.Accounts, ac)
	}
	if m := ov.OldestDue; m != nil {
		due := m.CreatedAt
		if m.DeferredUntil != nil {
			due = *m.DeferredUntil
		}
		out.OldestDue = &OldestDue{PK: m.PK, ID: m.ID, TenantID: m.TenantID, AccountID: m.AccountID,
			CreatedTS: m.CreatedAt.Unix(), DueTS: due.Unix(), WaitingSeconds: max(0, int64(now.Sub(due)/time.Second))}
	}
	// Every minute of the window, zeros included, so the chart needs no gaps logic.
	byMinute := make(map[int64]store.MinuteOutcomes, len(ov.Throughput))
	for _, p := range ov.Throughput {
		byMinute[p.Minute.Unix()] = p
	}
	for t := firstMinute; !t.After(now); t = t.Add(time.Minute) {
		p := byMinute[t.Unix()]
		out.Throughput = append(out.Throughput, ThroughputMinute{MinuteTS: t.Unix(), Sent: p.Sent, Error: p.Error})
	}
	return out, nil
}

func (s *server) dashboardMessages(c *call) (any, error) {
	tenant, err := dashboardScope(c)
	if err != nil {
		return nil, err
	}
	f := store.MessageSearch{TenantID: tenant, IncludeHistory: c.qBool("include_history"), Limit: dashboardPageDefault}
	f.AccountID, _ = c.qString("account_id")
	f.BatchCode, _ = c.qString("batch_code")
	f.ID, _ = c.qString("id")
	f.Text, _ = c.qString("q")
	if st, ok := c.qString("state"); ok {
		if !slices.Contains(store.SearchStates, st) {
			exp := literalList(store.SearchStates)
			var is issues
			is.add("literal_error", "Input should be "+exp, []any{"query", "state"}, jsonInput(st), map[string]any{"expected": exp})
			return nil, invalid(is.list)
		}
		f.State = st
	}
	if n, ok := c.qInt("limit"); ok {
		f.Limit = int(min(n, dashboardPageMax))
	}
	if n, ok := c.qInt("offset"); ok {
		f.Offset = int(min(n, 1<<31-1))
	}
	page := f.Limit
	f.Limit++ // one more tells whether another page follows
	now := s.now()
	recs, err := s.st.SearchMessages(c.ctx(), f, now)
	if err != nil {
		return nil, err
	}
	out := DashboardMessagesResponse{OK: true, Limit: page, Offset: f.Offset, HasMore: len(recs) > page,
		Messages: make([]MessageRecord, 0, min(len(recs), page))}
	for i := range recs[:min(len(recs), page)] {
		out.Messages = append(out.Messages, messageRecord(&recs[i], f.IncludeHistory, now))
	}
	return out, nil
}

func (s *server) dashboardAccounts(c *call) (any, error) {
	if _, err := dashboardScope(c); err != nil {
		return nil, err
	}
	list, err := s.accountList(c.ctx(), c.tenantID) // the scope ("" = all)
	if err != nil {
		return nil, err
	}
	pools := map[string]PoolInfo{}
	if s.d.Pools != nil {
		for _, ks := range s.d.Pools() {
			p := pools[ks.Account]
			p.Open += ks.Open
			p.Idle += ks.Idle
			p.InUse += max(0, ks.Open-ks.Idle)
			p.Waiting += ks.Waiting
			pools[ks.Account] = p
		}
	}
	accts := list.Accounts
	out := DashboardAccountsResponse{OK: true, Accounts: make([]DashboardAccount, 0, len(accts))}
	for _, a := range accts {
		out.Accounts = append(out.Accounts, DashboardAccount{AccountInfo: a,
			Pool: pools[store.AccountKey(a.TenantID, a.ID)]})
	}
	return out, nil
}

func (s *server) dashboardTenants(c *call) (any, error) {
	tenant, err := dashboardScope(c)
	if err != nil {
		return nil, err
	}
	tenants, err := s.scopedTenants(c, tenant)
	if err != nil {
		return nil, err
	}
	now := s.now()
	interval := s.opts.SyncInterval
	out := DashboardTenantsResponse{OK: true, SyncIntervalSeconds: interval.Seconds(),
		Tenants: make([]DashboardTenant, 0, len(tenants))}
	for _, t := range tenants {
		sync, st, err := s.tenantSync(c, t, interval, now)
		if err != nil {
			return nil, err
		}
		row := DashboardTenant{ID: t.ID, Name: t.Name, Active: t.Active, ClientBaseURL: t.ClientBaseURL,
			SuspendedBatches: t.SuspendedBatches, LastSyncTS: sync.LastSyncTS,
			ConsecutiveFailures: sync.ConsecutiveFailures, LastError: sync.LastError, PendingReports: sync.PendingReports,
			InDND: sync.InDND, DNDUntil: sync.DNDUntil, NextSyncDue: sync.NextSyncDue,
			NextAttemptTS: unixPtr(nextReportAttempt(t, st, sync.PendingReports, interval, now))}
		if row.SuspendedBatches == nil {
			row.SuspendedBatches = []string{}
		}
		out.Tenants = append(out.Tenants, row)
	}
	return out, nil
}

// nextReportAttempt is when the report loop is expected to POST to the
// tenant next (client-sync.md §2), nil when nothing is planned: no URL (own
// or global) is known here, so a tenant without its own URL and without
// events has none.
func nextReportAttempt(t store.Tenant, st store.SyncState, pending int, interval time.Duration, now time.Time) *time.Time {
	if st.NextRetryAt != nil && st.NextRetryAt.After(now) {
		return st.NextRetryAt
	}
	if syncDue(t, st, pending, interval, now) {
		return &now
	}
	if !t.Active || t.ClientBaseURL == nil || *t.ClientBaseURL == "" {
		return nil
	}
	if st.DNDUntil != nil && st.DNDUntil.After(now) {
		return st.DNDUntil
	}
	if st.LastSyncAt != nil {
		next := st.LastSyncAt.Add(interval)
		return &next
	}
	return &now
}
