package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/internal/config"
	"github.com/mailproxy/mailproxy/internal/secret"
	"github.com/mailproxy/mailproxy/internal/store/postgres/pgtest"
	"github.com/mailproxy/mailproxy/internal/store/sqlite"
)

type result struct {
	code           int
	stdout, stderr string
}

// run calls Main as the binary would, with env as the whole environment.
func run(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	return runCtx(t, context.Background(), env, args...)
}

func runCtx(t *testing.T, ctx context.Context, env map[string]string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(ctx, args, func(k string) string { return env[k] }, &out, &errOut)
	return result{code, out.String(), errOut.String()}
}

// oneLine checks that s is exactly one non-empty line.
func oneLine(t *testing.T, what, s string) {
	t.Helper()
	if strings.Count(s, "\n") != 1 || !strings.HasSuffix(s, "\n") || strings.TrimSpace(s) == "" {
		t.Errorf("%s is not one line: %q", what, s)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, args := range [][]string{
		{},
		{"no-such-command"},
		{"version", "--no-such-flag"},
		{"serve", "--port", "abc"},
		{"messages", "delete"},
		{"tenants"},
		{"tenants", "show"}, // no id and no --tenant
		{"send", "--account", "a", "--from", "f@example.com", "--subject", "s"},                                    // --to missing
		{"send", "--account", "a", "--from", "f@x", "--to", "t@x", "--subject", "s", "--body", "b", "--html", "h"}, // body xor html
		{"send", "--account", "a", "--from", "f@x", "--to", "t@x", "--subject", "s", "--priority", "urgent"},
		{"send", "--account", "a", "--from", "f@x", "--to", "t@x", "--subject", "s", "--attach", filepath.Join(dir, "missing.pdf")},
		{"command-log", "--since", "yesterday"},
		{"tenants", "add", "t1", "--rate-limits", "[1,2]"},
		{"status", "--url", "ftp://127.0.0.1:1"},
		{"accounts", "add", "a1", "--host", "h", "--port", "70000"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			r := run(t, map[string]string{"GMP_URL": "http://127.0.0.1:1"}, args...)
			if r.code != ExitUsage {
				t.Errorf("exit %d, want 2; stdout %q stderr %q", r.code, r.stdout, r.stderr)
			}
			oneLine(t, "stderr", r.stderr)
			if r.stdout != "" {
				t.Errorf("stdout on a usage error: %q", r.stdout)
			}
		})
	}
}

func TestHelpExits0(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--help"}, {"serve", "--help"}, {"tenants", "--help"}} {
		r := run(t, nil, args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage: mail-proxy") {
			t.Errorf("%v: exit %d, stdout %q", args, r.code, r.stdout)
		}
	}
	r := run(t, nil, "--help")
	for _, cmd := range []string{"serve", "version", "config", "gen-key", "token", "migrate", "status", "stats", "run-now",
		"suspend", "activate", "tenants", "accounts", "messages", "command-log", "send"} {
		if !strings.Contains(r.stdout, cmd) {
			t.Errorf("help does not list %s", cmd)
		}
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	r := run(t, nil, "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "mail-proxy ") {
		t.Fatalf("exit %d stdout %q", r.code, r.stdout)
	}
	oneLine(t, "version", r.stdout)
	r = run(t, nil, "--json", "version")
	var v map[string]string
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v["version"] == "" {
		t.Errorf("--json version: %q (%v)", r.stdout, err)
	}
}

func TestConfigPrintsEveryVariable(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "mp.ini")
	if err := os.WriteFile(file, []byte("[server]\nport = 9123\n[mail_proxy]\nbogus = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"GMP_API_TOKEN": "super-secret-admin-token", "GMP_CONFIG": file, "GMP_LOG_LEVEL": "debug"}
	r := run(t, env, "config", "--tenant", "acme")
	if r.code != 0 {
		t.Fatalf("exit %d stderr %q", r.code, r.stderr)
	}
	fields := map[string][]string{}
	for _, line := range strings.Split(r.stdout, "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			fields[f[0]] = f
		}
	}
	vars := config.Variables()
	for _, v := range vars {
		if _, ok := fields[v.Name]; !ok {
			t.Errorf("config does not print %s", v.Name)
		}
	}
	if strings.Contains(r.stdout, "super-secret-admin-token") {
		t.Error("config printed the admin token")
	}
	for name, want := range map[string]string{"GMP_API_TOKEN": "***", "GMP_PORT": "9123", "GMP_LOG_LEVEL": "debug", "GMP_TENANT": "acme", "GMP_CONFIG_FILE": file} {
		if got := fields[name]; len(got) < 2 || got[1] != want {
			t.Errorf("%s printed as %v, want value %q", name, got, want)
		}
	}
	if !strings.Contains(r.stderr, "unknown key [mail_proxy] bogus") {
		t.Errorf("file warning missing from stderr: %q", r.stderr)
	}

	// The DSN's password is masked, in the table and in --json (issue 11.7).
	dsnEnv := map[string]string{"GMP_DATABASE_URL": "postgres://mail:pg-Secret-1@db.internal:5432/mail?sslmode=disable",
		"GMP_DB_PATH": "host=db user=mail password=pg-Secret-2 dbname=mail"}
	for _, args := range [][]string{{"config"}, {"--json", "config"}} {
		r = run(t, dsnEnv, args...)
		if r.code != 0 || strings.Contains(r.stdout, "pg-Secret") || !strings.Contains(r.stdout, "postgres://mail:***@db.internal:5432/mail") ||
			!strings.Contains(r.stdout, "password=***") {
			t.Errorf("%v: exit %d, DSN password printed or DSN missing:\n%s", args, r.code, r.stdout)
		}
	}

	r = run(t, nil, "--json", "config")
	var settings []config.Setting
	if err := json.Unmarshal([]byte(r.stdout), &settings); err != nil || len(settings) != len(vars) {
		t.Errorf("--json config: %d settings (%v)", len(settings), err)
	}
}

func TestConfigReportsInvalidValues(t *testing.T) {
	t.Parallel()
	r := run(t, map[string]string{"GMP_PORT": "abc"}, "config")
	if r.code != ExitFailed || !strings.Contains(r.stderr, "GMP_PORT") {
		t.Errorf("parse error: exit %d stderr %q", r.code, r.stderr)
	}
	r = run(t, map[string]string{"GMP_LOG_FORMAT": "xml"}, "config")
	if r.code != ExitFailed || !strings.Contains(r.stderr, "GMP_LOG_FORMAT") || !strings.Contains(r.stdout, "GMP_LOG_FORMAT") {
		t.Errorf("validation error: exit %d stderr %q", r.code, r.stderr)
	}
}

// TestServeRejectsInvalidConfiguration checks that serve names the variable and starts nothing:
// the SQLite file it would create does not appear.
func TestServeRejectsInvalidConfiguration(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{"GMP_PORT": "abc"}, nil, "GMP_PORT"},
		{map[string]string{"GMP_PORT": "70000"}, nil, "GMP_PORT"},
		{nil, []string{"--port=-5"}, "GMP_PORT"},
		{map[string]string{"GMP_LOG_LEVEL": "LOUD"}, nil, "GMP_LOG_LEVEL"},
		{map[string]string{"GMP_LOG_FORMAT": "xml"}, nil, "GMP_LOG_FORMAT"},
		{map[string]string{"GMP_SEND_LOOP_INTERVAL": "0.01"}, nil, "GMP_SEND_LOOP_INTERVAL"},
		{map[string]string{"GMP_SYNC_INTERVAL": "-1"}, nil, "GMP_SYNC_INTERVAL"},
		{map[string]string{"GMP_DEFAULT_PRIORITY": "9"}, nil, "GMP_DEFAULT_PRIORITY"},
		{map[string]string{"GMP_RETRY_DELAYS": "60,-1"}, nil, "GMP_RETRY_DELAYS"},
		{map[string]string{"GMP_MAX_SENDS": "0"}, nil, "GMP_MAX_SENDS"},
		{map[string]string{"GMP_TEST_MODE": "perhaps"}, nil, "GMP_TEST_MODE"},
		{map[string]string{"MAIL_PROXY_ENCRYPTION_KEY": "dG9vIHNob3J0"}, nil, "MAIL_PROXY_ENCRYPTION_KEY"},
		{map[string]string{"GMP_CONFIG_FILE": "/nonexistent/mail-proxy.ini"}, nil, "/nonexistent/mail-proxy.ini"},
		{map[string]string{"GMP_BOUNCE_ENABLED": "true"}, nil, "GMP_BOUNCE_IMAP_HOST"},
		{map[string]string{"GMP_PEC_ACCEPTANCE_TIMEOUT": "600"}, nil, "GMP_PEC_ACCEPTANCE_TIMEOUT"},
		{nil, []string{"--config", "/nonexistent/flag.ini"}, "/nonexistent/flag.ini"},
	} {
		t.Run(tc.want+strings.Join(tc.args, ""), func(t *testing.T) {
			t.Parallel()
			db := filepath.Join(t.TempDir(), "never.db")
			env := map[string]string{"GMP_DB_PATH": db, "GMP_HOST": "127.0.0.1"}
			for k, v := range tc.env {
				env[k] = v
			}
			r := run(t, env, append([]string{"serve"}, tc.args...)...)
			if r.code != ExitFailed {
				t.Fatalf("exit %d, want 1; stderr %q", r.code, r.stderr)
			}
			oneLine(t, "stderr", r.stderr)
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr does not name %s: %q", tc.want, r.stderr)
			}
			if _, err := os.Stat(db); !os.IsNotExist(err) {
				t.Errorf("serve touched the store despite the invalid configuration (%v)", err)
			}
		})
	}
}

func TestGenKey(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 3 {
		r := run(t, nil, "gen-key")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		oneLine(t, "gen-key", r.stdout)
		key := strings.TrimSpace(r.stdout)
		raw, err := base64.StdEncoding.DecodeString(key)
		if err != nil || len(raw) != 32 {
			t.Fatalf("%q does not decode to 32 bytes (%d, %v)", key, len(raw), err)
		}
		if _, err := config.DecodeEncryptionKey(key); err != nil {
			t.Errorf("gen-key output is not a valid MAIL_PROXY_ENCRYPTION_KEY: %v", err)
		}
		if seen[key] {
			t.Errorf("gen-key repeated %q", key)
		}
		seen[key] = true
	}
}

// TestGenKeyOut: --out writes a key file readable by the owner only, which
// the key loader accepts, and never overwrites an existing file (11.8).
func TestGenKeyOut(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "encryption_key")
	if r := run(t, nil, "gen-key", "--out", path); r.code != 0 || strings.Contains(r.stdout, "=") {
		t.Fatalf("gen-key --out: exit %d, stdout %q (must not print the key), stderr %q", r.code, r.stdout, r.stderr)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	first, _ := os.ReadFile(path)
	if _, configured, err := secret.LoadKey(secret.KeySource{File: path}, nil); !configured || err != nil {
		t.Fatalf("key file not usable as GMP_ENCRYPTION_KEY_FILE: configured %v, %v", configured, err)
	}
	if r := run(t, nil, "gen-key", "--out", path); r.code != 1 {
		t.Fatalf("gen-key --out over an existing file: exit %d, want 1", r.code)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, first) {
		t.Fatal("gen-key --out overwrote the existing key file")
	}
}

func TestTokenShowAndRegenerate(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "mail.db")
	env := map[string]string{"GMP_DB_PATH": db}

	r := run(t, env, "token")
	if r.code != ExitFailed || !strings.Contains(r.stderr, "no admin token stored") {
		t.Fatalf("token on a new store: exit %d stderr %q", r.code, r.stderr)
	}
	oneLine(t, "stderr", r.stderr)

	r = run(t, env, "token", "--regenerate")
	if r.code != 0 {
		t.Fatalf("regenerate: exit %d stderr %q", r.code, r.stderr)
	}
	first := strings.TrimSpace(r.stdout)
	if raw, err := base64.RawURLEncoding.DecodeString(first); err != nil || len(raw) != 32 || len(first) != 43 {
		t.Fatalf("token %q is not 32 bytes of URL-safe base64 without padding", first)
	}

	r = run(t, env, "token")
	if r.code != 0 || strings.TrimSpace(r.stdout) != first {
		t.Fatalf("token shows %q (exit %d, %q), want %q", r.stdout, r.code, r.stderr, first)
	}

	r = run(t, nil, "--json", "token", "--regenerate", "--db", db)
	var out map[string]string
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out["api_token"] == "" || out["api_token"] == first {
		t.Fatalf("--json regenerate: %q (%v)", r.stdout, err)
	}
	second := out["api_token"]

	// The token is really in the store, where serve reads it.
	ctx := context.Background()
	st, err := sqlite.Open(ctx, db, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	inst, err := st.GetInstance(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if inst.APIToken != second || inst.Name != "mail-proxy" {
		t.Errorf("stored instance: token %q name %q, want %q mail-proxy", inst.APIToken, inst.Name, second)
	}

	r = run(t, map[string]string{"GMP_DB_PATH": db, "GMP_API_TOKEN": "from-env"}, "token")
	if r.code != 0 || strings.TrimSpace(r.stdout) != second || !strings.Contains(r.stderr, "GMP_API_TOKEN is set") {
		t.Errorf("with GMP_API_TOKEN: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestMigrateCreatesStore(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "new.db")
	r := run(t, map[string]string{"GMP_DATABASE_URL": db}, "migrate")
	if r.code != 0 || !strings.Contains(r.stdout, db) {
		t.Fatalf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(db); err != nil {
		t.Fatalf("store not created: %v", err)
	}
	if r := run(t, nil, "migrate", "--db", db); r.code != 0 {
		t.Errorf("second migrate: exit %d stderr %q", r.code, r.stderr)
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func TestAdminCommandsUnreachableExit3(t *testing.T) {
	t.Parallel()
	url := "http://" + closedPort(t)
	for _, args := range [][]string{
		{"status"},
		{"stats"},
		{"run-now"},
		{"suspend", "--tenant", "t1"},
		{"activate", "--batch", "b1"},
		{"tenants", "list"},
		{"tenants", "show", "t1"},
		{"tenants", "add", "t1", "--name", "T"},
		{"tenants", "sync-status"},
		{"accounts", "list"},
		{"messages", "list", "--active"},
		{"messages", "delete", "m1", "m2"},
		{"messages", "cleanup", "--older-than", "60"},
		{"command-log", "--since", "2h"},
		{"send", "--account", "a", "--from", "f@example.com", "--to", "t@example.com", "--subject", "s", "--body", "b"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			r := run(t, map[string]string{"GMP_URL": url, "GMP_API_TOKEN": "secret-token-value"}, args...)
			if r.code != ExitUnreachable {
				t.Fatalf("exit %d, want 3; stderr %q", r.code, r.stderr)
			}
			oneLine(t, "stderr", r.stderr)
			if !strings.Contains(r.stderr, "unreachable") || strings.Contains(r.stderr, "secret-token-value") {
				t.Errorf("stderr %q", r.stderr)
			}
		})
	}
}

func TestCancelledContextIsNotUnreachable(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := runCtx(t, ctx, map[string]string{"GMP_URL": "http://" + closedPort(t)}, "status")
	if r.code != ExitFailed {
		t.Errorf("exit %d, want 1 for a cancelled command; stderr %q", r.code, r.stderr)
	}
}

func TestParseWhen(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	for in, want := range map[string]int64{"": 0, "1699990000": 1699990000, "2h": 1_700_000_000 - 7200, "2023-11-14T22:13:20Z": 1_700_000_000} {
		got, err := parseWhen(in, now)
		if err != nil || got != want {
			t.Errorf("parseWhen(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"-5", "soon", "-2h"} {
		if _, err := parseWhen(in, now); err == nil {
			t.Errorf("parseWhen(%q) accepted", in)
		}
	}
}

// TestTokenAndMigrateOnPostgreSQL runs the local commands on a fresh PostgreSQL database.
func TestTokenAndMigrateOnPostgreSQL(t *testing.T) {
	t.Parallel()
	dsn := pgtest.DSN(t)
	env := map[string]string{"GMP_DATABASE_URL": dsn, "GMP_DB_PATH": filepath.Join(t.TempDir(), "unused.db")}
	if r := run(t, env, "migrate"); r.code != 0 || !strings.Contains(r.stdout, "up to date") {
		t.Fatalf("migrate: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := run(t, env, "token"); r.code != ExitFailed || !strings.Contains(r.stderr, "no admin token stored") {
		t.Fatalf("token on an empty store: exit %d stderr %q", r.code, r.stderr)
	}
	tok := strings.TrimSpace(mustRun(t, env, "token", "--regenerate"))
	if len(tok) != 43 {
		t.Fatalf("token %q", tok)
	}
	if got := strings.TrimSpace(mustRun(t, env, "token")); got != tok {
		t.Errorf("token shows %q, want %q", got, tok)
	}
	if _, err := os.Stat(env["GMP_DB_PATH"]); !os.IsNotExist(err) {
		t.Errorf("GMP_DATABASE_URL must win over GMP_DB_PATH, but the SQLite file exists (%v)", err)
	}
}
