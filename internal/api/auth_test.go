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
	routes := []scopeRoute{
		{"GET", classPublic, false, fixedReq("/health", "")},
		{"GET", classPublic, false, fixedReq("/ready", "")},
		{"GET", classPublic, false, fixedReq("/metrics", "")},
		{"GET", classPublic, false, fixedReq("/openapi.json", "")},
		{"GET", classPublic, false, fixedReq("/docs", "")},
		{"GET", classAny, false, fixedReq("/status", "")},
		{"GET", classAny, true, fixedReq("/stats?tenant_id=t1", "")},
		{"POST", classAny, true, fixedReq("/commands/run-now?tenant_id=t1", "")},
		{"POST", classTenant, true, fixedReq("/commands/suspend?tenant_id=t1&batch_code=b", "")},
		{"POST", classTenant, true, fixedReq("/commands/activate?tenant_id=t1&batch_code=b", "")},
		{"POST", classTenant, true, fixedReq("/commands/retry-deferred?tenant_id=t1", "")},
		{"POST", classTenant, true, func(who string) scopeReq {
			return scopeReq{"/commands/add-messages", `{"messages":[{"id":"m-` + who + `","tenant_id":"t1","account_id":"a1","from":"a@example.com","to":"b@example.com","subject":"s"}]}`}
		}},
		{"POST", classTenant, true, fixedReq("/commands/delete-messages?tenant_id=t1", `{"ids":["nope"]}`)},
		{"POST", classTenant, true, fixedReq("/commands/cleanup-messages?tenant_id=t1", "")},
		{"POST", classTenant, true, func(who string) scopeReq {
			return scopeReq{"/account", `{"id":"acc-` + who + `","tenant_id":"t1","host":"127.0.0.1","port":25}`}
		}},
		{"PUT", classTenant, true, fixedReq("/account/a1?tenant_id=t1", `{"limit_per_minute":5}`)},
		{"GET", classTenant, true, fixedReq("/accounts?tenant_id=t1", "")},
		{"DELETE", classTenant, true, func(who string) scopeReq { return scopeReq{"/account/del-" + who + "?tenant_id=t1", ""} }},
		{"GET", classTenant, true, fixedReq("/messages?tenant_id=t1", "")},
		{"GET", classTenant, true, fixedReq("/suppressions?tenant_id=t1", "")},
		{"POST", classTenant, true, fixedReq("/suppressions", `{"tenant_id":"t1","addresses":["x@example.com"]}`)},
		{"DELETE", classTenant, true, fixedReq("/suppressions?tenant_id=t1&address=x@example.com", "")},
		{"GET", classTenant, true, fixedReq("/tenant/t1", "")},
		{"PUT", classTenant, true, fixedReq("/tenant/t1", `{"name":"T one"}`)},
		{"POST", classTenant, true, fixedReq("/tenant/t1/signing-secret", "")},
		{"DELETE", classTenant, true, fixedReq("/tenant/t1/signing-secret", "")},
		{"POST", classAdmin, false, func(who string) scopeReq { return scopeReq{"/tenant", `{"id":"new-` + who + `"}`} }},
		{"GET", classAdmin, false, fixedReq("/tenants", "")},
		{"GET", classAdmin, false, fixedReq("/tenants/sync-status", "")},
		{"DELETE", classAdmin, false, func(who string) scopeReq { return scopeReq{"/tenant/victim-" + who, ""} }},
		{"POST", classAdmin, false, fixedReq("/tenant/t3/api-key", "")},
		{"DELETE", classAdmin, false, fixedReq("/tenant/t3/api-key", "")},
		{"GET", classAdmin, false, fixedReq("/instance", "")},
		{"PUT", classAdmin, false, fixedReq("/instance", `{"name":"proxy-1"}`)},
		{"POST", classAdmin, false, fixedReq("/instance/reload-bounce", "")},
		{"POST", classAdmin, false, fixedReq("/instance/upgrade-to-ee", "")},
		{"GET", classAdmin, false, fixedReq("/command-log", "")},
		{"GET", classAdmin, false, fixedReq("/command-log/export", "")},
	}
	runScopeMatrix(t, e, ownKey, otherKey, routes)
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
	if string(r.Body) != `{"detail":[{"type":"missing","loc":["query","tenant_id"],"msg":"Field required","input":null}]}` {
		t.Errorf("body %s", r.Body)
	}
	// A key defaults to its own tenant.
	e.must(200, "GET", "/accounts", key, nil)
	e.must(200, "POST", "/commands/suspend", key, nil)
	if got := e.must(200, "GET", "/tenant/t1", key, nil).JSON(t)["suspended_batches"]; len(got.([]any)) != 1 {
		t.Errorf("suspended_batches %v after suspend with the key's default tenant", got)
	}
}

// Auth classes of the scope matrix (tenancy-security.md §3).
const (
	classPublic = iota
	classAny
	classTenant
	classAdmin
)

// scopeReq is one matrix request: its path (with query) and JSON body.
type scopeReq struct{ path, body string }

// scopeRoute is one route of the scope matrix. named: the request names
// tenant t1, so an auth route refuses another tenant's key.
type scopeRoute struct {
	method string
	class  int
	named  bool
	req    func(who string) scopeReq
}

// fixedReq is a request that is the same for every caller.
func fixedReq(path, body string) func(string) scopeReq {
	return func(string) scopeReq { return scopeReq{path, body} }
}

// runScopeMatrix calls every route as the admin, t1's key (own), t2's key
// (other), no token and a bad token, and checks each answer's status and
// detail against the route's auth class.
func runScopeMatrix(t *testing.T, e *env, ownKey, otherKey string, routes []scopeRoute) {
	t.Helper()
	principals := []struct{ who, token string }{
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
				case classAny, classTenant:
					switch {
					case p.who == "none" || p.who == "bad":
						wantStatus, wantDetail = 401, invalidToken
					case p.who == "other" && rt.named:
						wantStatus, wantDetail = 401, wrongTenant
					}
				case classAdmin:
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
