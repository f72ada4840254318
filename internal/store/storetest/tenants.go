package storetest

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/mailproxy/mailproxy/internal/store"
)

// tenantCases cover tenant CRUD, API keys, signing secrets and deletion (api.md §4.2, tenancy-security.md §2).
func tenantCases() []testCase {
	return []testCase{
		{"UpsertGetList", testTenantsUpsertGetList},
		{"UpsertKeepsKeySecretsAndSuspension", testTenantsUpsertKeepsState},
		{"UnknownTenant", testTenantsUnknown},
		{"DeleteCascades", testTenantsDeleteCascades},
		{"APIKeyLookupAndExpiry", testTenantsAPIKey},
		{"SigningSecretRotation", testTenantsSigningSecret},
		{"ClientURLByTenantKept", testTenantsClientURLByTenant},
	}
}

// ignoreTenantTimes leaves out the store-set timestamps.
var ignoreTenantTimes = cmpopts.IgnoreFields(store.Tenant{}, "CreatedAt", "UpdatedAt")

func fullTenant(id string) store.Tenant {
	return store.Tenant{
		ID:                   id,
		Name:                 ptr("Acme " + id),
		ClientAuth:           &store.ClientAuth{Method: "basic", User: "sync-user", Password: "sync-pass"},
		ClientBaseURL:        ptr("http://127.0.0.1:8081"),
		ClientSyncPath:       ptr("/hooks/sync"),
		ClientAttachmentPath: ptr("/hooks/attachments"),
		RateLimits:           json.RawMessage(`{"per_minute": 10, "burst": [1, 2]}`),
		LargeFileConfig:      json.RawMessage(`{"threshold_mb": 5, "enabled": true}`),
		Active:               true,
	}
}

// getTenant fetches a tenant, failing on error.
func (h *harness) getTenant(id string) store.Tenant {
	h.t.Helper()
	tn, err := h.s.GetTenant(h.ctx, id)
	if err != nil {
		h.t.Fatalf("GetTenant(%q): %v", id, err)
	}
	return tn
}

// tenantIDs lists the ids of tenants among `known`, in listing order.
func (h *harness) tenantIDs(activeOnly bool, known ...string) []string {
	h.t.Helper()
	list, err := h.s.ListTenants(h.ctx, activeOnly)
	if err != nil {
		h.t.Fatalf("ListTenants(%v): %v", activeOnly, err)
	}
	var ids []string
	for _, tn := range list {
		if slices.Contains(known, tn.ID) {
			ids = append(ids, tn.ID)
		}
	}
	return ids
}

func testTenantsUpsertGetList(t *testing.T, h *harness) {
	want := fullTenant("acme")
	created, err := h.s.UpsertTenant(h.ctx, want)
	if err != nil || !created {
		t.Fatalf("UpsertTenant(new) = %v, %v; want created", created, err)
	}
	got := h.getTenant("acme")
	if diff := cmp.Diff(want, got, cmpOpts, ignoreTenantTimes); diff != "" {
		t.Errorf("GetTenant after create differs (-want +got):\n%s", diff)
	}
	if got.CreatedAt.IsZero() || got.UpdatedAt.IsZero() {
		t.Errorf("GetTenant created_at %s updated_at %s, want both set", fmtTime(&got.CreatedAt), fmtTime(&got.UpdatedAt))
	}

	// Replacing: every payload field is replaced, omitted ones become null.
	replacement := store.Tenant{ID: "acme", Name: ptr("Acme renamed"), Active: false}
	created, err = h.s.UpsertTenant(h.ctx, replacement)
	if err != nil || created {
		t.Fatalf("UpsertTenant(existing) = %v, %v; want created=false", created, err)
	}
	got = h.getTenant("acme")
	if diff := cmp.Diff(replacement, got, cmpOpts, ignoreTenantTimes); diff != "" {
		t.Errorf("GetTenant after replacement differs (-want +got):\n%s", diff)
	}

	for _, id := range []string{"zeta", "beta"} {
		if _, err := h.s.UpsertTenant(h.ctx, store.Tenant{ID: id, Active: true}); err != nil {
			t.Fatalf("UpsertTenant(%s): %v", id, err)
		}
	}
	known := []string{"acme", "beta", "zeta"}
	if ids := h.tenantIDs(false, known...); !slices.Equal(ids, known) {
		t.Errorf("ListTenants(all) = %q, want %q (by id)", ids, known)
	}
	if ids := h.tenantIDs(true, known...); !slices.Equal(ids, []string{"beta", "zeta"}) {
		t.Errorf("ListTenants(active only) = %q, want [beta zeta]", ids)
	}
	list, err := h.s.ListTenants(h.ctx, false)
	if err != nil {
		t.Fatalf("ListTenants: %v", err)
	}
	if i := slices.IndexFunc(list, func(tn store.Tenant) bool { return tn.ID == "acme" }); i < 0 || list[i].Name == nil || *list[i].Name != "Acme renamed" {
		t.Errorf("ListTenants entry for acme does not carry its fields: %+v", list)
	}
}

func testTenantsUpsertKeepsState(t *testing.T, h *harness) {
	if _, err := h.s.UpsertTenant(h.ctx, fullTenant("t1")); err != nil {
		t.Fatalf("UpsertTenant: %v", err)
	}
	hash := "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	if err := h.s.SetAPIKey(h.ctx, "t1", hash, ptr(at(86400))); err != nil {
		t.Fatalf("SetAPIKey: %v", err)
	}
	if err := h.s.SetSigningSecret(h.ctx, "t1", "whsec_first", nil); err != nil {
		t.Fatalf("SetSigningSecret(first): %v", err)
	}
	if err := h.s.SetSigningSecret(h.ctx, "t1", "whsec_second", ptr(at(3600))); err != nil {
		t.Fatalf("SetSigningSecret(second): %v", err)
	}
	if _, err := h.s.Suspend(h.ctx, "t1", ptr("b1")); err != nil {
		t.Fatalf("Suspend: %v", err)
	}
	before := h.getTenant("t1")

	update := fullTenant("t1")
	update.Name = ptr("new name")
	if _, err := h.s.UpsertTenant(h.ctx, update); err != nil {
		t.Fatalf("UpsertTenant(update): %v", err)
	}
	after := h.getTenant("t1")
	if after.Name == nil || *after.Name != "new name" {
		t.Errorf("name after update %v, want \"new name\"", after.Name)
	}
	if after.APIKeyHash != hash || !timeEq(after.APIKeyExpiresAt, ptr(at(86400))) {
		t.Errorf("API key after update %q expiring %s, want %q expiring %s kept", after.APIKeyHash, fmtTime(after.APIKeyExpiresAt), hash, fmtTime(ptr(at(86400))))
	}
	if after.SigningSecret != "whsec_second" || after.PrevSigningSecret != "whsec_first" || !timeEq(after.PrevSigningSecretUntil, ptr(at(3600))) {
		t.Errorf("signing secrets after update %q/%q until %s, want whsec_second/whsec_first until %s kept",
			after.SigningSecret, after.PrevSigningSecret, fmtTime(after.PrevSigningSecretUntil), fmtTime(ptr(at(3600))))
	}
	if !slices.Equal(after.SuspendedBatches, []string{"b1"}) {
		t.Errorf("suspended batches after update %q, want [b1] kept", after.SuspendedBatches)
	}
	if !after.CreatedAt.Equal(before.CreatedAt) {
		t.Errorf("created_at changed by an update: %s -> %s", fmtTime(&before.CreatedAt), fmtTime(&after.CreatedAt))
	}
	if tn, err := h.s.TenantByAPIKey(h.ctx, hash, at(10)); err != nil || tn.ID != "t1" {
		t.Errorf("TenantByAPIKey after update = %q, %v; want t1", tn.ID, err)
	}
}

func testTenantsUnknown(t *testing.T, h *harness) {
	h.tenant("t1")
	for _, c := range []struct {
		name string
		call func() error
	}{
		{"GetTenant", func() error { _, err := h.s.GetTenant(h.ctx, "ghost"); return err }},
		{"DeleteTenant", func() error { return h.s.DeleteTenant(h.ctx, "ghost") }},
		{"SetAPIKey", func() error { return h.s.SetAPIKey(h.ctx, "ghost", "abc", nil) }},
		{"SetSigningSecret", func() error { return h.s.SetSigningSecret(h.ctx, "ghost", "whsec_x", nil) }},
		{"TenantByAPIKey", func() error { _, err := h.s.TenantByAPIKey(h.ctx, "0000", at(0)); return err }},
	} {
		if err := c.call(); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s for an unknown tenant or key: err %v, want ErrNotFound", c.name, err)
		}
	}
	if _, err := h.s.GetTenant(h.ctx, "t1"); err != nil {
		t.Errorf("GetTenant(t1) after the failed calls: %v", err)
	}
}

func testTenantsDeleteCascades(t *testing.T, h *harness) {
	for _, id := range []string{"gone", "kept"} {
		h.tenantWithAccount(id)
		if err := h.s.SetAPIKey(h.ctx, id, "hash-"+id, nil); err != nil {
			t.Fatalf("SetAPIKey(%s): %v", id, err)
		}
		h.enqueueQueued(at(0), msg(id, "m1", "acc"), msg(id, "m2", "acc"))
		h.enqueue(at(0), msg(id, "bad", "acc", rejectReason("missing to")))
		h.reserve(store.RateRequest{TenantID: id, AccountID: "acc", Now: at(1), PerMinute: 10, PerHour: 10, PerDay: 10})
		if err := h.s.PutSyncState(h.ctx, store.SyncState{TenantID: id, LastSyncAt: ptr(at(1)), ConsecutiveFailures: 2}); err != nil {
			t.Fatalf("PutSyncState(%s): %v", id, err)
		}
		if _, found, err := h.s.BeginIdempotent(h.ctx, store.IdempotencyRecord{
			Scope: "tenant:" + id, Key: "k1", BodyHash: "h1", CreatedAt: at(1),
		}); err != nil || found {
			t.Fatalf("BeginIdempotent(%s) = found %v, %v; want a new record", id, found, err)
		}
	}
	if err := h.s.DeleteTenant(h.ctx, "gone"); err != nil {
		t.Fatalf("DeleteTenant: %v", err)
	}

	if _, err := h.s.GetTenant(h.ctx, "gone"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetTenant after delete: err %v, want not found", err)
	}
	if _, err := h.s.TenantByAPIKey(h.ctx, "hash-gone", at(2)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TenantByAPIKey with the deleted tenant's key: err %v, want not found", err)
	}
	if _, err := h.s.GetAccount(h.ctx, "gone", "acc"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetAccount of the deleted tenant: err %v, want ErrNotFound", err)
	}
	if accs, err := h.s.ListAccounts(h.ctx, "gone"); err != nil || len(accs) != 0 {
		t.Errorf("ListAccounts(gone) = %d accounts, %v; want none", len(accs), err)
	}
	if ids := h.list(store.MessageFilter{TenantID: "gone"}); len(ids) != 0 {
		t.Errorf("ListMessages(gone) = %q, want none", ids)
	}
	if n, err := h.s.CountUnprocessed(h.ctx); err != nil || n != 2 {
		t.Errorf("CountUnprocessed = %d, %v; want 2 (only kept's)", n, err)
	}
	if n, err := h.s.CountUnreported(h.ctx, "gone"); err != nil || n != 0 {
		t.Errorf("CountUnreported(gone) = %d, %v; want 0", n, err)
	}
	if ids, err := h.s.TenantsWithUnreported(h.ctx); err != nil || !slices.Equal(ids, []string{"kept"}) {
		t.Errorf("TenantsWithUnreported = %q, %v; want [kept]", ids, err)
	}

	// Re-creating the id starts clean: no counters, sync state or idempotency record survive.
	h.tenantWithAccount("gone")
	if u := h.usage("gone", "acc", at(1)); u != (store.RateUsage{}) {
		t.Errorf("RateUsage of the re-created tenant = %+v, want zero", u)
	}
	if st, err := h.s.GetSyncState(h.ctx, "gone"); err != nil || st.LastSyncAt != nil || st.ConsecutiveFailures != 0 {
		t.Errorf("GetSyncState of the re-created tenant = %+v, %v; want zero", st, err)
	}
	if _, found, err := h.s.BeginIdempotent(h.ctx, store.IdempotencyRecord{
		Scope: "tenant:gone", Key: "k1", BodyHash: "h2", CreatedAt: at(2),
	}); err != nil || found {
		t.Errorf("BeginIdempotent after the tenant was deleted: found %v, %v; want the old record gone", found, err)
	}

	// The other tenant is untouched.
	if ids := h.list(store.MessageFilter{TenantID: "kept"}); len(ids) != 3 {
		t.Errorf("ListMessages(kept) = %q, want its 3 messages", ids)
	}
	if u := h.usage("kept", "acc", at(1)); u != (store.RateUsage{Minute: 1, Hour: 1, Day: 1}) {
		t.Errorf("RateUsage(kept) = %+v, want {1 1 1}", u)
	}
	if st, err := h.s.GetSyncState(h.ctx, "kept"); err != nil || st.ConsecutiveFailures != 2 {
		t.Errorf("GetSyncState(kept) = %+v, %v; want its state", st, err)
	}
	if _, found, err := h.s.BeginIdempotent(h.ctx, store.IdempotencyRecord{
		Scope: "tenant:kept", Key: "k1", BodyHash: "h1", CreatedAt: at(2),
	}); err != nil || !found {
		t.Errorf("BeginIdempotent(kept) = found %v, %v; want its record kept", found, err)
	}
	if tn, err := h.s.TenantByAPIKey(h.ctx, "hash-kept", at(2)); err != nil || tn.ID != "kept" {
		t.Errorf("TenantByAPIKey(kept's key) = %q, %v; want kept", tn.ID, err)
	}
}

func testTenantsAPIKey(t *testing.T, h *harness) {
	h.tenant("t1")
	h.tenant("t2")
	const k1, k2, k3 = "aaaa1111", "bbbb2222", "cccc3333"
	if err := h.s.SetAPIKey(h.ctx, "t1", k1, ptr(at(100))); err != nil {
		t.Fatalf("SetAPIKey(t1): %v", err)
	}
	if err := h.s.SetAPIKey(h.ctx, "t2", k2, nil); err != nil {
		t.Fatalf("SetAPIKey(t2): %v", err)
	}
	for _, tc := range []struct {
		hash string
		now  int
		want string // "" = not found
	}{
		{k1, 0, "t1"},
		{k1, 99, "t1"},
		{k1, 100, ""}, // expires_at <= now: expired
		{k1, 5000, ""},
		{k2, 10_000_000, "t2"}, // no expiry
		{k3, 0, ""},
		{"", 0, ""}, // "no key" never matches
	} {
		tn, err := h.s.TenantByAPIKey(h.ctx, tc.hash, at(tc.now))
		switch {
		case tc.want == "" && !errors.Is(err, store.ErrNotFound):
			t.Errorf("TenantByAPIKey(%q, +%ds) = %q, %v; want not found", tc.hash, tc.now, tn.ID, err)
		case tc.want != "" && (err != nil || tn.ID != tc.want):
			t.Errorf("TenantByAPIKey(%q, +%ds) = %q, %v; want %s", tc.hash, tc.now, tn.ID, err, tc.want)
		}
	}
	// Replacing a key kills the old one; revoking kills the key.
	if err := h.s.SetAPIKey(h.ctx, "t2", k3, nil); err != nil {
		t.Fatalf("SetAPIKey(t2, new): %v", err)
	}
	if _, err := h.s.TenantByAPIKey(h.ctx, k2, at(0)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TenantByAPIKey(replaced key): err %v, want not found", err)
	}
	if tn, err := h.s.TenantByAPIKey(h.ctx, k3, at(0)); err != nil || tn.ID != "t2" {
		t.Errorf("TenantByAPIKey(new key) = %q, %v; want t2", tn.ID, err)
	}
	if err := h.s.SetAPIKey(h.ctx, "t2", "", nil); err != nil {
		t.Fatalf("SetAPIKey(t2, revoke): %v", err)
	}
	if _, err := h.s.TenantByAPIKey(h.ctx, k3, at(0)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TenantByAPIKey(revoked key): err %v, want not found", err)
	}
	if tn := h.getTenant("t2"); tn.APIKeyHash != "" {
		t.Errorf("revoked tenant APIKeyHash %q, want \"\"", tn.APIKeyHash)
	}
	if tn, err := h.s.TenantByAPIKey(h.ctx, "", at(0)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TenantByAPIKey(\"\") with a revoked tenant = %q, %v; want not found (no key matches nothing)", tn.ID, err)
	}
}

func testTenantsSigningSecret(t *testing.T, h *harness) {
	h.tenant("t1")
	steps := []struct {
		secret    string
		prevUntil *int
		want      [2]string // current, previous
		wantUntil *int
	}{
		{"whsec_one", nil, [2]string{"whsec_one", ""}, nil},
		{"whsec_two", ptr(86400), [2]string{"whsec_two", "whsec_one"}, ptr(86400)},
		{"whsec_three", ptr(90000), [2]string{"whsec_three", "whsec_two"}, ptr(90000)},
		{"", nil, [2]string{"", ""}, nil}, // "" removes all
	}
	for i, st := range steps {
		var until *time.Time
		if st.prevUntil != nil {
			until = ptr(at(*st.prevUntil))
		}
		if err := h.s.SetSigningSecret(h.ctx, "t1", st.secret, until); err != nil {
			t.Fatalf("step %d: SetSigningSecret(%q): %v", i, st.secret, err)
		}
		tn := h.getTenant("t1")
		var wantUntil *time.Time
		if st.wantUntil != nil {
			wantUntil = ptr(at(*st.wantUntil))
		}
		if tn.SigningSecret != st.want[0] || tn.PrevSigningSecret != st.want[1] || !timeEq(tn.PrevSigningSecretUntil, wantUntil) {
			t.Errorf("step %d: after SetSigningSecret(%q) secrets %q/%q until %s, want %q/%q until %s", i, st.secret,
				tn.SigningSecret, tn.PrevSigningSecret, fmtTime(tn.PrevSigningSecretUntil), st.want[0], st.want[1], fmtTime(wantUntil))
		}
	}
}

// testTenantsClientURLByTenant: who set client_base_url is stored and can be
// cleared again (the address policy of issue 11.1 depends on it).
func testTenantsClientURLByTenant(t *testing.T, h *harness) {
	tn := fullTenant("url-owner")
	if _, err := h.s.UpsertTenant(h.ctx, tn); err != nil {
		t.Fatalf("UpsertTenant: %v", err)
	}
	if h.getTenant("url-owner").ClientURLByTenant {
		t.Fatal("new tenant: ClientURLByTenant = true, want false")
	}
	tn.ClientURLByTenant = true
	if _, err := h.s.UpsertTenant(h.ctx, tn); err != nil {
		t.Fatalf("UpsertTenant: %v", err)
	}
	if !h.getTenant("url-owner").ClientURLByTenant {
		t.Fatal("after setting: ClientURLByTenant = false, want true")
	}
	list, err := h.s.ListTenants(h.ctx, false)
	if err != nil {
		t.Fatalf("ListTenants: %v", err)
	}
	for _, l := range list {
		if l.ID == "url-owner" && !l.ClientURLByTenant {
			t.Fatal("ListTenants: ClientURLByTenant = false, want true")
		}
	}
	tn.ClientURLByTenant = false
	if _, err := h.s.UpsertTenant(h.ctx, tn); err != nil {
		t.Fatalf("UpsertTenant: %v", err)
	}
	if h.getTenant("url-owner").ClientURLByTenant {
		t.Fatal("after clearing: ClientURLByTenant = true, want false")
	}
}
