package api_test

import (
	"database/sql"
	"strings"
	"testing"

	_ "modernc.org/sqlite"
)

// Tenant ids that could not be stored under, addressed or logged safely are
// refused with a 422 naming id, on POST /tenant and its v0.7 alias.
func TestTenantIDRefused(t *testing.T) {
	e := setup(t)
	cases := []struct {
		name, id, typ string
	}{
		{"blank", "   ", "value_error"},
		{"tab only", "\t", "value_error"},
		{"slash", "a/b", "value_error"},
		{"control character", "acme\x01", "value_error"},
		{"newline", "acme\nx", "value_error"},
		{"65 characters", strings.Repeat("t", 65), "string_too_long"},
		{"empty", "", "string_too_short"},
	}
	for _, path := range []string{"/tenant", "/tenants/add"} {
		for _, tc := range cases {
			t.Run(path+"/"+tc.name, func(t *testing.T) {
				r := e.do("POST", path, adminToken, map[string]any{"id": tc.id})
				if r.Status != 422 {
					t.Fatalf("status %d, want 422: %s", r.Status, r.Body)
				}
				is := r.Issues(t)
				if len(is) != 1 || is[0]["type"] != tc.typ || !sameLoc(is[0]["loc"], "body", "id") {
					t.Fatalf("issues %v, want one %s at [body id]", is, tc.typ)
				}
			})
		}
	}
	r := e.must(200, "GET", "/tenants", adminToken, nil)
	if n := len(r.JSON(t)["tenants"].([]any)); n != 0 {
		t.Fatalf("%d tenants stored after refusals, want 0: %s", n, r.Body)
	}
	// The limits themselves are accepted.
	e.tenant(strings.Repeat("t", 64))
	e.tenant("ACME.corp-1 ü")
}

func sameLoc(v any, want ...any) bool {
	loc, ok := v.([]any)
	if !ok || len(loc) != len(want) {
		return false
	}
	for i := range loc {
		if loc[i] != want[i] {
			return false
		}
	}
	return true
}

// A tenant whose id is blank (made before ids were checked) still never
// has its messages dropped silently: every item not stored is rejected
// with a reason.
func TestBlankTenantItemsAreRejectedWithReason(t *testing.T) {
	e := setup(t)
	key := e.tenant("acme")
	// Rename the tenant to a blank id straight in the store, as an
	// installation from before the check may hold one.
	e.sqlExec(`UPDATE tenants SET id = '  ' WHERE id = 'acme'`)
	r := e.do("POST", "/commands/add-messages", key, batch(msg("m1", "", "smtp")))
	if r.Status != 400 {
		t.Fatalf("status %d, want 400 (nothing queued): %s", r.Status, r.Body)
	}
	rej := r.JSON(t)["detail"].(map[string]any)["rejected"].([]any)
	if len(rej) != 1 || rej[0].(map[string]any)["reason"] != "missing tenant_id" || rej[0].(map[string]any)["id"] != "m1" {
		t.Fatalf("rejected %v, want m1 with missing tenant_id", rej)
	}
}

// sqlExec runs one statement on the test's SQLite file through a
// connection of its own, as another process would.
func (e *env) sqlExec(query string, args ...any) {
	e.t.Helper()
	db, err := sql.Open("sqlite", e.dbPath+"?_pragma=busy_timeout(10000)")
	if err != nil {
		e.t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(query, args...); err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
}
