package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// binary is the mail-proxy executable built once for the end-to-end tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mail-proxy-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "mail-proxy")
	// Built as the Dockerfile builds it (static, version stamped), so every
	// end-to-end test runs the binary the image ships.
	ldflags, err := dockerfileLDFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	build := exec.Command("go", "build", "-ldflags", ldflags, "-o", binary, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build mail-proxy:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const adminToken = "e2e-admin-token"

// proc is one running mail-proxy process.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	URL    string
	mu     sync.Mutex
	output bytes.Buffer
	exited chan struct{}
}

var listenRE = regexp.MustCompile(`mail-proxy listening.*addr=([0-9.]+:[0-9]+)`)

// startProxy runs `mail-proxy serve` with the given environment on a free
// loopback port and waits until it answers /health.
func startProxy(t *testing.T, env map[string]string) *proc {
	t.Helper()
	return startProxyBinary(t, binary, env)
}

// startProxyBinary is startProxy with another build of mail-proxy.
func startProxyBinary(t *testing.T, bin string, env map[string]string) *proc {
	t.Helper()
	cmd := exec.Command(bin, "serve")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(),
		"GMP_HOST=127.0.0.1", "GMP_PORT=0", "GMP_API_TOKEN=" + adminToken}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, exited: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.output.WriteString(line + "\n")
			p.mu.Unlock()
			if m := listenRE.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
	}()
	go func() { _ = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() { p.stop() })
	select {
	case a := <-addr:
		p.URL = "http://" + a
	case <-p.exited:
		t.Fatalf("mail-proxy exited during start-up:\n%s", p.logs())
	case <-time.After(60 * time.Second):
		t.Fatalf("mail-proxy did not report its address:\n%s", p.logs())
	}
	waitFor(t, 30*time.Second, "health", func() bool {
		resp, err := http.Get(p.URL + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return p
}

func (p *proc) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.output.String()
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// stop asks for a graceful stop (SIGTERM), then kills after a deadline.
func (p *proc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.kill()
	}
}

// call performs one API request with the admin token and decodes the JSON answer.
func (p *proc) call(method, path string, body any, out any) int {
	p.t.Helper()
	status, err := p.try(method, path, body, out)
	if err != nil {
		p.t.Fatalf("%s %s: %v\n%s", method, path, err, p.logs())
	}
	return status
}

func (p *proc) try(method, path string, body any, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, p.URL+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-API-Token", adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode %q: %w", data, err)
		}
	}
	return resp.StatusCode, nil
}

// waitFor polls cond every 20 ms until it holds or the deadline passes.
func waitFor(t *testing.T, deadline time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for %s", deadline, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// messageIDs lists the client ids of a tenant's messages with a given status ("" = all).
func (p *proc) messageIDs(tenant, status string) map[string]bool {
	p.t.Helper()
	var out struct {
		Messages []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"messages"`
	}
	if code := p.call("GET", "/messages?tenant_id="+tenant, nil, &out); code != 200 {
		p.t.Fatalf("GET /messages: %d", code)
	}
	ids := map[string]bool{}
	for _, m := range out.Messages {
		if status == "" || m.Status == status {
			ids[m.ID] = true
		}
	}
	return ids
}

func msg(id, account, to string) map[string]any {
	return map[string]any{"id": id, "account_id": account, "from": "Sender <sender@example.com>",
		"to": to, "subject": "Subject " + id, "body": "Body of " + id}
}

func headerValue(data []byte, name string) string {
	for _, line := range strings.Split(string(data), "\r\n") {
		if line == "" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// runBinary runs mail-proxy to completion (60 s at most) and returns its
// combined output and exit code.
func runBinary(t *testing.T, env map[string]string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("mail-proxy %v did not finish:\n%s", args, out)
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(strings.ToLower(s), sub) {
			return true
		}
	}
	return false
}
