package api_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
)

func TestServiceEndpoints(t *testing.T) {
	e := setup(t)
	key := e.tenant("acme")
	e.account("acme", "smtp")
	if r := e.must(200, "GET", "/health", "", nil); string(r.Body) != `{"status":"ok"}` {
		t.Errorf("health %s", r.Body)
	}
	if r := e.must(200, "GET", "/status", key, nil); string(r.Body) != `{"ok":true,"active":true}` {
		t.Errorf("status %s", r.Body)
	}
	e.must(200, "POST", "/commands/add-messages", key, batch(msg("m1", "", "smtp"), msg("m2", "", "smtp")))
	r := e.must(200, "GET", "/stats", key, nil)
	want := `{"ok":true,"tenants":[{"tenant_id":"acme","accounts":1,"pending":2,"deferred":0,"sent":0,"error":0}]}`
	if string(r.Body) != want {
		t.Errorf("stats %s\nwant %s", r.Body, want)
	}
	// run-now: a key targets its own tenant; the admin all or one.
	e.must(200, "POST", "/commands/run-now", key, nil)
	e.must(200, "POST", "/commands/run-now", adminToken, nil)
	e.must(200, "POST", "/commands/run-now?tenant_id=acme", adminToken, nil)
	e.mu.Lock()
	got := append([]string(nil), e.runNow...)
	e.mu.Unlock()
	if !reflect.DeepEqual(got, []string{"acme", "", "acme"}) {
		t.Errorf("run-now targets %q", got)
	}
	// Metrics: Prometheus text with the pending gauge read from the store.
	eventually(t, "gmp_pending_messages 2", func() bool {
		body := string(e.must(200, "GET", "/metrics", "", nil).Body)
		return strings.Contains(body, "gmp_pending_messages 2")
	})
	res, err := http.Get(e.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("metrics Content-Type %q", ct)
	}
	if !strings.Contains(string(body), `gmp_sent_total{account_id="smtp",account_name="smtp",tenant_id="acme",tenant_name="Tenant acme"} 0`) {
		t.Errorf("no zero series for the new account:\n%s", body)
	}
	e.must(200, "POST", "/commands/delete-messages?tenant_id=acme", adminToken, `{"ids":["m1"]}`)
	eventually(t, "gmp_pending_messages 1", func() bool {
		return strings.Contains(string(e.must(200, "GET", "/metrics", "", nil).Body), "gmp_pending_messages 1")
	})
}

func TestAccounts(t *testing.T) {
	e := setup(t)
	key := e.tenant("acme")
	full := map[string]any{"id": "smtp", "host": "mail.example.com", "port": 587, "user": "u", "password": "secret-pw",
		"limit_per_minute": 50, "limit_per_hour": 0, "limit_behavior": "error", "use_tls": true, "batch_size": 10,
		"imap_password": "imap-secret"}
	e.must(200, "POST", "/account", key, full)
	list := func() []map[string]any {
		r := e.must(200, "GET", "/accounts", key, nil)
		if strings.Contains(string(r.Body), "secret") || strings.Contains(string(r.Body), "password") {
			t.Fatalf("a password in the listing: %s", r.Body)
		}
		var b struct {
			OK       bool             `json:"ok"`
			Accounts []map[string]any `json:"accounts"`
		}
		if err := json.Unmarshal(r.Body, &b); err != nil || !b.OK {
			t.Fatalf("accounts: %v %s", err, r.Body)
		}
		return b.Accounts
	}
	a := list()[0]
	want := map[string]any{"id": "smtp", "tenant_id": "acme", "host": "mail.example.com", "port": 587.0, "user": "u",
		"ttl": 300.0, "limit_per_minute": 50.0, "limit_behavior": "reject", "use_tls": true, "batch_size": 10.0,
		"is_pec_account": false, "imap_port": 993.0, "tls_verify": true, "dkim": false,
		"rate_usage": map[string]any{"minute": 0.0, "hour": 0.0, "day": 0.0}}
	for k := range a {
		if k == "created_at" || k == "updated_at" {
			if _, err := time.Parse(time.RFC3339, a[k].(string)); err != nil {
				t.Errorf("%s = %v", k, a[k])
			}
			delete(a, k)
		}
	}
	if !reflect.DeepEqual(a, want) {
		t.Errorf("account\n got %v\nwant %v", a, want)
	}

	// [better] merge: host/port omitted on an existing account updates only the named fields.
	e.must(200, "POST", "/account", key, map[string]any{"id": "smtp", "limit_per_minute": 5})
	a = list()[0]
	if a["limit_per_minute"] != 5.0 || a["host"] != "mail.example.com" || a["batch_size"] != 10.0 {
		t.Errorf("after merge: %v", a)
	}
	acct, err := e.st.GetAccount(context.Background(), "acme", "smtp")
	if err != nil || acct.Password != "secret-pw" {
		t.Errorf("merge lost the password: %q %v", acct.Password, err)
	}
	// PUT is the same merge.
	e.must(200, "PUT", "/account/smtp", key, map[string]any{"port": 2525, "use_tls": nil})
	a = list()[0]
	if a["port"] != 2525.0 || a["use_tls"] != nil || a["limit_per_minute"] != 5.0 {
		t.Errorf("after PUT: %v", a)
	}
	e.must(400, "PUT", "/account/ghost", key, map[string]any{"port": 2525})
	// A complete POST replaces every field, password included.
	e.must(200, "POST", "/account", key, map[string]any{"id": "smtp", "host": "other.example.com", "port": 25})
	a = list()[0]
	if a["host"] != "other.example.com" || a["limit_per_minute"] != nil || a["limit_behavior"] != "defer" {
		t.Errorf("after full upsert: %v", a)
	}
	if acct, _ := e.st.GetAccount(context.Background(), "acme", "smtp"); acct.Password != "" {
		t.Errorf("full upsert kept the password")
	}
	// A new account without host/port is a 422.
	e.must(422, "POST", "/account", key, map[string]any{"id": "new", "limit_per_minute": 5})
	// Unknown tenant (admin naming it).
	if r := e.must(404, "POST", "/account", adminToken, map[string]any{"id": "x", "tenant_id": "ghost", "host": "h", "port": 25}); r.Detail(t) != "Tenant 'ghost' not found" {
		t.Errorf("unknown tenant: %s", r.Body)
	}
	e.must(200, "DELETE", "/account/smtp", key, nil)
	if len(list()) != 0 {
		t.Error("account not deleted")
	}
	if r := e.must(400, "DELETE", "/account/smtp", key, nil); r.Detail(t) != "account not found or not owned by tenant" {
		t.Errorf("second delete: %s", r.Body)
	}
}

func TestTenants(t *testing.T) {
	e := setup(t)
	r := e.must(200, "POST", "/tenant", adminToken, map[string]any{"id": "acme", "name": "Acme",
		"client_base_url": "https://client.example.com", "client_auth": map[string]any{"method": "bearer", "token": "tok-123"},
		"rate_limits": map[string]any{"x": 1}})
	key, _ := r.JSON(t)["api_key"].(string)
	raw, err := base64.RawURLEncoding.DecodeString(key)
	if err != nil || len(raw) != 32 {
		t.Fatalf("api_key %q is not URL-safe base64 of 32 bytes", key)
	}
	stored, err := e.st.GetTenant(context.Background(), "acme")
	if err != nil || stored.APIKeyHash != sha256Hex([]byte(key)) {
		t.Fatalf("stored key hash %q, want SHA-256 hex of the key", stored.APIKeyHash)
	}
	info := e.must(200, "GET", "/tenant/acme", key, nil).JSON(t)
	if info["name"] != "Acme" || info["client_sync_path"] != "/mail-proxy/sync" || info["active"] != true ||
		info["signing_secret_set"] != false || !reflect.DeepEqual(info["client_auth"], map[string]any{"method": "bearer", "token": "********"}) {
		t.Errorf("tenant info %v", info)
	}
	if _, ok := info["ok"]; ok {
		t.Error("GET /tenant/{id} is flat, without ok")
	}
	// Existing id: updated, key kept, no new key.
	r = e.must(200, "POST", "/tenant", adminToken, map[string]any{"id": "acme", "client_auth": map[string]any{"method": "bearer", "token": "********"}})
	if string(r.Body) != `{"ok":true}` {
		t.Errorf("re-POST: %s", r.Body)
	}
	stored, _ = e.st.GetTenant(context.Background(), "acme")
	if stored.ClientAuth == nil || stored.ClientAuth.Token != "tok-123" || stored.Name != nil {
		t.Errorf("masked token must keep the stored one, omitted name reset: %+v %v", stored.ClientAuth, stored.Name)
	}
	e.must(200, "GET", "/status", key, nil)
	// PUT changes only present fields; an empty body is a no-op.
	e.must(200, "PUT", "/tenant/acme", key, map[string]any{"name": "Acme 2", "active": false})
	e.must(200, "PUT", "/tenant/acme", key, "")
	info = e.must(200, "GET", "/tenant/acme", key, nil).JSON(t)
	if info["name"] != "Acme 2" || info["active"] != false || info["client_base_url"] != nil {
		t.Errorf("after PUT: %v", info)
	}
	if r := e.must(404, "PUT", "/tenant/ghost", adminToken, `{}`); r.Detail(t) != "Tenant 'ghost' not found" {
		t.Errorf("PUT ghost: %s", r.Body)
	}
	// Listing, active_only.
	e.tenant("beta")
	list := e.must(200, "GET", "/tenants?active_only=true", adminToken, nil).JSON(t)["tenants"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["id"] != "beta" {
		t.Errorf("active tenants %v", list)
	}
	// API key rotation: old key dead, new one works; revoke; expiry.
	newKey := e.must(200, "POST", "/tenant/acme/api-key", adminToken, nil).JSON(t)["api_key"].(string)
	e.must(401, "GET", "/status", key, nil)
	e.must(200, "GET", "/status", newKey, nil)
	e.must(200, "DELETE", "/tenant/acme/api-key", adminToken, nil)
	e.must(401, "GET", "/status", newKey, nil)
	soon := time.Now().Add(time.Hour).Unix()
	k3 := e.must(200, "POST", "/tenant/acme/api-key", adminToken, map[string]any{"expires_at": soon}).JSON(t)["api_key"].(string)
	e.must(200, "GET", "/status", k3, nil)
	e.must(422, "POST", "/tenant/acme/api-key", adminToken, map[string]any{"expires_at": 1})
	e.must(404, "POST", "/tenant/ghost/api-key", adminToken, nil)
	e.must(404, "DELETE", "/tenant/ghost/api-key", adminToken, nil)
	// Signing secret: shown once, whsec_ + base64 of 32 bytes.
	sec := e.must(200, "POST", "/tenant/acme/signing-secret", k3, nil).JSON(t)["signing_secret"].(string)
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(sec, "whsec_"))
	if !strings.HasPrefix(sec, "whsec_") || err != nil || len(b) != 32 {
		t.Errorf("signing secret %q", sec)
	}
	sec2 := e.must(200, "POST", "/tenant/acme/signing-secret", k3, nil).JSON(t)["signing_secret"].(string)
	stored, _ = e.st.GetTenant(context.Background(), "acme")
	if stored.SigningSecret != sec2 || stored.PrevSigningSecret != sec || stored.PrevSigningSecretUntil == nil ||
		time.Until(*stored.PrevSigningSecretUntil) < 23*time.Hour {
		t.Errorf("rotation: new %q prev %q until %v", stored.SigningSecret, stored.PrevSigningSecret, stored.PrevSigningSecretUntil)
	}
	if e.must(200, "GET", "/tenant/acme", k3, nil).JSON(t)["signing_secret_set"] != true {
		t.Error("signing_secret_set false after creation")
	}
	e.must(200, "DELETE", "/tenant/acme/signing-secret", k3, nil)
	if e.must(200, "GET", "/tenant/acme", k3, nil).JSON(t)["signing_secret_set"] != false {
		t.Error("signing_secret_set true after removal")
	}
	// Delete: key dies, 404 afterwards.
	e.must(200, "DELETE", "/tenant/acme", adminToken, nil)
	e.must(401, "GET", "/status", k3, nil)
	if r := e.must(404, "DELETE", "/tenant/acme", adminToken, nil); r.Detail(t) != "Tenant 'acme' not found" {
		t.Errorf("second delete %s", r.Body)
	}
}

func TestSuspendActivate(t *testing.T) {
	e := setup(t)
	key := e.tenant("acme")
	e.account("acme", "smtp")
	a, b := msg("a", "", "smtp"), msg("b", "", "smtp")
	a["batch_code"] = "B1"
	e.must(200, "POST", "/commands/add-messages", key, batch(a, b))
	wakes := e.wakeCount()
	r := e.must(200, "POST", "/commands/suspend?batch_code=B1", key, nil)
	if string(r.Body) != `{"ok":true,"tenant_id":"acme","batch_code":"B1","suspended_batches":["B1"],"pending_messages":1}` {
		t.Errorf("suspend batch: %s", r.Body)
	}
	r = e.must(200, "POST", "/commands/suspend", key, nil)
	if string(r.Body) != `{"ok":true,"tenant_id":"acme","suspended_batches":["*"],"pending_messages":2}` {
		t.Errorf("suspend all: %s", r.Body)
	}
	r = e.must(400, "POST", "/commands/activate?batch_code=B1", key, nil)
	if r.Detail(t) != "tenant not found or cannot activate single batch from full suspension" {
		t.Errorf("activate batch under *: %s", r.Body)
	}
	r = e.must(200, "POST", "/commands/activate", key, nil)
	if string(r.Body) != `{"ok":true,"tenant_id":"acme","suspended_batches":[],"pending_messages":2}` {
		t.Errorf("activate: %s", r.Body)
	}
	if e.wakeCount() != wakes+1 {
		t.Errorf("activate woke %d times", e.wakeCount()-wakes)
	}
}

func TestDeleteAndCleanupMessages(t *testing.T) {
	e := setup(t)
	key := e.tenant("acme")
	e.tenant("other")
	e.account("acme", "smtp")
	e.account("other", "smtp")
	e.must(200, "POST", "/commands/add-messages", key, batch(msg("m1", "", "smtp"), msg("m2", "", "smtp")))
	e.must(200, "POST", "/commands/add-messages", adminToken, batch(msg("theirs", "other", "smtp")))
	r := e.must(200, "POST", "/commands/delete-messages", key, `{"ids":["m1","m1","theirs","ghost"]}`)
	if string(r.Body) != `{"ok":true,"removed":1,"not_found":["ghost"],"unauthorized":["theirs"]}` {
		t.Errorf("delete: %s", r.Body)
	}
	if r := e.must(200, "POST", "/commands/delete-messages", key, ""); string(r.Body) != `{"ok":true,"removed":0,"not_found":[],"unauthorized":[]}` {
		t.Errorf("empty delete: %s", r.Body)
	}
	// cleanup: m2 sent and reported long ago is removed; empty body = {} and the default retention.
	e.deliver(store.OutcomeSent, "")
	ctx := context.Background()
	evs, err := e.st.UnreportedEvents(ctx, "acme", 100)
	if err != nil || len(evs) == 0 {
		t.Fatalf("unreported events: %v %v", evs, err)
	}
	ids := make([]int64, len(evs))
	for i, ev := range evs {
		ids[i] = ev.ID
	}
	if err := e.st.MarkReported(ctx, ids, time.Now().Add(-30*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if r := e.must(200, "POST", "/commands/cleanup-messages", key, ""); string(r.Body) != `{"ok":true,"removed":1}` {
		t.Errorf("cleanup: %s", r.Body)
	}
	if r := e.must(200, "POST", "/commands/cleanup-messages", key, `{"older_than_seconds":null}`); string(r.Body) != `{"ok":true,"removed":0}` {
		t.Errorf("second cleanup: %s", r.Body)
	}
}

func TestListMessages(t *testing.T) {
	e := setup(t)
	key := e.tenant("acme")
	e.account("acme", "smtp")
	hi := msg("hi", "", "smtp")
	hi["priority"] = 0
	e.must(200, "POST", "/commands/add-messages", key, batch(msg("lo", "", "smtp"), hi))
	r := e.must(200, "GET", "/messages", key, nil)
	var b struct {
		Messages []map[string]any `json:"messages"`
	}
	if err := json.Unmarshal(r.Body, &b); err != nil || len(b.Messages) != 2 || b.Messages[0]["id"] != "hi" {
		t.Fatalf("listing order by priority: %s", r.Body)
	}
	m := b.Messages[0]
	for _, k := range []string{"pk", "tenant_name", "created_at", "updated_at", "message"} {
		if m[k] == nil {
			t.Errorf("field %s missing: %v", k, m)
		}
	}
	for _, k := range []string{"sent_ts", "error_ts", "error", "deferred_ts", "history", "batch_code"} {
		if _, ok := m[k]; ok {
			t.Errorf("null field %s present: %v", k, m)
		}
	}
	if m["status"] != "pending" || m["retry_count"] != 0.0 || m["is_pec"] != false {
		t.Errorf("record %v", m)
	}
	// limit and offset are ignored, as by the original (issue 12.1): every message.
	if r := e.must(200, "GET", "/messages?limit=1&offset=1", key, nil); !strings.Contains(string(r.Body), `"id":"lo"`) || !strings.Contains(string(r.Body), `"id":"hi"`) {
		t.Errorf("limit/offset: %s", r.Body)
	}
	e.deliver(store.OutcomeError, "550 no such user")
	recs := e.messages("acme", "&include_history=true")
	lo := recs["lo"]
	if lo["status"] != "error" || lo["error"] != "550 no such user" || lo["sent_ts"] == nil || lo["error_ts"] == nil {
		t.Errorf("errored record %v", lo)
	}
	h, _ := lo["history"].([]any)
	if len(h) != 1 || h[0].(map[string]any)["event_type"] != "error" || h[0].(map[string]any)["description"] != "550 no such user" {
		t.Errorf("history %v", h)
	}
	if n := len(e.messages("acme", "&active_only=true")); n != 0 {
		t.Errorf("active_only listed %d processed messages", n)
	}
}

func TestInstance(t *testing.T) {
	e := setup(t)
	info := e.must(200, "GET", "/instance", adminToken, nil).JSON(t)
	if info["id"] != 1.0 || info["name"] != "mail-proxy" || info["bounce_enabled"] != false || info["bounce_imap_port"] != 993.0 ||
		info["bounce_imap_folder"] != "INBOX" || info["bounce_poll_interval"] != 60.0 {
		t.Errorf("instance %v", info)
	}
	e.must(200, "PUT", "/instance", adminToken, map[string]any{"bounce_enabled": true, "bounce_imap_password": "imap-pw"})
	if r := e.must(400, "POST", "/instance/reload-bounce", adminToken, nil); r.Detail(t) != "Bounce enabled but imap_host not configured" {
		t.Errorf("reload-bounce: %s", r.Body)
	}
	e.must(200, "PUT", "/instance", adminToken, map[string]any{"bounce_imap_host": "imap.example.com"})
	e.must(200, "POST", "/instance/reload-bounce", adminToken, nil)
	body := string(e.must(200, "GET", "/instance", adminToken, nil).Body)
	if strings.Contains(body, "imap-pw") || strings.Contains(body, "password") || strings.Contains(body, "token") {
		t.Errorf("a secret in GET /instance: %s", body)
	}
	if r := e.must(200, "POST", "/instance/upgrade-to-ee", adminToken, nil); string(r.Body) != `{"ok":true,"edition":"ee","message":"All features are enabled"}` {
		t.Errorf("upgrade: %s", r.Body)
	}
	// api_token replaces the live admin token at once.
	e.must(200, "PUT", "/instance", adminToken, map[string]any{"api_token": "brand-new-admin-token"})
	e.must(401, "GET", "/instance", adminToken, nil)
	e.must(200, "GET", "/instance", "brand-new-admin-token", nil)
	if inst, _ := e.st.GetInstance(context.Background()); inst.APIToken != "brand-new-admin-token" {
		t.Errorf("stored admin token %q", inst.APIToken)
	}
}

func TestInstanceTokenIgnoredWithEnvToken(t *testing.T) {
	e := setup(t, func(d *apiDeps, _ *sqliteOptions) { d.Options.AdminTokenFixed = true })
	e.must(200, "PUT", "/instance", adminToken, map[string]any{"api_token": "brand-new-admin-token"})
	e.must(200, "GET", "/instance", adminToken, nil)
	e.must(401, "GET", "/instance", "brand-new-admin-token", nil)
}

func TestCommandLog(t *testing.T) {
	e := setup(t)
	key := e.tenant("acme")
	e.must(200, "POST", "/account", key, map[string]any{"id": "smtp", "host": "h", "port": 25, "password": "pw-1"})
	e.must(200, "PUT", "/tenant/acme", key, map[string]any{"client_auth": map[string]any{"method": "basic", "user": "u", "password": "pw-2"}})
	e.must(422, "POST", "/commands/add-messages", key, `{"messages":7}`)
	e.must(200, "POST", "/tenant/acme/api-key", adminToken, nil)
	e.must(200, "PUT", "/instance", adminToken, map[string]any{"api_token": "new-token-xyz"})
	e.must(401, "POST", "/commands/suspend?tenant_id=acme", "", nil) // unauthenticated: not recorded
	r := e.must(200, "GET", "/command-log", "new-token-xyz", nil)
	body := string(r.Body)
	for _, secret := range []string{"pw-1", "pw-2", "new-token-xyz"} {
		if strings.Contains(body, secret) {
			t.Errorf("secret %q in the command log: %s", secret, body)
		}
	}
	var b struct {
		OK       bool `json:"ok"`
		Total    int  `json:"total"`
		Commands []struct {
			ID             int64          `json:"id"`
			CommandTS      int64          `json:"command_ts"`
			Endpoint       string         `json:"endpoint"`
			TenantID       string         `json:"tenant_id"`
			Payload        map[string]any `json:"payload"`
			ResponseStatus int            `json:"response_status"`
		} `json:"commands"`
	}
	if err := json.Unmarshal(r.Body, &b); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range b.Commands {
		names = append(names, c.Endpoint)
	}
	want := []string{"updateInstance", "createApiKey", "addMessages", "updateTenant", "addAccount", "addTenant"}
	if !reflect.DeepEqual(names, want) || b.Total != len(want) {
		t.Fatalf("commands newest first %v (total %d), want %v", names, b.Total, want)
	}
	if c := b.Commands[2]; c.ResponseStatus != 422 || c.TenantID != "acme" {
		t.Errorf("addMessages entry %+v", c)
	}
	if c := b.Commands[4]; c.Payload["password"] != "***" || c.Payload["host"] != "h" || c.TenantID != "acme" {
		t.Errorf("addAccount payload %v", c.Payload)
	}
	if c := b.Commands[3]; c.Payload["client_auth"].(map[string]any)["password"] != "***" || c.Payload["tenant_id"] != "acme" {
		t.Errorf("updateTenant payload %v", c.Payload)
	}
	// Filters and export order.
	r = e.must(200, "GET", "/command-log?endpoint_filter=Tenant&limit=1", "new-token-xyz", nil)
	if !strings.Contains(string(r.Body), `"endpoint":"updateTenant"`) || strings.Count(string(r.Body), `"endpoint"`) != 1 {
		t.Errorf("filtered: %s", r.Body)
	}
	r = e.must(200, "GET", "/command-log/export?tenant_id=acme", "new-token-xyz", nil)
	var ex struct {
		Commands []map[string]any `json:"commands"`
	}
	if err := json.Unmarshal(r.Body, &ex); err != nil || len(ex.Commands) == 0 || ex.Commands[0]["endpoint"] != "addTenant" {
		t.Fatalf("export oldest first: %s", r.Body)
	}
	for _, c := range ex.Commands {
		if !reflect.DeepEqual(keysOf(c), []string{"command_ts", "endpoint", "payload", "tenant_id"}) {
			t.Errorf("export entry keys %v", keysOf(c))
		}
	}
}

func keysOf(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sortStrings(ks)
	return ks
}

func TestSyncStatus(t *testing.T) {
	e := setup(t)
	e.must(200, "POST", "/tenant", adminToken, map[string]any{"id": "acme", "client_base_url": "https://c.example.com"})
	e.must(200, "POST", "/tenant", adminToken, map[string]any{"id": "quiet"})
	ctx := context.Background()
	last := time.Now().Add(-time.Minute)
	dnd := time.Now().Add(time.Hour)
	if err := e.st.PutSyncState(ctx, store.SyncState{TenantID: "quiet", LastSyncAt: &last, DNDUntil: &dnd,
		ConsecutiveFailures: 2, LastError: "HTTP 500"}); err != nil {
		t.Fatal(err)
	}
	r := e.must(200, "GET", "/tenants/sync-status", adminToken, nil)
	var b struct {
		OK       bool             `json:"ok"`
		Interval float64          `json:"sync_interval_seconds"`
		Tenants  []map[string]any `json:"tenants"`
	}
	if err := json.Unmarshal(r.Body, &b); err != nil || !b.OK || b.Interval != 300 || len(b.Tenants) != 2 {
		t.Fatalf("sync-status %s", r.Body)
	}
	acme, quiet := b.Tenants[0], b.Tenants[1]
	if _, ok := acme["last_sync_ts"]; ok || acme["next_sync_due"] != true || acme["in_dnd"] != false || acme["pending_reports"] != 0.0 {
		t.Errorf("never-synced tenant %v", acme)
	}
	if quiet["last_sync_ts"] != float64(last.Unix()) || quiet["in_dnd"] != true || quiet["next_sync_due"] != false ||
		quiet["consecutive_failures"] != 2.0 || quiet["last_error"] != "HTTP 500" || quiet["dnd_until"] != float64(dnd.Unix()) {
		t.Errorf("quiet tenant %v", quiet)
	}
}

func TestOpenAPIDocument(t *testing.T) {
	e := setup(t)
	r := e.must(200, "GET", "/openapi.json", "", nil)
	var doc struct {
		OpenAPI string `json:"openapi"`
		Paths   map[string]map[string]struct {
			RequestBody struct {
				Content map[string]struct {
					Schema struct {
						Ref string `json:"$ref"`
					} `json:"schema"`
				} `json:"content"`
			} `json:"requestBody"`
			Responses map[string]any `json:"responses"`
		} `json:"paths"`
		Components struct {
			Schemas map[string]struct {
				Properties map[string]any `json:"properties"`
				Required   []string       `json:"required"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(r.Body, &doc); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	add := doc.Paths["/commands/add-messages"]["post"]
	ref := add.RequestBody.Content["application/json"].Schema.Ref
	if !strings.HasSuffix(ref, "/AddMessagesRequest") {
		t.Fatalf("add-messages request schema %q", ref)
	}
	item := doc.Components.Schemas["MessageItem"]
	for _, f := range []string{"id", "tenant_id", "account_id", "from", "to", "cc", "bcc", "subject", "body", "headers",
		"attachments", "priority", "deferred_ts", "batch_code", "return_path", "message_id", "raw", "raw_encoding"} {
		if _, ok := item.Properties[f]; !ok {
			t.Errorf("MessageItem lacks %q", f)
		}
	}
	sortStrings(item.Required)
	if !reflect.DeepEqual(item.Required, []string{"account_id", "id"}) { // from, to and subject are optional with raw
		t.Errorf("required %v", item.Required)
	}
	resp := doc.Components.Schemas["AddMessagesResponse"]
	for _, f := range []string{"ok", "queued", "rejected"} {
		if _, ok := resp.Properties[f]; !ok {
			t.Errorf("AddMessagesResponse lacks %q", f)
		}
	}
	for _, status := range []string{"200", "400", "401", "409", "413", "422", "503"} {
		if _, ok := add.Responses[status]; !ok {
			t.Errorf("add-messages documents no %s", status)
		}
	}
	for _, p := range []string{"/health", "/tenant/{tenant_id}", "/account/{account_id}", "/command-log/export", "/tenants/sync-status"} {
		if _, ok := doc.Paths[p]; !ok {
			t.Errorf("path %s undocumented", p)
		}
	}
	if r := e.must(200, "GET", "/docs", "", nil); !strings.Contains(string(r.Body), "<html") {
		t.Errorf("docs page: %.200s", r.Body)
	}
}
