package submit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mailproxy/mailproxy/internal/config"
	"github.com/mailproxy/mailproxy/internal/proxy"
	"github.com/mailproxy/mailproxy/internal/testsmtp"
)

const adminToken = "submit-test-admin-token"

// instance is a whole mail-proxy (proxy.Run) with its submission listener,
// a real upstream SMTP server and a real client endpoint for reports.
type instance struct {
	t        testing.TB
	api      string
	smtp     string // plain listener (STARTTLS when configured)
	smtps    string // implicit-TLS listener, when configured
	upstream *testsmtp.Server
	reports  *reportSink
	key      string // tenant acme's API key; its account is "main"
	otherKey string // tenant other's key; its account is "theirs"
}

// start runs an instance; env overrides the GMP_* settings.
func start(t testing.TB, env map[string]string) *instance {
	t.Helper()
	up := testsmtp.Start(t, testsmtp.Options{SMTPUTF8: true})
	sink := newReportSink(t)
	vars := map[string]string{
		"GMP_HOST": "127.0.0.1", "GMP_PORT": "0", "GMP_API_TOKEN": adminToken,
		"GMP_DB_PATH":     filepath.Join(t.TempDir(), "mail.db"),
		"GMP_SMTP_LISTEN": "127.0.0.1:0", "GMP_SEND_LOOP_INTERVAL": "0.05", "GMP_SHUTDOWN_TIMEOUT": "5",
		"GMP_LOG_DELIVERY_ACTIVITY": "true",
	}
	for k, v := range env {
		vars[k] = v
	}
	cfg, _, err := config.Load(func(k string) string { return vars[k] }, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	level := slog.LevelInfo
	if _, ok := t.(*testing.B); ok {
		level = slog.LevelWarn
	}
	lw := &testWriter{t: t}
	t.Cleanup(lw.close) // runs last: timers of the stopped instance may still log
	logs := slog.New(slog.NewTextHandler(lw, &slog.HandlerOptions{Level: level}))
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	smtpReady := make(chan []net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- proxy.Run(ctx, cfg, proxy.Options{Version: "test", Logger: logs,
			Ready: func(a net.Addr) { ready <- a }, SubmissionReady: func(a []net.Addr) { smtpReady <- a }})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("proxy.Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("proxy.Run did not stop within 30 s")
		}
	})
	in := &instance{t: t, upstream: up, reports: sink}
	select {
	case a := <-ready:
		in.api = "http://" + a.String()
	case err := <-done:
		t.Fatalf("proxy.Run ended: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("proxy.Run did not listen within 60 s")
	}
	if cfg.SMTPListen != "" {
		addrs := <-smtpReady
		in.smtp = addrs[0].String()
		if len(addrs) > 1 {
			in.smtps = addrs[1].String()
		}
	}
	in.key = in.tenant("acme", sink.srv.URL)
	in.account("acme", "main", up)
	in.otherKey = in.tenant("other", sink.srv.URL)
	in.account("other", "theirs", up)
	return in
}

func (in *instance) tenant(id, url string) string {
	var out struct {
		APIKey string `json:"api_key"`
	}
	in.call("POST", "/tenant", map[string]any{"id": id, "client_base_url": url}, &out)
	if out.APIKey == "" {
		in.t.Fatalf("tenant %s: no api_key", id)
	}
	return out.APIKey
}

func (in *instance) account(tenant, id string, up *testsmtp.Server) {
	in.call("POST", "/account", map[string]any{"id": id, "tenant_id": tenant, "host": up.Host(), "port": up.Port(),
		"use_tls": false}, nil)
}

// call is one admin API request that must answer 200.
func (in *instance) call(method, path string, body, out any) {
	in.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, in.api+path, bytes.NewReader(b))
	req.Header.Set("X-API-Token", adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		in.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		in.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			in.t.Fatal(err)
		}
	}
}

// metric returns the value of one series from /metrics ("" if absent).
func (in *instance) metric(series string) string {
	in.t.Helper()
	resp, err := http.Get(in.api + "/metrics")
	if err != nil {
		in.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// dial opens an SMTP client session, EHLO done.
func (in *instance) dial(t testing.TB) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(in.smtp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	return c
}

// login is a dialled session authenticated with AUTH PLAIN.
func (in *instance) login(t testing.TB, user, password string) *smtp.Client {
	t.Helper()
	c := in.dial(t)
	if err := c.Auth(sasl.NewPlainClient("", user, password)); err != nil {
		t.Fatalf("AUTH %s: %v", user, err)
	}
	return c
}

// send runs one transaction; it returns the reply text to the end of DATA.
func send(c *smtp.Client, from string, rcpts []string, data string) (string, error) {
	if err := c.Mail(from, nil); err != nil {
		return "", fmt.Errorf("MAIL: %w", err)
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			return "", fmt.Errorf("RCPT: %w", err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return "", fmt.Errorf("DATA: %w", err)
	}
	if _, err := io.WriteString(w, data); err != nil {
		return "", err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", err
	}
	return resp.StatusText, nil
}

// reportSink is the tenants' client endpoint: it records delivery reports.
type reportSink struct {
	srv   *httptest.Server
	mu    sync.Mutex
	items []map[string]any
}

func newReportSink(t testing.TB) *reportSink {
	s := &reportSink{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Items []map[string]any `json:"delivery_report"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		s.mu.Lock()
		s.items = append(s.items, body.Items...)
		s.mu.Unlock()
		_, _ = w.Write([]byte(`{"ok":true,"queued":0}`))
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// item returns the first report item for id carrying key, or nil.
func (s *reportSink) item(id, key string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, it := range s.items {
		if it["id"] == id && it[key] != nil {
			return it
		}
	}
	return nil
}

// eventually polls cond every 20 ms for up to 30 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testWriter sends the instance's log to the test log until the test ends.
type testWriter struct {
	t      testing.TB
	mu     sync.Mutex
	closed bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}
