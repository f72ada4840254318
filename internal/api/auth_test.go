package api_test

import (
	"net/http"
	"testing"
)

// TestScopeMatrix runs every route as the admin, the tenant's own key,
// another tenant's key, no token and an unknown token (tenancy-security.md §3).
func TestScopeMatrix(t *testing.T) {
	e := setup(t)
	ownKey := e.tenant("t1")
	otherKey := e.tenant("t2")
	e.tenant("t3")
	e.account("t1", "a1")
	for _, who := range []string{"admin", "own"} {
		e.account("t1", "del-"+who)
		e.tenant("victim-" + who)
	}
	const (
		public = iota
		anyAuth
		tenantScoped
		adminOnly
	)
	type req struct{ path, body string }
	fixed := func(path, body string) func(string) req {
		return func(string) req { return req{path, body} }
	}
	routes := []struct {
		method string
		class  int
		// named: whether the request names tenant t1 (an "auth" route
		// then refuses another tenant's key).
		named bool
		req   func(who string) req
	}{
		{"GET", public, false, fixed("/health", "")},
		{"GET", public, false, fixed("/ready", "")},
		{"GET", public, false, fixed("/metrics", "")},
		{"GET", public, false, fixed("/openapi.json", "")},
		{"GET", public, false, fixed("/docs", "")},
		{"GET", anyAuth, false, fixed("/status", "")},
		{"GET", anyAuth, true, fixed("/stats?tenant_id=t1", "")},
		{"POST", anyAuth, true, fixed("/commands/run-now?tenant_id=t1", "")},
		{"POST", tenantScoped, true, fixed("/commands/suspend?tenant_id=t1&batch_code=b", "")},
		{"POST", tenantScoped, true, fixed("/commands/activate?tenant_id=t1&batch_code=b", "")},
		{"POST", tenantScoped, true, func(who string) req {
			return req{"/commands/add-messages", `{"messages":[{"id":"m-` + who + `","tenant_id":"t1","account_id":"a1","from":"a@example.com","to":"b@example.com","subject":"s"}]}`}
		}},
		{"POST", tenantScoped, true, fixed("/commands/delete-messages?tenant_id=t1", `{"ids":["nope"]}`)},
		{"POST", tenantScoped, true, fixed("/commands/cleanup-messages?tenant_id=t1", "")},
		{"POST", tenantScoped, true, func(who string) req {
			return req{"/account", `{"id":"acc-` + who + `","tenant_id":"t1","host":"127.0.0.1","port":25}`}
		}},
		{"PUT", tenantScoped, true, fixed("/account/a1?tenant_id=t1", `{"limit_per_minute":5}`)},
		{"GET", tenantScoped, true, fixed("/accounts?tenant_id=t1", "")},
		{"DELETE", tenantScoped, true, func(who string) req { return req{"/account/del-" + who + "?tenant_id=t1", ""} }},
		{"GET", tenantScoped, true, fixed("/messages?tenant_id=t1", "")},
		{"GET", tenantScoped, true, fixed("/tenant/t1", "")},
		{"PUT", tenantScoped, true, fixed("/tenant/t1", `{"name":"T one"}`)},
		{"POST", tenantScoped, true, fixed("/tenant/t1/signing-secret", "")},
		{"DELETE", tenantScoped, true, fixed("/tenant/t1/signing-secret", "")},
		{"POST", adminOnly, false, func(who string) req { return req{"/tenant", `{"id":"new-` + who + `"}`} }},
		{"GET", adminOnly, false, fixed("/tenants", "")},
		{"GET", adminOnly, false, fixed("/tenants/sync-status", "")},
		{"DELETE", adminOnly, false, func(who string) req { return req{"/tenant/victim-" + who, ""} }},
		{"POST", adminOnly, false, fixed("/tenant/t3/api-key", "")},
		{"DELETE", adminOnly, false, fixed("/tenant/t3/api-key", "")},
		{"GET", adminOnly, false, fixed("/instance", "")},
		{"PUT", adminOnly, false, fixed("/instance", `{"name":"proxy-1"}`)},
		{"POST", adminOnly, false, fixed("/instance/reload-bounce", "")},
		{"POST", adminOnly, false, fixed("/instance/upgrade-to-ee", "")},
		{"GET", adminOnly, false, fixed("/command-log", "")},
		{"GET", adminOnly, false, fixed("/command-log/export", "")},
	}
	principals := []struct {
		who, token string
	}{
		{"admin", adminToken}, {"own", ownKey}, {"other", otherKey}, {"none", ""}, {"bad", "not-a-token"},
	}
	const (
		invalidToken = "Invalid or missing API token"
		wrongTenant  = "Token not authorized for this tenant"
		adminReq     = "Admin token required"
		adminOnlyMsg = "Admin token required, tenant tokens not allowed for this operation"
	)
	for _, rt := range routes {
		for _, p := range principals {
			rq := rt.req(p.who)
			t.Run(rt.method+" "+rq.path+" as "+p.who, func(t *testing.T) {
				wantStatus, wantDetail := http.StatusOK, ""
				switch rt.class {
				case anyAuth, tenantScoped:
					switch {
					case p.who == "none" || p.who == "bad":
						wantStatus, wantDetail = 401, invalidToken
					case p.who == "other" && rt.named:
						wantStatus, wantDetail = 401, wrongTenant
					}
				case adminOnly:
					switch p.who {
					case "none":
						wantStatus, wantDetail = 401, adminReq
					case "bad":
						wantStatus, wantDetail = 401, invalidToken
					case "own", "other":
						wantStatus, wantDetail = 403, adminOnlyMsg
					}
				}
				var body any
				if rq.body != "" {
					body = rq.body
				}
				r := e.doT(t, rt.method, rq.path, p.token, body)
				if r.Status != wantStatus {
					t.Fatalf("status %d, want %d: %s", r.Status, wantStatus, r.Body)
				}
				if wantDetail != "" {
					if got := r.Detail(t); got != wantDetail {
						t.Errorf("detail %q, want %q", got, wantDetail)
					}
				}
			})
		}
	}
}

func TestTokenSources(t *testing.T) {
	e := setup(t)
	key := e.tenant("t1")
	cases := []struct {
		name   string
		header []string
		query  string
		want   int
	}{
		{"bearer admin", []string{"Authorization", "Bearer " + adminToken}, "", 200},
		{"bearer tenant key", []string{"Authorization", "bearer " + key}, "", 200},
		{"X-API-Token wins over bearer", []string{"X-API-Token", "wrong", "Authorization", "Bearer " + adminToken}, "", 401},
		{"basic is not a token", []string{"Authorization", "Basic " + adminToken}, "", 401},
		{"never from the query", nil, "?api_token=" + adminToken + "&token=" + adminToken, 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.doT(t, "GET", "/status"+tc.query, "", nil, tc.header...)
			if r.Status != tc.want {
				t.Errorf("status %d, want %d: %s", r.Status, tc.want, r.Body)
			}
		})
	}
}

func TestTenantRouteNeedsTenantForAdmin(t *testing.T) {
	e := setup(t)
	key := e.tenant("t1")
	r := e.must(422, "GET", "/accounts", adminToken, nil)
	if string(r.Body) != `{"detail":[{"type":"missing","loc":["query","tenant_id"],"msg":"Field required"}]}` {
		t.Errorf("body %s", r.Body)
	}
	// A key defaults to its own tenant.
	e.must(200, "GET", "/accounts", key, nil)
	e.must(200, "POST", "/commands/suspend", key, nil)
	if got := e.must(200, "GET", "/tenant/t1", key, nil).JSON(t)["suspended_batches"]; len(got.([]any)) != 1 {
		t.Errorf("suspended_batches %v after suspend with the key's default tenant", got)
	}
}
