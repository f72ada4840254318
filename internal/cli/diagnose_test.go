package cli

import (
	"strconv"
	"strings"
	"testing"

	"github.com/mailproxy/mailproxy/internal/testsmtp"
)

// TestDiagnoseAndTestSend runs diagnose and test-send through Main against a real
// instance whose accounts point at real SMTP servers: one healthy (STARTTLS + AUTH),
// one with a wrong password, one unreachable.
func TestDiagnoseAndTestSend(t *testing.T) {
	env := startInstance(t)
	srv := testsmtp.Start(t, testsmtp.Options{TLS: true, Users: map[string]string{"mailer": "s3cret-pass"}, AuthRequired: true})
	port := strconv.Itoa(srv.Port())
	mustRun(t, env, "tenants", "add", "acme", "--name", "Acme")
	tenantEnv := map[string]string{"GMP_URL": env["GMP_URL"], "GMP_API_TOKEN": env["GMP_API_TOKEN"], "GMP_TENANT": "acme"}
	mustRun(t, tenantEnv, "accounts", "add", "good", "--host", "127.0.0.1", "--port", port,
		"--user", "mailer", "--password", "s3cret-pass", "--no-tls-verify")

	// Healthy: exit 0, the account logged in over STARTTLS.
	r := run(t, tenantEnv, "diagnose")
	if r.code != 0 {
		t.Fatalf("healthy diagnose: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"scheduler: active", "queue: 0 pending", "loop dispatcher: running", "account acme/good", "ok, TLS starttls, AUTH ok", "no problems found"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("healthy diagnose lacks %q:\n%s", want, r.stdout)
		}
	}
	if srv.Stats().Messages != 0 {
		t.Errorf("diagnose sent %d messages", srv.Stats().Messages)
	}

	// test-send through the healthy account: the dialogue, the server's 250, the message there.
	r = run(t, tenantEnv, "test-send", "--account", "good", "--from", "ops@example.com", "--to", "check@example.com")
	if r.code != 0 {
		t.Fatalf("test-send: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"C: EHLO", "C: STARTTLS", "-- TLS started", "C: AUTH PLAIN ***", "S: 235", "C: MAIL FROM:<ops@example.com>", "C: RCPT TO:<check@example.com>", "C: .", "sent: "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("test-send output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "s3cret-pass") || strings.Contains(r.stdout, "czNjcmV0") {
		t.Errorf("the password leaked into the dialogue:\n%s", r.stdout)
	}
	if msgs := srv.Messages(); len(msgs) != 1 || msgs[0].Rcpts[0] != "check@example.com" || !msgs[0].TLS || msgs[0].AuthUser != "mailer" {
		t.Errorf("the server received %+v", msgs)
	}

	// Wrong password and unreachable: exit 1, one problem line each, naming the account.
	mustRun(t, tenantEnv, "accounts", "add", "wrongpw", "--host", "127.0.0.1", "--port", port,
		"--user", "mailer", "--password", "not-the-password", "--no-tls-verify")
	_, deadPort, _ := strings.Cut(closedPort(t), ":")
	mustRun(t, tenantEnv, "accounts", "add", "gone", "--host", "127.0.0.1", "--port", deadPort)
	r = run(t, tenantEnv, "diagnose")
	if r.code != ExitFailed {
		t.Fatalf("diagnose with broken accounts: exit %d, want 1\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	var problems []string
	for _, l := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		if strings.HasPrefix(l, "problem: ") {
			problems = append(problems, l)
		}
	}
	if len(problems) != 2 {
		t.Fatalf("want 2 problem lines, got %q", r.stderr)
	}
	joined := strings.Join(problems, "\n")
	for _, want := range []string{"account acme/wrongpw", "AUTH", "account acme/gone", "127.0.0.1:" + deadPort} {
		if !strings.Contains(joined, want) {
			t.Errorf("problems lack %q:\n%s", want, joined)
		}
	}
	if strings.Contains(r.stdout+r.stderr, "not-the-password") {
		t.Error("a password leaked into diagnose's output")
	}
	if !strings.Contains(r.stdout, "account acme/good (127.0.0.1:"+port+"): ok") {
		t.Errorf("the healthy account is no longer ok:\n%s", r.stdout)
	}
	// --no-accounts skips the logins: nothing else is wrong.
	if r := run(t, tenantEnv, "diagnose", "--no-accounts"); r.code != 0 {
		t.Errorf("diagnose --no-accounts: exit %d stderr %q", r.code, r.stderr)
	}

	// test-send through the broken ones fails with the step and the server's reply.
	mustFail(t, tenantEnv, ExitFailed, "AUTH", "test-send", "--account", "wrongpw", "--from", "ops@example.com", "--to", "x@example.com")
	mustFail(t, tenantEnv, ExitFailed, "dial", "test-send", "--account", "gone", "--from", "ops@example.com", "--to", "x@example.com")
	mustFail(t, tenantEnv, ExitFailed, "HTTP 404", "test-send", "--account", "nope", "--from", "ops@example.com", "--to", "x@example.com")
	// Admin only: a tenant key is refused.
	key := decode[map[string]any](t, mustRun(t, tenantEnv, "--json", "tenants", "api-key", "acme"))["api_key"].(string)
	keyEnv := map[string]string{"GMP_URL": env["GMP_URL"], "GMP_API_TOKEN": key, "GMP_TENANT": "acme"}
	mustFail(t, keyEnv, ExitFailed, "HTTP 403", "diagnose")
	mustFail(t, keyEnv, ExitFailed, "HTTP 403", "test-send", "--account", "good", "--from", "ops@example.com", "--to", "x@example.com")
}
