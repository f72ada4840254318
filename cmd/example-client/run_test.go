package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer collects a writer's output for inspection while run writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// process is one in-process run of the program.
type process struct {
	url    string
	stderr *lockedBuffer
	cancel context.CancelFunc
	done   chan int
}

// startRun runs the program as main would, with a config file and
// environment, and waits for its listening line on stdout.
func startRun(t *testing.T, configText string, env map[string]string) *process {
	t.Helper()
	path := writeConfigFile(t, configText)
	ctx, cancel := context.WithCancel(context.Background())
	outR, outW := io.Pipe()
	p := &process{stderr: &lockedBuffer{}, cancel: cancel, done: make(chan int, 1)}
	go func() {
		code := run(ctx, []string{"--config", path}, envMap(env), outW, p.stderr)
		outW.Close()
		p.done <- code
	}()
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "example-client listening on "); ok {
				urls <- u
			}
		}
	}()
	select {
	case p.url = <-urls:
	case code := <-p.done:
		t.Fatalf("run exited with %d before listening; stderr:\n%s", code, p.stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("run did not listen; stderr:\n%s", p.stderr)
	}
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop cancels the run (as SIGTERM does) and returns its exit code.
func (p *process) stop(t *testing.T) int {
	t.Helper()
	p.cancel()
	select {
	case code := <-p.done:
		p.done <- code // keep it for a second stop
		return code
	case <-time.After(30 * time.Second):
		t.Fatalf("run did not stop; stderr:\n%s", p.stderr)
		return -1
	}
}

func runConfig(dbPath, proxyURL string) string {
	return fmt.Sprintf(`[server]
host = 127.0.0.1
port = 0
[mail_service]
url = %s
api_token = test-token
tenant_id = demo
[test]
recipient_email = rcpt@example.org
account_id = smtp-main
[database]
path = %s
`, proxyURL, dbPath)
}

func TestRunResubmitsPendingRowsAfterRestart(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "outbox.db")

	// First life: the proxy is down, the rows stay pending.
	first := startRun(t, runConfig(db, closedURL(t)), nil)
	status, body := call(t, http.MethodPost, first.url+"/send-test-email?count=3", nil, nil)
	if status != http.StatusServiceUnavailable {
		t.Fatalf("send with proxy down: %d %v", status, body)
	}
	var ids []string
	_, list := call(t, http.MethodGet, first.url+"/messages", nil, nil)
	for _, m := range list["messages"].([]any) {
		ids = append(ids, m.(map[string]any)["id"].(string))
	}
	if len(ids) != 3 {
		t.Fatalf("pending rows = %v", list)
	}
	if code := first.stop(t); code != 0 {
		t.Fatalf("first run exit code %d; stderr:\n%s", code, first.stderr)
	}

	// Second life: the proxy is up; startup hands the rows over unprompted.
	proxy := newProxyDouble(t)
	second := startRun(t, runConfig(db, proxy.srv.URL), map[string]string{"EXAMPLE_MAIL_SERVICE_API_TOKEN": "env-token"})
	waitFor(t, "the restarted client to resubmit 3 rows", 30*time.Second, func() bool {
		return len(proxy.submittedIDs()) >= 3
	})
	got := proxy.submittedIDs()
	if !slices.Equal(got, ids) {
		t.Errorf("resubmitted %v, want exactly the pending %v", got, ids)
	}
	proxy.mu.Lock()
	token := proxy.tokens[0]
	proxy.mu.Unlock()
	if token != "env-token" {
		t.Errorf("X-API-Token = %q, want the environment override", token)
	}
	waitFor(t, "rows to become submitted", 30*time.Second, func() bool {
		return fetchStats(t, second.url) == statistics{Total: 3, Submitted: 3}
	})
	if code := second.stop(t); code != 0 {
		t.Errorf("second run exit code %d; stderr:\n%s", code, second.stderr)
	}
	if !strings.Contains(second.stderr.String(), "shutting down") {
		t.Errorf("no graceful shutdown logged:\n%s", second.stderr)
	}
}

func TestRunStartupErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"missing required key", []string{"--config", writeConfigFile(t, "[mail_service]\napi_token = t\n[test]\naccount_id = a\n")},
			"[test] recipient_email"},
		{"explicit missing file", []string{"--config", filepath.Join(t.TempDir(), "absent.ini")}, "absent.ini"},
		{"unknown flag", []string{"--bogus"}, "bogus"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr lockedBuffer
			code := run(context.Background(), tc.args, envMap(nil), &stdout, &stderr)
			if code != 2 || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want 2 naming %q", code, stderr.String(), tc.want)
			}
		})
	}
}
