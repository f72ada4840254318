package storetest

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/mailproxy/mailproxy/internal/store"
)

// commandLogCases cover AppendCommand and ListCommands (tenancy-security.md §5, api.md §2).
func commandLogCases() []testCase {
	return []testCase{
		{"FiltersAndOrder", testCommandLogFilters},
		{"RoundTrip", testCommandLogRoundTrip},
	}
}

// idempotencyCases cover the Idempotency-Key records (api.md §3.5).
func idempotencyCases() []testCase {
	return []testCase{
		{"BeginFinishAbort", testIdempotencyLifecycle},
		{"ScopedByCaller", testIdempotencyScopes},
		{"PurgeExpired", testIdempotencyPurge},
	}
}

// instanceCases cover the instance settings row (api.md §4.3).
func instanceCases() []testCase {
	return []testCase{
		{"Defaults", testInstanceDefaults},
		{"RoundTrip", testInstanceRoundTrip},
	}
}

func testCommandLogFilters(t *testing.T, h *harness) {
	entries := []struct {
		sec      int
		endpoint string
		tenant   string
	}{
		{10, "addMessages", "t1"},
		{20, "addTenant", ""},
		{30, "deleteMessages", "t2"},
		{40, "addAccount", "t1"},
		{50, "addMessages", "t2"},
		{60, "cleanupMessages", "t1"},
	}
	for i, e := range entries {
		entry := store.CommandLogEntry{
			At:             at(e.sec),
			Endpoint:       e.endpoint,
			Payload:        json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)),
			ResponseStatus: 200,
			ResponseBody:   json.RawMessage(`{"ok":true}`),
		}
		if e.tenant != "" {
			entry.TenantID = ptr(e.tenant)
		}
		if err := h.s.AppendCommand(h.ctx, entry); err != nil {
			t.Fatalf("AppendCommand(%d): %v", i, err)
		}
	}
	label := func(e store.CommandLogEntry) string { return fmt.Sprintf("%s@%d", e.Endpoint, e.At.Unix()-baseUnix) }
	for _, tc := range []struct {
		name string
		f    store.CommandLogFilter
		want []string
	}{
		{"all, newest first", store.CommandLogFilter{},
			[]string{"cleanupMessages@60", "addMessages@50", "addAccount@40", "deleteMessages@30", "addTenant@20", "addMessages@10"}},
		{"oldest first", store.CommandLogFilter{OldestFirst: true},
			[]string{"addMessages@10", "addTenant@20", "deleteMessages@30", "addAccount@40", "addMessages@50", "cleanupMessages@60"}},
		{"tenant", store.CommandLogFilter{TenantID: "t1"},
			[]string{"cleanupMessages@60", "addAccount@40", "addMessages@10"}},
		{"since and until", store.CommandLogFilter{Since: ptr(at(25)), Until: ptr(at(55))},
			[]string{"addMessages@50", "addAccount@40", "deleteMessages@30"}},
		{"endpoint substring", store.CommandLogFilter{EndpointFilter: "Messages"},
			[]string{"cleanupMessages@60", "addMessages@50", "deleteMessages@30", "addMessages@10"}},
		{"endpoint substring with prefix", store.CommandLogFilter{EndpointFilter: "add"},
			[]string{"addMessages@50", "addAccount@40", "addTenant@20", "addMessages@10"}},
		{"limit", store.CommandLogFilter{Limit: 2},
			[]string{"cleanupMessages@60", "addMessages@50"}},
		{"limit oldest first", store.CommandLogFilter{Limit: 2, OldestFirst: true},
			[]string{"addMessages@10", "addTenant@20"}},
		{"combined", store.CommandLogFilter{TenantID: "t2", EndpointFilter: "add", Since: ptr(at(5))},
			[]string{"addMessages@50"}},
	} {
		got, err := h.s.ListCommands(h.ctx, tc.f)
		if err != nil {
			t.Fatalf("ListCommands(%s): %v", tc.name, err)
		}
		labels := make([]string, len(got))
		for i, e := range got {
			labels[i] = label(e)
		}
		if !slices.Equal(labels, tc.want) {
			t.Errorf("ListCommands(%s) = %q, want %q", tc.name, labels, tc.want)
		}
	}
}

func testCommandLogRoundTrip(t *testing.T, h *harness) {
	want := []store.CommandLogEntry{
		{At: at(1), Endpoint: "addMessages", TenantID: ptr("t1"), Caller: "tenant:t1", ResponseStatus: 400,
			Payload:      json.RawMessage(`{"messages":[{"id":"m1"}],"tenant_id":"t1"}`),
			ResponseBody: json.RawMessage(`{"detail":{"error":null,"rejected":[{"id":"m1","reason":"missing to"}]}}`)},
		// A refused call names its caller apart from the tenant it targeted.
		{At: at(2), Endpoint: "suspend", TenantID: ptr("t2"), Caller: "tenant:t1", ResponseStatus: 401,
			ResponseBody: json.RawMessage(`{"detail":"Token not authorized for this tenant"}`)},
		{At: at(2), Endpoint: "updateInstance", Caller: "admin", ResponseStatus: 200,
			Payload: json.RawMessage(`{"api_token":"***"}`), ResponseBody: json.RawMessage(`{"ok":true}`)},
	}
	for _, e := range want {
		if err := h.s.AppendCommand(h.ctx, e); err != nil {
			t.Fatalf("AppendCommand: %v", err)
		}
	}
	got, err := h.s.ListCommands(h.ctx, store.CommandLogFilter{OldestFirst: true})
	if err != nil {
		t.Fatalf("ListCommands: %v", err)
	}
	if diff := cmp.Diff(want, got, cmpOpts, cmpopts.IgnoreFields(store.CommandLogEntry{}, "ID")); diff != "" {
		t.Errorf("ListCommands differs from what was appended (-want +got):\n%s", diff)
	}
	if len(got) == 2 && (got[0].ID == 0 || got[1].ID <= got[0].ID) {
		t.Errorf("command ids %d, %d; want set and increasing", got[0].ID, got[1].ID)
	}
}

// begin calls BeginIdempotent, failing on error.
func (h *harness) begin(rec store.IdempotencyRecord) (store.IdempotencyRecord, bool) {
	h.t.Helper()
	existing, found, err := h.s.BeginIdempotent(h.ctx, rec)
	if err != nil {
		h.t.Fatalf("BeginIdempotent(%s, %s): %v", rec.Scope, rec.Key, err)
	}
	return existing, found
}

func testIdempotencyLifecycle(t *testing.T, h *harness) {
	h.tenant("t1")
	rec := store.IdempotencyRecord{Scope: "tenant:t1", Key: "key-1", BodyHash: "hash-a", CreatedAt: at(0)}
	if _, found := h.begin(rec); found {
		t.Fatal("first BeginIdempotent found a record, want a new one")
	}
	// A second request while the first runs sees the running record, unchanged.
	second := rec
	second.BodyHash = "hash-b"
	existing, found := h.begin(second)
	if !found || existing.Status != 0 || existing.BodyHash != "hash-a" || existing.Scope != "tenant:t1" || existing.Key != "key-1" {
		t.Errorf("BeginIdempotent while running = %+v, found %v; want the running record (status 0, hash-a)", existing, found)
	}
	resp := json.RawMessage(`{"ok":true,"queued":1,"rejected":[]}`)
	if err := h.s.FinishIdempotent(h.ctx, "tenant:t1", "key-1", 200, resp); err != nil {
		t.Fatalf("FinishIdempotent: %v", err)
	}
	existing, found = h.begin(rec)
	if !found || existing.Status != 200 || !jsonEqual(existing.Response, resp) || existing.BodyHash != "hash-a" || !existing.CreatedAt.Equal(at(0)) {
		t.Errorf("BeginIdempotent after finish = %+v, found %v; want status 200 with the stored answer, created at +0s", existing, found)
	}

	// Abort drops a running record so the key can be used again.
	if _, found := h.begin(store.IdempotencyRecord{Scope: "tenant:t1", Key: "key-2", BodyHash: "x", CreatedAt: at(1)}); found {
		t.Fatal("BeginIdempotent(key-2) found a record, want a new one")
	}
	if err := h.s.AbortIdempotent(h.ctx, "tenant:t1", "key-2"); err != nil {
		t.Fatalf("AbortIdempotent: %v", err)
	}
	if _, found := h.begin(store.IdempotencyRecord{Scope: "tenant:t1", Key: "key-2", BodyHash: "y", CreatedAt: at(2)}); found {
		t.Error("BeginIdempotent after abort found the aborted record, want a new one")
	}
}

func testIdempotencyScopes(t *testing.T, h *harness) {
	h.tenant("t1")
	h.tenant("t2")
	for _, scope := range []string{"admin", "tenant:t1", "tenant:t2"} {
		if _, found := h.begin(store.IdempotencyRecord{Scope: scope, Key: "shared", BodyHash: scope, CreatedAt: at(0)}); found {
			t.Errorf("BeginIdempotent(%s, shared) found another caller's record, want one per scope", scope)
		}
	}
	if err := h.s.FinishIdempotent(h.ctx, "admin", "shared", 400, json.RawMessage(`{"detail":"x"}`)); err != nil {
		t.Fatalf("FinishIdempotent(admin): %v", err)
	}
	if existing, found := h.begin(store.IdempotencyRecord{Scope: "tenant:t1", Key: "shared", CreatedAt: at(1)}); !found || existing.Status != 0 || existing.BodyHash != "tenant:t1" {
		t.Errorf("tenant:t1's record = %+v, found %v; want its own, still running", existing, found)
	}
	if existing, found := h.begin(store.IdempotencyRecord{Scope: "admin", Key: "shared", CreatedAt: at(1)}); !found || existing.Status != 400 {
		t.Errorf("admin's record = %+v, found %v; want status 400", existing, found)
	}
}

func testIdempotencyPurge(t *testing.T, h *harness) {
	h.tenant("t1")
	h.begin(store.IdempotencyRecord{Scope: "tenant:t1", Key: "old", BodyHash: "h", CreatedAt: at(0)})
	h.begin(store.IdempotencyRecord{Scope: "tenant:t1", Key: "new", BodyHash: "h", CreatedAt: at(90000)})
	if err := h.s.PurgeExpired(h.ctx, at(86400)); err != nil {
		t.Fatalf("PurgeExpired: %v", err)
	}
	if _, found := h.begin(store.IdempotencyRecord{Scope: "tenant:t1", Key: "old", BodyHash: "h2", CreatedAt: at(90001)}); found {
		t.Error("record created before the cutoff survived PurgeExpired")
	}
	if _, found := h.begin(store.IdempotencyRecord{Scope: "tenant:t1", Key: "new", BodyHash: "h2", CreatedAt: at(90001)}); !found {
		t.Error("record created after the cutoff was purged")
	}
}

var ignoreInstanceTimes = cmpopts.IgnoreFields(store.Instance{}, "CreatedAt", "UpdatedAt")

func testInstanceDefaults(t *testing.T, h *harness) {
	got, err := h.s.GetInstance(h.ctx)
	if err != nil {
		t.Fatalf("GetInstance on a fresh store: %v", err)
	}
	// Only the documented defaults (api.md §4.3); bounce_imap_ssl has none.
	for _, c := range []struct {
		field     string
		got, want any
	}{
		{"Name", got.Name, "mail-proxy"},
		{"Edition", got.Edition, "ee"},
		{"APIToken", got.APIToken, ""},
		{"BounceEnabled", got.BounceEnabled, false},
		{"BounceIMAPHost", got.BounceIMAPHost, (*string)(nil)},
		{"BounceIMAPPort", got.BounceIMAPPort, 993},
		{"BounceIMAPFolder", got.BounceIMAPFolder, "INBOX"},
		{"BouncePollInterval", got.BouncePollInterval, 60},
		{"BounceReturnPath", got.BounceReturnPath, (*string)(nil)},
	} {
		if !cmp.Equal(c.got, c.want) {
			t.Errorf("fresh instance %s = %#v, want %#v", c.field, c.got, c.want)
		}
	}
}

func testInstanceRoundTrip(t *testing.T, h *harness) {
	want := store.Instance{
		Name:               "edge-1",
		APIToken:           "stored-admin-token",
		Edition:            "ee",
		BounceEnabled:      true,
		BounceIMAPHost:     ptr("imap.example.com"),
		BounceIMAPPort:     143,
		BounceIMAPUser:     ptr("bounces"),
		BounceIMAPPassword: "imap-pass",
		BounceIMAPFolder:   "Bounces",
		BounceIMAPSSL:      true,
		BouncePollInterval: 120,
		BounceReturnPath:   ptr("bounce@example.com"),
	}
	for i := range 2 { // the second put updates the existing row
		if err := h.s.PutInstance(h.ctx, want); err != nil {
			t.Fatalf("PutInstance #%d: %v", i+1, err)
		}
		got, err := h.s.GetInstance(h.ctx)
		if err != nil {
			t.Fatalf("GetInstance: %v", err)
		}
		if diff := cmp.Diff(want, got, cmpOpts, ignoreInstanceTimes); diff != "" {
			t.Errorf("GetInstance after PutInstance #%d differs (-want +got):\n%s", i+1, diff)
		}
		want.BounceIMAPHost, want.BounceIMAPUser, want.BounceReturnPath = nil, nil, nil
		want.BounceEnabled, want.Name = false, "edge-2"
	}
}
