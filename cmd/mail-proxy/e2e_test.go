package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/internal/testsmtp"
)

func newSMTP(t *testing.T, opts testsmtp.Options, faults ...testsmtp.Fault) *testsmtp.Server {
	t.Helper()
	opts.Faults = faults
	return testsmtp.Start(t, opts)
}

func addAccount(t *testing.T, p *proc, id string, srv *testsmtp.Server) {
	t.Helper()
	body := map[string]any{"id": id, "host": "127.0.0.1", "port": srv.Port(), "use_tls": false}
	if code := p.call("POST", "/account", body, nil); code != 200 {
		t.Fatalf("POST /account: %d", code)
	}
}

// receivedIDs counts deliveries per client id (X-Genro-Mail-ID).
func receivedIDs(srv *testsmtp.Server) map[string]int {
	ids := map[string]int{}
	for _, m := range srv.Messages() {
		ids[headerValue(m.Data, "X-Genro-Mail-ID")]++
	}
	return ids
}

// An acknowledged message is on disk: SIGKILL in the middle of a stream of
// add-messages requests loses none of the ones answered 200.
func TestAcknowledgedMessagesSurviveKill9(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "mail.db")
	env := map[string]string{"GMP_DB_PATH": db, "GMP_SCHEDULER_ACTIVE": "false"}
	p := startProxy(t, env)
	if code := p.call("POST", "/account", map[string]any{"id": "acc", "host": "127.0.0.1", "port": 2525}, nil); code != 200 {
		t.Fatalf("POST /account: %d", code)
	}

	var (
		mu    sync.Mutex
		acked []string
		count atomic.Int64
		wg    sync.WaitGroup
	)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 { // bounded; the kill ends it much earlier
				id := fmt.Sprintf("w%d-%d", w, i)
				var out struct {
					Queued int `json:"queued"`
				}
				body := map[string]any{"messages": []any{msg(id, "acc", "rcpt@example.com")}}
				code, err := p.try("POST", "/commands/add-messages", body, &out)
				if err != nil {
					return // the process is gone
				}
				if code == 200 && out.Queued == 1 {
					mu.Lock()
					acked = append(acked, id)
					mu.Unlock()
					count.Add(1)
				}
			}
		}()
	}
	waitFor(t, 60*time.Second, "300 acknowledged messages", func() bool { return count.Load() >= 300 })
	p.kill()
	wg.Wait()

	p2 := startProxy(t, env)
	mu.Lock()
	defer mu.Unlock()
	assertAllStored(t, p2, acked, "acknowledged messages")
	t.Logf("all %d acknowledged messages survived kill -9", len(acked))
}

// assertAllStored fails unless every id is stored in the default tenant of p
// (after a kill -9: what was acknowledged must be there).
func assertAllStored(t *testing.T, p *proc, ids []string, what string) {
	t.Helper()
	stored := p.messageIDs("default", "")
	missing := 0
	for _, id := range ids {
		if !stored[id] {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d %s lost after kill -9", missing, len(ids), what)
	}
}

// kill -9 during a send burst: after a restart every acknowledged message is
// delivered; duplicates only for sends whose 250 was not yet recorded, which
// are at most the claims one instance holds (GMP_MAX_SENDS running plus a
// lane backlog of GMP_BATCH_SIZE_PER_ACCOUNT).
func TestKill9DuringSendBurst(t *testing.T) {
	t.Parallel()
	const total, maxSends, batch = 400, 6, 10
	// A little latency per message keeps the burst going long enough to kill it midway.
	srv := newSMTP(t, testsmtp.Options{}, testsmtp.Delay(testsmtp.StageData, 20*time.Millisecond))
	db := filepath.Join(t.TempDir(), "mail.db")
	env := map[string]string{"GMP_DB_PATH": db, "GMP_MAX_SENDS": fmt.Sprint(maxSends),
		"GMP_MAX_SENDS_PER_ACCOUNT": fmt.Sprint(maxSends), "GMP_POOL_SIZE": fmt.Sprint(maxSends),
		"GMP_BATCH_SIZE_PER_ACCOUNT": fmt.Sprint(batch)}
	p := startProxy(t, env)
	addAccount(t, p, "acc", srv)
	for b := range total / 100 {
		batch := make([]any, 100)
		for i := range batch {
			batch[i] = msg(fmt.Sprintf("m%03d", b*100+i), "acc", "rcpt@example.com")
		}
		var out struct {
			Queued int `json:"queued"`
		}
		if code := p.call("POST", "/commands/add-messages", map[string]any{"messages": batch}, &out); code != 200 || out.Queued != 100 {
			t.Fatalf("add-messages: %d queued=%d", code, out.Queued)
		}
	}
	waitFor(t, 60*time.Second, "a quarter of the burst delivered", func() bool { return srv.Count() >= total/4 })
	p.kill()
	atKill := srv.Count()
	if atKill >= total {
		t.Fatalf("the burst was over before the kill (%d delivered): the test did not kill mid-burst", atKill)
	}

	p2 := startProxy(t, env)
	waitFor(t, 120*time.Second, "every message delivered after restart", func() bool { return len(receivedIDs(srv)) >= total })
	waitFor(t, 30*time.Second, "every message recorded as sent", func() bool { return len(p2.messageIDs("default", "sent")) == total })
	dups := 0
	for id, n := range receivedIDs(srv) {
		if id == "" {
			t.Fatal("a delivery without X-Genro-Mail-ID")
		}
		dups += n - 1
	}
	bound := maxSends + batch
	t.Logf("delivered before kill: %d; duplicates after restart: %d (bound %d)", atKill, dups, bound)
	if dups > bound {
		t.Fatalf("%d duplicates, more than the %d claims one instance can hold", dups, bound)
	}
}

// A message enqueued on an idle proxy is sent at once, not at the next poll.
func TestWakeOnEnqueue(t *testing.T) {
	t.Parallel()
	srv := newSMTP(t, testsmtp.Options{})
	p := startProxy(t, map[string]string{"GMP_DB_PATH": filepath.Join(t.TempDir(), "mail.db"),
		"GMP_SEND_LOOP_INTERVAL": "120"})
	addAccount(t, p, "acc", srv)
	p.call("POST", "/commands/add-messages", map[string]any{"messages": []any{msg("first", "acc", "a@example.com")}}, nil)
	// With a 120 s fallback poll, arrival within 30 s can only come from the wake-up.
	waitFor(t, 30*time.Second, "delivery woken by enqueue", func() bool { return srv.Count() == 1 })
	p.call("POST", "/commands/add-messages", map[string]any{"messages": []any{msg("second", "acc", "a@example.com")}}, nil)
	waitFor(t, 30*time.Second, "second delivery woken by enqueue", func() bool { return srv.Count() == 2 })
}

// One serve per SQLite file: a second one exits with a clear error.
func TestSecondServeOnSameDatabaseFails(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "mail.db")
	startProxy(t, map[string]string{"GMP_DB_PATH": db})
	out, code := runBinary(t, map[string]string{"GMP_DB_PATH": db, "GMP_PORT": "0", "GMP_HOST": "127.0.0.1"}, "serve")
	if code == 0 {
		t.Fatalf("second serve exited 0:\n%s", out)
	}
	if !containsAny(out, "locked", "another") {
		t.Fatalf("second serve's error does not say the store is in use:\n%s", out)
	}
}

// SIGTERM lets in-flight sends finish, keeps the rest queued, and a restart sends them.
func TestGracefulShutdownKeepsQueue(t *testing.T) {
	t.Parallel()
	const total = 60
	srv := newSMTP(t, testsmtp.Options{}, testsmtp.Delay(testsmtp.StageData, 20*time.Millisecond))
	db := filepath.Join(t.TempDir(), "mail.db")
	env := map[string]string{"GMP_DB_PATH": db, "GMP_MAX_SENDS": "2", "GMP_MAX_SENDS_PER_ACCOUNT": "2"}
	p := startProxy(t, env)
	addAccount(t, p, "acc", srv)
	batch := make([]any, total)
	for i := range batch {
		batch[i] = msg(fmt.Sprintf("g%02d", i), "acc", "rcpt@example.com")
	}
	p.call("POST", "/commands/add-messages", map[string]any{"messages": batch}, nil)
	waitFor(t, 30*time.Second, "first deliveries", func() bool { return srv.Count() >= 4 })
	p.stop()
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("graceful stop exited %d:\n%s", code, p.logs())
	}
	afterStop := srv.Count()
	sent := 0
	p2 := startProxy(t, map[string]string{"GMP_DB_PATH": db, "GMP_SCHEDULER_ACTIVE": "false"})
	sent = len(p2.messageIDs("default", "sent"))
	if sent != afterStop {
		t.Fatalf("%d messages reached the server but %d are recorded sent: an in-flight send was cut or not recorded", afterStop, sent)
	}
	p2.stop()
	p3 := startProxy(t, env)
	waitFor(t, 60*time.Second, "the rest delivered after restart", func() bool { return len(receivedIDs(srv)) == total })
	if srv.Count() != total {
		t.Fatalf("server received %d messages for %d ids: graceful stop caused duplicates", srv.Count(), total)
	}
	_ = p3
}

// GMP_TEST_MODE: nothing is sent or reported until run-now; run-now sends
// everything due, then posts the delivery reports.
func TestTestModeSendsOnlyOnRunNow(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var reports []string
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		reports = append(reports, string(body))
		mu.Unlock()
		w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(receiver.Close)
	srv := newSMTP(t, testsmtp.Options{})
	p := startProxy(t, map[string]string{"GMP_DB_PATH": filepath.Join(t.TempDir(), "mail.db"),
		"GMP_TEST_MODE": "true", "GMP_SEND_LOOP_INTERVAL": "0.05"})
	if code := p.call("POST", "/tenant", map[string]any{"id": "shop", "client_base_url": receiver.URL}, nil); code != 200 {
		t.Fatalf("POST /tenant: %d", code)
	}
	body := map[string]any{"id": "acc", "tenant_id": "shop", "host": "127.0.0.1", "port": srv.Port(), "use_tls": false}
	if code := p.call("POST", "/account", body, nil); code != 200 {
		t.Fatalf("POST /account: %d", code)
	}
	m := msg("tm1", "acc", "a@example.com")
	m["tenant_id"] = "shop"
	p.call("POST", "/commands/add-messages", map[string]any{"messages": []any{m}}, nil)
	// A probe through the same API proves requests are being served; no
	// poll, wake-up or report may have happened without run-now.
	for range 20 {
		p.call("GET", "/messages?tenant_id=shop", nil, nil)
	}
	if n := srv.Count(); n != 0 {
		t.Fatalf("test mode sent %d messages without run-now", n)
	}
	if code := p.call("POST", "/commands/run-now?tenant_id=shop", nil, nil); code != 200 {
		t.Fatalf("run-now: %d", code)
	}
	waitFor(t, 30*time.Second, "the message after run-now", func() bool { return srv.Count() == 1 })
	waitFor(t, 30*time.Second, "its delivery report after run-now", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range reports {
			if strings.Contains(r, `"id":"tm1"`) && strings.Contains(r, `"sent_ts"`) {
				return true
			}
		}
		return false
	})
}

// A delivery report is never lost: with the client's endpoint failing, the
// messages are sent, the proxy is killed with SIGKILL, and after a restart
// every sent report reaches the client once it answers again.
func TestReportsSurviveKill9(t *testing.T) {
	t.Parallel()
	const total = 20
	var (
		mu       sync.Mutex
		healthy  bool
		failures int
		reported = map[string]bool{}
	)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			DeliveryReport []struct {
				ID     string `json:"id"`
				SentTS *int64 `json:"sent_ts"`
			} `json:"delivery_report"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		defer mu.Unlock()
		if !healthy {
			failures++
			http.Error(w, "down for maintenance", http.StatusInternalServerError)
			return
		}
		for _, it := range body.DeliveryReport {
			if it.SentTS != nil {
				reported[it.ID] = true
			}
		}
		w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(receiver.Close)
	srv := newSMTP(t, testsmtp.Options{})
	env := map[string]string{"GMP_DB_PATH": filepath.Join(t.TempDir(), "mail.db")}
	p := startProxy(t, env)
	if code := p.call("POST", "/tenant", map[string]any{"id": "shop", "client_base_url": receiver.URL}, nil); code != 200 {
		t.Fatalf("POST /tenant: %d", code)
	}
	body := map[string]any{"id": "acc", "tenant_id": "shop", "host": "127.0.0.1", "port": srv.Port(), "use_tls": false}
	if code := p.call("POST", "/account", body, nil); code != 200 {
		t.Fatalf("POST /account: %d", code)
	}
	batch := make([]any, total)
	for i := range batch {
		m := msg(fmt.Sprintf("r%02d", i), "acc", "a@example.com")
		m["tenant_id"] = "shop"
		batch[i] = m
	}
	p.call("POST", "/commands/add-messages", map[string]any{"messages": batch}, nil)
	waitFor(t, 30*time.Second, "every message sent", func() bool { return srv.Count() == total })
	waitFor(t, 30*time.Second, "a failed report POST", func() bool { mu.Lock(); defer mu.Unlock(); return failures > 0 })
	p.kill()

	mu.Lock()
	healthy = true
	mu.Unlock()
	p2 := startProxy(t, env)
	// run-now with the tenant clears the failure backoff stored before the kill.
	if code := p2.call("POST", "/commands/run-now?tenant_id=shop", nil, nil); code != 200 {
		t.Fatalf("run-now: %d", code)
	}
	waitFor(t, 60*time.Second, "every sent report delivered after the restart", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(reported) == total
	})
}

// RSET after accepted messages is off by default (the server resets after
// DATA) and on with GMP_SMTP_RSET_AFTER_MESSAGE.
func TestRsetAfterMessageSetting(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		env      string
		wantRset bool
	}{{"", false}, {"true", true}} {
		srv := newSMTP(t, testsmtp.Options{})
		env := map[string]string{"GMP_DB_PATH": filepath.Join(t.TempDir(), "mail.db"),
			"GMP_MAX_SENDS": "1", "GMP_MAX_SENDS_PER_ACCOUNT": "1"}
		if tt.env != "" {
			env["GMP_SMTP_RSET_AFTER_MESSAGE"] = tt.env
		}
		p := startProxy(t, env)
		addAccount(t, p, "acc", srv)
		batch := []any{msg("a", "acc", "x@example.com"), msg("b", "acc", "x@example.com"), msg("c", "acc", "x@example.com")}
		p.call("POST", "/commands/add-messages", map[string]any{"messages": batch}, nil)
		waitFor(t, 30*time.Second, "three deliveries", func() bool { return srv.Count() == 3 })
		if got := srv.Commands("RSET") > 0; got != tt.wantRset {
			t.Errorf("GMP_SMTP_RSET_AFTER_MESSAGE=%q: %d RSET commands, want RSET %v", tt.env, srv.Commands("RSET"), tt.wantRset)
		}
		if srv.Connections() != 1 {
			t.Errorf("GMP_SMTP_RSET_AFTER_MESSAGE=%q: %d connections, want the three messages over one", tt.env, srv.Connections())
		}
		p.stop()
	}
}
