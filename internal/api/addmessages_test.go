package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
)

func TestAddMessagesQueuesAndStoresNormalisedPayload(t *testing.T) {
	e := setup(t)
	key := e.tenant("acme")
	e.account("acme", "smtp")
	m := msg("m1", "", "smtp")
	m["to"] = `"Doe, John" <john@example.com>, , jane@example.com`
	m["cc"] = []any{"cc@example.com", " "}
	m["from_addr"] = "ignored@example.com"
	m["priority"] = "high"
	m["headers"] = map[string]any{"X-Num": 1.5, "X-Bool": true, "X-Str": "v", "X-Null": nil}
	m["html"] = "<p>unknown keys are dropped</p>"
	m["content_type"] = "html"
	m["batch_code"] = "b1"
	m["deferred_ts"] = 4102444800.0 // zero fraction: accepted
	m["attachments"] = []any{map[string]any{"filename": "a.txt", "storage_path": "aGk=", "fetch_mode": "base64",
		"content_md5": nil}}
	r := e.must(200, "POST", "/commands/add-messages", key, batch(m))
	if got, want := string(r.Body), `{"ok":true,"queued":1,"rejected":[]}`; got != want {
		t.Fatalf("answer %s, want %s", got, want)
	}
	if e.wakeCount() != 1 {
		t.Errorf("wake called %d times, want 1", e.wakeCount())
	}
	rec := e.messages("acme", "")["m1"]
	if rec == nil {
		t.Fatal("m1 not listed")
	}
	if rec["status"] != "deferred" || rec["priority"] != 1.0 || rec["batch_code"] != "b1" || rec["deferred_ts"] != 4102444800.0 {
		t.Errorf("record %v", rec)
	}
	payload := rec["message"].(map[string]any)
	want := map[string]any{
		"id": "m1", "tenant_id": "acme", "account_id": "smtp", "from": "Sender <sender@example.com>",
		"to":      `"Doe, John" <john@example.com>, , jane@example.com`, // as submitted (issue 12.4)
		"cc":      []any{"cc@example.com"},
		"subject": "Hello m1", "body": "Body of m1", "content_type": "html",
		"headers":     map[string]any{"X-Num": "1.5", "X-Bool": "true", "X-Str": "v"},
		"attachments": []any{map[string]any{"filename": "a.txt", "storage_path": "aGk=", "fetch_mode": "base64"}},
		"priority":    1.0, "deferred_ts": 4102444800.0, "batch_code": "b1",
	}
	if !reflect.DeepEqual(payload, want) {
		t.Errorf("stored payload\n got %v\nwant %v", payload, want)
	}
	if _, ok := rec["pk"].(string); !ok {
		t.Errorf("no pk in %v", rec)
	}
}

func TestAddMessagesDefaultsTenantAndPriority(t *testing.T) {
	e := setup(t, func(d *apiDeps, _ *sqliteOptions) { d.Options.DefaultPriority = "low" })
	e.tenant("default")
	e.account("default", "smtp")
	// Admin without tenant_id: "default"; request default_priority wins over the config.
	e.must(200, "POST", "/commands/add-messages", adminToken, map[string]any{
		"default_priority": 0, "messages": []any{msg("a", "", "smtp")}})
	e.must(200, "POST", "/commands/add-messages", adminToken, batch(msg("b", "", "smtp")))
	clamp := msg("c", "", "smtp")
	clamp["priority"] = 7
	neg := msg("d", "", "smtp")
	neg["priority"] = "-1"
	e.must(200, "POST", "/commands/add-messages", adminToken, batch(clamp, neg))
	got := map[string]float64{}
	for id, m := range e.messages("default", "") {
		got[id] = m["priority"].(float64)
	}
	want := map[string]float64{"a": 0, "b": 3, "c": 3, "d": 0}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("priorities %v, want %v", got, want)
	}
}

func TestAddMessagesPerItemReasonsInOrder(t *testing.T) {
	e := setup(t)
	key := e.tenant("acme")
	e.account("acme", "smtp")
	with := func(id string, change map[string]any) map[string]any {
		m := msg(id, "", "smtp")
		for k, v := range change {
			m[k] = v
		}
		return m
	}
	cases := []struct {
		name   string
		item   map[string]any
		reason string
	}{
		{"missing id", with("", nil), "missing id"},
		{"id beats everything", with("", map[string]any{"account_id": "", "from": "", "to": ""}), "missing id"},
		{"empty tenant", with("r2", map[string]any{"tenant_id": ""}), "missing tenant_id"},
		{"missing account", with("r3", map[string]any{"account_id": "", "from": ""}), "missing account_id"},
		{"missing from", with("r4", map[string]any{"from": "", "to": ""}), "missing from"},
		{"missing to (string)", with("r5", map[string]any{"to": " , "}), "missing to"},
		{"missing to (list)", with("r6", map[string]any{"to": []any{" "}, "subject": " "}), "missing to"},
		{"missing subject", with("r7", map[string]any{"subject": "   ", "from": "bad"}), "missing subject"},
		{"bad from", with("r8", map[string]any{"from": "not-an-address", "to": "bad@"}), "invalid address: not-an-address"},
		{"bad to", with("r9", map[string]any{"to": []any{"ok@example.com", "bad@"}}), "invalid address: bad@"},
		{"no domain", with("r10", map[string]any{"to": "user@"}), "invalid address: user@"},
		{"bad cc", with("r11", map[string]any{"cc": "x"}), "invalid address: x"},
		{"bad bcc", with("r12", map[string]any{"bcc": []any{"y"}}), "invalid address: y"},
		{"bad reply_to", with("r13", map[string]any{"reply_to": "nope"}), "invalid address: nope"},
		{"bad return_path", with("r14", map[string]any{"return_path": "a@b@c"}), "invalid address: a@b@c"},
		{"unknown account", with("r15", map[string]any{"account_id": "ghost"}), "account not found for tenant"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.doT(t, "POST", "/commands/add-messages", key, batch(tc.item))
			if r.Status != 400 {
				t.Fatalf("status %d, want 400: %s", r.Status, r.Body)
			}
			var id any
			if s := tc.item["id"].(string); s != "" {
				id = s
			}
			want, _ := json.Marshal(map[string]any{"detail": map[string]any{"error": nil,
				"rejected": []any{map[string]any{"id": id, "reason": tc.reason}}}})
			if string(r.Body) != string(want) {
				t.Errorf("body %s, want %s", r.Body, want)
			}
		})
	}
	// Rejected ids are stored as errors with the reason, and reported.
	recs := e.messages("acme", "&include_history=true")
	r9 := recs["r9"]
	if r9 == nil || r9["status"] != "error" || r9["error"] != "invalid address: bad@" {
		t.Fatalf("r9 record %v", r9)
	}
	if _, ok := recs[""]; ok {
		t.Error("an item without id was stored")
	}
	n, err := e.st.CountUnreported(context.Background(), "acme")
	if err != nil || n < 10 {
		t.Errorf("unreported events %d (%v), want one per stored rejection", n, err)
	}
	// Resubmittable: the same id, fixed, is queued.
	e.must(200, "POST", "/commands/add-messages", key, batch(msg("r9", "", "smtp")))
	if st := e.messages("acme", "")["r9"]["status"]; st != "pending" {
		t.Errorf("resubmitted r9 status %v, want pending", st)
	}
}

func TestAddMessagesPartialRejectionKeepsRequestOrder(t *testing.T) {
	e := setup(t)
	key := e.tenant("acme")
	e.account("acme", "smtp")
	bad := msg("b", "", "smtp")
	bad["to"] = "nobody"
	r := e.must(200, "POST", "/commands/add-messages", key, batch(msg("a", "", "smtp"), bad, msg("c", "", "ghost")))
	want := `{"ok":true,"queued":1,"rejected":[{"id":"b","reason":"invalid address: nobody"},{"id":"c","reason":"account not found for tenant"}]}`
	if string(r.Body) != want {
		t.Errorf("body %s\nwant %s", r.Body, want)
	}
	r = e.must(200, "POST", "/commands/add-messages", key, `{"messages":[]}`)
	if string(r.Body) != `{"ok":true,"queued":0,"rejected":[]}` {
		t.Errorf("empty batch: %s", r.Body)
	}
}

func TestAddMessagesUpsertAndAlreadySent(t *testing.T) {
	e := setup(t)
	key := e.tenant("acme")
	e.account("acme", "smtp")
	e.must(200, "POST", "/commands/add-messages", key, batch(msg("m1", "", "smtp"), msg("m2", "", "smtp")))
	pk := e.messages("acme", "")["m1"]["pk"]

	// An unprocessed id is replaced (same pk), and a duplicate in one batch: the later wins, both count.
	first, second := msg("m1", "", "smtp"), msg("m1", "", "smtp")
	first["subject"], second["subject"] = "first", "second"
	r := e.must(200, "POST", "/commands/add-messages", key, batch(first, second))
	if string(r.Body) != `{"ok":true,"queued":2,"rejected":[]}` {
		t.Errorf("duplicate batch: %s", r.Body)
	}
	rec := e.messages("acme", "")["m1"]
	if rec["pk"] != pk || rec["message"].(map[string]any)["subject"] != "second" {
		t.Errorf("upserted m1: %v", rec)
	}

	// Deliver both; a resubmission is then "already sent" and ok.
	if n := e.deliver(store.OutcomeSent, ""); n != 2 {
		t.Fatalf("delivered %d, want 2", n)
	}
	r = e.must(200, "POST", "/commands/add-messages", key, batch(msg("m1", "", "smtp")))
	if string(r.Body) != `{"ok":true,"queued":0,"rejected":[{"id":"m1","reason":"already sent"}]}` {
		t.Errorf("already sent: %s", r.Body)
	}
	rec = e.messages("acme", "")["m1"]
	if rec["status"] != "sent" || rec["sent_ts"] == nil {
		t.Errorf("sent record: %v", rec)
	}

	// A message being sent (live claim) answers "sending in progress".
	e.must(200, "POST", "/commands/add-messages", key, batch(msg("m3", "", "smtp")))
	if _, err := e.st.Claim(context.Background(), store.ClaimRequest{Owner: "x", Now: time.Now(),
		Lease: time.Minute, Limit: 10, PerAccount: 10}); err != nil {
		t.Fatal(err)
	}
	r = e.must(200, "POST", "/commands/add-messages", key, batch(msg("m3", "", "smtp")))
	if string(r.Body) != `{"ok":true,"queued":0,"rejected":[{"id":"m3","reason":"sending in progress"}]}` {
		t.Errorf("sending: %s", r.Body)
	}
}

func TestAddMessagesCrossTenantIsRejectedWhole(t *testing.T) {
	e := setup(t)
	key := e.tenant("acme")
	e.tenant("other")
	e.account("acme", "smtp")
	e.account("other", "smtp")
	r := e.must(401, "POST", "/commands/add-messages", key,
		batch(msg("mine", "acme", "smtp"), msg("theirs", "other", "smtp")))
	if r.Detail(t) != "Token not authorized for this tenant" {
		t.Errorf("detail %s", r.Body)
	}
	if n := len(e.messages("acme", "")) + len(e.messages("other", "")); n != 0 {
		t.Errorf("%d messages stored after a cross-tenant request", n)
	}
	// The admin may name any tenant.
	e.must(200, "POST", "/commands/add-messages", adminToken,
		batch(msg("mine", "acme", "smtp"), msg("theirs", "other", "smtp")))
}

func TestAddMessagesSchemaErrors(t *testing.T) {
	e := setup(t)
	key := e.tenant("acme")
	e.account("acme", "smtp")
	long := strings.Repeat("x", 257)
	cases := []struct {
		name string
		body string
		want []map[string]any // type and loc of each entry, in order
	}{
		{"malformed JSON", `{"messages": [`, []map[string]any{{"type": "json_invalid", "loc": []any{"body", 14.0}}}},
		{"bad character", `{"messages": x}`, []map[string]any{{"type": "json_invalid", "loc": []any{"body", 13.0}}}},
		{"empty body", ``, []map[string]any{{"type": "missing", "loc": []any{"body"}}}},
		{"body not an object", `[1]`, []map[string]any{{"type": "model_attributes_type", "loc": []any{"body"}}}},
		{"messages missing", `{}`, []map[string]any{{"type": "missing", "loc": []any{"body", "messages"}}}},
		{"messages not a list", `{"messages": {}}`, []map[string]any{{"type": "list_type", "loc": []any{"body", "messages"}}}},
		{"message not an object", `{"messages": [3]}`, []map[string]any{{"type": "model_attributes_type", "loc": []any{"body", "messages", 0.0}}}},
		{"missing fields", `{"messages": [{"id": "a"}]}`, []map[string]any{
			{"type": "missing", "loc": []any{"body", "messages", 0.0, "account_id"}},
			{"type": "missing", "loc": []any{"body", "messages", 0.0, "from"}},
			{"type": "missing", "loc": []any{"body", "messages", 0.0, "to"}},
			{"type": "missing", "loc": []any{"body", "messages", 0.0, "subject"}}}},
		{"wrong types", `{"messages": [{"id": 1, "account_id": "s", "from": "a@b.c", "to": 5, "subject": ""}]}`, []map[string]any{
			{"type": "string_type", "loc": []any{"body", "messages", 0.0, "id"}},
			{"type": "string_type", "loc": []any{"body", "messages", 0.0, "to", "str"}},
			{"type": "list_type", "loc": []any{"body", "messages", 0.0, "to", "list[str]"}},
			{"type": "string_too_short", "loc": []any{"body", "messages", 0.0, "subject"}}}},
		{"id too long", `{"messages": [{"id": "` + long + `", "account_id": "s", "from": "a@b.c", "to": "x@y.z", "subject": "s"}]}`,
			[]map[string]any{{"type": "string_too_long", "loc": []any{"body", "messages", 0.0, "id"}}}},
		{"unknown priority", `{"messages": [{"id": "a", "account_id": "s", "from": "a@b.c", "to": "x@y.z", "subject": "s", "priority": "urgent"}]}`,
			[]map[string]any{{"type": "literal_error", "loc": []any{"body", "messages", 0.0, "priority"}}}},
		{"uppercase label", `{"messages": [{"id": "a", "account_id": "s", "from": "a@b.c", "to": "x@y.z", "subject": "s", "priority": "HIGH"}]}`,
			[]map[string]any{{"type": "literal_error", "loc": []any{"body", "messages", 0.0, "priority"}}}},
		{"fractional deferred_ts", `{"messages": [{"id": "a", "account_id": "s", "from": "a@b.c", "to": "x@y.z", "subject": "s", "deferred_ts": 1.5}]}`,
			[]map[string]any{{"type": "int_from_float", "loc": []any{"body", "messages", 0.0, "deferred_ts"}}}},
		{"deferred_ts text", `{"messages": [{"id": "a", "account_id": "s", "from": "a@b.c", "to": "x@y.z", "subject": "s", "deferred_ts": "soon"}]}`,
			[]map[string]any{{"type": "int_parsing", "loc": []any{"body", "messages", 0.0, "deferred_ts"}}}},
		{"unknown attachment key", `{"messages": [{"id": "a", "account_id": "s", "from": "a@b.c", "to": "x@y.z", "subject": "s", "attachments": [{"filename": "f", "storage_path": "p", "colour": "red"}]}]}`,
			[]map[string]any{{"type": "extra_forbidden", "loc": []any{"body", "messages", 0.0, "attachments", 0.0, "colour"}}}},
		{"bad attachment fields", `{"messages": [{"id": "a", "account_id": "s", "from": "a@b.c", "to": "x@y.z", "subject": "s", "attachments": [{"filename": "", "storage_path": "p", "fetch_mode": "ftp", "content_md5": "zz"}]}]}`,
			[]map[string]any{
				{"type": "string_too_short", "loc": []any{"body", "messages", 0.0, "attachments", 0.0, "filename"}},
				{"type": "literal_error", "loc": []any{"body", "messages", 0.0, "attachments", 0.0, "fetch_mode"}},
				{"type": "string_pattern_mismatch", "loc": []any{"body", "messages", 0.0, "attachments", 0.0, "content_md5"}}}},
		{"nested header", `{"messages": [{"id": "a", "account_id": "s", "from": "a@b.c", "to": "x@y.z", "subject": "s", "headers": {"X-A": {"b": 1}}}]}`,
			[]map[string]any{{"type": "value_error", "loc": []any{"body", "messages", 0.0, "headers", "X-A"}}}},
		{"header with CRLF", `{"messages": [{"id": "a", "account_id": "s", "from": "a@b.c", "to": "x@y.z", "subject": "s", "headers": {"X-A": "v\r\nBcc: evil@x.y"}}]}`,
			[]map[string]any{{"type": "value_error", "loc": []any{"body", "messages", 0.0, "headers", "X-A"}}}},
		{"bad default_priority", `{"default_priority": 1.5, "messages": []}`,
			[]map[string]any{{"type": "int_from_float", "loc": []any{"body", "default_priority"}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.doT(t, "POST", "/commands/add-messages", key, tc.body)
			if r.Status != 422 {
				t.Fatalf("status %d, want 422: %s", r.Status, r.Body)
			}
			got := r.Issues(t)
			if len(got) != len(tc.want) {
				t.Fatalf("entries %v, want %v", got, tc.want)
			}
			for i, w := range tc.want {
				if got[i]["type"] != w["type"] || !reflect.DeepEqual(got[i]["loc"], w["loc"]) {
					t.Errorf("entry %d: %v, want type %v loc %v", i, got[i], w["type"], w["loc"])
				}
				if msg, _ := got[i]["msg"].(string); msg == "" {
					t.Errorf("entry %d has no msg: %v", i, got[i])
				}
			}
		})
	}
	if n := len(e.messages("acme", "")); n != 0 {
		t.Errorf("%d messages stored by invalid requests", n)
	}
}

func TestAddMessagesPydanticEntryShape(t *testing.T) {
	e := setup(t)
	key := e.tenant("acme")
	r := e.must(422, "POST", "/commands/add-messages", key,
		`{"messages":[{"id":"a","account_id":"s","from":"a@b.c","to":"x@y.z","subject":"s","priority":"urgent"}]}`)
	want := `{"detail":[{"type":"literal_error","loc":["body","messages",0,"priority"],"msg":"Input should be 'immediate', 'high', 'medium' or 'low'","input":"urgent","ctx":{"expected":"'immediate', 'high', 'medium' or 'low'"}}]}`
	if string(r.Body) != want {
		t.Errorf("body %s\nwant %s", r.Body, want)
	}
	r = e.must(422, "POST", "/commands/add-messages", key, `{"messages":[{"id":"a"}]}`)
	if !strings.Contains(string(r.Body), `{"type":"missing","loc":["body","messages",0,"subject"],"msg":"Field required","input":{"id":"a"}}`) {
		t.Errorf("missing entry: %s", r.Body)
	}
}

func TestAddMessagesBatchLimit(t *testing.T) {
	e := setup(t, func(d *apiDeps, _ *sqliteOptions) { d.Options.MaxEnqueueBatch = 3 })
	key := e.tenant("acme")
	e.account("acme", "smtp")
	var ms []map[string]any
	for i := range 4 {
		ms = append(ms, msg(fmt.Sprint("m", i), "", "smtp"))
	}
	r := e.must(400, "POST", "/commands/add-messages", key, batch(ms...))
	if string(r.Body) != `{"detail":{"error":"Cannot enqueue more than 3 messages at once","rejected":null}}` {
		t.Errorf("body %s", r.Body)
	}
	e.must(200, "POST", "/commands/add-messages", key, batch(ms[:3]...))
}

func TestIdempotencyKey(t *testing.T) {
	e := setup(t)
	key := e.tenant("acme")
	e.account("acme", "smtp")
	body := batch(msg("i1", "", "smtp"))
	r1 := e.must(200, "POST", "/commands/add-messages", key, body, "Idempotency-Key", "k-1")
	if r1.Header.Get("Idempotent-Replayed") != "" {
		t.Error("first answer marked replayed")
	}
	// Deliver it; a replay must still answer the stored queued:1, not "already sent".
	e.deliver(store.OutcomeSent, "")
	r2 := e.must(200, "POST", "/commands/add-messages", key, body, "Idempotency-Key", "k-1")
	if string(r2.Body) != string(r1.Body) || r2.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay %s %v, want %s with Idempotent-Replayed", r2.Body, r2.Header, r1.Body)
	}
	r3 := e.must(409, "POST", "/commands/add-messages", key, batch(msg("i2", "", "smtp")), "Idempotency-Key", "k-1")
	if r3.Detail(t) != "Idempotency-Key already used with a different request body" {
		t.Errorf("409 detail %s", r3.Body)
	}
	// Scoped by caller: the admin's k-1 is another key.
	e.must(200, "POST", "/commands/add-messages", adminToken, batch(msg("i3", "acme", "smtp")), "Idempotency-Key", "k-1")
	// A 400 answer is stored too.
	bad := batch(msg("i4", "", "ghost"))
	b1 := e.must(400, "POST", "/commands/add-messages", key, bad, "Idempotency-Key", "k-2")
	b2 := e.must(400, "POST", "/commands/add-messages", key, bad, "Idempotency-Key", "k-2")
	if string(b1.Body) != string(b2.Body) || b2.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("400 replay %s / %s", b1.Body, b2.Body)
	}
	// 422 answers are not stored: the key stays free.
	e.must(422, "POST", "/commands/add-messages", key, `{"messages": 1}`, "Idempotency-Key", "k-3")
	e.must(200, "POST", "/commands/add-messages", key, batch(msg("i5", "", "smtp")), "Idempotency-Key", "k-3")
	// A bad key is a 422 naming the header.
	r := e.must(422, "POST", "/commands/add-messages", key, body, "Idempotency-Key", strings.Repeat("k", 257))
	if loc := r.Issues(t)[0]["loc"]; !reflect.DeepEqual(loc, []any{"header", "Idempotency-Key"}) {
		t.Errorf("loc %v", loc)
	}
	// A running first request: 409 in progress.
	if _, _, err := e.st.BeginIdempotent(context.Background(), store.IdempotencyRecord{Scope: "tenant:acme",
		Key: "k-4", BodyHash: sha256Hex(mustJSON(t, body)), CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	r = e.must(409, "POST", "/commands/add-messages", key, mustJSON(t, body), "Idempotency-Key", "k-4")
	if r.Detail(t) != "A request with this Idempotency-Key is in progress" {
		t.Errorf("in-progress detail %s", r.Body)
	}
	// A running record minutes old was left by a request that died (the
	// store failed under it): the key is free again, not 409 for a day.
	if _, _, err := e.st.BeginIdempotent(context.Background(), store.IdempotencyRecord{Scope: "tenant:acme",
		Key: "k-5", BodyHash: sha256Hex(mustJSON(t, body)), CreatedAt: time.Now().Add(-3 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	e.must(200, "POST", "/commands/add-messages", key, mustJSON(t, body), "Idempotency-Key", "k-5")
}
