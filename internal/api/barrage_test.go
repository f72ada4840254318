package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
)

// TestBadInputBarrage throws malformed and hostile requests at the API; each
// gets its exact status and a detail naming the problem, and afterwards the
// service still accepts a valid message.
func TestBadInputBarrage(t *testing.T) {
	e := setup(t)
	key := e.tenant("acme")
	e.account("acme", "smtp")
	valid := `{"id":"v","account_id":"smtp","from":"a@example.com","to":"b@example.com","subject":"s"}`
	var many strings.Builder
	many.WriteString(`{"messages":[`)
	for i := range 1001 {
		if i > 0 {
			many.WriteString(",")
		}
		fmt.Fprintf(&many, `{"id":"m%d","account_id":"smtp","from":"a@example.com","to":"b@example.com","subject":"s"}`, i)
	}
	many.WriteString("]}")
	huge := `{"messages":[{"id":"x","account_id":"smtp","from":"a@example.com","to":"b@example.com","subject":"s","body":"` +
		strings.Repeat("a", 1<<20+10) + `"}]}`

	cases := []struct {
		name, method, path, token, body string
		status                          int
		detail                          string // exact string detail, or
		issue                           string // first 422 entry's "type loc..." (space separated)
	}{
		{"malformed JSON", "POST", "/commands/add-messages", key, `{"messages":[{"id":`, 422, "", "json_invalid body 19"},
		{"trailing garbage", "POST", "/commands/add-messages", key, `{"messages":[]} x`, 422, "", "json_invalid body 16"},
		{"wrong type", "POST", "/commands/add-messages", key, `{"messages":[{"id":"a","account_id":"smtp","from":"a@example.com","to":"b@example.com","subject":7}]}`, 422, "", "string_type body messages 0 subject"},
		{"missing required", "POST", "/commands/add-messages", key, `{"messages":[{"id":"a","from":"a@example.com","to":"b@example.com","subject":"s"}]}`, 422, "", "missing body messages 0 account_id"},
		{"unknown attachment key", "POST", "/commands/add-messages", key, `{"messages":[{"id":"a","account_id":"smtp","from":"a@example.com","to":"b@example.com","subject":"s","attachments":[{"filename":"f","storage_path":"p","evil":1}]}]}`, 422, "", "extra_forbidden body messages 0 attachments 0 evil"},
		{"unknown priority", "POST", "/commands/add-messages", key, `{"messages":[{"id":"a","account_id":"smtp","from":"a@example.com","to":"b@example.com","subject":"s","priority":"asap"}]}`, 422, "", "literal_error body messages 0 priority"},
		{"fractional deferred_ts", "POST", "/commands/add-messages", key, `{"messages":[{"id":"a","account_id":"smtp","from":"a@example.com","to":"b@example.com","subject":"s","deferred_ts":17.25}]}`, 422, "", "int_from_float body messages 0 deferred_ts"},
		{"too many messages", "POST", "/commands/add-messages", key, many.String(), 400, "", ""},
		{"body over the limit", "POST", "/commands/add-messages", key, huge, 413, "Request body too large", ""},
		{"missing token", "POST", "/commands/add-messages", "", `{"messages":[` + valid + `]}`, 401, "Invalid or missing API token", ""},
		{"wrong token", "POST", "/commands/add-messages", "nope", `{"messages":[` + valid + `]}`, 401, "Invalid or missing API token", ""},
		{"unknown route", "GET", "/commands/nothing", key, "", 404, "Not Found", ""},
		{"wrong method", "GET", "/commands/add-messages", key, "", 405, "Method Not Allowed", ""},
		{"wrong method on tenant", "PATCH", "/tenant/acme", key, "", 405, "Method Not Allowed", ""},
		{"bad query integer", "GET", "/messages?limit=ten", key, "", 422, "", "int_parsing query limit"},
		{"bad query boolean", "GET", "/messages?active_only=maybe", key, "", 422, "", "bool_parsing query active_only"},
		{"negative offset", "GET", "/messages?offset=-1", key, "", 422, "", "greater_than_equal query offset"},
		{"account port out of range", "POST", "/account", key, `{"id":"x","host":"h","port":70000}`, 422, "", "less_than_equal body port"},
		{"account bad limit_behavior", "POST", "/account", key, `{"id":"x","host":"h","port":25,"limit_behavior":"drop"}`, 422, "", "literal_error body limit_behavior"},
		{"account missing host", "POST", "/account", key, `{"id":"new","port":25}`, 422, "", "missing body host"},
		{"tenant bad client_auth method", "POST", "/tenant", adminToken, `{"id":"x","client_auth":{"method":"digest"}}`, 422, "", "literal_error body client_auth method"},
		{"tenant bad URL", "PUT", "/tenant/acme", key, `{"client_base_url":"ftp://x"}`, 422, "", "value_error body client_base_url"},
		{"delete ids not a list", "POST", "/commands/delete-messages", key, `{"ids":"m1"}`, 422, "", "list_type body ids"},
		{"cleanup negative", "POST", "/commands/cleanup-messages", key, `{"older_than_seconds":-5}`, 422, "", "greater_than_equal body older_than_seconds"},
		{"unknown tenant", "GET", "/tenant/ghost", adminToken, "", 404, "Tenant 'ghost' not found", ""},
		{"suspend unknown tenant", "POST", "/commands/suspend?tenant_id=ghost", adminToken, "", 400, "tenant not found", ""},
		{"activate batch under full suspension", "POST", "/commands/activate?tenant_id=ghost&batch_code=b", adminToken, "", 400, "tenant not found or cannot activate single batch from full suspension", ""},
		{"delete unknown account", "DELETE", "/account/ghost", key, "", 400, "account not found or not owned by tenant", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var body any
			if tc.body != "" {
				body = tc.body
			}
			r := e.doT(t, tc.method, tc.path, tc.token, body)
			if r.Status != tc.status {
				t.Fatalf("status %d, want %d: %.300s", r.Status, tc.status, r.Body)
			}
			if ct := r.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			var b struct {
				Detail json.RawMessage `json:"detail"`
			}
			if err := json.Unmarshal(r.Body, &b); err != nil || len(b.Detail) == 0 {
				t.Fatalf("no detail: %v %.300s", err, r.Body)
			}
			if tc.detail != "" {
				var s string
				if json.Unmarshal(b.Detail, &s) != nil || s != tc.detail {
					t.Errorf("detail %s, want %q", b.Detail, tc.detail)
				}
			}
			if tc.issue != "" {
				var list []struct {
					Type string `json:"type"`
					Loc  []any  `json:"loc"`
					Msg  string `json:"msg"`
				}
				if err := json.Unmarshal(b.Detail, &list); err != nil || len(list) == 0 {
					t.Fatalf("detail is not a list of entries: %s", b.Detail)
				}
				got := list[0].Type
				for _, l := range list[0].Loc {
					got += " " + fmt.Sprint(l)
				}
				if got != tc.issue || list[0].Msg == "" {
					t.Errorf("first entry %q (%q), want %q; all: %s", got, list[0].Msg, tc.issue, b.Detail)
				}
			}
		})
	}
	if n := len(e.messages("acme", "")); n != 0 {
		t.Fatalf("%d messages stored by the barrage", n)
	}
	r := e.must(200, "POST", "/commands/add-messages", key, `{"messages":[`+valid+`]}`)
	if string(r.Body) != `{"ok":true,"queued":1,"rejected":[]}` {
		t.Errorf("valid message after the barrage: %s", r.Body)
	}
}

func TestBatchLimitDetail(t *testing.T) {
	e := setup(t)
	key := e.tenant("acme")
	var ms []map[string]any
	for i := range 1001 {
		ms = append(ms, msg(fmt.Sprint("m", i), "", "smtp"))
	}
	r := e.must(400, "POST", "/commands/add-messages", key, batch(ms...))
	if string(r.Body) != `{"detail":{"error":"Cannot enqueue more than 1000 messages at once","rejected":null}}` {
		t.Errorf("body %s", r.Body)
	}
}

func TestPanicBecomesJSON500(t *testing.T) {
	e := setup(t, func(d *apiDeps, _ *sqliteOptions) {
		d.Ready = func(context.Context) error { panic("boom") }
	})
	r := e.must(500, "GET", "/ready", "", nil)
	if r.Detail(t) != "Internal server error" {
		t.Errorf("body %s", r.Body)
	}
	e.must(200, "GET", "/health", "", nil)
}

func TestReady(t *testing.T) {
	down := errors.New("store unreachable")
	var fail atomic.Bool
	e := setup(t, func(d *apiDeps, _ *sqliteOptions) {
		d.Ready = func(context.Context) error {
			if fail.Load() {
				return down
			}
			return nil
		}
	})
	if r := e.must(200, "GET", "/ready", "", nil); string(r.Body) != `{"status":"ready"}` {
		t.Errorf("ready: %s", r.Body)
	}
	fail.Store(true)
	if r := e.must(503, "GET", "/ready", "", nil); string(r.Body) != `{"status":"unavailable","detail":"store unreachable"}` {
		t.Errorf("not ready: %s", r.Body)
	}
}
