package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/pkg/client"
)

// startServe runs `mail-proxy serve` through Main on a free loopback port with env,
// waits for /health and returns its URL and its (growing) stderr. Cleanup cancels
// it and checks it exited 0.
func startServe(t *testing.T, env map[string]string) (string, *syncBuffer) {
	t.Helper()
	addr := closedPort(t)
	host, port, _ := net.SplitHostPort(addr)
	all := map[string]string{"GMP_HOST": host, "GMP_PORT": port, "GMP_SHUTDOWN_TIMEOUT": "2"}
	for k, v := range env {
		all[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"serve"}, func(k string) string { return all[k] }, &stdout, &stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("serve exit %d; stderr %q", code, stderr.String())
			}
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop within 30 s of cancel")
		}
	})
	c := client.New("http://"+addr, "")
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := c.Health(ctx); err == nil {
			return "http://" + addr, &stderr
		} else if !errors.Is(err, client.ErrUnreachable) {
			t.Fatalf("health: %v", err)
		}
		select {
		case code := <-done:
			t.Fatalf("serve ended early: exit %d stderr %q", code, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("serve did not answer /health within 60 s")
		}
	}
}

// waitUntil polls cond every 20 ms until it holds or the deadline passes.
func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not a wait for an outcome
	}
}

// TestFirstMessageWalkthrough follows README's "A first message" on a fresh store:
// a sink beside the service, the generated token, one account, one message that
// arrives at the sink, is listed as sent and is logged as one outcome line.
func TestFirstMessageWalkthrough(t *testing.T) {
	db := filepath.Join(t.TempDir(), "mail_service.db")
	sink := startSink(t)
	_, sinkPort, _ := net.SplitHostPort(sink.smtp)
	url, serveLog := startServe(t, map[string]string{"GMP_DB_PATH": db})

	token := strings.TrimSpace(mustRun(t, map[string]string{"GMP_DB_PATH": db}, "token"))
	if token == "" || !strings.Contains(serveLog.String(), token) {
		t.Fatalf("token %q was not the one serve printed: %q", token, serveLog.String())
	}
	env := map[string]string{"GMP_URL": url, "GMP_API_TOKEN": token, "GMP_TENANT": "default"}
	mustRun(t, env, "accounts", "add", "smtp-main", "--host", "127.0.0.1", "--port", sinkPort)
	mustRun(t, env, "send", "--account", "smtp-main", "--from", "Shop <shop@example.com>", "--to", "customer@example.com",
		"--subject", "Your order", "--body", "Thanks!", "--id", "order-42")

	waitUntil(t, 30*time.Second, "the message at the sink", func() bool {
		return sink.stats(t).Messages == 1
	})
	waitUntil(t, 30*time.Second, "order-42 listed as sent", func() bool {
		return strings.Contains(mustRun(t, env, "messages", "list"), "sent")
	})
	// GMP_LOG_DELIVERY_ACTIVITY is on by default: one info line for the outcome, none for the attempt.
	waitUntil(t, 30*time.Second, "the outcome line", func() bool {
		return strings.Contains(serveLog.String(), "msg=outcome")
	})
	var outcomes int
	for _, line := range strings.Split(serveLog.String(), "\n") {
		if strings.Contains(line, "msg_id=order-42") {
			if !strings.Contains(line, "level=INFO msg=outcome") || !strings.Contains(line, "kind=sent") {
				t.Errorf("unexpected delivery line: %q", line)
			}
			outcomes++
		}
	}
	if outcomes != 1 {
		t.Errorf("%d delivery lines for order-42, want 1:\n%s", outcomes, serveLog.String())
	}
}

// TestFailedStartKeepsTokenForNextStart: a start that cannot listen shows no token
// and stores none, so the next successful start still generates and shows one.
func TestFailedStartKeepsTokenForNextStart(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "mail.db")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	host, port, _ := net.SplitHostPort(busy.Addr().String())
	r := run(t, map[string]string{"GMP_DB_PATH": db, "GMP_HOST": host, "GMP_PORT": port}, "serve")
	if r.code != ExitFailed || !strings.Contains(r.stderr, "GMP_HOST/GMP_PORT") {
		t.Fatalf("serve on a busy port: exit %d stderr %q", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "Generated admin API token") {
		t.Errorf("a failed start showed the one-time token: %q", r.stderr)
	}
	mustFail(t, map[string]string{"GMP_DB_PATH": db}, ExitFailed, "no admin token stored yet", "token")

	_, serveLog := startServe(t, map[string]string{"GMP_DB_PATH": db})
	if !strings.Contains(serveLog.String(), "Generated admin API token") {
		t.Errorf("the next start did not show the token: %q", serveLog.String())
	}
}

// TestTokenSaysWhenEnvironmentOverrides: with GMP_API_TOKEN set, `token` still
// shows the stored token, and says on stderr that serve uses the variable instead.
func TestTokenSaysWhenEnvironmentOverrides(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "mail.db")
	stored := strings.TrimSpace(mustRun(t, map[string]string{"GMP_DB_PATH": db}, "token", "--regenerate"))
	r := run(t, map[string]string{"GMP_DB_PATH": db}, "token")
	if r.code != 0 || strings.TrimSpace(r.stdout) != stored || r.stderr != "" {
		t.Errorf("without GMP_API_TOKEN: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	r = run(t, map[string]string{"GMP_DB_PATH": db, "GMP_API_TOKEN": "chosen"}, "token")
	if r.code != 0 || strings.TrimSpace(r.stdout) != stored || !strings.Contains(r.stderr, "GMP_API_TOKEN is set; serve uses it instead of the stored token") {
		t.Errorf("with GMP_API_TOKEN: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
}

// TestErrorHints checks the hint a failed admin command adds for the usual mistakes.
func TestErrorHints(t *testing.T) {
	env := startInstance(t)
	noToken := map[string]string{"GMP_URL": env["GMP_URL"]}
	wrongToken := map[string]string{"GMP_URL": env["GMP_URL"], "GMP_API_TOKEN": "not-the-token"}
	mustFail(t, noToken, ExitFailed, "HTTP 401", "stats")
	mustFail(t, noToken, ExitFailed, "--token or GMP_API_TOKEN", "stats")
	mustFail(t, wrongToken, ExitFailed, "--token or GMP_API_TOKEN", "accounts", "list")
	mustFail(t, env, ExitFailed, "--tenant or GMP_TENANT", "messages", "list")
	mustFail(t, map[string]string{"GMP_URL": env["GMP_URL"], "GMP_API_TOKEN": adminToken, "GMP_TENANT": "nobody"},
		ExitFailed, "--tenant or GMP_TENANT", "suspend")
}

// TestCompletion checks the scripts for each shell and the completions the shell gets back.
func TestCompletion(t *testing.T) {
	t.Parallel()
	for _, shell := range []string{"bash", "zsh", "fish"} {
		r := run(t, nil, "completion", shell)
		if r.code != 0 || !strings.Contains(r.stdout, "mail-proxy") {
			t.Fatalf("completion %s: exit %d stdout %q stderr %q", shell, r.code, r.stdout, r.stderr)
		}
		// The script must at least parse in its shell, where the shell is installed.
		if path, err := exec.LookPath(shell); err == nil {
			f := filepath.Join(t.TempDir(), "completion."+shell)
			if err := os.WriteFile(f, []byte(r.stdout), 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(path, "-n", f).CombinedOutput(); err != nil {
				t.Errorf("%s -n rejects the script: %v\n%s\n%s", shell, err, out, r.stdout)
			}
		} else {
			t.Logf("%s not installed: script not parsed", shell)
		}
	}
	mustFail(t, nil, ExitUsage, `"bash","zsh","fish"`, "completion", "tcsh")

	for _, tc := range []struct {
		line string
		want []string
		not  []string
	}{
		{"mail-proxy acc", []string{"accounts"}, []string{"activate", "serve"}},
		{"mail-proxy accounts ", []string{"add", "delete", "list"}, []string{"serve"}},
		{"mail-proxy serve --", []string{"--host", "--port", "--db", "--token"}, []string{"--regenerate"}},
		{"mail-proxy completion ", []string{"bash", "zsh", "fish"}, nil},
	} {
		var out, errOut bytes.Buffer
		env := map[string]string{"COMP_LINE": tc.line, "COMP_POINT": "999"}
		code := Main(context.Background(), nil, func(k string) string { return env[k] }, &out, &errOut)
		words := strings.Fields(out.String())
		if code != 0 {
			t.Errorf("%q: exit %d stderr %q", tc.line, code, errOut.String())
		}
		for _, w := range tc.want {
			if !contains(words, w) {
				t.Errorf("%q: completions %q lack %q", tc.line, words, w)
			}
		}
		for _, w := range tc.not {
			if contains(words, w) {
				t.Errorf("%q: completions %q include %q", tc.line, words, w)
			}
		}
	}
}

// TestProgressOnlyOnATerminal: the bar appears on a terminal and ends cleared;
// on anything else (and with --json) nothing is printed.
func TestProgressOnlyOnATerminal(t *testing.T) {
	t.Parallel()
	var tty bytes.Buffer
	e := &env{stderr: &tty, flags: &globals{}, terminal: func(w io.Writer) bool { return w == &tty }}
	bar := e.newProgress(10, "enqueued")
	bar.Add(4)
	bar.Set(10)
	bar.Done()
	if !strings.Contains(tty.String(), "enqueued") || !strings.Contains(tty.String(), "/10)") {
		t.Errorf("terminal output lacks the bar: %q", tty.String())
	}
	var pipe bytes.Buffer
	e = &env{stderr: &pipe, flags: &globals{}}
	bar = e.newProgress(10, "enqueued")
	bar.Add(10)
	bar.Done()
	e = &env{stderr: &tty, flags: &globals{JSON: true}, terminal: func(io.Writer) bool { return true }}
	if e.newProgress(10, "x") != nil {
		t.Error("--json got a progress bar")
	}
	if pipe.Len() != 0 {
		t.Errorf("non-terminal output: %q", pipe.String())
	}
}

// TestHealthCommand: what the container HEALTHCHECK runs; no token needed.
func TestHealthCommand(t *testing.T) {
	env := startInstance(t)
	r := run(t, map[string]string{"GMP_URL": env["GMP_URL"]}, "health")
	if r.code != 0 || !strings.Contains(r.stdout, "healthy") {
		t.Errorf("health of a running instance: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	mustFail(t, map[string]string{"GMP_URL": "http://" + closedPort(t)}, ExitUnreachable, "", "health")
}
