package cli

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/internal/testsmtp"
	"github.com/mailproxy/mailproxy/pkg/client"
)

// TestRetryDeferredSendsAtOnce: a message deferred by a 451 waits for its
// retry (60 s by default); `messages retry-deferred` makes it due now and
// the running instance delivers it at once (issue 12.7).
func TestRetryDeferredSendsAtOnce(t *testing.T) {
	env := startInstance(t)
	smtp := testsmtp.Start(t, testsmtp.Options{Faults: []testsmtp.Fault{
		testsmtp.Reply(testsmtp.StageRcpt, 451, "4.7.1", "try later").ForRcpt("later@example.com").OnNth(1),
	}})
	mustRun(t, env, "tenants", "add", "shop")
	tenantEnv := map[string]string{"GMP_URL": env["GMP_URL"], "GMP_TENANT": "shop", "GMP_API_TOKEN": adminToken}
	mustRun(t, tenantEnv, "accounts", "add", "smtp1", "--host", smtp.Host(), "--port", strconv.Itoa(smtp.Port()))
	for _, id := range []string{"a1", "b1"} {
		args := []string{"send", "--account", "smtp1", "--from", "sender@example.com", "--to", "rcpt@example.com",
			"--subject", "hello", "--body", "hi", "--id", id}
		if id == "b1" {
			args = append(args, "--batch", "B")
			args[6] = "later@example.com"
		}
		mustRun(t, tenantEnv, args...)
	}
	status := func() map[string]string {
		out := map[string]string{}
		for _, m := range decode[[]client.MessageRecord](t, mustRun(t, tenantEnv, "--json", "messages", "list")) {
			out[m.ID] = m.Status
		}
		return out
	}
	deadline := time.Now().Add(30 * time.Second)
	for st := status(); st["a1"] != "sent" || st["b1"] != "deferred"; st = status() {
		if time.Now().After(deadline) {
			t.Fatalf("want a1 sent and b1 deferred by the 451; have %v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if out := mustRun(t, tenantEnv, "messages", "retry-deferred", "--batch-code", "other"); !strings.Contains(out, "retried 0") {
		t.Errorf("retry-deferred of another batch: %q", out)
	}
	if out := mustRun(t, tenantEnv, "messages", "retry-deferred", "--batch-code", "B"); !strings.Contains(out, "retried 1") {
		t.Fatalf("retry-deferred --batch-code B: %q", out)
	}
	deadline = time.Now().Add(30 * time.Second) // well before the 60 s retry
	for status()["b1"] != "sent" {
		if time.Now().After(deadline) {
			t.Fatalf("b1 not sent after retry-deferred: %v", status())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if smtp.Count() != 2 {
		t.Errorf("server received %d messages, want 2", smtp.Count())
	}
}
