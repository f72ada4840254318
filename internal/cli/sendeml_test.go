package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/internal/testsmtp"
)

// TestSendEML: files (and stdin) go as raw items, byte for byte, with their
// control headers applied and removed; a bar shows on a terminal.
func TestSendEML(t *testing.T) {
	t.Parallel()
	up := testsmtp.Start(t, testsmtp.Options{})
	inst := startInstance(t)
	tenantEnv := map[string]string{"GMP_URL": inst["GMP_URL"], "GMP_TENANT": "default", "GMP_API_TOKEN": adminToken}
	mustRun(t, tenantEnv, "accounts", "add", "smtp1", "--host", up.Host(), "--port", strconv.Itoa(up.Port()), "--no-use-tls")

	dir := t.TempDir()
	var files []string
	bodies := map[string]string{}
	for i := range 120 { // more than one request's worth
		id := fmt.Sprintf("eml-%03d", i)
		body := fmt.Sprintf("From: shop@example.com\r\nTo: c%d@example.net\r\nSubject: file %d\r\n\r\nbody %d\r\n", i, i, i)
		if i == 0 {
			body = "X-Mail-Proxy-Id: " + id + "\r\nX-Mail-Proxy-Priority: low\r\n" + body
		} else {
			body = "X-Mail-Proxy-Id: " + id + "\r\n" + body
		}
		bodies[id] = strings.SplitN(body, "From:", 2)[1]
		path := filepath.Join(dir, id+".eml")
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, path)
	}
	var tty bytes.Buffer
	e := &env{ctx: context.Background(), getenv: func(k string) string { return tenantEnv[k] }, stdout: io.Discard,
		stderr: &tty, flags: &globals{}, terminal: func(w io.Writer) bool { return w == &tty },
		stdin: strings.NewReader("X-Mail-Proxy-Id: from-stdin\nFrom: a@example.com\nTo: b@example.net\n\nvia stdin\n")}
	c := &sendCmd{Account: "smtp1", EML: true, Files: append(files, "-")}
	if err := c.Run(e); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tty.String(), "sending") {
		t.Errorf("no progress bar on the terminal: %q", tty.String())
	}
	bodies["from-stdin"] = " a@example.com\nTo: b@example.net\n\nvia stdin\n"

	mustRun(t, tenantEnv, "run-now")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := up.WaitForCount(ctx, 121); err != nil {
		t.Fatalf("delivered %d of 121: %v", up.Count(), err)
	}
	for _, m := range up.Messages() {
		data := string(m.Data)
		id := ""
		for _, l := range strings.Split(data, "\r\n") {
			if v, ok := strings.CutPrefix(l, "X-Genro-Mail-ID: "); ok {
				id = v
			}
		}
		want, ok := bodies[id]
		if !ok {
			t.Fatalf("unexpected message %q", data)
		}
		got := strings.SplitN(strings.ReplaceAll(data, "\r\n", "\n"), "From:", 2)[1]
		if got != strings.ReplaceAll(want, "\r\n", "\n") || strings.Contains(data, "X-Mail-Proxy-") {
			t.Errorf("%s relayed as %q, want %q", id, data, want)
		}
	}
	out := mustRun(t, tenantEnv, "messages", "show", "eml-000")
	if !strings.Contains(out, `"priority": 3`) {
		t.Errorf("eml-000 priority not low: %s", out)
	}

	mustFail(t, tenantEnv, ExitUsage, "--eml", "send", "--account", "smtp1", "--eml", "--subject", "x", files[0])
	mustFail(t, tenantEnv, ExitUsage, "--eml", "send", "--account", "smtp1", files[0])
	bad := filepath.Join(dir, "bad.eml")
	if err := os.WriteFile(bad, []byte("From: a@example.com\r\n\r\nno recipients\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustFail(t, tenantEnv, ExitFailed, "1 of 1 messages rejected", "send", "--account", "smtp1", "--eml", bad)
}
