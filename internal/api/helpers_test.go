package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/internal/api"
	"github.com/mailproxy/mailproxy/internal/metrics"
	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/store/sqlite"
)

const adminToken = "test-admin-token-0123456789abcdefghijklmnop"

// env is one API over a real SQLite store, served on loopback.
type env struct {
	t       *testing.T
	st      *sqlite.Store
	srv     *httptest.Server
	metrics *metrics.Metrics
	client  *http.Client
	dbPath  string

	mu     sync.Mutex
	wakes  int
	runNow []string
}

type envOption func(*api.Deps, *sqlite.Options)

func testOptions() api.Options {
	return api.Options{
		MaxEnqueueBatch: 1000, MaxRequestBytes: 1 << 20, DefaultPriority: "2",
		ReportRetention: 7 * 24 * time.Hour, SyncInterval: 300 * time.Second,
		SchedulerActive: true, ReportLoopRuns: true, InstanceName: "mail-proxy",
	}
}

func setup(t testing.TB, opts ...envOption) *env {
	t.Helper()
	ctx := context.Background()
	sopts := sqlite.Options{}
	var logOut io.Writer = io.Discard
	if tt, ok := t.(*testing.T); ok {
		lw := &testLogWriter{w: tt.Output()}
		t.Cleanup(lw.close)
		logOut = lw
	}
	deps := api.Deps{Options: testOptions(), AdminToken: adminToken, Version: "test",
		Logger: slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	for _, o := range opts {
		o(&deps, &sopts)
	}
	dbPath := filepath.Join(t.TempDir(), "t.db")
	st, err := sqlite.Open(ctx, dbPath, sopts)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	e := &env{st: st, metrics: metrics.New(), dbPath: dbPath}
	if tt, ok := t.(*testing.T); ok {
		e.t = tt
	}
	deps.Store, deps.Metrics = st, e.metrics
	if deps.QueueChanged == nil { // gmp_pending_messages' counter, as proxy runs it
		pending := e.metrics.NewPendingCounter(metrics.PendingOptions{Count: st.CountUnprocessed})
		pctx, stop := context.WithCancel(ctx)
		stopped := make(chan struct{})
		go func() { defer close(stopped); _ = pending.Run(pctx) }()
		t.Cleanup(func() { stop(); <-stopped })
		deps.QueueChanged = pending.Wake
	}
	if deps.Wake == nil {
		deps.Wake = func() { e.mu.Lock(); e.wakes++; e.mu.Unlock() }
	}
	if deps.RunNow == nil {
		deps.RunNow = func(id string) { e.mu.Lock(); e.runNow = append(e.runNow, id); e.mu.Unlock() }
	}
	h, err := api.New(deps)
	if err != nil {
		t.Fatalf("api.New: %v", err)
	}
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	e.client = e.srv.Client()
	return e
}

// resp is an answer as the client sees it.
type resp struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a generic value.
func (r resp) JSON(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v: %s", err, r.Body)
	}
	return m
}

// Detail is the body's detail as a string ("" if not a string).
func (r resp) Detail(t *testing.T) string {
	t.Helper()
	s, _ := r.JSON(t)["detail"].(string)
	return s
}

// Issues is a 422 body's entries.
func (r resp) Issues(t *testing.T) []map[string]any {
	t.Helper()
	var b struct {
		Detail []map[string]any `json:"detail"`
	}
	if err := json.Unmarshal(r.Body, &b); err != nil {
		t.Fatalf("not a 422 body: %v: %s", err, r.Body)
	}
	return b.Detail
}

// do sends a request; body is a string (sent verbatim), nil, or any value
// (sent as JSON). token "" sends none.
func (e *env) do(method, path, token string, body any, hdr ...string) resp {
	e.t.Helper()
	return e.doT(e.t, method, path, token, body, hdr...)
}

func (e *env) doT(t testing.TB, method, path, token string, body any, hdr ...string) resp {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	if token != "" {
		req.Header.Set("X-API-Token", token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp{Status: res.StatusCode, Header: res.Header, Body: raw}
}

// must sends a request and fails unless the status is want.
func (e *env) must(want int, method, path, token string, body any, hdr ...string) resp {
	e.t.Helper()
	r := e.do(method, path, token, body, hdr...)
	if r.Status != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, want, r.Body)
	}
	return r
}

// tenant creates a tenant and returns its API key.
func (e *env) tenant(id string) string {
	e.t.Helper()
	r := e.must(200, "POST", "/tenant", adminToken, map[string]any{"id": id, "name": "Tenant " + id})
	key, _ := r.JSON(e.t)["api_key"].(string)
	if len(key) != 43 {
		e.t.Fatalf("api_key %q: want 43 characters", key)
	}
	return key
}

// account creates an SMTP account for a tenant.
func (e *env) account(tenantID, id string) {
	e.t.Helper()
	e.must(200, "POST", "/account", adminToken, map[string]any{"id": id, "tenant_id": tenantID,
		"host": "127.0.0.1", "port": 2525})
}

// msg is a valid add-messages item.
func msg(id, tenantID, accountID string) map[string]any {
	m := map[string]any{"id": id, "account_id": accountID, "from": "Sender <sender@example.com>",
		"to": "rcpt@example.com", "subject": "Hello " + id, "body": "Body of " + id}
	if tenantID != "" {
		m["tenant_id"] = tenantID
	}
	return m
}

func batch(msgs ...map[string]any) map[string]any {
	list := make([]any, len(msgs))
	for i, m := range msgs {
		list[i] = m
	}
	return map[string]any{"messages": list}
}

// messages lists a tenant's messages by id.
func (e *env) messages(tenantID string, query string) map[string]map[string]any {
	e.t.Helper()
	r := e.must(200, "GET", "/messages?tenant_id="+tenantID+query, adminToken, nil)
	var b struct {
		Messages []map[string]any `json:"messages"`
	}
	if err := json.Unmarshal(r.Body, &b); err != nil {
		e.t.Fatalf("messages: %v", err)
	}
	out := map[string]map[string]any{}
	for _, m := range b.Messages {
		out[m["id"].(string)] = m
	}
	return out
}

// deliver claims every due message of the store and records the outcome,
// as the dispatcher would.
func (e *env) deliver(kind store.OutcomeKind, desc string) int {
	e.t.Helper()
	ctx := context.Background()
	now := time.Now()
	claims, err := e.st.Claim(ctx, store.ClaimRequest{Owner: "test", Now: now, Lease: time.Minute, Limit: 1000, PerAccount: 1000})
	if err != nil {
		e.t.Fatalf("claim: %v", err)
	}
	for _, c := range claims {
		o := store.Outcome{MessagePK: c.Message.PK, Owner: "test", Attempt: c.Message.Attempt, Kind: kind,
			At: now, Description: desc}
		if err := e.st.RecordOutcome(ctx, o); err != nil {
			e.t.Fatalf("record outcome: %v", err)
		}
	}
	return len(claims)
}

func (e *env) wakeCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.wakes
}

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type (
	apiDeps       = api.Deps
	sqliteOptions = sqlite.Options
)

func sha256Hex(b []byte) string {
	d := sha256.Sum256(b)
	return hex.EncodeToString(d[:])
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sortStrings(s []string) { sort.Strings(s) }

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// testLogWriter forwards to the test's output until the test ends (a
// background count may log after that).
type testLogWriter struct {
	mu     sync.Mutex
	w      io.Writer
	closed bool
}

func (l *testLogWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return len(p), nil
	}
	return l.w.Write(p)
}

func (l *testLogWriter) close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
}
