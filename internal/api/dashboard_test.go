package api_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/mailproxy/mailproxy/internal/api"
	"github.com/mailproxy/mailproxy/internal/smtppool"
	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/store/sqlite"
)

// dashboardEnv has tenants a and b, each with account acc and messages
// a1, a2 (a) and b1 (b); it returns the two keys.
func dashboardEnv(t *testing.T, opts ...envOption) (*env, string, string) {
	t.Helper()
	e := setup(t, opts...)
	keyA, keyB := e.tenant("a"), e.tenant("b")
	e.account("a", "acc")
	e.account("b", "acc")
	a2 := msg("a2", "a", "acc")
	a2["batch_code"], a2["subject"], a2["to"] = "spring", "Spring sale", "Carol@Example.org"
	e.must(200, "POST", "/commands/add-messages", adminToken, batch(msg("a1", "a", "acc"), msg("b1", "b", "acc")))
	e.must(200, "POST", "/commands/add-messages", adminToken, batch(a2))
	return e, keyA, keyB
}

func decode[T any](t *testing.T, r resp) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.Body, &v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
	return v
}

// Every dashboard read: a tenant key sees its own tenant only and is refused
// another's; the admin token sees every tenant; no token is refused.
func TestDashboardScope(t *testing.T) {
	e, keyA, _ := dashboardEnv(t)
	tenantsIn := func(r resp) []string {
		var b struct {
			Tenants []struct {
				TenantID string `json:"tenant_id"`
				ID       string `json:"id"`
			} `json:"tenants"`
			Messages []struct {
				TenantID string `json:"tenant_id"`
			} `json:"messages"`
			Accounts []struct {
				TenantID string `json:"tenant_id"`
			} `json:"accounts"`
		}
		if err := json.Unmarshal(r.Body, &b); err != nil {
			t.Fatalf("decode %s: %v", r.Body, err)
		}
		var out []string
		add := func(id string) {
			if !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
		for _, x := range b.Tenants {
			add(x.TenantID + x.ID)
		}
		for _, x := range b.Messages {
			add(x.TenantID)
		}
		for _, x := range b.Accounts {
			add(x.TenantID)
		}
		slices.Sort(out)
		return out
	}
	for _, path := range []string{"/ui/api/overview", "/ui/api/messages", "/ui/api/accounts", "/ui/api/tenants"} {
		t.Run(path, func(t *testing.T) {
			if r := e.do("GET", path, "", nil); r.Status != 401 || r.Detail(t) != "Invalid or missing API token" {
				t.Errorf("no token: %d %s, want 401", r.Status, r.Body)
			}
			if got := tenantsIn(e.must(200, "GET", path, keyA, nil)); !slices.Equal(got, []string{"a"}) {
				t.Errorf("tenant a's key sees tenants %v, want [a]", got)
			}
			if got := tenantsIn(e.must(200, "GET", path+"?tenant_id=a", keyA, nil)); !slices.Equal(got, []string{"a"}) {
				t.Errorf("tenant a's key naming a sees %v, want [a]", got)
			}
			if r := e.do("GET", path+"?tenant_id=b", keyA, nil); r.Status != 401 || r.Detail(t) != "Token not authorized for this tenant" {
				t.Errorf("tenant a's key naming b: %d %s, want 401", r.Status, r.Body)
			}
			all := tenantsIn(e.must(200, "GET", path, adminToken, nil))
			if !slices.Contains(all, "a") || !slices.Contains(all, "b") {
				t.Errorf("the admin token sees %v, want a and b", all)
			}
			if got := tenantsIn(e.must(200, "GET", path+"?tenant_id=b", adminToken, nil)); !slices.Equal(got, []string{"b"}) {
				t.Errorf("the admin token naming b sees %v, want [b]", got)
			}
		})
	}
	if got := decode[api.SessionResponse](t, e.must(200, "GET", "/ui/api/session", keyA, nil)); got != (api.SessionResponse{OK: true, TenantID: "a"}) {
		t.Errorf("session with a's key = %+v", got)
	}
	if got := decode[api.SessionResponse](t, e.must(200, "GET", "/ui/api/session", adminToken, nil)); got != (api.SessionResponse{OK: true, Admin: true}) {
		t.Errorf("session with the admin token = %+v", got)
	}
	if r := e.do("GET", "/ui/api/session", "not-a-token", nil); r.Status != 401 {
		t.Errorf("session with a wrong token: %d, want 401", r.Status)
	}
	if r := e.do("GET", "/ui/api/overview?tenant_id=ghost", adminToken, nil); r.Status != 404 {
		t.Errorf("overview of an unknown tenant: %d %s, want 404", r.Status, r.Body)
	}
}

func TestDashboardOverview(t *testing.T) {
	e, _, _ := dashboardEnv(t)
	if n := e.deliver(store.OutcomeSent, "250 OK"); n != 3 {
		t.Fatalf("delivered %d, want 3", n)
	}
	e.must(200, "POST", "/commands/add-messages", adminToken, batch(msg("a3", "a", "acc")))
	ov := decode[api.OverviewResponse](t, e.must(200, "GET", "/ui/api/overview", adminToken, nil))
	var a api.DashboardTenantCounts
	for _, tc := range ov.Tenants {
		if tc.TenantID == "a" {
			a = tc
		}
	}
	if a.Sent != 2 || a.Pending != 1 || a.ReportBacklog != 2 || len(a.Accounts) != 1 || a.Accounts[0].Sent != 2 {
		t.Errorf("tenant a in the overview = %+v, want 2 sent, 1 pending, 2 unreported, one account", a)
	}
	if len(ov.Throughput) != 60 {
		t.Fatalf("throughput has %d minutes, want 60", len(ov.Throughput))
	}
	last := ov.Throughput[59]
	if last.Sent+ov.Throughput[58].Sent != 3 || last.MinuteTS > ov.NowTS || ov.NowTS-last.MinuteTS >= 60 {
		t.Errorf("throughput ends with %+v, %+v at now %d; want the 3 sends in the last minutes, the current minute last",
			ov.Throughput[58], last, ov.NowTS)
	}
	if ov.OldestDue == nil || ov.OldestDue.ID != "a3" || ov.OldestDue.TenantID != "a" {
		t.Errorf("oldest due = %+v, want a3", ov.OldestDue)
	}
}

func TestDashboardMessages(t *testing.T) {
	e, keyA, _ := dashboardEnv(t)
	ids := func(query, token string) ([]string, api.DashboardMessagesResponse) {
		t.Helper()
		out := decode[api.DashboardMessagesResponse](t, e.must(200, "GET", "/ui/api/messages"+query, token, nil))
		var got []string
		for _, m := range out.Messages {
			got = append(got, m.ID)
		}
		return got, out
	}
	for _, tc := range []struct{ query, want string }{
		{"?tenant_id=a", "a2 a1"},
		{"?tenant_id=a&state=pending", "a2 a1"},
		{"?tenant_id=a&state=sent", ""},
		{"?batch_code=spring", "a2"},
		{"?q=carol@example", "a2"},
		{"?q=SPRING+SALE", "a2"},
		{"?account_id=acc&id=b1", "b1"},
	} {
		if got, _ := ids(tc.query, adminToken); strings.Join(got, " ") != tc.want {
			t.Errorf("messages%s = %v, want %q", tc.query, got, tc.want)
		}
	}
	got, page := ids("?limit=1", keyA)
	if !slices.Equal(got, []string{"a2"}) || !page.HasMore || page.Limit != 1 {
		t.Errorf("first page of one with a's key = %v (has_more %v), want [a2] and more", got, page.HasMore)
	}
	got, page = ids("?limit=1&offset=1", keyA)
	if !slices.Equal(got, []string{"a1"}) || page.HasMore {
		t.Errorf("second page of one = %v (has_more %v), want [a1] and no more", got, page.HasMore)
	}
	r := e.do("GET", "/ui/api/messages?state=lost", adminToken, nil)
	if is := r.Issues(t); r.Status != 422 || len(is) != 1 || is[0]["type"] != "literal_error" {
		t.Errorf("unknown state: %d %s, want 422 literal_error", r.Status, r.Body)
	}
	e.deliver(store.OutcomeError, "550 5.1.1 user unknown")
	_, one := ids("?tenant_id=a&id=a1&include_history=true", adminToken)
	if len(one.Messages) != 1 || len(one.Messages[0].History) != 1 || one.Messages[0].Error == nil ||
		!strings.Contains(*one.Messages[0].Error, "user unknown") || one.Messages[0].Status != "error" {
		t.Errorf("a1 with history = %+v, want one error event with the reason", one.Messages)
	}
}

// Accounts show limits, usage and this instance's pool, never a secret.
func TestDashboardAccounts(t *testing.T) {
	pools := func(d *api.Deps, _ *sqlite.Options) {
		d.Pools = func() []smtppool.KeyState {
			return []smtppool.KeyState{{Account: store.AccountKey("a", "acc"), Host: "127.0.0.1", Port: 2525, Open: 3, Idle: 1, Waiting: 2}}
		}
	}
	e, keyA, _ := dashboardEnv(t, pools)
	e.must(200, "POST", "/account", adminToken, map[string]any{"id": "acc", "tenant_id": "a", "host": "127.0.0.1", "port": 2525,
		"user": "u", "password": "hunter2-password", "imap_password": "imap-hunter2", "limit_per_minute": 7})
	r := e.must(200, "GET", "/ui/api/accounts", keyA, nil)
	for _, secret := range []string{"hunter2", "password\""} {
		if strings.Contains(string(r.Body), secret) {
			t.Errorf("accounts answer contains %q: %s", secret, r.Body)
		}
	}
	out := decode[api.DashboardAccountsResponse](t, r)
	if len(out.Accounts) != 1 {
		t.Fatalf("accounts = %+v, want a's one", out.Accounts)
	}
	a := out.Accounts[0]
	if a.Pool != (api.PoolInfo{Open: 3, Idle: 1, InUse: 2, Waiting: 2}) || a.LimitPerMinute == nil || *a.LimitPerMinute != 7 {
		t.Errorf("account a/acc = %+v, want pool 3 open, 1 idle, 2 in use, 2 waiting and limit 7/min", a)
	}
	b := decode[api.DashboardAccountsResponse](t, e.must(200, "GET", "/ui/api/accounts?tenant_id=b", adminToken, nil))
	if len(b.Accounts) != 1 || b.Accounts[0].Pool != (api.PoolInfo{}) {
		t.Errorf("b's account = %+v, want an empty pool", b.Accounts)
	}
}

func TestDashboardTenants(t *testing.T) {
	e, keyA, _ := dashboardEnv(t)
	e.must(200, "POST", "/commands/suspend?tenant_id=a&batch_code=spring", keyA, nil)
	out := decode[api.DashboardTenantsResponse](t, e.must(200, "GET", "/ui/api/tenants", keyA, nil))
	if len(out.Tenants) != 1 || !slices.Equal(out.Tenants[0].SuspendedBatches, []string{"spring"}) ||
		out.Tenants[0].PendingReports != 0 || out.SyncIntervalSeconds != 300 {
		t.Errorf("tenants with a's key = %+v, want a with batch spring suspended", out)
	}
}

// The page itself: embedded files with a strict policy, a login form, JSON 404s.
func TestDashboardStaticFiles(t *testing.T) {
	e := setup(t)
	r := e.must(200, "GET", "/ui/", "", nil)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("/ui/ Content-Type %q", ct)
	}
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("/ui/ CSP %q", csp)
	}
	for _, want := range []string{`type="password" name="token"`, `type="submit"`, `src="app.js"`, `>Messages<`} {
		if !strings.Contains(string(r.Body), want) {
			t.Errorf("/ui/ lacks %s", want)
		}
	}
	for path, ct := range map[string]string{"/ui/app.js": "javascript", "/ui/style.css": "text/css"} {
		if r := e.must(200, "GET", path, "", nil); !strings.Contains(r.Header.Get("Content-Type"), ct) || len(r.Body) == 0 {
			t.Errorf("%s: Content-Type %q, %d bytes", path, r.Header.Get("Content-Type"), len(r.Body))
		}
	}
	if r := e.do("GET", "/ui/missing.js", "", nil); r.Status != 404 || r.Detail(t) != "Not Found" {
		t.Errorf("/ui/missing.js: %d %s, want the JSON 404", r.Status, r.Body)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := noFollow.Get(e.srv.URL + "/ui")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMovedPermanently || res.Header.Get("Location") != "/ui/" {
		t.Errorf("/ui: %d to %q, want a redirect to /ui/", res.StatusCode, res.Header.Get("Location"))
	}
	spec := e.must(200, "GET", "/openapi.json", "", nil)
	for _, p := range []string{"/ui/api/overview", "/ui/api/messages", "/ui/api/accounts", "/ui/api/tenants", "/ui/api/session"} {
		if !strings.Contains(string(spec.Body), `"`+p+`"`) {
			t.Errorf("/openapi.json does not document %s", p)
		}
	}
}
