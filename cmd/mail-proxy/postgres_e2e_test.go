package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailproxy/mailproxy/internal/store/postgres/pgtest"
	"github.com/mailproxy/mailproxy/internal/testsmtp"
)

// pgEnv is the environment of a mail-proxy on the PostgreSQL database dsn.
func pgEnv(dsn string, extra map[string]string) map[string]string {
	env := map[string]string{"GMP_DB_PATH": dsn}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// startProxies starts n instances at once (they migrate the fresh database
// together, under the advisory lock).
func startProxies(t *testing.T, n int, env map[string]string) []*proc {
	t.Helper()
	procs := make([]*proc, n)
	var wg sync.WaitGroup
	for i := range procs {
		wg.Go(func() { procs[i] = startProxy(t, env) })
	}
	wg.Wait()
	for i, p := range procs {
		if p == nil {
			t.Fatalf("instance %d did not start", i)
		}
	}
	return procs
}

// tenantStats is the default tenant's row of GET /stats.
type tenantStats struct {
	Pending  int `json:"pending"`
	Deferred int `json:"deferred"`
	Sent     int `json:"sent"`
	Error    int `json:"error"`
}

func (p *proc) stats(t *testing.T) tenantStats {
	t.Helper()
	var out struct {
		Tenants []struct {
			TenantID string `json:"tenant_id"`
			tenantStats
		} `json:"tenants"`
	}
	if code := p.call("GET", "/stats?tenant_id=default", nil, &out); code != 200 {
		t.Fatalf("GET /stats: %d", code)
	}
	for _, ts := range out.Tenants {
		if ts.TenantID == "default" {
			return ts.tenantStats
		}
	}
	return tenantStats{}
}

// enqueueBatches submits ids in batches of batchSize, round-robin over the
// instances, concurrently (one writer per instance).
func enqueueBatches(t *testing.T, procs []*proc, ids []string, account string, batchSize int) {
	t.Helper()
	var wg sync.WaitGroup
	for w, p := range procs {
		wg.Go(func() {
			for start := w * batchSize; start < len(ids); start += batchSize * len(procs) {
				end := min(start+batchSize, len(ids))
				batch := make([]any, 0, end-start)
				for _, id := range ids[start:end] {
					batch = append(batch, msg(id, account, "rcpt@example.com"))
				}
				var out struct {
					Queued int `json:"queued"`
				}
				code, err := p.try("POST", "/commands/add-messages", map[string]any{"messages": batch}, &out)
				if err != nil || code != 200 || out.Queued != end-start {
					t.Errorf("add-messages through instance %d: %d queued=%d err=%v", w, code, out.Queued, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

func idRange(prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s%05d", prefix, i)
	}
	return ids
}

// receptions lists each client id's reception times, in arrival order.
func receptions(srv *testsmtp.Server) map[string][]time.Time {
	out := map[string][]time.Time{}
	for _, m := range srv.Messages() {
		id := headerValue(m.Data, "X-Genro-Mail-ID")
		out[id] = append(out[id], m.At)
	}
	return out
}

// Three instances share one queue: 10,000 messages are delivered exactly
// once. Then one instance, running with a 3 s claim lease, is killed with
// SIGKILL in the middle of a burst: nothing is lost, and its claims are
// taken over once their lease has expired, not before. Only messages it held
// may repeat: sends whose 250 it had not yet recorded, at most the claims
// one instance holds (GMP_MAX_SENDS running plus a lane backlog of
// GMP_BATCH_SIZE_PER_ACCOUNT, since the dispatcher frees a send slot before
// it records the outcome). The survivors keep the default lease: on this
// shared 2-core machine a 3 s lease can lapse under a busy holder, which
// is a duplicate this test is not about.
func TestPostgresThreeInstancesShareOneQueue(t *testing.T) {
	t.Parallel()
	const first, second, maxSends, batch = 10_000, 3_000, 8, 16
	dsn := pgtest.DSN(t)
	srv := newSMTP(t, testsmtp.Options{})
	env := pgEnv(dsn, map[string]string{
		"GMP_CLAIM_LEASE_SECONDS":    "3",
		"GMP_MAX_SENDS":              strconv.Itoa(maxSends),
		"GMP_MAX_SENDS_PER_ACCOUNT":  strconv.Itoa(maxSends),
		"GMP_POOL_SIZE":              strconv.Itoa(maxSends),
		"GMP_BATCH_SIZE_PER_ACCOUNT": strconv.Itoa(batch),
	})
	procs := startProxies(t, 3, env)
	addAccount(t, procs[0], "acc", srv)

	// Phase 1: every message once.
	started := time.Now()
	enqueueBatches(t, procs, idRange("m", first), "acc", 500)
	waitFor(t, 120*time.Second, "10,000 messages received", func() bool { return srv.Count() >= first })
	waitFor(t, 60*time.Second, "10,000 messages recorded sent", func() bool { return procs[1].stats(t).Sent == first })
	elapsed := time.Since(started)
	got := receptions(srv)
	if len(got) != first || srv.Count() != first {
		t.Fatalf("phase 1: %d deliveries of %d distinct ids, want %d messages each delivered once", srv.Count(), len(got), first)
	}
	for _, id := range idRange("m", first) {
		if n := len(got[id]); n != 1 {
			t.Fatalf("phase 1: message %s delivered %d times, want once", id, n)
		}
	}
	t.Logf("phase 1: %d messages through 3 instances, each delivered once, in %s (%.0f msgs/s)",
		first, elapsed.Round(time.Millisecond), float64(first)/elapsed.Seconds())

	// Phase 2: the third instance is replaced by one with a 3 s lease, which
	// is killed in the middle of a burst. A little DATA latency keeps the
	// burst going long enough to land the kill in it.
	procs[2].stop()
	victimEnv := pgEnv(dsn, env)
	victimEnv["GMP_CLAIM_LEASE_SECONDS"] = "3"
	victim := startProxy(t, victimEnv)
	pid := victim.cmd.Process.Pid
	if _, err := srv.AddFault(testsmtp.Delay(testsmtp.StageData, 2*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	enqueueBatches(t, procs[:1], idRange("k", second), "acc", 500)
	waitFor(t, 60*time.Second, "a fifth of the burst delivered", func() bool { return srv.Count() >= first+second/5 })
	victim.kill()
	killedAt := time.Now()

	// The victim's claims at its death: owner ids are "<host>-<pid>-<random>".
	held := map[string]time.Time{} // id -> lease end
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatalf("connect to the test database: %v", err)
	}
	rows, err := conn.Query(context.Background(),
		`SELECT id, lease_until FROM messages WHERE lease_owner LIKE $1 AND final_at IS NULL`, fmt.Sprintf("%%-%d-%%", pid))
	if err != nil {
		t.Fatalf("read the victim's claims: %v", err)
	}
	var (
		id    string
		until int64
	)
	if _, err := pgx.ForEachRow(rows, []any{&id, &until}, func() error {
		held[id] = time.UnixMilli(until)
		return nil
	}); err != nil {
		t.Fatalf("read the victim's claims: %v", err)
	}
	conn.Close(context.Background())
	if len(held) == 0 {
		t.Fatalf("the killed instance held no claims: the kill missed the burst")
	}

	waitFor(t, 120*time.Second, "every burst message recorded sent", func() bool {
		return procs[0].stats(t).Sent == first+second
	})
	got = receptions(srv)
	dups, takenOver := 0, 0
	for _, id := range idRange("k", second) {
		times := got[id]
		if len(times) == 0 {
			t.Errorf("burst message %s never delivered", id)
			continue
		}
		if len(times) > 1 {
			dups += len(times) - 1
			if _, ok := held[id]; !ok {
				t.Errorf("burst message %s delivered %d times but the killed instance did not hold it", id, len(times))
			}
		}
		if end, ok := held[id]; ok {
			// Deliveries after the kill come from survivors, which may take
			// the dead instance's claim only once its lease has ended.
			for _, at := range times {
				if at.After(killedAt) && at.Before(end) {
					t.Errorf("message %s sent again at %s, before the dead instance's lease ended at %s", id,
						at.Format(time.StampMilli), end.Format(time.StampMilli))
				}
				if !at.Before(end) {
					takenOver++
				}
			}
		}
	}
	if takenOver == 0 {
		t.Errorf("no claim of the killed instance was sent after its lease ended: no takeover seen")
	}
	if bound := maxSends + batch; dups > bound {
		t.Errorf("%d duplicates after the kill, more than the %d claims the killed instance could hold", dups, bound)
	}
	if s := procs[0].stats(t); s.Sent != first+second || s.Pending != 0 || s.Error != 0 {
		t.Errorf("stats after the burst = %+v, want %d sent and nothing pending or failed", s, first+second)
	}
	t.Logf("phase 2: killed pid %d holding %d claims, %d sent by survivors after the lease; all %d burst messages sent %s after the kill; %d duplicates (bound %d)",
		pid, len(held), takenOver, second, time.Since(killedAt).Round(time.Millisecond), dups, maxSends+batch)
}

// sentCounter sums a counter of a process's /metrics for one account.
func (p *proc) counter(t *testing.T, name, account string) float64 {
	t.Helper()
	resp, err := http.Get(p.URL + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") || !strings.Contains(line, `account_id="`+account+`"`) {
			continue
		}
		if v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// Two instances share one account's rate limit exactly: of 20 messages
// with limit_per_minute=7, the SMTP server accepts 7 in the minute; the
// other 13 wait, deferred with rate_limit to the end of that minute.
func TestPostgresRateLimitSharedByTwoInstances(t *testing.T) {
	t.Parallel()
	const limit, total = 7, 20
	srv := newSMTP(t, testsmtp.Options{})
	procs := startProxies(t, 2, pgEnv(pgtest.DSN(t), nil))
	body := map[string]any{"id": "limited", "host": "127.0.0.1", "port": srv.Port(), "use_tls": false,
		"limit_per_minute": limit}
	if code := procs[0].call("POST", "/account", body, nil); code != 200 {
		t.Fatalf("POST /account: %d", code)
	}
	// Start with 10 s or more left in the minute, so the first sends are
	// reserved and received in the same window.
	waitFor(t, 15*time.Second, "10 s or more left in the minute", func() bool { return time.Now().Second() < 50 })
	window := time.Now().Truncate(time.Minute)
	windowEnd := window.Add(time.Minute)
	batch := make([]any, total)
	for i := range batch {
		batch[i] = msg(fmt.Sprintf("r%02d", i), "limited", "rcpt@example.com")
	}
	procs[1].call("POST", "/commands/add-messages", map[string]any{"messages": batch}, nil)

	type record struct {
		ID         string `json:"id"`
		Status     string `json:"status"`
		DeferredTS *int64 `json:"deferred_ts"`
		History    []struct {
			EventType   string `json:"event_type"`
			Description string `json:"description"`
		} `json:"history"`
	}
	var recs []record
	settled := func() bool {
		var out struct {
			Messages []record `json:"messages"`
		}
		procs[0].call("GET", "/messages?tenant_id=default&include_history=true", nil, &out)
		recs = out.Messages
		sent, deferred := 0, 0
		for _, r := range recs {
			switch r.Status {
			case "sent":
				sent++
			case "deferred":
				deferred++
			}
		}
		return sent+deferred == total || time.Now().After(windowEnd)
	}
	waitFor(t, 90*time.Second, "every message sent or deferred", settled)

	perWindow := map[time.Time]int{}
	for _, m := range srv.Messages() {
		perWindow[m.At.Truncate(time.Minute)]++
	}
	for w, n := range perWindow {
		if n > limit {
			t.Errorf("the SMTP server accepted %d messages in the minute from %s, limit %d", n, w.Format(time.TimeOnly), limit)
		}
	}
	if time.Now().After(windowEnd) {
		// The machine was too slow to settle within the minute: the
		// per-window bound above is what can still be checked.
		t.Logf("the minute ended before the first sends settled; per-minute counts %v", perWindow)
		return
	}
	if n := perWindow[window]; n != limit {
		t.Errorf("the SMTP server accepted %d messages in the minute, want exactly %d", n, limit)
	}
	deferred := 0
	for _, r := range recs {
		if r.Status != "deferred" {
			continue
		}
		deferred++
		if r.DeferredTS == nil || *r.DeferredTS != windowEnd.Unix() {
			t.Errorf("%s deferred to %v, want the end of the minute %d", r.ID, r.DeferredTS, windowEnd.Unix())
		}
		if h := r.History; len(h) == 0 || h[len(h)-1].EventType != "deferred" || h[len(h)-1].Description != "rate_limit" {
			t.Errorf("%s history %+v, want a rate_limit deferral last", r.ID, h)
		}
	}
	if deferred != total-limit {
		t.Errorf("%d messages deferred, want %d", deferred, total-limit)
	}
	sent := procs[0].counter(t, "gmp_sent_total", "limited") + procs[1].counter(t, "gmp_sent_total", "limited")
	limited := []float64{procs[0].counter(t, "gmp_rate_limited_total", "limited"), procs[1].counter(t, "gmp_rate_limited_total", "limited")}
	if sent != limit {
		t.Errorf("the instances count %v sends together, want %d", sent, limit)
	}
	t.Logf("minute %s: %d accepted, %d deferred to %s; rate-limited per instance %v",
		window.Format(time.TimeOnly), perWindow[window], deferred, windowEnd.Format(time.TimeOnly), limited)
}

// A message enqueued through an API-only instance is delivered by an idle
// instance whose fallback poll is two minutes away: the enqueue's NOTIFY
// reaches the other process's LISTEN connection and wakes its dispatcher.
func TestPostgresNotifyWakesOtherInstance(t *testing.T) {
	t.Parallel()
	srv := newSMTP(t, testsmtp.Options{})
	dsn := pgtest.DSN(t)
	api := startProxy(t, pgEnv(dsn, map[string]string{"GMP_SCHEDULER_ACTIVE": "false"}))
	sender := startProxy(t, pgEnv(dsn, map[string]string{"GMP_SEND_LOOP_INTERVAL": "120", "GMP_LOG_LEVEL": "DEBUG"}))
	addAccount(t, api, "acc", srv)
	const note = "postgres: work notification received"
	before := strings.Count(sender.logs(), note)

	start := time.Now()
	if code := api.call("POST", "/commands/add-messages",
		map[string]any{"messages": []any{msg("woken", "acc", "a@example.com")}}, nil); code != 200 {
		t.Fatalf("add-messages: %d", code)
	}
	waitFor(t, 30*time.Second, "delivery by the other instance", func() bool { return srv.Count() == 1 })
	latency := time.Since(start)
	waitFor(t, 10*time.Second, "the sender's log of the notification", func() bool {
		return strings.Count(sender.logs(), note) > before
	})
	if ids := sender.messageIDs("default", "sent"); !ids["woken"] {
		t.Errorf("the message is not recorded sent: %v", ids)
	}
	t.Logf("enqueued on the API-only instance, delivered by the other %s later", latency.Round(time.Millisecond))
}

// TestPostgresDeliveryThroughput (MAILPROXY_BENCH=1) measures delivery with
// one and with two instances on one database against testsmtp: the tenant
// is suspended, the queue filled, the senders started, then one activate
// (its NOTIFY wakes every instance) starts the clock.
func TestPostgresDeliveryThroughput(t *testing.T) {
	if os.Getenv("MAILPROXY_BENCH") != "1" {
		t.Skip("set MAILPROXY_BENCH=1 to measure delivery throughput with 1 and 2 instances")
	}
	const total = 6000
	rate := map[int]float64{}
	for _, instances := range []int{1, 2} {
		srv := newSMTP(t, testsmtp.Options{Discard: true})
		dsn := pgtest.DSN(t)
		api := startProxy(t, pgEnv(dsn, map[string]string{"GMP_SCHEDULER_ACTIVE": "false"}))
		addAccount(t, api, "acc", srv)
		if code := api.call("POST", "/commands/suspend?tenant_id=default", nil, nil); code != 200 {
			t.Fatalf("suspend: %d", code)
		}
		enqueueBatches(t, []*proc{api}, idRange("b", total), "acc", 1000)
		senders := startProxies(t, instances, pgEnv(dsn, map[string]string{
			"GMP_MAX_SENDS": "10", "GMP_MAX_SENDS_PER_ACCOUNT": "10", "GMP_POOL_SIZE": "10"}))
		start := time.Now()
		if code := api.call("POST", "/commands/activate?tenant_id=default", nil, nil); code != 200 {
			t.Fatalf("activate: %d", code)
		}
		waitFor(t, 300*time.Second, "every message delivered", func() bool { return srv.Count() >= total })
		elapsed := time.Since(start)
		waitFor(t, 60*time.Second, "every message recorded sent", func() bool { return api.stats(t).Sent == total })
		rate[instances] = float64(total) / elapsed.Seconds()
		fmt.Printf("delivery throughput, %d instance(s) on one PostgreSQL: %d messages in %s = %.0f msgs/s\n",
			instances, total, elapsed.Round(time.Millisecond), rate[instances])
		for _, p := range append(senders, api) {
			p.stop()
		}
	}
	fmt.Printf("2 instances / 1 instance = %.2f\n", rate[2]/rate[1])
}
