package api_test

import (
	"context"
	"testing"
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
