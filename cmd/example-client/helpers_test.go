package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/pkg/client"
)

// proxyDouble is a real HTTP server on loopback playing the proxy's side of
// add-messages and run-now: it records what it got and answers as told. It
// is used only for the client's own unit tests; TestEndToEnd runs the real proxy.
type proxyDouble struct {
	srv *httptest.Server

	mu       sync.Mutex
	batches  []client.AddMessagesRequest
	tokens   []string
	runNows  int
	respond  func(req client.AddMessagesRequest) (int, any) // nil: accept everything
	received chan struct{}                                  // signalled after each add-messages
}

func newProxyDouble(t *testing.T) *proxyDouble {
	t.Helper()
	p := &proxyDouble{received: make(chan struct{}, 100)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /commands/add-messages", func(w http.ResponseWriter, r *http.Request) {
		var req client.AddMessagesRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": err.Error()})
			return
		}
		p.mu.Lock()
		p.batches = append(p.batches, req)
		p.tokens = append(p.tokens, r.Header.Get("X-API-Token"))
		respond := p.respond
		p.mu.Unlock()
		status, body := http.StatusOK, any(map[string]any{"ok": true, "queued": len(req.Messages), "rejected": []any{}})
		if respond != nil {
			status, body = respond(req)
		}
		writeJSON(w, status, body)
		select {
		case p.received <- struct{}{}:
		default:
		}
	})
	mux.HandleFunc("POST /commands/run-now", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.runNows++
		p.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"ok": true})
	})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *proxyDouble) setRespond(f func(client.AddMessagesRequest) (int, any)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.respond = f
}

// submittedIDs returns every message id the double received, in order.
func (p *proxyDouble) submittedIDs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ids []string
	for _, b := range p.batches {
		for _, m := range b.Messages {
			ids = append(ids, m.ID)
		}
	}
	return ids
}

func (p *proxyDouble) runNowCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.runNows
}

// closedURL is an http URL on a loopback port nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr
}

func testConfig(t *testing.T, proxyURL string) config {
	t.Helper()
	return config{
		ServerHost:     "127.0.0.1",
		MailServiceURL: proxyURL,
		APIToken:       "test-token",
		TenantID:       "demo",
		RecipientEmail: "rcpt@example.org",
		SenderEmail:    "sender@example.com",
		SenderName:     "Example Sender",
		AccountID:      "smtp-main",
		DatabasePath:   filepath.Join(t.TempDir(), "example_client.db"),
	}
}

// testApp is the example client's real handler over a real SQLite file,
// served by a real HTTP server on loopback.
type testApp struct {
	app *app
	srv *httptest.Server
}

func newTestApp(t *testing.T, cfg config) *testApp {
	t.Helper()
	ob, err := openOutbox(context.Background(), cfg.DatabasePath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ob.Close(); err != nil {
			t.Errorf("close outbox: %v", err)
		}
	})
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	a := newApp(cfg, ob, client.New(cfg.MailServiceURL, cfg.APIToken, client.WithTimeout(10*time.Second)), log)
	srv := httptest.NewServer(a.routes())
	t.Cleanup(srv.Close)
	return &testApp{app: a, srv: srv}
}

// testWriter sends log output to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// call sends a request and decodes the JSON answer into a generic map.
func call(t *testing.T, method, url string, body []byte, header http.Header) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: answer is not a JSON object: %s", method, url, raw)
	}
	return resp.StatusCode, out
}

func (ta *testApp) stats(t *testing.T) statistics {
	t.Helper()
	return fetchStats(t, ta.srv.URL)
}

func fetchStats(t *testing.T, baseURL string) statistics {
	t.Helper()
	resp, err := http.Get(baseURL + "/stats")
	if err != nil {
		t.Fatalf("GET /stats: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		Status     string     `json:"status"`
		Statistics statistics `json:"statistics"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Status != "success" {
		t.Fatalf("GET /stats: %v, status %q", err, body.Status)
	}
	return body.Statistics
}

// sendTest posts the test app's /send-test-email.
func (ta *testApp) sendTest(t *testing.T, query string) (int, map[string]any, []string) {
	t.Helper()
	return sendTestEmail(t, ta.srv.URL, query)
}

// sendTestEmail posts baseURL/send-test-email and returns status, body and the new ids.
func sendTestEmail(t *testing.T, baseURL, query string) (int, map[string]any, []string) {
	t.Helper()
	status, body := call(t, http.MethodPost, baseURL+"/send-test-email"+query, nil, nil)
	var ids []string
	if list, ok := body["messages"].([]any); ok {
		for _, v := range list {
			ids = append(ids, v.(string))
		}
	}
	return status, body, ids
}

func (ta *testApp) row(t *testing.T, id string) email {
	t.Helper()
	e, err := ta.app.outbox.get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// waitFor polls cond every 10 ms until it holds or the deadline passes.
func waitFor(t *testing.T, what string, deadline time.Duration, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %s waiting for %s", deadline, what)
		}
		<-tick.C
	}
}
