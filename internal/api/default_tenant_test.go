package api_test

import (
	"context"
	"testing"

	"github.com/mailproxy/mailproxy/internal/store"
)

// TestDefaultTenantGetsKeyWhenConfigured: the default tenant, made at first
// start without a key, answers POST /tenant with its api_key like any new
// tenant; later updates keep the key and answer without one (issue 12.3).
func TestDefaultTenantGetsKeyWhenConfigured(t *testing.T) {
	e := setup(t)
	name := "Default Tenant"
	if _, err := e.st.UpsertTenant(context.Background(), store.Tenant{ID: "default", Name: &name, Active: true}); err != nil {
		t.Fatal(err) // as the instance does at first start
	}
	r := e.must(200, "POST", "/tenant", adminToken, map[string]any{"id": "default", "client_base_url": "http://127.0.0.1:9"})
	key, _ := r.JSON(t)["api_key"].(string)
	if len(key) != 43 {
		t.Fatalf("first configuration of default: %s, want an api_key", r.Body)
	}
	e.must(200, "GET", "/tenant/default", key, nil)
	r = e.must(200, "POST", "/tenant", adminToken, map[string]any{"id": "default", "name": "Main"})
	if _, ok := r.JSON(t)["api_key"]; ok {
		t.Errorf("second configuration handed out another key: %s", r.Body)
	}
	e.must(200, "GET", "/tenant/default", key, nil)

	// A revoked key stays revoked for other tenants.
	e.tenant("acme")
	e.must(200, "DELETE", "/tenant/acme/api-key", adminToken, nil)
	r = e.must(200, "POST", "/tenant", adminToken, map[string]any{"id": "acme"})
	if _, ok := r.JSON(t)["api_key"]; ok {
		t.Errorf("an update re-issued a revoked key: %s", r.Body)
	}
}

// TestDefaultTenantCreatedThroughAPI: creating `default` from nothing
// returns its key too.
func TestDefaultTenantCreatedThroughAPI(t *testing.T) {
	e := setup(t)
	if key := e.tenant("default"); key == "" {
		t.Fatal("no key")
	}
}
