package report

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
)

func TestItemJSON(t *testing.T) {
	t.Parallel()
	at := time.Unix(1767225660, 500_000_000)
	tests := []struct {
		name string
		ev   store.Event
		want string
	}{
		{"sent", store.Event{ID: 1, MessageID: "m1", Type: store.EventSent, At: at},
			`{"id":"m1","sent_ts":1767225660}`},
		{"error", store.Event{ID: 2, MessageID: "m2", Type: store.EventError, At: at,
			Description: "5.1.1 user unknown (SMTP 550)", Metadata: json.RawMessage(`{"smtp_code":550}`)},
			`{"id":"m2","error_ts":1767225660,"error":"5.1.1 user unknown (SMTP 550)"}`},
		{"deferred reports when it happened, not the retry time", store.Event{ID: 3, MessageID: "m3",
			Type: store.EventDeferred, At: at, Description: "rate_limit",
			Metadata: json.RawMessage(`{"deferred_ts":1767229260,"retry_count":1}`)},
			`{"id":"m3","deferred_ts":1767225660,"deferred_reason":"rate_limit"}`},
		{"bounce from metadata", store.Event{ID: 4, MessageID: "m4", Type: store.EventBounce, At: at,
			Description: "ignored",
			Metadata:    json.RawMessage(`{"bounce_type":"hard","bounce_code":"5.1.1","bounce_reason":"no such user"}`)},
			`{"id":"m4","bounce_ts":1767225660,"bounce_type":"hard","bounce_code":"5.1.1","bounce_reason":"no such user"}`},
		{"bounce without metadata", store.Event{ID: 5, MessageID: "m5", Type: store.EventBounce, At: at,
			Description: "mailbox full"},
			`{"id":"m5","bounce_ts":1767225660,"bounce_type":null,"bounce_code":null,"bounce_reason":"mailbox full"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			it, err := item(tt.ev)
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.Marshal(it)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("item:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
	if _, err := item(store.Event{ID: 9, Type: "opened"}); err == nil {
		t.Error("an unknown event type gave no error")
	}
}

func TestParseAnswer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		body     string
		rejected bool
		queued   int
		nsa      int64 // Unix ms; 0 = none
		errIDs   []string
		notFound []string
	}{
		{name: "empty body", body: ""},
		{name: "not JSON", body: "<html>thanks</html>"},
		{name: "JSON array", body: `[1,2]`},
		{name: "ok true", body: `{"ok":true}`},
		{name: "ok false", body: `{"ok":false,"queued":4}`, rejected: true},
		{name: "ok absent, fields", body: `{"queued":3,"next_sync_after":1767229200,"error":["a"],"not_found":["b"]}`,
			queued: 3, nsa: 1767229200000, errIDs: []string{"a"}, notFound: []string{"b"}},
		{name: "float next_sync_after", body: `{"ok":true,"next_sync_after":1767229200.25}`, nsa: 1767229200250},
		{name: "null next_sync_after", body: `{"ok":true,"next_sync_after":null}`},
		{name: "malformed fields are ignored", body: `{"ok":"no","queued":"3","error":"a","next_sync_after":"soon"}`},
		{name: "negative queued", body: `{"queued":-2}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, rejected := parseAnswer([]byte(tt.body))
			if rejected != tt.rejected {
				t.Fatalf("rejected = %v, want %v", rejected, tt.rejected)
			}
			if a.Queued != tt.queued {
				t.Errorf("queued = %d, want %d", a.Queued, tt.queued)
			}
			switch {
			case tt.nsa == 0 && a.NextSyncAfter != nil:
				t.Errorf("next_sync_after = %v, want none", a.NextSyncAfter)
			case tt.nsa != 0 && (a.NextSyncAfter == nil || a.NextSyncAfter.UnixMilli() != tt.nsa):
				t.Errorf("next_sync_after = %v, want %d ms", a.NextSyncAfter, tt.nsa)
			}
			if len(a.Error) != len(tt.errIDs) {
				t.Errorf("error ids = %v, want %v", a.Error, tt.errIDs)
			}
			for _, id := range tt.errIDs {
				if !a.Error[id] {
					t.Errorf("error ids = %v, want %v", a.Error, tt.errIDs)
				}
			}
			if len(a.NotFound) != len(tt.notFound) {
				t.Errorf("not_found = %v, want %v", a.NotFound, tt.notFound)
			}
		})
	}
}

func TestBackoffSchedule(t *testing.T) {
	t.Parallel()
	l := New(nil, Options{SyncInterval: 300 * time.Second})
	want := []time.Duration{5 * time.Second, 15 * time.Second, 60 * time.Second, 300 * time.Second, 300 * time.Second}
	for i, w := range want {
		if got := l.backoff(i + 1); got != w {
			t.Errorf("backoff after failure %d = %s, want %s", i+1, got, w)
		}
	}
}

func TestTargetURL(t *testing.T) {
	t.Parallel()
	str := func(s string) *string { return &s }
	l := New(nil, Options{GlobalURL: "http://127.0.0.1:9/global", GlobalUser: "u", GlobalPassword: "p"})
	tests := []struct {
		name   string
		tenant store.Tenant
		url    string
		global bool
		auth   string
	}{
		{"default path, trailing slash removed", store.Tenant{ClientBaseURL: str("http://127.0.0.1:8080/app/")},
			"http://127.0.0.1:8080/app/mail-proxy/sync", false, ""},
		{"own path", store.Tenant{ClientBaseURL: str("http://127.0.0.1:8080"), ClientSyncPath: str("/hooks/sync"),
			ClientAuth: &store.ClientAuth{Method: "bearer", Token: "tok"}},
			"http://127.0.0.1:8080/hooks/sync", false, "Bearer tok"},
		{"basic", store.Tenant{ClientBaseURL: str("http://127.0.0.1:8080"),
			ClientAuth: &store.ClientAuth{Method: "basic", User: "user", Password: "pass"}},
			"http://127.0.0.1:8080/mail-proxy/sync", false, "Basic dXNlcjpwYXNz"},
		{"bearer without token sends none", store.Tenant{ClientBaseURL: str("http://127.0.0.1:8080"),
			ClientAuth: &store.ClientAuth{Method: "bearer"}}, "http://127.0.0.1:8080/mail-proxy/sync", false, ""},
		{"global with basic", store.Tenant{}, "http://127.0.0.1:9/global", true, "Basic dTpw"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tg, ok := l.targetFor(tt.tenant, t0)
			if !ok {
				t.Fatal("no target")
			}
			if tg.URL != tt.url || tg.Global != tt.global {
				t.Errorf("target = %s global=%v, want %s global=%v", tg.URL, tg.Global, tt.url, tt.global)
			}
			h := http.Header{}
			if tg.Auth != nil {
				tg.Auth(h)
			}
			if got := h.Get("Authorization"); got != tt.auth {
				t.Errorf("Authorization = %q, want %q", got, tt.auth)
			}
		})
	}
	if _, ok := New(nil, Options{}).targetFor(store.Tenant{}, t0); ok {
		t.Error("a tenant without client_base_url and no global URL got a target")
	}
}

func TestHeartbeatDue(t *testing.T) {
	t.Parallel()
	url := "http://127.0.0.1:1"
	own := store.Tenant{ID: "t", Active: true, ClientBaseURL: &url}
	at := func(d time.Duration) *time.Time { v := t0.Add(d); return &v }
	tests := []struct {
		name   string
		tenant store.Tenant
		state  store.SyncState
		want   bool
	}{
		{"never synced", own, store.SyncState{}, true},
		{"inactive", store.Tenant{ClientBaseURL: &url}, store.SyncState{}, false},
		{"no own URL", store.Tenant{Active: true}, store.SyncState{}, false},
		{"interval not over", own, store.SyncState{LastSyncAt: at(-299 * time.Second)}, false},
		{"interval over", own, store.SyncState{LastSyncAt: at(-300 * time.Second)}, true},
		{"in DND", own, store.SyncState{LastSyncAt: at(-time.Hour), DNDUntil: at(time.Second)}, false},
		{"DND ends exactly now", own, store.SyncState{LastSyncAt: at(-time.Second), DNDUntil: at(0)}, true},
		{"backoff", own, store.SyncState{NextRetryAt: at(time.Second)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := HeartbeatDue(tt.tenant, tt.state, 300*time.Second, t0); got != tt.want {
				t.Errorf("HeartbeatDue = %v, want %v", got, tt.want)
			}
		})
	}
}
