package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/internal/testsmtp"
	"github.com/mailproxy/mailproxy/pkg/client"
)

// TestEndToEnd is the acceptance of example-client.md §4: the real
// example-client binary, the real mail-proxy binary (SQLite) and a real SMTP
// server; 20 emails become delivered, then with a permanent SMTP failure
// injected new emails become failed with the reason. The proxy signs its
// reports and the client verifies them.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs two binaries; skipped with -short")
	}
	ctx := context.Background()
	bin := t.TempDir()
	proxyBin := buildBinary(t, bin, "mail-proxy", "github.com/mailproxy/mailproxy/cmd/mail-proxy")
	clientBin := buildBinary(t, bin, "example-client", "github.com/mailproxy/mailproxy/cmd/example-client")

	smtpSrv := testsmtp.Start(t, testsmtp.Options{})

	const adminToken = "e2e-admin-token-0123456789"
	proxyAddr := freeAddr(t)
	proxyProc := startBinary(t, "mail-proxy", proxyBin, []string{"serve"}, []string{
		"GMP_DB_PATH=" + filepath.Join(t.TempDir(), "mail_service.db"),
		"GMP_HOST=127.0.0.1",
		"GMP_PORT=" + portOf(t, proxyAddr),
		"GMP_API_TOKEN=" + adminToken,
		"GMP_SEND_LOOP_INTERVAL=0.1",
		"GMP_SYNC_INTERVAL=1",
		// Secrets at rest encrypted with a key of this run, never the host's.
		"MAIL_PROXY_ENCRYPTION_KEY=" + testEncryptionKey(t),
	})
	proxyURL := "http://" + proxyAddr
	admin := client.New(proxyURL, adminToken, client.WithTimeout(30*time.Second))
	waitFor(t, "mail-proxy /health", 60*time.Second, func() bool {
		h, err := admin.Health(ctx)
		return err == nil && h.Status == "ok"
	})

	// The tenant, its key and signing secret, its SMTP account.
	tenantKey, err := admin.CreateTenant(ctx, client.Tenant{ID: "demo", Name: "Example client"})
	if err != nil || tenantKey == "" {
		t.Fatalf("POST /tenant: key %q, %v\n%s", tenantKey, err, proxyProc.logs())
	}
	secret, err := admin.CreateSigningSecret(ctx, "demo")
	if err != nil || !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("POST /tenant/demo/signing-secret: %q, %v", secret, err)
	}
	tenant := client.New(proxyURL, tenantKey, client.WithTimeout(30*time.Second))
	if err := tenant.UpsertAccount(ctx, client.Account{ID: "smtp-main", Host: smtpSrv.Host(), Port: smtpSrv.Port()}); err != nil {
		t.Fatalf("POST /account: %v", err)
	}

	// The example client, configured by file with one environment override,
	// talking to the proxy with the tenant's key.
	dbPath := filepath.Join(t.TempDir(), "example_client.db")
	cfgPath := filepath.Join(t.TempDir(), "example_config.ini")
	cfgText := fmt.Sprintf(`[server]
host = 127.0.0.1
port = 0
[mail_service]
url = %s
api_token = %s
tenant_id = demo
signing_secret = %s
[test]
recipient_email = placeholder@example.org
sender_email = sender@example.com
sender_name = E2E Sender
account_id = smtp-main
[database]
path = %s
`, proxyURL, tenantKey, secret, dbPath)
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	const recipient = "rcpt@example.org"
	clientProc := startBinary(t, "example-client", clientBin, []string{"--config", cfgPath},
		[]string{"EXAMPLE_TEST_RECIPIENT_EMAIL=" + recipient})
	clientURL := clientProc.waitStdout(t, "example-client listening on ", 60*time.Second)

	// Only now is the client's address known: point the tenant's reports at it.
	if err := admin.UpdateTenant(ctx, "demo", client.TenantUpdate{ClientBaseURL: &clientURL}); err != nil {
		t.Fatalf("PUT /tenant/demo: %v", err)
	}

	// 20 emails through client, proxy and SMTP server.
	status, body := call(t, http.MethodPost, clientURL+"/send-test-email?count=20&subject=E2E%20delivery", nil, nil)
	if status != http.StatusOK || body["message"] != "Successfully queued 20 test email(s)" {
		t.Fatalf("send-test-email: %d %v\nproxy:\n%s\nclient:\n%s", status, body, proxyProc.logs(), clientProc.logs())
	}
	waitForStats(t, clientURL, "20 delivered", func(s statistics) bool { return s.Delivered == 20 }, proxyProc, clientProc)
	if s := fetchStats(t, clientURL); s != (statistics{Total: 20, Delivered: 20}) {
		t.Errorf("client stats = %+v, want 20 delivered", s)
	}
	if n := smtpSrv.Count(); n != 20 {
		t.Errorf("SMTP server received %d messages, want 20", n)
	}
	for i, m := range smtpSrv.Messages() {
		data := string(m.Data)
		if len(m.Rcpts) != 1 || m.Rcpts[0] != recipient || m.From != "sender@example.com" ||
			!strings.Contains(data, "E2E delivery") || !strings.Contains(strings.ToLower(data), "content-type: text/html") {
			t.Errorf("SMTP message %d: from %q to %v, data:\n%.400s", i, m.From, m.Rcpts, data)
		}
	}
	sent, err := tenant.ListMessages(ctx, client.ListMessagesOptions{})
	if err != nil {
		t.Fatalf("GET /messages: %v", err)
	}
	for _, m := range sent {
		if m.SentTS == nil || m.ErrorTS != nil {
			t.Errorf("proxy message %s: sent_ts %v error %q, want sent", m.ID, m.SentTS, m.Error)
		}
	}

	// A permanent failure: every RCPT is refused with 550.
	if _, err := smtpSrv.AddFault(testsmtp.Reply(testsmtp.StageRcpt, 550, "5.1.1", "no such user here")); err != nil {
		t.Fatal(err)
	}
	_, body, failedIDs := sendTestEmail(t, clientURL, "?count=3&subject=E2E%20failure")
	if len(failedIDs) != 3 {
		t.Fatalf("send-test-email with failing SMTP: %v", body)
	}
	waitForStats(t, clientURL, "3 failed", func(s statistics) bool { return s.Failed == 3 }, proxyProc, clientProc)
	ob, err := openOutbox(ctx, dbPath) // the client's own database, read beside it
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	for _, id := range failedIDs {
		row, err := ob.get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		reason := ""
		if row.Error != nil {
			reason = *row.Error
		}
		if row.Status != statusFailed || !strings.Contains(reason, "550") || !strings.Contains(reason, "no such user here") {
			t.Errorf("row %s = %s %q, want failed with the SMTP 550 reason", id, row.Status, reason)
		}
	}
	if s := fetchStats(t, clientURL); s != (statistics{Total: 23, Delivered: 20, Failed: 3}) {
		t.Errorf("client stats = %+v, want 20 delivered and 3 failed", s)
	}
	if n := smtpSrv.Count(); n != 20 {
		t.Errorf("SMTP server accepted %d messages, want still 20", n)
	}

	// SIGTERM stops the client gracefully.
	if code := clientProc.terminate(t); code != 0 {
		t.Errorf("example-client exit code %d after SIGTERM\n%s", code, clientProc.logs())
	}
	if !strings.Contains(clientProc.logs(), "shutting down") {
		t.Errorf("example-client did not log its graceful shutdown:\n%s", clientProc.logs())
	}
}

// waitForStats polls the client's /stats for up to 60 s; on timeout it
// shows the last counts and both processes' logs.
func waitForStats(t *testing.T, baseURL, what string, cond func(statistics) bool, procs ...*binaryProc) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	end := time.Now().Add(60 * time.Second)
	for {
		s := fetchStats(t, baseURL)
		if cond(s) {
			return
		}
		if time.Now().After(end) {
			var logs strings.Builder
			for _, p := range procs {
				fmt.Fprintf(&logs, "--- %s ---\n%s\n", p.name, p.logs())
			}
			t.Fatalf("timed out waiting for %s; last stats %+v\n%s", what, s, logs.String())
		}
		<-tick.C
	}
}

// buildBinary compiles a main package into dir.
func buildBinary(t *testing.T, dir, name, pkg string) string {
	t.Helper()
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", out, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// binaryProc is a started executable whose output is collected.
type binaryProc struct {
	name   string
	cmd    *exec.Cmd
	out    *lockedBuffer
	lines  chan string // stdout lines, for start-up announcements
	exited chan struct{}
	code   int
}

// startBinary runs bin with a minimal environment plus env; it is stopped
// (SIGTERM, then SIGKILL) at cleanup.
func startBinary(t *testing.T, name, bin string, args, env []string) *binaryProc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	p := &binaryProc{name: name, cmd: cmd, out: &lockedBuffer{}, lines: make(chan string, 64), exited: make(chan struct{})}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			fmt.Fprintln(p.out, sc.Text())
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		err := cmd.Wait()
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			p.code = exitErr.ExitCode()
		}
		close(p.exited)
	}()
	t.Cleanup(func() { p.terminate(t) })
	return p
}

func (p *binaryProc) logs() string { return p.out.String() }

// waitStdout waits for a stdout line starting with prefix and returns the rest.
func (p *binaryProc) waitStdout(t *testing.T, prefix string, deadline time.Duration) string {
	t.Helper()
	timeout := time.After(deadline)
	for {
		select {
		case line := <-p.lines:
			if rest, ok := strings.CutPrefix(line, prefix); ok {
				return strings.TrimSpace(rest)
			}
		case <-p.exited:
			t.Fatalf("%s exited (code %d) before printing %q:\n%s", p.name, p.code, prefix, p.logs())
		case <-timeout:
			t.Fatalf("%s did not print %q within %s:\n%s", p.name, prefix, deadline, p.logs())
		}
	}
}

// terminate sends SIGTERM, waits up to 30 s (then kills) and returns the exit code.
func (p *binaryProc) terminate(t *testing.T) int {
	t.Helper()
	select {
	case <-p.exited:
		return p.code
	default:
	}
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Logf("signal %s: %v", p.name, err)
	}
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Errorf("%s ignored SIGINT for 30 s; killing it", p.name)
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	return p.code
}
