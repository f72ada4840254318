package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
)

// field returns one member of a JSON object answer, as sent.
func field(t *testing.T, r resp, name string) json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("not a JSON object: %v: %s", err, r.Body)
	}
	v, ok := m[name]
	if !ok {
		t.Fatalf("no %q in %s", name, r.Body)
	}
	return v
}

// element returns the member of a JSON array whose "id" is id, as sent.
func element(t *testing.T, list json.RawMessage, id string) json.RawMessage {
	t.Helper()
	var items []json.RawMessage
	if err := json.Unmarshal(list, &items); err != nil {
		t.Fatalf("not a JSON array: %v: %s", err, list)
	}
	for _, it := range items {
		var head struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(it, &head) == nil && head.ID == id {
			return it
		}
	}
	t.Fatalf("no element %q in %s", id, list)
	return nil
}

func sameBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("%s:\n alias  %s\n legacy %s", what, got, want)
	}
}

// TestV07ReadAliasesAnswerLikeLegacy compares every reading alias with its
// legacy twin on the same data.
func TestV07ReadAliasesAnswerLikeLegacy(t *testing.T) {
	e := setup(t)
	key := e.tenant("acme")
	otherKey := e.tenant("other")
	e.account("acme", "smtp")
	e.account("acme", "smtp2")
	e.account("other", "smtp")
	b1 := msg("m2", "", "smtp")
	b1["batch_code"] = "B1"
	e.must(200, "POST", "/commands/add-messages", key, batch(msg("m1", "", "smtp"), b1, msg("m3", "", "smtp2")))
	e.must(200, "POST", "/commands/add-messages", otherKey, batch(msg("o1", "", "smtp")))
	e.deliver(store.OutcomeSent, "") // history for include_history
	e.must(200, "POST", "/commands/add-messages", key, batch(msg("m4", "", "smtp")))
	e.must(200, "POST", "/commands/suspend?tenant_id=acme&batch_code=B9", adminToken, nil)

	pairs := []struct{ alias, legacy, token string }{
		{"/instance/health", "/health", ""},
		{"/instance/status", "/status", key},
		{"/instance/get", "/instance", adminToken},
		{"/instance/get_sync_status", "/tenants/sync-status", adminToken},
		{"/accounts/list?tenant_id=acme", "/accounts?tenant_id=acme", adminToken},
		{"/accounts/list", "/accounts", key},
		{"/tenants/get?tenant_id=acme", "/tenant/acme", adminToken},
		{"/tenants/get", "/tenant/acme", key},
		{"/tenants/list", "/tenants", adminToken},
		{"/tenants/list?active_only=true", "/tenants?active_only=true", adminToken},
		{"/command_log/list?tenant_id=acme&limit=3", "/command-log?tenant_id=acme&limit=3", adminToken},
		{"/command_log/export", "/command-log/export", adminToken},
	}
	for _, p := range pairs {
		got := e.must(200, "GET", p.alias, p.token, nil)
		want := e.must(200, "GET", p.legacy, p.token, nil)
		sameBytes(t, p.alias, got.Body, want.Body)
	}

	// /messages/list is GET /messages' list, bare.
	for _, q := range []string{"", "&include_history=true", "&active_only=true"} {
		got := e.must(200, "GET", "/messages/list?tenant_id=acme"+q, adminToken, nil)
		want := e.must(200, "GET", "/messages?tenant_id=acme"+q, adminToken, nil)
		sameBytes(t, "/messages/list"+q, got.Body, field(t, want, "messages"))
	}
	// The alias keeps v0.7's limit and offset, which GET /messages now
	// ignores (issue 12.1): a slice of the legacy list.
	var listed []json.RawMessage
	if err := json.Unmarshal(field(t, e.must(200, "GET", "/messages?tenant_id=acme", adminToken, nil), "messages"), &listed); err != nil || len(listed) < 3 {
		t.Fatalf("legacy list: %v (%d records)", err, len(listed))
	}
	got := e.must(200, "GET", "/messages/list?tenant_id=acme&limit=2&offset=1", adminToken, nil)
	sameBytes(t, "/messages/list&limit=2&offset=1", got.Body, []byte("["+string(bytes.Join([][]byte{listed[1], listed[2]}, []byte(",")))+"]"))
	got = e.must(200, "GET", "/messages/list", key, nil)
	if n := len(e.messages("acme", "")); !strings.HasPrefix(string(got.Body), "[") || strings.Count(string(got.Body), `"pk":`) != n {
		t.Errorf("key's /messages/list (want %d records): %s", n, got.Body)
	}

	// /messages/get and /accounts/get are one element of the legacy lists.
	for _, q := range []string{"", "&include_history=true"} {
		legacy := e.must(200, "GET", "/messages?tenant_id=acme"+q, adminToken, nil)
		for _, id := range []string{"m1", "m2", "m4"} {
			got := e.must(200, "GET", "/messages/get?tenant_id=acme&message_id="+id+q, adminToken, nil)
			sameBytes(t, "/messages/get "+id+q, got.Body, element(t, field(t, legacy, "messages"), id))
		}
	}
	if r := e.must(200, "GET", "/messages/get?message_id=m1&include_history=true", key, nil); !strings.Contains(string(r.Body), `"event_type":"sent"`) {
		t.Errorf("m1 with history: %s", r.Body)
	}
	accounts := field(t, e.must(200, "GET", "/accounts?tenant_id=acme", adminToken, nil), "accounts")
	for _, id := range []string{"smtp", "smtp2"} {
		got := e.must(200, "GET", "/accounts/get?tenant_id=acme&account_id="+id, adminToken, nil)
		sameBytes(t, "/accounts/get "+id, got.Body, element(t, accounts, id))
	}

	// Counts are plain integers matching /stats and suspend's pending_messages.
	var stats struct {
		Tenants []store.TenantStats `json:"tenants"`
	}
	if err := json.Unmarshal(e.must(200, "GET", "/stats", adminToken, nil).Body, &stats); err != nil {
		t.Fatal(err)
	}
	unprocessed := map[string]int{}
	all := 0
	for _, st := range stats.Tenants {
		unprocessed[st.TenantID] = st.Pending + st.Deferred
		all += st.Pending + st.Deferred
	}
	if unprocessed["acme"] != 1 || unprocessed["other"] != 0 { // m4 only: the rest were sent
		t.Fatalf("stats %+v", stats.Tenants)
	}
	counts := []struct {
		path, token, want string
	}{
		{"/messages/count_active", adminToken, strconv.Itoa(all)},
		{"/messages/count_active", key, strconv.Itoa(unprocessed["acme"])},
		{"/messages/count_active", otherKey, "0"},
		{"/messages/count_pending_for_tenant?tenant_id=acme", adminToken, strconv.Itoa(unprocessed["acme"])},
		{"/messages/count_pending_for_tenant", key, strconv.Itoa(unprocessed["acme"])},
		{"/messages/count_pending_for_tenant?tenant_id=ghost", adminToken, "0"},
	}
	for _, c := range counts {
		if r := e.must(200, "GET", c.path, c.token, nil); string(r.Body) != c.want {
			t.Errorf("GET %s: %s, want %s", c.path, r.Body, c.want)
		}
	}

	// get_suspended_batches is v0.7's {"ok","tenant_id","suspended_batches"}.
	r := e.must(200, "GET", "/tenants/get_suspended_batches?tenant_id=acme", adminToken, nil)
	if string(r.Body) != `{"ok":true,"tenant_id":"acme","suspended_batches":["B9"]}` {
		t.Errorf("get_suspended_batches: %s", r.Body)
	}
	sameBytes(t, "suspended_batches", field(t, r, "suspended_batches"),
		field(t, e.must(200, "GET", "/tenant/acme", adminToken, nil), "suspended_batches"))
}

// TestV07CountPendingByBatch counts one batch's unprocessed messages, as
// suspend's pending_messages does.
func TestV07CountPendingByBatch(t *testing.T) {
	e := setup(t)
	key := e.tenant("acme")
	e.account("acme", "smtp")
	var msgs []map[string]any
	for i := range 7 {
		m := msg("m"+strconv.Itoa(i), "", "smtp")
		if i%2 == 0 {
			m["batch_code"] = "B1"
		}
		msgs = append(msgs, m)
	}
	e.must(200, "POST", "/commands/add-messages", key, batch(msgs...))
	r := e.must(200, "GET", "/messages/count_pending_for_tenant?batch_code=B1", key, nil)
	susp := e.must(200, "POST", "/commands/suspend?batch_code=B1", key, nil)
	if want := string(field(t, susp, "pending_messages")); string(r.Body) != want || want != "4" {
		t.Errorf("count for B1 %s, suspend's pending_messages %s, want 4", r.Body, want)
	}
	if r := e.must(200, "GET", "/messages/count_pending_for_tenant?batch_code=none", key, nil); string(r.Body) != "0" {
		t.Errorf("unknown batch: %s", r.Body)
	}
}

// TestV07MessagesAddAndBatch: a message added via /messages/add is listed by
// GET /messages and /messages/list; add_batch answers as add-messages.
func TestV07MessagesAddAndBatch(t *testing.T) {
	e := setup(t)
	key := e.tenant("acme")
	e.account("acme", "smtp")
	one := msg("solo", "acme", "smtp")
	delete(one, "from")
	one["from_addr"] = "sender@example.com" // v0.7's name
	one["to"] = []string{"rcpt@example.com"}
	wakes := e.wakeCount()
	r := e.must(200, "POST", "/messages/add", key, one)
	var added struct {
		ID string `json:"id"`
		PK string `json:"pk"`
	}
	if err := json.Unmarshal(r.Body, &added); err != nil || added.ID != "solo" || added.PK == "" {
		t.Fatalf("/messages/add: %s", r.Body)
	}
	if keys := len(r.JSON(t)); keys != 2 {
		t.Errorf("/messages/add answers %d keys: %s", keys, r.Body)
	}
	if e.wakeCount() != wakes+1 {
		t.Errorf("/messages/add woke the dispatcher %d times", e.wakeCount()-wakes)
	}
	legacy := e.messages("acme", "")
	if m, ok := legacy["solo"]; !ok || m["pk"] != added.PK || m["status"] != "pending" {
		t.Fatalf("GET /messages: %v", legacy)
	}
	var list []map[string]any
	if err := json.Unmarshal(e.must(200, "GET", "/messages/list", key, nil).Body, &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0]["id"] != "solo" || list[0]["pk"] != added.PK {
		t.Errorf("/messages/list: %v", list)
	}
	// The stored payload is add-messages' normalisation.
	if p := legacy["solo"]["message"].(map[string]any); p["from"] != "sender@example.com" || p["subject"] != "Hello solo" {
		t.Errorf("payload %v", p)
	}

	// Adding it again while unprocessed replaces it under the same pk; once
	// sent it stays unchanged, still a success (as add-messages' "already sent").
	r = e.must(200, "POST", "/messages/add", key, one)
	if string(field(t, r, "pk")) != `"`+added.PK+`"` {
		t.Errorf("re-add: %s, want pk %s", r.Body, added.PK)
	}
	e.deliver(store.OutcomeSent, "")
	r = e.must(200, "POST", "/messages/add", key, one)
	if string(field(t, r, "pk")) != `"`+added.PK+`"` {
		t.Errorf("re-add after sent: %s", r.Body)
	}
	if st := e.messages("acme", "")["solo"]["status"]; st != "sent" {
		t.Errorf("status after re-adding a sent message: %v", st)
	}

	// Rejections are add-messages' 400; the item is still stored as errored.
	bad := msg("bad", "", "ghost-account")
	r = e.must(400, "POST", "/messages/add", key, bad)
	if string(r.Body) != `{"detail":{"error":null,"rejected":[{"id":"bad","reason":"account not found for tenant"}]}}` {
		t.Errorf("unknown account: %s", r.Body)
	}
	if st := e.messages("acme", "")["bad"]["status"]; st != "error" {
		t.Errorf("rejected item status %v", st)
	}
	bad = msg("bad2", "", "smtp")
	bad["to"] = "not-an-address"
	r = e.must(400, "POST", "/messages/add", key, bad)
	if !strings.Contains(string(r.Body), `"reason":"invalid address: not-an-address"`) {
		t.Errorf("bad address: %s", r.Body)
	}
	// Schema errors are 422 at the body's top level, nothing stored.
	noSubject := msg("ns", "", "smtp")
	delete(noSubject, "subject")
	r = e.must(422, "POST", "/messages/add", key, noSubject)
	if b := string(r.Body); !strings.HasPrefix(b, `{"detail":[{"type":"missing","loc":["body","subject"],"msg":"Field required","input":{`) ||
		!strings.Contains(b, `"id":"ns"`) {
		t.Errorf("missing subject: %s", r.Body)
	}
	if _, ok := e.messages("acme", "")["ns"]; ok {
		t.Error("a 422 stored the message")
	}

	// add_batch is add-messages.
	body := batch(msg("b1", "", "smtp"), msg("b2", "", "smtp"), msg("b3", "", "nope"))
	got := e.must(400, "POST", "/messages/add_batch", key, batch(msg("x", "", "nope")))
	want := e.must(400, "POST", "/commands/add-messages", key, batch(msg("x", "", "nope")))
	sameBytes(t, "add_batch all rejected", got.Body, want.Body)
	got = e.must(200, "POST", "/messages/add_batch", key, body)
	if string(got.Body) != `{"ok":true,"queued":2,"rejected":[{"id":"b3","reason":"account not found for tenant"}]}` {
		t.Errorf("add_batch: %s", got.Body)
	}
	for _, id := range []string{"b1", "b2"} {
		if _, ok := e.messages("acme", "")[id]; !ok {
			t.Errorf("%s not stored", id)
		}
	}
	// Its Idempotency-Key works as on add-messages.
	hdr := []string{"Idempotency-Key", "k-1"}
	first := e.must(200, "POST", "/messages/add_batch", key, batch(msg("i1", "", "smtp")), hdr...)
	again := e.must(200, "POST", "/messages/add_batch", key, batch(msg("i1", "", "smtp")), hdr...)
	if again.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(first.Body, again.Body) {
		t.Errorf("replay: %v %s", again.Header, again.Body)
	}
	// The command log names both add_batch and add addMessages.
	r = e.must(200, "GET", "/command-log?endpoint_filter=addMessages&limit=1000", adminToken, nil)
	if n := strings.Count(string(r.Body), `"endpoint":"addMessages"`); n < 9 {
		t.Errorf("%d addMessages entries: %s", n, r.Body)
	}
}

// TestV07MutatingAliases runs each POST (and cleanup) alias and checks its
// effect through the legacy routes.
func TestV07MutatingAliases(t *testing.T) {
	e := setup(t)
	key := e.tenant("acme")
	e.tenant("other")
	e.account("acme", "smtp")
	e.account("other", "smtp")
	a := msg("a", "", "smtp")
	a["batch_code"] = "B1"
	e.must(200, "POST", "/commands/add-messages", key, batch(a, msg("b", "", "smtp")))
	e.must(200, "POST", "/commands/add-messages", adminToken, batch(msg("theirs", "other", "smtp")))

	// Suspend and activate, with the tenant in the body or the key's own.
	for _, p := range []struct{ suspend, activate string }{
		{"/instance/suspend", "/instance/activate"}, {"/tenants/suspend_batch", "/tenants/activate_batch"},
	} {
		r := e.must(200, "POST", p.suspend, adminToken, `{"tenant_id":"acme","batch_code":"B1"}`)
		if string(r.Body) != `{"ok":true,"tenant_id":"acme","batch_code":"B1","suspended_batches":["B1"],"pending_messages":1}` {
			t.Errorf("%s batch: %s", p.suspend, r.Body)
		}
		r = e.must(200, "POST", p.suspend, key, nil)
		if string(r.Body) != `{"ok":true,"tenant_id":"acme","suspended_batches":["*"],"pending_messages":2}` {
			t.Errorf("%s all: %s", p.suspend, r.Body)
		}
		if got := string(field(t, e.must(200, "GET", "/tenant/acme", key, nil), "suspended_batches")); got != `["*"]` {
			t.Errorf("after %s: %s", p.suspend, got)
		}
		r = e.must(400, "POST", p.activate, key, `{"batch_code":"B1"}`)
		if r.Detail(t) != "tenant not found or cannot activate single batch from full suspension" {
			t.Errorf("%s batch under *: %s", p.activate, r.Body)
		}
		wakes := e.wakeCount()
		r = e.must(200, "POST", p.activate, adminToken, `{"tenant_id":"acme"}`)
		if string(r.Body) != `{"ok":true,"tenant_id":"acme","suspended_batches":[],"pending_messages":2}` {
			t.Errorf("%s: %s", p.activate, r.Body)
		}
		if e.wakeCount() != wakes+1 {
			t.Errorf("%s woke %d times", p.activate, e.wakeCount()-wakes)
		}
	}

	// delete_batch answers as delete-messages.
	r := e.must(200, "POST", "/messages/delete_batch", key, `{"tenant_id":"acme","ids":["a","a","theirs","ghost"]}`)
	if string(r.Body) != `{"ok":true,"removed":1,"not_found":["ghost"],"unauthorized":["theirs"]}` {
		t.Errorf("delete_batch: %s", r.Body)
	}
	if _, ok := e.messages("acme", "")["a"]; ok {
		t.Error("a survived delete_batch")
	}
	if r := e.must(200, "POST", "/messages/delete_batch", adminToken, `{"tenant_id":"acme"}`); string(r.Body) != `{"ok":true,"removed":0,"not_found":[],"unauthorized":[]}` {
		t.Errorf("empty delete_batch: %s", r.Body)
	}

	// cleanup: v0.7's default age is a day (the legacy default here is 7 days).
	e.deliver(store.OutcomeSent, "")
	ctx := context.Background()
	evs, err := e.st.UnreportedEvents(ctx, "acme", 100)
	if err != nil || len(evs) != 1 {
		t.Fatalf("unreported events: %v %v", evs, err)
	}
	if err := e.st.MarkReported(ctx, []int64{evs[0].ID}, time.Now().Add(-48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if r := e.must(200, "POST", "/commands/cleanup-messages?tenant_id=acme", adminToken, nil); string(r.Body) != `{"ok":true,"removed":0}` {
		t.Errorf("legacy cleanup (7 days): %s", r.Body)
	}
	if r := e.must(200, "GET", "/messages/cleanup?older_than_seconds=259200", key, nil); string(r.Body) != `{"ok":true,"removed":0}` {
		t.Errorf("cleanup older than 3 days: %s", r.Body)
	}
	if r := e.must(200, "GET", "/messages/cleanup?tenant_id=acme", adminToken, nil); string(r.Body) != `{"ok":true,"removed":1}` {
		t.Errorf("cleanup (1 day): %s", r.Body)
	}
	if _, ok := e.messages("acme", "")["b"]; ok {
		t.Error("b survived cleanup")
	}
	if r := e.must(422, "GET", "/messages/cleanup?older_than_seconds=-1", key, nil); r.Issues(t)[0]["type"] != "greater_than_equal" {
		t.Errorf("negative age: %s", r.Body)
	}

	// Accounts.
	e.must(200, "POST", "/accounts/add", key, map[string]any{"id": "new", "host": "127.0.0.1", "port": 2526, "password": "pw-secret"})
	accts := string(e.must(200, "GET", "/accounts", key, nil).Body)
	if !strings.Contains(accts, `"id":"new"`) || strings.Contains(accts, "pw-secret") {
		t.Errorf("after /accounts/add: %s", accts)
	}
	for _, p := range []string{"/accounts/list", "/accounts/get?account_id=new"} {
		if body := string(e.must(200, "GET", p, key, nil).Body); strings.Contains(body, "pw-secret") || strings.Contains(body, "password") {
			t.Errorf("%s shows a password: %s", p, body)
		}
	}
	e.must(200, "POST", "/accounts/delete", key, `{"account_id":"new"}`)
	if strings.Contains(string(e.must(200, "GET", "/accounts", key, nil).Body), `"id":"new"`) {
		t.Error("account survived /accounts/delete")
	}

	// Tenants.
	r = e.must(200, "POST", "/tenants/add", adminToken, map[string]any{"id": "t9", "name": "Nine"})
	newKey, _ := r.JSON(t)["api_key"].(string)
	if len(newKey) != 43 {
		t.Fatalf("/tenants/add: %s", r.Body)
	}
	e.must(200, "GET", "/status", newKey, nil)
	e.must(200, "POST", "/tenants/update", newKey, `{"name":"Nine and a half"}`)
	e.must(200, "POST", "/tenants/update", adminToken, `{"tenant_id":"t9","active":false}`)
	info := e.must(200, "GET", "/tenant/t9", adminToken, nil).JSON(t)
	if info["name"] != "Nine and a half" || info["active"] != false {
		t.Errorf("after /tenants/update: %v", info)
	}
	r = e.must(200, "POST", "/tenants/create_api_key", adminToken, `{"tenant_id":"t9"}`)
	rotated, _ := r.JSON(t)["api_key"].(string)
	if len(rotated) != 43 || rotated == newKey {
		t.Fatalf("/tenants/create_api_key: %s", r.Body)
	}
	e.must(401, "GET", "/status", newKey, nil)
	e.must(200, "GET", "/status", rotated, nil)
	e.must(200, "POST", "/tenants/revoke_api_key", adminToken, `{"tenant_id":"t9"}`)
	e.must(401, "GET", "/status", rotated, nil)
	e.must(200, "POST", "/tenants/delete", adminToken, `{"tenant_id":"t9"}`)
	e.must(404, "GET", "/tenant/t9", adminToken, nil)

	// Instance.
	e.must(200, "POST", "/instance/update", adminToken, `{"name":"proxy-7","bounce_imap_password":"imap-pw"}`)
	inst := e.must(200, "GET", "/instance", adminToken, nil)
	if e.must(200, "GET", "/instance", adminToken, nil).JSON(t)["name"] != "proxy-7" || strings.Contains(string(inst.Body), "imap-pw") {
		t.Errorf("after /instance/update: %s", inst.Body)
	}
	got := e.must(200, "POST", "/instance/upgrade_to_ee", adminToken, nil)
	sameBytes(t, "upgrade_to_ee", got.Body, e.must(200, "POST", "/instance/upgrade-to-ee", adminToken, nil).Body)
	e.mu.Lock()
	before := len(e.runNow)
	e.mu.Unlock()
	e.must(200, "POST", "/instance/run_now", adminToken, `{"tenant_id":"acme"}`)
	e.must(200, "POST", "/instance/run_now", adminToken, nil)
	e.must(200, "POST", "/instance/run_now", key, `{}`)
	e.mu.Lock()
	targets := append([]string(nil), e.runNow[before:]...)
	e.mu.Unlock()
	if !reflect.DeepEqual(targets, []string{"acme", "", "acme"}) {
		t.Errorf("run_now targets %q", targets)
	}

	// The command log records the aliases under the legacy command names,
	// with the body's tenant, secrets redacted.
	r = e.must(200, "GET", "/command-log?limit=1000", adminToken, nil)
	var log struct {
		Commands []struct {
			Endpoint string  `json:"endpoint"`
			TenantID *string `json:"tenant_id"`
			Status   int     `json:"response_status"`
		} `json:"commands"`
	}
	if err := json.Unmarshal(r.Body, &log); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, c := range log.Commands {
		if c.TenantID != nil && (*c.TenantID == "acme" || *c.TenantID == "t9") {
			seen[c.Endpoint]++
		}
	}
	for _, name := range []string{"suspend", "activate", "deleteMessages", "cleanupMessages", "addAccount",
		"deleteAccount", "updateTenant", "createApiKey", "revokeApiKey", "deleteTenant"} {
		if seen[name] == 0 {
			t.Errorf("no %s entry for the aliases: %v", name, seen)
		}
	}
	if strings.Contains(string(r.Body), "pw-secret") || strings.Contains(string(r.Body), "imap-pw") {
		t.Errorf("a secret in the command log: %s", r.Body)
	}
}

// TestV07BodyTenant: the body's tenant_id is resolved like the legacy
// tenant_id query.
func TestV07BodyTenant(t *testing.T) {
	e := setup(t)
	key := e.tenant("acme")
	for _, path := range []string{"/instance/suspend", "/tenants/update", "/messages/delete_batch", "/tenants/delete"} {
		r := e.must(422, "POST", path, adminToken, `{}`)
		if string(r.Body) != `{"detail":[{"type":"missing","loc":["body","tenant_id"],"msg":"Field required","input":{}}]}` {
			t.Errorf("%s without tenant_id: %s", path, r.Body)
		}
	}
	r := e.must(422, "POST", "/instance/suspend", key, `{"tenant_id":7}`)
	if is := r.Issues(t); len(is) != 1 || is[0]["type"] != "string_type" || !reflect.DeepEqual(is[0]["loc"], []any{"body", "tenant_id"}) {
		t.Errorf("numeric tenant_id: %s", r.Body)
	}
	r = e.must(422, "POST", "/instance/suspend", key, `{"tenant_id":`)
	if is := r.Issues(t); len(is) != 1 || is[0]["type"] != "json_invalid" {
		t.Errorf("broken JSON: %s", r.Body)
	}
	r = e.must(422, "POST", "/accounts/delete", key, `{}`)
	if string(r.Body) != `{"detail":[{"type":"missing","loc":["body","account_id"],"msg":"Field required","input":{}}]}` {
		t.Errorf("/accounts/delete without account_id: %s", r.Body)
	}
	r = e.must(422, "GET", "/messages/get", key, nil)
	if string(r.Body) != `{"detail":[{"type":"missing","loc":["query","message_id"],"msg":"Field required","input":null}]}` {
		t.Errorf("/messages/get without message_id: %s", r.Body)
	}
	r = e.must(422, "GET", "/tenants/get", adminToken, nil)
	if string(r.Body) != `{"detail":[{"type":"missing","loc":["query","tenant_id"],"msg":"Field required","input":null}]}` {
		t.Errorf("/tenants/get as admin without tenant_id: %s", r.Body)
	}
}

// TestV07NotFound: "not found" is 404; what is not provided is the
// contract's 404 (or 405 for a known path with another method).
func TestV07NotFound(t *testing.T) {
	e := setup(t)
	key := e.tenant("acme")
	e.account("acme", "smtp")
	cases := []struct {
		method, path, token, body, detail string
	}{
		{"GET", "/messages/get?message_id=ghost", key, "", "Message 'ghost' not found"},
		{"GET", "/accounts/get?account_id=ghost", key, "", "account not found or not owned by tenant"},
		{"POST", "/accounts/delete", key, `{"account_id":"ghost"}`, "account not found or not owned by tenant"},
		{"POST", "/instance/suspend", adminToken, `{"tenant_id":"ghost"}`, "tenant not found"},
		{"POST", "/tenants/suspend_batch", adminToken, `{"tenant_id":"ghost","batch_code":"B"}`, "tenant not found"},
		{"POST", "/instance/activate", adminToken, `{"tenant_id":"ghost"}`, "tenant not found"},
		{"POST", "/tenants/activate_batch", adminToken, `{"tenant_id":"ghost","batch_code":"B"}`, "tenant not found"},
		{"GET", "/tenants/get?tenant_id=ghost", adminToken, "", "Tenant 'ghost' not found"},
		{"GET", "/tenants/get_suspended_batches?tenant_id=ghost", adminToken, "", "Tenant 'ghost' not found"},
		{"POST", "/tenants/update", adminToken, `{"tenant_id":"ghost","name":"x"}`, "Tenant 'ghost' not found"},
		{"POST", "/tenants/delete", adminToken, `{"tenant_id":"ghost"}`, "Tenant 'ghost' not found"},
		{"POST", "/tenants/create_api_key", adminToken, `{"tenant_id":"ghost"}`, "Tenant 'ghost' not found"},
		{"POST", "/tenants/revoke_api_key", adminToken, `{"tenant_id":"ghost"}`, "Tenant 'ghost' not found"},
		// Not provided.
		{"GET", "/storages/list", adminToken, "", "Not Found"},
		{"POST", "/storages/add", adminToken, `{}`, "Not Found"},
		{"GET", "/storages/anything/at/all", "", "", "Not Found"},
		{"GET", "/command_log/get?id=1", adminToken, "", "Not Found"},
		{"POST", "/command_log/purge", adminToken, `{}`, "Not Found"},
		{"GET", "/instance/reload_bounce", adminToken, "", "Not Found"},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			var body any
			if c.body != "" {
				body = c.body
			}
			r := e.doT(t, c.method, c.path, c.token, body)
			if r.Status != http.StatusNotFound || r.Detail(t) != c.detail {
				t.Errorf("%d %s, want 404 %q", r.Status, r.Body, c.detail)
			}
		})
	}
	r := e.must(405, "GET", "/instance/run_now", adminToken, nil)
	if r.Detail(t) != "Method Not Allowed" || r.Header.Get("Allow") == "" {
		t.Errorf("wrong method: %v %s", r.Header, r.Body)
	}
}

// TestV07ScopeMatrix runs every alias as the admin, the tenant's own key,
// another tenant's key, no token and an unknown token, expecting its legacy
// twin's class (tenancy-security.md §3).
func TestV07ScopeMatrix(t *testing.T) {
	e := setup(t)
	ownKey := e.tenant("t1")
	otherKey := e.tenant("t2")
	e.tenant("t3")
	e.account("t1", "a1")
	e.must(200, "POST", "/commands/add-messages", adminToken, batch(msg("seed", "t1", "a1")))
	for _, who := range []string{"admin", "own"} {
		e.account("t1", "del-"+who)
		e.tenant("victim-" + who)
	}
	message := func(who string) string {
		return `"id":"m-` + who + `","tenant_id":"t1","account_id":"a1","from":"a@example.com","to":"b@example.com","subject":"s"`
	}
	routes := []scopeRoute{
		{"GET", classPublic, false, fixedReq("/instance/health", "")},
		{"GET", classAny, false, fixedReq("/instance/status", "")},
		{"GET", classAny, false, fixedReq("/messages/count_active", "")},
		{"POST", classAny, true, fixedReq("/instance/run_now", `{"tenant_id":"t1"}`)},
		{"POST", classTenant, true, fixedReq("/instance/suspend", `{"tenant_id":"t1","batch_code":"b"}`)},
		{"POST", classTenant, true, fixedReq("/instance/activate", `{"tenant_id":"t1","batch_code":"b"}`)},
		{"POST", classTenant, true, fixedReq("/tenants/suspend_batch", `{"tenant_id":"t1","batch_code":"c"}`)},
		{"POST", classTenant, true, fixedReq("/tenants/activate_batch", `{"tenant_id":"t1","batch_code":"c"}`)},
		{"POST", classTenant, true, func(who string) scopeReq { return scopeReq{"/messages/add", "{" + message(who) + "}"} }},
		{"POST", classTenant, true, func(who string) scopeReq {
			return scopeReq{"/messages/add_batch", `{"messages":[{` + message("b-"+who) + `}]}`}
		}},
		{"POST", classTenant, true, fixedReq("/messages/delete_batch", `{"tenant_id":"t1","ids":["nope"]}`)},
		{"GET", classTenant, true, fixedReq("/messages/get?tenant_id=t1&message_id=seed", "")},
		{"GET", classTenant, true, fixedReq("/messages/list?tenant_id=t1", "")},
		{"GET", classTenant, true, fixedReq("/messages/cleanup?tenant_id=t1", "")},
		{"GET", classTenant, true, fixedReq("/messages/count_pending_for_tenant?tenant_id=t1", "")},
		{"POST", classTenant, true, func(who string) scopeReq {
			return scopeReq{"/accounts/add", `{"id":"acc-` + who + `","tenant_id":"t1","host":"127.0.0.1","port":25}`}
		}},
		{"POST", classTenant, true, func(who string) scopeReq {
			return scopeReq{"/accounts/delete", `{"tenant_id":"t1","account_id":"del-` + who + `"}`}
		}},
		{"GET", classTenant, true, fixedReq("/accounts/get?tenant_id=t1&account_id=a1", "")},
		{"GET", classTenant, true, fixedReq("/accounts/list?tenant_id=t1", "")},
		{"POST", classTenant, true, fixedReq("/tenants/update", `{"tenant_id":"t1","name":"T one"}`)},
		{"GET", classTenant, true, fixedReq("/tenants/get?tenant_id=t1", "")},
		{"GET", classTenant, true, fixedReq("/tenants/get_suspended_batches?tenant_id=t1", "")},
		{"GET", classAdmin, false, fixedReq("/instance/get", "")},
		{"GET", classAdmin, false, fixedReq("/instance/get_sync_status", "")},
		{"POST", classAdmin, false, fixedReq("/instance/update", `{"name":"proxy-1"}`)},
		{"POST", classAdmin, false, fixedReq("/instance/upgrade_to_ee", "")},
		{"POST", classAdmin, false, func(who string) scopeReq { return scopeReq{"/tenants/add", `{"id":"new-` + who + `"}`} }},
		{"POST", classAdmin, false, func(who string) scopeReq { return scopeReq{"/tenants/delete", `{"tenant_id":"victim-` + who + `"}`} }},
		{"POST", classAdmin, false, fixedReq("/tenants/create_api_key", `{"tenant_id":"t3"}`)},
		{"POST", classAdmin, false, fixedReq("/tenants/revoke_api_key", `{"tenant_id":"t3"}`)},
		{"GET", classAdmin, false, fixedReq("/tenants/list", "")},
		{"GET", classAdmin, false, fixedReq("/command_log/list", "")},
		{"GET", classAdmin, false, fixedReq("/command_log/export", "")},
	}
	runScopeMatrix(t, e, ownKey, otherKey, routes)
	// Another tenant's key acting on its own tenant through the aliases
	// never sees t1's data.
	if r := e.must(200, "GET", "/messages/list", otherKey, nil); string(r.Body) != `[]` {
		t.Errorf("t2's /messages/list: %s", r.Body)
	}
	if r := e.must(200, "GET", "/messages/count_active", otherKey, nil); string(r.Body) != `0` {
		t.Errorf("t2's count_active: %s", r.Body)
	}
	e.must(404, "GET", "/messages/get?message_id=seed", otherKey, nil)
}

// TestV07OpenAPI: every alias is documented under its tag; what is not
// mounted is not documented.
func TestV07OpenAPI(t *testing.T) {
	e := setup(t)
	r := e.must(200, "GET", "/openapi.json", "", nil)
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string         `json:"operationId"`
			Tags        []string       `json:"tags"`
			Responses   map[string]any `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(r.Body, &doc); err != nil {
		t.Fatal(err)
	}
	aliases := map[string][]string{
		"get": {"/instance/health", "/instance/status", "/instance/get", "/instance/get_sync_status",
			"/messages/get", "/messages/list", "/messages/cleanup", "/messages/count_active",
			"/messages/count_pending_for_tenant", "/accounts/get", "/accounts/list", "/tenants/get",
			"/tenants/list", "/tenants/get_suspended_batches", "/command_log/list", "/command_log/export"},
		"post": {"/instance/run_now", "/instance/suspend", "/instance/activate", "/instance/update",
			"/instance/upgrade_to_ee", "/messages/add_batch", "/messages/add", "/messages/delete_batch",
			"/accounts/add", "/accounts/delete", "/tenants/add", "/tenants/update", "/tenants/delete",
			"/tenants/suspend_batch", "/tenants/activate_batch", "/tenants/create_api_key", "/tenants/revoke_api_key"},
	}
	ids := map[string]bool{}
	for method, paths := range aliases {
		for _, p := range paths {
			op, ok := doc.Paths[p][method]
			if !ok {
				t.Errorf("%s %s undocumented", method, p)
				continue
			}
			if !reflect.DeepEqual(op.Tags, []string{"v0.7 aliases"}) || op.OperationID == "" || ids[op.OperationID] {
				t.Errorf("%s %s: tags %v, operationId %q", method, p, op.Tags, op.OperationID)
			}
			ids[op.OperationID] = true
			if _, ok := op.Responses["200"]; !ok {
				t.Errorf("%s %s documents no 200", method, p)
			}
		}
	}
	for p := range doc.Paths {
		if strings.HasPrefix(p, "/storages") || p == "/command_log/get" || p == "/command_log/purge" {
			t.Errorf("%s is documented but not served", p)
		}
	}
	// The legacy operations keep their tags.
	if op := doc.Paths["/instance"]["get"]; !reflect.DeepEqual(op.Tags, []string{"instance"}) || op.OperationID != "getInstance" {
		t.Errorf("GET /instance: %+v", op)
	}
}
