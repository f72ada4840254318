package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/internal/config"
	"github.com/mailproxy/mailproxy/internal/proxy"
	"github.com/mailproxy/mailproxy/internal/testsmtp"
	"github.com/mailproxy/mailproxy/pkg/client"
)

const adminToken = "admin-token-for-cli-tests-0123456789abcdef"

// startInstance runs a real instance (proxy.Run) on a temp SQLite file and a free loopback port,
// and returns the environment the CLI needs to reach it.
func startInstance(t *testing.T) map[string]string {
	t.Helper()
	env := map[string]string{
		"GMP_DB_PATH":            filepath.Join(t.TempDir(), "mail.db"),
		"GMP_HOST":               "127.0.0.1",
		"GMP_PORT":               "0",
		"GMP_API_TOKEN":          adminToken,
		"GMP_SEND_LOOP_INTERVAL": "0.05",
		"GMP_SHUTDOWN_TIMEOUT":   "2",
	}
	cfg, _, err := config.Load(func(k string) string { return env[k] }, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	// The instance's log goes to the test log, shown when a test fails.
	logs := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("proxy.Run panicked: %v", p)
			}
		}()
		done <- proxy.Run(ctx, cfg, proxy.Options{Ready: func(a net.Addr) { ready <- a }, Version: "test", Logger: logs})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("proxy.Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("proxy.Run did not stop within 30 s of cancel")
		}
	})
	select {
	case a := <-ready:
		return map[string]string{"GMP_URL": "http://" + a.String(), "GMP_API_TOKEN": adminToken}
	case err := <-done:
		t.Fatalf("proxy.Run ended before listening: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("proxy.Run did not listen within 60 s")
	}
	return nil
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// mustRun runs a command that must succeed and returns its stdout.
func mustRun(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	r := run(t, env, args...)
	if r.code != 0 {
		t.Fatalf("%v: exit %d, stderr %q", args, r.code, r.stderr)
	}
	return r.stdout
}

// mustFail runs a command that must fail with code and a stderr line containing want.
func mustFail(t *testing.T, env map[string]string, code int, want string, args ...string) {
	t.Helper()
	r := run(t, env, args...)
	if r.code != code {
		t.Fatalf("%v: exit %d, want %d; stdout %q stderr %q", args, r.code, code, r.stdout, r.stderr)
	}
	oneLine(t, "stderr", r.stderr)
	if !strings.Contains(r.stderr, want) {
		t.Errorf("%v: stderr %q lacks %q", args, r.stderr, want)
	}
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
	return v
}

// TestAdminCommandsAgainstRunningInstance walks the admin story through cli.Main against a real
// instance and a real SMTP server: tenant, account, a sent message, and the error paths.
func TestAdminCommandsAgainstRunningInstance(t *testing.T) {
	env := startInstance(t)
	smtp := testsmtp.Start(t, testsmtp.Options{})

	if out := mustRun(t, env, "status"); !strings.Contains(out, "active") {
		t.Errorf("status: %q", out)
	}
	if st := decode[client.StatusResponse](t, mustRun(t, env, "--json", "status")); !st.OK || !st.Active {
		t.Errorf("status --json: %+v", st)
	}
	mustFail(t, map[string]string{"GMP_URL": env["GMP_URL"]}, ExitFailed, "HTTP 401", "status")

	out := mustRun(t, env, "tenants", "add", "acme", "--name", "Acme", "--base-url", "http://127.0.0.1:9")
	if !strings.Contains(out, "tenant acme created") {
		t.Fatalf("tenants add: %q", out)
	}
	key := ""
	for _, line := range strings.Split(out, "\n") {
		if k, ok := strings.CutPrefix(line, "api_key: "); ok {
			key = k
		}
	}
	if len(key) != 43 {
		t.Fatalf("tenant key %q is not 43 characters", key)
	}
	if out := mustRun(t, env, "tenants", "add", "acme", "--name", "Acme"); !strings.Contains(out, "updated") {
		t.Errorf("second tenants add: %q", out)
	}
	if out := mustRun(t, env, "tenants", "list"); !strings.Contains(out, "acme") {
		t.Errorf("tenants list: %q", out)
	}
	mustRun(t, env, "tenants", "update", "acme", "--name", "Acme Two", "--no-active")
	tn := decode[client.TenantInfo](t, mustRun(t, env, "tenants", "show", "--tenant", "acme"))
	if tn.ID != "acme" || tn.Name != "Acme Two" || tn.Active {
		t.Errorf("after update: %+v", tn)
	}
	mustRun(t, env, "tenants", "update", "acme", "--active")
	mustFail(t, env, ExitFailed, "HTTP 404: Tenant 'nosuch' not found", "tenants", "show", "nosuch")

	tenantEnv := map[string]string{"GMP_URL": env["GMP_URL"], "GMP_TENANT": "acme", "GMP_API_TOKEN": adminToken}
	mustRun(t, tenantEnv, "accounts", "add", "smtp1", "--host", smtp.Host(), "--port", strconv.Itoa(smtp.Port()), "--limit-per-minute", "100")
	if out := mustRun(t, tenantEnv, "accounts", "list"); !strings.Contains(out, "smtp1") || !strings.Contains(out, "100") {
		t.Errorf("accounts list: %q", out)
	}

	t.Run("suppressions", func(t *testing.T) {
		if out := mustRun(t, tenantEnv, "suppressions", "add", "Gone@Example.com", "other@example.com", "--reason", "asked"); out != "added 2\n" {
			t.Errorf("suppressions add: %q", out)
		}
		if out := mustRun(t, tenantEnv, "suppressions", "list"); !strings.Contains(out, "gone@example.com") || !strings.Contains(out, "manual") {
			t.Errorf("suppressions list: %q", out)
		}
		if out := mustRun(t, tenantEnv, "suppressions", "remove", "GONE@example.com"); out != "removed 1\n" {
			t.Errorf("suppressions remove: %q", out)
		}
		list := decode[[]client.Suppression](t, mustRun(t, tenantEnv, "--json", "suppressions", "list"))
		if len(list) != 1 || list[0].Address != "other@example.com" || list[0].Reason != "asked" {
			t.Errorf("suppressions list --json: %+v", list)
		}
		mustRun(t, tenantEnv, "suppressions", "remove", "other@example.com")
	})

	t.Run("suspension, command log, keys and secrets", func(t *testing.T) {
		if out := mustRun(t, tenantEnv, "suspend", "--batch", "b1"); !strings.Contains(out, "b1") {
			t.Errorf("suspend --batch: %q", out)
		}
		if out := mustRun(t, tenantEnv, "suspend"); !strings.Contains(out, "suspended batches *") {
			t.Errorf("suspend: %q", out)
		}
		if out := mustRun(t, tenantEnv, "activate"); !strings.Contains(out, "suspended batches none") {
			t.Errorf("activate: %q", out)
		}

		if out := mustRun(t, env, "command-log", "--filter", "addTenant"); !strings.Contains(out, "addTenant") {
			t.Errorf("command-log: %q", out)
		}
		if log := decode[client.CommandLog](t, mustRun(t, env, "--json", "command-log", "--since", "1h", "--filter", "addAccount")); len(log.Commands) != 1 {
			t.Errorf("command-log --filter addAccount: %+v", log)
		}

		// A tenant key: its own data yes, admin routes no.
		keyEnv := map[string]string{"GMP_URL": env["GMP_URL"], "GMP_API_TOKEN": key}
		mustRun(t, keyEnv, "status")
		mustFail(t, keyEnv, ExitFailed, "HTTP 403", "tenants", "list")
		newKey := strings.TrimSpace(mustRun(t, env, "tenants", "api-key", "acme", "--expires-at", "720h"))
		if len(newKey) != 43 || newKey == key {
			t.Errorf("tenants api-key: %q", newKey)
		}
		mustFail(t, keyEnv, ExitFailed, "HTTP 401", "status")
		keyEnv["GMP_API_TOKEN"] = newKey
		mustRun(t, keyEnv, "status")
		mustRun(t, env, "tenants", "revoke-key", "acme")
		mustFail(t, keyEnv, ExitFailed, "HTTP 401", "status")

		if secret := strings.TrimSpace(mustRun(t, env, "tenants", "signing-secret", "acme")); !strings.HasPrefix(secret, "whsec_") {
			t.Errorf("signing-secret: %q", secret)
		}
		if tn := decode[client.TenantInfo](t, mustRun(t, env, "tenants", "show", "acme")); !tn.SigningSecretSet {
			t.Error("signing secret not set after signing-secret")
		}
		mustRun(t, env, "tenants", "signing-secret", "acme", "--delete")
		if out := mustRun(t, env, "tenants", "sync-status"); !strings.Contains(out, "acme") {
			t.Errorf("sync-status: %q", out)
		}
	})

	t.Run("send, deliver, list, delete", func(t *testing.T) {
		out = mustRun(t, tenantEnv, "send", "--account", "smtp1", "--from", "sender@example.com", "--to", "rcpt@example.com",
			"--subject", "Hello from the CLI", "--body", "body text", "--id", "m1")
		if strings.TrimSpace(out) != "queued m1" {
			t.Errorf("send: %q", out)
		}
		mustFail(t, tenantEnv, ExitFailed, "rejected", "send", "--account", "no-such-account", "--from", "a@example.com",
			"--to", "b@example.com", "--subject", "s", "--body", "b", "--id", "m2")
		mustRun(t, tenantEnv, "run-now")

		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := smtp.WaitForCount(ctx, 1); err != nil {
			t.Fatalf("the message did not reach the SMTP server: %v", err)
		}
		if got := smtp.Messages()[0]; got.From != "sender@example.com" || !strings.Contains(string(got.Data), "Hello from the CLI") {
			t.Errorf("delivered message: from %q", got.From)
		}
		var sent client.MessageRecord
		for ctx.Err() == nil { // the outcome is written just after the SMTP server accepted
			sent = decode[client.MessageRecord](t, mustRun(t, tenantEnv, "messages", "show", "m1"))
			if sent.Status == "sent" {
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Millisecond):
			}
		}
		if sent.ID != "m1" || sent.Status != "sent" {
			t.Errorf("messages show m1: %+v", sent)
		}
		if out := mustRun(t, tenantEnv, "messages", "list"); !strings.Contains(out, "m1") || !strings.Contains(out, "sent") {
			t.Errorf("messages list: %q", out)
		}
		if msgs := decode[[]client.MessageRecord](t, mustRun(t, tenantEnv, "--json", "messages", "list", "--active")); len(msgs) != 0 {
			t.Errorf("messages list --active after delivery: %+v", msgs)
		}
		mustFail(t, tenantEnv, ExitFailed, `message "zzz" not found`, "messages", "show", "zzz")

		stats := decode[[]client.TenantStats](t, mustRun(t, env, "--json", "stats"))
		found := false
		for _, s := range stats {
			if s.TenantID == "acme" {
				found = s.Sent >= 1 && s.Accounts == 1
			}
		}
		if !found {
			t.Errorf("stats: %+v", stats)
		}

		if out := mustRun(t, tenantEnv, "messages", "delete", "m1", "nope"); !strings.Contains(out, "removed 1") || !strings.Contains(out, "not found: nope") {
			t.Errorf("messages delete: %q", out)
		}
		if out := mustRun(t, tenantEnv, "messages", "cleanup", "--older-than", "0"); !strings.HasPrefix(out, "removed ") {
			t.Errorf("messages cleanup: %q", out)
		}
	})

	mustRun(t, tenantEnv, "accounts", "delete", "smtp1")
	mustFail(t, tenantEnv, ExitFailed, "HTTP 400", "accounts", "delete", "smtp1")
	mustRun(t, env, "tenants", "delete", "acme")
	mustFail(t, env, ExitFailed, "HTTP 404", "tenants", "delete", "acme")
}

// TestServeThroughMain runs `serve` as the binary does: it listens, answers, and exits 0 on cancel.
func TestServeThroughMain(t *testing.T) {
	db := filepath.Join(t.TempDir(), "mail.db")
	addr := closedPort(t) // free a moment ago; serve takes it
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan result, 1)
	go func() {
		done <- runCtx(t, ctx, map[string]string{"GMP_LOG_FORMAT": "json"}, "serve", "--host", host, "--port", port, "--db", db)
	}()

	c := client.New("http://"+addr, "")
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := c.Health(ctx); err == nil {
			break
		} else if !errors.Is(err, client.ErrUnreachable) {
			t.Fatalf("health: %v", err)
		}
		select {
		case r := <-done:
			t.Fatalf("serve ended early: exit %d stderr %q", r.code, r.stderr)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("serve did not answer /health within 60 s")
		}
	}
	cancel()
	select {
	case r := <-done:
		if r.code != 0 {
			t.Fatalf("serve exit %d, stderr %q", r.code, r.stderr)
		}
		// No GMP_API_TOKEN: serve generated one and printed it once; `token` shows the same.
		shown := strings.TrimSpace(mustRun(t, map[string]string{"GMP_DB_PATH": db}, "token"))
		if len(shown) != 43 || !strings.Contains(r.stderr, shown) {
			t.Errorf("generated token %q not printed by serve: %q", shown, r.stderr)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not stop within 60 s of cancel")
	}
}
