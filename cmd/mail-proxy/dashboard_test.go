package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mailproxy/mailproxy/internal/testsmtp"
)

// chromiumPath finds Debian's chromium. Without it the browser test skips,
// unless MAILPROXY_TEST_BROWSER_REQUIRED=1 (set by .ci/run) makes that a failure.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("MAILPROXY_TEST_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("MAILPROXY_TEST_BROWSER_REQUIRED") == "1" {
		t.Fatal("chromium not found and MAILPROXY_TEST_BROWSER_REQUIRED=1 (apt-get install -y chromium)")
	}
	t.Skip("SKIPPING the dashboard browser test: chromium not found (apt-get install -y chromium, or set MAILPROXY_TEST_CHROMIUM)")
	return ""
}

// browser starts one headless Chromium with a fresh profile; the returned
// context drives its first tab.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	// The scenario takes seconds; this only bounds a hung browser (generously:
	// under the race detector the suite shares two cores with it).
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancelTab(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// page runs browser actions, failing the test with what was being done.
func page(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// textOf is the trimmed text of the first element matching the CSS selector,
// "" when there is none (never waits).
func textOf(t *testing.T, ctx context.Context, selector string) string {
	t.Helper()
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); return e ? e.textContent.trim() : ""; })()`, selector)
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	if err != nil {
		t.Fatalf("read %s: %v", selector, err)
	}
	return s
}

// count is the number of elements matching the CSS selector.
func count(t *testing.T, ctx context.Context, selector string) int {
	t.Helper()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, selector)))
	if err != nil {
		t.Fatalf("count %s: %v", selector, err)
	}
	return n
}

func login(t *testing.T, ctx context.Context, baseURL, token string) {
	t.Helper()
	page(t, ctx, "log in", chromedp.Navigate(baseURL+"/ui/"),
		chromedp.WaitVisible(chromedp.CSS(`input[name="token"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="token"]`), token),
		chromedp.Click(chromedp.CSS(`#login-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#totals`)))
}

// The dashboard in a real browser against the real binary: log in with the
// admin token, watch a message sent to a real SMTP server reach "sent", open
// its history, confirm (and cancel) actions, and see that a tenant key shows
// nothing of another tenant.
func TestDashboardInBrowser(t *testing.T) {
	srv := newSMTP(t, testsmtp.Options{})
	p := startProxy(t, map[string]string{"GMP_DB_PATH": filepath.Join(t.TempDir(), "mail.db")})
	keys := map[string]string{}
	for _, tenant := range []string{"acme", "globex"} {
		var created struct {
			APIKey string `json:"api_key"`
		}
		if code := p.call("POST", "/tenant", map[string]any{"id": tenant, "name": strings.ToUpper(tenant[:1]) + tenant[1:]}, &created); code != 200 || created.APIKey == "" {
			t.Fatalf("POST /tenant %s: %d %+v", tenant, code, created)
		}
		keys[tenant] = created.APIKey
		body := map[string]any{"id": "smtp", "tenant_id": tenant, "host": "127.0.0.1", "port": srv.Port(), "use_tls": false,
			"limit_per_minute": 100}
		if code := p.call("POST", "/account", body, nil); code != 200 {
			t.Fatalf("POST /account for %s: %d", tenant, code)
		}
	}
	welcome := msg("welcome-1", "smtp", "alice@example.com")
	welcome["tenant_id"], welcome["subject"] = "acme", "Welcome to Acme"
	welcome["headers"] = map[string]any{"X-Campaign": "spring"}
	secret := msg("globex-secret", "smtp", "bob@example.com")
	secret["tenant_id"], secret["batch_code"] = "globex", "q3"
	if code := p.call("POST", "/commands/add-messages", map[string]any{"messages": []any{welcome, secret}}, nil); code != 200 {
		t.Fatalf("add-messages: %d", code)
	}
	if os.Getenv("MAILPROXY_DASHBOARD_SCREENSHOT") != "" {
		addDemoTraffic(t, p, srv)
	}

	ctx := browser(t)
	login(t, ctx, p.URL, adminToken)
	if got := textOf(t, ctx, "#who"); got != "admin" {
		t.Errorf("after the admin login the header says %q, want admin", got)
	}
	if shot := os.Getenv("MAILPROXY_DASHBOARD_SCREENSHOT"); shot != "" {
		screenshotOverview(t, ctx, shot)
	}

	// Messages: the message reaches "sent" (the list is refreshed until it does).
	page(t, ctx, "open Messages", chromedp.Click(chromedp.Search(`//nav//a[text()="Messages"]`)),
		chromedp.WaitVisible(chromedp.CSS(`table#messages`)))
	row := `table#messages tr[data-id="welcome-1"][data-tenant="acme"]`
	deadline := time.Now().Add(30 * time.Second)
	for state := ""; state != "sent"; state = textOf(t, ctx, row+" .state") {
		if time.Now().After(deadline) {
			t.Fatalf("welcome-1 did not show as sent within 30 s (last %q; SMTP server has %d messages)\n%s", state, srv.Count(), p.logs())
		}
		page(t, ctx, "refresh the list", chromedp.Click(chromedp.CSS(`#refresh`)), chromedp.WaitVisible(chromedp.CSS(`table#messages`)))
	}
	for _, m := range srv.Messages() {
		if headerValue(m.Data, "X-Genro-Mail-ID") == "welcome-1" && headerValue(m.Data, "Subject") != "Welcome to Acme" {
			t.Errorf("the SMTP server received welcome-1 with subject %q, want Welcome to Acme", headerValue(m.Data, "Subject"))
		}
	}

	// Its page: history with the sent event, and its headers.
	page(t, ctx, "open welcome-1", chromedp.Click(chromedp.CSS(row+` a`)),
		chromedp.WaitVisible(chromedp.CSS(`#history`)))
	if n := count(t, ctx, `#history tr[data-event="sent"]`); n != 1 {
		t.Errorf("history shows %d sent events, want 1", n)
	}
	summary := textOf(t, ctx, "#summary")
	for _, want := range []string{"welcome-1", "acme", "sent", "smtp"} {
		if !strings.Contains(summary, want) {
			t.Errorf("summary %q lacks %q", summary, want)
		}
	}
	if text := textOf(t, ctx, "main"); strings.Contains(text, "null") || strings.Contains(text, "[object") {
		t.Errorf("the message page shows a rendering slip: %q", text)
	}
	headers := textOf(t, ctx, "#headers")
	for _, want := range []string{"Welcome to Acme", "alice@example.com", "X-Campaign", "spring"} {
		if !strings.Contains(headers, want) {
			t.Errorf("headers %q lack %q", headers, want)
		}
	}

	// An action asks first: Cancel leaves the message in place.
	page(t, ctx, "ask to delete", chromedp.Click(chromedp.CSS(`#delete-message`)),
		chromedp.WaitVisible(chromedp.CSS(`#confirm`)))
	if got := textOf(t, ctx, "#confirm-text"); !strings.Contains(got, "welcome-1") {
		t.Errorf("confirmation text %q does not name the message", got)
	}
	page(t, ctx, "cancel", chromedp.Click(chromedp.CSS(`#confirm-cancel`)), chromedp.WaitNotVisible(chromedp.CSS(`#confirm`)))
	if ids := p.messageIDs("acme", ""); !ids["welcome-1"] {
		t.Fatalf("welcome-1 is gone after Cancel: %v", ids)
	}

	// Suspend a batch through the Actions view, with its confirmation; the
	// Tenants view then shows it.
	page(t, ctx, "suspend a batch", chromedp.Click(chromedp.Search(`//nav//a[text()="Actions"]`)),
		chromedp.WaitVisible(chromedp.CSS(`form#suspend`)),
		chromedp.SetValue(chromedp.CSS(`form#suspend select[name="tenant_id"]`), "globex"),
		chromedp.SendKeys(chromedp.CSS(`form#suspend input[name="batch_code"]`), "q3"),
		chromedp.Click(chromedp.CSS(`form#suspend button[value="suspend"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#confirm`)))
	if got := textOf(t, ctx, "#confirm-text"); !strings.Contains(got, `"q3"`) || !strings.Contains(got, `"globex"`) {
		t.Errorf("confirmation text %q does not name batch q3 of globex", got)
	}
	page(t, ctx, "confirm", chromedp.Click(chromedp.CSS(`#confirm-ok`)),
		chromedp.Poll[chromedp.Void](`document.querySelector("#action-result").textContent.includes("q3")`, chromedp.WithPollingTimeout(10*time.Second)))
	var tenant struct {
		SuspendedBatches []string `json:"suspended_batches"`
	}
	p.call("GET", "/tenant/globex", nil, &tenant)
	if len(tenant.SuspendedBatches) != 1 || tenant.SuspendedBatches[0] != "q3" {
		t.Errorf("after the confirmed suspend globex's suspended batches are %v, want [q3]", tenant.SuspendedBatches)
	}
	page(t, ctx, "open Tenants", chromedp.Click(chromedp.Search(`//nav//a[text()="Tenants"]`)),
		chromedp.WaitVisible(chromedp.CSS(`table#tenants tr[data-tenant="globex"]`)))
	if got := textOf(t, ctx, `table#tenants tr[data-tenant="globex"] td.suspended`); got != "q3" {
		t.Errorf("Tenants shows globex's suspended batches as %q, want q3", got)
	}

	// A tenant key sees its own tenant only, and is refused another's.
	page(t, ctx, "log out", chromedp.Click(chromedp.CSS(`#logout`)), chromedp.WaitVisible(chromedp.CSS(`input[name="token"]`)))
	login(t, ctx, p.URL, keys["acme"])
	if got := textOf(t, ctx, "#who"); got != "tenant acme" {
		t.Errorf("after the acme key login the header says %q, want tenant acme", got)
	}
	if got := textOf(t, ctx, "#counts"); strings.Contains(got, "globex") {
		t.Errorf("acme's overview mentions globex: %q", got)
	}
	page(t, ctx, "acme's messages", chromedp.Click(chromedp.Search(`//nav//a[text()="Messages"]`)),
		chromedp.WaitVisible(chromedp.CSS(`table#messages tr[data-id="welcome-1"]`)))
	if n, others := count(t, ctx, `table#messages tbody tr`), count(t, ctx, `table#messages tr:not([data-tenant="acme"])[data-id]`); n == 0 || others != 0 {
		t.Errorf("acme's key lists %d messages, %d of another tenant; want some, none", n, others)
	}
	page(t, ctx, "globex's messages with acme's key", chromedp.Navigate(p.URL+"/ui/#/messages?tenant_id=globex"),
		chromedp.WaitVisible(chromedp.CSS(`#view-error`)))
	if got := textOf(t, ctx, "#view-error"); !strings.Contains(got, "not authorized") {
		t.Errorf("acme's key on globex's messages shows %q, want the API's refusal", got)
	}
	page(t, ctx, "globex's message page with acme's key", chromedp.Navigate(p.URL+"/ui/#/message?tenant_id=globex&id=globex-secret"),
		chromedp.WaitVisible(chromedp.CSS(`#view-error`)))
	if strings.Contains(textOf(t, ctx, "main"), "bob@example.com") {
		t.Error("acme's key shows globex's message")
	}
}

// addDemoTraffic makes the overview worth a screenshot: a few dozen sent
// messages, some refused by the server, some deferred for later.
func addDemoTraffic(t *testing.T, p *proc, srv *testsmtp.Server) {
	t.Helper()
	if _, err := srv.AddFault(testsmtp.Reply(testsmtp.StageRcpt, 550, "5.1.1", "user unknown").ForRcpt("nobody@example.com")); err != nil {
		t.Fatal(err)
	}
	// A held batch leaves due messages in the queue: the oldest due one shows.
	p.call("POST", "/commands/suspend?tenant_id=acme&batch_code=newsletter", nil, nil)
	var items []any
	for i := range 3 {
		m := msg(fmt.Sprintf("newsletter-%d", i), "smtp", "reader@example.com")
		m["tenant_id"], m["batch_code"] = "acme", "newsletter"
		items = append(items, m)
	}
	for i := range 40 {
		tenant, to := "acme", "customer@example.com"
		if i%3 == 0 {
			tenant = "globex"
		}
		if i%9 == 4 {
			to = "nobody@example.com"
		}
		m := msg(fmt.Sprintf("demo-%02d", i), "smtp", to)
		m["tenant_id"] = tenant
		if i%10 == 7 {
			m["deferred_ts"] = time.Now().Add(2 * time.Hour).Unix()
		}
		items = append(items, m)
	}
	if code := p.call("POST", "/commands/add-messages", map[string]any{"messages": items}, nil); code != 200 {
		t.Fatalf("add demo messages: %d", code)
	}
	waitFor(t, 30*time.Second, "demo messages delivered", func() bool { return srv.Count() >= 30 })
}

// screenshotOverview writes a PNG of the overview once its figures are in.
func screenshotOverview(t *testing.T, ctx context.Context, path string) {
	t.Helper()
	page(t, ctx, "show the overview", chromedp.Navigate(strings.Split(currentURL(t, ctx), "#")[0]+"#/overview"),
		chromedp.WaitVisible(chromedp.CSS(`#throughput rect`)))
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", path, len(png))
}

func currentURL(t *testing.T, ctx context.Context) string {
	t.Helper()
	u, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatalf("read the location: %v", err)
	}
	return u
}
