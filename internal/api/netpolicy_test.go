package api_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/mailproxy/mailproxy/internal/api"
	"github.com/mailproxy/mailproxy/internal/store/sqlite"
)

// TestClientURLByTenantRecorded: who set client_base_url is stored, so the
// address policy can trust the admin's origins and not a tenant key's
// (issue 11.1): the tenant key's write marks it, a write of other fields
// keeps the mark, the admin's write clears it.
func TestClientURLByTenantRecorded(t *testing.T) {
	e := setup(t)
	byTenant := func() bool {
		t.Helper()
		tn, err := e.st.GetTenant(context.Background(), "acme")
		if err != nil {
			t.Fatalf("GetTenant: %v", err)
		}
		return tn.ClientURLByTenant
	}
	key := e.must(200, "POST", "/tenant", adminToken, map[string]any{"id": "acme",
		"client_base_url": "http://127.0.0.1:9"}).JSON(t)["api_key"].(string)
	if byTenant() {
		t.Fatal("admin-created tenant: client_base_url marked as set by the tenant")
	}
	e.must(200, "PUT", "/tenant/acme", key, map[string]any{"client_base_url": "http://10.0.0.5"})
	if !byTenant() {
		t.Fatal("PUT with the tenant key: client_base_url not marked as set by the tenant")
	}
	e.must(200, "PUT", "/tenant/acme", adminToken, map[string]any{"name": "Acme"})
	if !byTenant() {
		t.Fatal("admin PUT of the name only cleared the tenant mark")
	}
	e.must(200, "PUT", "/tenant/acme", adminToken, map[string]any{"client_base_url": "http://10.0.0.5"})
	if byTenant() {
		t.Fatal("admin PUT of client_base_url kept the tenant mark")
	}
}

// TestAccountHostPolicy (issue 11.9): link-local and metadata SMTP hosts are
// refused for every caller (422 naming host); with
// GMP_ACCOUNT_TARGETS_PUBLIC_ONLY a tenant key may not name loopback or
// private hosts either, while the admin keeps local relays.
func TestAccountHostPolicy(t *testing.T) {
	for _, publicOnly := range []bool{false, true} {
		e := setup(t, func(d *api.Deps, _ *sqlite.Options) { d.Options.AccountTargetsPublicOnly = publicOnly })
		key := e.tenant("acme")
		post := func(token, host string) resp {
			return e.do("POST", "/account", token, map[string]any{"id": "smtp", "tenant_id": "acme", "host": host, "port": 25})
		}
		for _, host := range []string{"169.254.169.254", "169.254.0.1", "fe80::1", "[fd00:ec2::254]", "::ffff:169.254.169.254"} {
			for _, token := range []string{adminToken, key} {
				r := post(token, host)
				if r.Status != 422 {
					t.Fatalf("public-only %v: host %s: status %d %s, want 422", publicOnly, host, r.Status, r.Body)
				}
				if is := r.Issues(t); len(is) != 1 || !reflect.DeepEqual(is[0]["loc"], []any{"body", "host"}) {
					t.Fatalf("host %s: issues %v, want one naming body.host", host, is)
				}
			}
		}
		// PUT /account/{id} checks a changed host too.
		e.must(200, "POST", "/account", key, map[string]any{"id": "smtp", "host": "93.184.215.14", "port": 25})
		e.must(422, "PUT", "/account/smtp", key, map[string]any{"host": "169.254.169.254"})

		for _, host := range []string{"127.0.0.1", "10.0.0.5", "localhost", "::1"} {
			e.must(200, "POST", "/account", adminToken, map[string]any{"id": "relay", "tenant_id": "acme", "host": host, "port": 25})
			want := 200
			if publicOnly {
				want = 422
			}
			if r := post(key, host); r.Status != want {
				t.Fatalf("public-only %v: tenant key, host %s: status %d %s, want %d", publicOnly, host, r.Status, r.Body, want)
			}
		}
		e.must(200, "POST", "/account", key, map[string]any{"id": "smtp", "host": "93.184.215.14", "port": 25})
		// Who set the host is stored, for the dial-time policy.
		hostByTenant := func(id string) bool {
			t.Helper()
			a, err := e.st.GetAccount(context.Background(), "acme", id)
			if err != nil {
				t.Fatal(err)
			}
			return a.HostByTenant
		}
		if !hostByTenant("smtp") || hostByTenant("relay") {
			t.Fatalf("HostByTenant: tenant's account %v, admin's %v; want true, false", hostByTenant("smtp"), hostByTenant("relay"))
		}
		e.must(200, "PUT", "/account/smtp", key, map[string]any{"ttl": 60})
		if !hostByTenant("smtp") {
			t.Fatal("a PUT without host cleared HostByTenant")
		}
		e.must(200, "POST", "/account", adminToken, map[string]any{"id": "smtp", "tenant_id": "acme", "host": "93.184.215.14", "port": 25})
		if hostByTenant("smtp") {
			t.Fatal("the admin rewriting host kept HostByTenant")
		}
	}
}
