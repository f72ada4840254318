package main

import (
	"bufio"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mailproxy/mailproxy/internal/store/postgres/pgtest"
)

// No Docker engine or systemd runs here: these tests check what can be checked
// without them. The Dockerfile's build command and settings, the systemd unit's
// settings and the compose file's services are read from the files themselves
// and run with the real binary.

const (
	stampVersion = "v0.0.0-packaging-test"
	stampCommit  = "0123456789abcdef0123456789abcdef01234567"
)

// dockerfile is what the tests need from ../../Dockerfile.
type dockerfile struct {
	env         map[string]string // ENV
	healthcheck []string          // HEALTHCHECK CMD, exec form
	text        string
}

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	raw, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	// Join continuation lines, as docker does.
	joined := regexp.MustCompile(`\\\n\s*`).ReplaceAllString(text, " ")
	d := dockerfile{env: map[string]string{}, text: text}
	sc := bufio.NewScanner(strings.NewReader(joined))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "ENV "):
			for _, kv := range strings.Fields(strings.TrimPrefix(line, "ENV ")) {
				k, v, _ := strings.Cut(kv, "=")
				d.env[k] = v
			}
		case strings.HasPrefix(line, "HEALTHCHECK "):
			_, cmd, _ := strings.Cut(line, " CMD ")
			if err := json.Unmarshal([]byte(cmd), &d.healthcheck); err != nil {
				t.Fatalf("HEALTHCHECK CMD is not in exec form: %q", cmd)
			}
		}
	}
	if len(d.env) == 0 || len(d.healthcheck) == 0 {
		t.Fatalf("Dockerfile lacks a go build, ENV or HEALTHCHECK: %+v", d)
	}
	return d
}

// dockerfileLDFlags reads the -ldflags of the Dockerfile's go build, with
// ${VERSION} and ${COMMIT} as the tests stamp them (TestMain builds with them).
func dockerfileLDFlags() (string, error) {
	raw, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		return "", err
	}
	joined := regexp.MustCompile(`\\\n\s*`).ReplaceAllString(string(raw), " ")
	m := regexp.MustCompile(`go build [^\n]*-ldflags "([^"]*)"`).FindStringSubmatch(joined)
	if m == nil {
		return "", errors.New("the Dockerfile has no go build with -ldflags")
	}
	return strings.NewReplacer("${VERSION}", stampVersion, "${COMMIT}", stampCommit).Replace(m[1]), nil
}

func runBin(t *testing.T, bin string, env map[string]string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

// TestDockerfileBinaryRunsWithItsSettings takes the binary TestMain built the way
// the Dockerfile does (CGO off, its -ldflags), checks it is static and stamped, runs it with the image's settings (the
// /data volume in a temp directory, a loopback port) and its HEALTHCHECK.
func TestDockerfileBinaryRunsWithItsSettings(t *testing.T) {
	t.Parallel()
	d := readDockerfile(t)
	for _, want := range []string{"USER 65532", `VOLUME ["/data"]`, "FROM gcr.io/distroless/static", "AS build"} {
		if !strings.Contains(d.text, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if d.env["GMP_DB_PATH"] != "/data/mail_service.db" {
		t.Errorf("the image's store is %q, want the /data volume", d.env["GMP_DB_PATH"])
	}
	if !strings.Contains(d.text, "CGO_ENABLED=0 go build") {
		t.Error("the Dockerfile does not build with CGO_ENABLED=0 (a static binary)")
	}
	bin := binary

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary is dynamically linked (PT_INTERP): it would not run on a static base image")
		}
	}
	f.Close()

	out, code := runBin(t, bin, nil, "version")
	if code != 0 || strings.TrimSpace(out) != "mail-proxy "+stampVersion+" (commit "+stampCommit+")" {
		t.Errorf("version of the stamped build: exit %d %q", code, out)
	}
	if strings.Contains(out, "(devel)") {
		t.Errorf("a built binary says (devel): %q", out)
	}

	env := map[string]string{}
	for k, v := range d.env {
		env[k] = strings.Replace(v, "/data", t.TempDir(), 1)
	}
	env["GMP_HOST"], env["GMP_PORT"] = "127.0.0.1", "0" // loopback only in tests
	p := startProxyBinary(t, bin, env)
	// The HEALTHCHECK, with GMP_URL pointing where this instance listens.
	check := d.healthcheck
	if check[0] != "/usr/local/bin/mail-proxy" {
		t.Fatalf("HEALTHCHECK runs %q, not the installed binary", check[0])
	}
	if out, code := runBin(t, bin, map[string]string{"GMP_URL": p.URL}, check[1:]...); code != 0 {
		t.Errorf("HEALTHCHECK against the running instance: exit %d %q", code, out)
	}
	p.stop()
	if out, code := runBin(t, bin, map[string]string{"GMP_URL": p.URL}, check[1:]...); code != 3 {
		t.Errorf("HEALTHCHECK against a stopped instance: exit %d, want 3 (unreachable): %q", code, out)
	}
}

// TestSystemdUnit verifies the unit with systemd-analyze (its ExecStart pointed at a
// real binary) and runs the binary with the unit's Environment= settings.
func TestSystemdUnit(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../deploy/mail-proxy.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(raw)
	for _, want := range []string{"DynamicUser=yes", "NoNewPrivileges=yes", "ProtectSystem=strict", "StateDirectory=mail-proxy",
		"ExecStart=/usr/local/bin/mail-proxy serve", "TimeoutStopSec="} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q", want)
		}
	}
	if analyze, err := exec.LookPath("systemd-analyze"); err == nil {
		dir := t.TempDir()
		copyPath := filepath.Join(dir, "mail-proxy.service")
		if err := os.WriteFile(copyPath, []byte(strings.ReplaceAll(unit, "/usr/local/bin/mail-proxy", binary)), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(analyze, "verify", copyPath).CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	} else {
		t.Log("SKIPPED LOUDLY: systemd-analyze not found; the unit was not verified by systemd")
	}

	state, creds := t.TempDir(), t.TempDir()
	key, code := runBin(t, binary, nil, "gen-key")
	if code != 0 {
		t.Fatalf("gen-key: %s", key)
	}
	if err := os.WriteFile(filepath.Join(creds, "encryption_key"), []byte(key), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(unit, "\n") {
		if v, ok := strings.CutPrefix(line, "Environment="); ok {
			k, val, _ := strings.Cut(v, "=")
			env[k] = strings.NewReplacer("/var/lib/mail-proxy", state, "%d", creds).Replace(val)
		}
	}
	if env["GMP_ENCRYPTION_KEY_FILE"] == "" || env["GMP_DB_PATH"] == "" {
		t.Fatalf("unit environment: %v", env)
	}
	env["GMP_PORT"] = "0"
	p := startProxyBinary(t, binary, env)
	if strings.Contains(p.logs(), "plaintext") {
		t.Errorf("the unit's key file was not used:\n%s", p.logs())
	}
	if _, err := os.Stat(filepath.Join(state, "mail_service.db")); err != nil {
		t.Errorf("the store is not in the state directory: %v", err)
	}
}

// TestComposeFile parses compose.yaml, checks PostgreSQL and two instances sharing
// it, then runs two instances with those settings on a real PostgreSQL database and
// sees a message enqueued on one listed by the other.
func TestComposeFile(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Build       any               `yaml:"build"`
			Environment map[string]string `yaml:"environment"`
			Ports       []string          `yaml:"ports"`
			DependsOn   map[string]any    `yaml:"depends_on"`
			Healthcheck map[string]any    `yaml:"healthcheck"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	pg, ok := compose.Services["postgres"]
	if !ok || !strings.HasPrefix(pg.Image, "postgres:") || pg.Healthcheck == nil {
		t.Fatalf("no postgres service with a health check: %+v", compose.Services)
	}
	var instances []map[string]string
	for _, name := range []string{"mailproxy-a", "mailproxy-b"} {
		s, ok := compose.Services[name]
		if !ok {
			t.Fatalf("no service %s", name)
		}
		if s.Build == nil || s.DependsOn["postgres"] == nil || len(s.Ports) != 1 {
			t.Errorf("%s: build %v depends_on %v ports %v", name, s.Build, s.DependsOn, s.Ports)
		}
		if !strings.Contains(s.Environment["GMP_DATABASE_URL"], "@postgres:5432/") {
			t.Errorf("%s does not use the postgres service: %q", name, s.Environment["GMP_DATABASE_URL"])
		}
		instances = append(instances, s.Environment)
	}
	if instances[0]["GMP_DATABASE_URL"] != instances[1]["GMP_DATABASE_URL"] {
		t.Errorf("the instances use different databases")
	}
	if compose.Services["mailproxy-a"].Ports[0] == compose.Services["mailproxy-b"].Ports[0] {
		t.Error("both instances publish the same port")
	}

	dsn := pgtest.DSN(t)
	var procs []*proc
	for _, envIn := range instances {
		env := map[string]string{}
		for k, v := range envIn {
			if strings.HasPrefix(v, "${") { // ${VAR:?message}: set by the operator
				v = map[string]string{"GMP_API_TOKEN": adminToken, "MAIL_PROXY_ENCRYPTION_KEY": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}[k]
			}
			env[k] = v
		}
		env["GMP_DATABASE_URL"] = dsn
		env["GMP_HOST"], env["GMP_PORT"] = "127.0.0.1", "0"
		env["GMP_SCHEDULER_ACTIVE"] = "false" // no SMTP server here: only the shared queue is checked
		procs = append(procs, startProxyBinary(t, binary, env))
	}
	if code := procs[0].call("POST", "/account", map[string]any{"id": "acc", "host": "127.0.0.1", "port": 2525}, nil); code != 200 {
		t.Fatalf("POST /account on A: %d", code)
	}
	if code := procs[0].call("POST", "/commands/add-messages", map[string]any{"messages": []any{
		map[string]any{"id": "shared-1", "tenant_id": "default", "account_id": "acc", "from": "a@example.com", "to": "b@example.com", "subject": "s", "body": "b"},
	}}, nil); code != 200 {
		t.Fatalf("add-messages on A: %d", code)
	}
	if ids := procs[1].messageIDs("default", ""); !ids["shared-1"] {
		t.Errorf("instance B does not see the message enqueued on A: %v", ids)
	}
}
