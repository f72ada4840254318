package api_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browserRequiredEnv, set by .ci/run, turns a missing Chromium into a failure.
const browserRequiredEnv = "MAILPROXY_TEST_BROWSER_REQUIRED"

// chromium finds Debian's Chromium, or skips (fails when required).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv(browserRequiredEnv) == "1" {
		t.Fatalf("chromium not found and %s=1 (apt-get install chromium)", browserRequiredEnv)
	}
	t.Skipf("SKIPPED LOUDLY: chromium not found (apt-get install chromium); /docs was not rendered in a browser")
	return ""
}

// TestDocsRenderOffline opens /docs in headless Chromium whose only reachable
// network is the loopback test server (every other host resolves nowhere and
// goes through a dead proxy), and checks that Swagger UI lists the operations:
// with its assets on a CDN the page would stay blank.
func TestDocsRenderOffline(t *testing.T) {
	bin := chromium(t)
	e := setup(t)

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// The network is closed: no name resolves but the loopback, and anything
		// that is not loopback goes to a proxy that does not exist.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
		chromedp.ProxyServer("http://127.0.0.1:9"),
		chromedp.UserDataDir(t.TempDir()),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	defer cancelTimeout()

	if err := chromedp.Do(ctx, chromedp.Navigate(e.srv.URL+"/docs"), chromedp.WaitVisible(chromedp.CSS(".opblock"))); err != nil {
		t.Fatalf("render /docs: %v", err)
	}
	paths, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll('.opblock-summary-path')).map(e => e.textContent.replace(/\u200b/g, ''))`))
	if err != nil {
		t.Fatalf("read the listed operations: %v", err)
	}
	joined := strings.Join(paths, " ")
	for _, want := range []string{"/commands/add-messages", "/messages", "/account", "/tenant/{tenant_id}", "/health", "/metrics"} {
		if !strings.Contains(joined, want) {
			t.Errorf("the docs page does not list %s; listed: %q", want, paths)
		}
	}
	if len(paths) < 20 {
		t.Errorf("only %d operations listed", len(paths))
	}
}
