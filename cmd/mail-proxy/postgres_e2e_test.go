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
	"syscall"
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
		"GMP_LOG_DELIVERY_ACTIVITY":  "true", // "sending" lines (debug) say when each attempt started
		"GMP_LOG_LEVEL":              "DEBUG",
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
	// is killed in the middle of a burst while it holds claims. A little DATA latency keeps the
	// burst going long enough to land the kill in it.
	procs[2].stop()
	victimEnv := pgEnv(dsn, env)
	victimEnv["GMP_CLAIM_LEASE_SECONDS"] = "3"
	victim := startProxy(t, victimEnv)
	pid := victim.cmd.Process.Pid
	if _, err := srv.AddFault(testsmtp.Delay(testsmtp.StageData, 20*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatalf("connect to the test database: %v", err)
	}
	defer conn.Close(context.Background())
	// The victim's live claims: owner ids are "<host>-<pid>-<random>".
	victimClaims := func() map[string]time.Time {
		rows, err := conn.Query(context.Background(),
			`SELECT id, lease_until FROM messages WHERE lease_owner LIKE $1 AND final_at IS NULL`, fmt.Sprintf("%%-%d-%%", pid))
		if err != nil {
			t.Fatalf("read the victim's claims: %v", err)
		}
		claims := map[string]time.Time{} // id -> lease end
		var (
			id    string
			until int64
		)
		if _, err := pgx.ForEachRow(rows, []any{&id, &until}, func() error {
			claims[id] = time.UnixMilli(until)
			return nil
		}); err != nil {
			t.Fatalf("read the victim's claims: %v", err)
		}
		return claims
	}
	// The burst goes through the victim (its own enqueue wakes it first;
	// the survivors join on the NOTIFY); it is killed while it holds claims.
	enqueueBatches(t, []*proc{victim}, idRange("k", second), "acc", 500)
	var killedAt time.Time
	waitFor(t, 60*time.Second, "the victim sending, holding claims", func() bool {
		if srv.Count() < first+second/10 {
			return false
		}
		// Freeze the victim before reading its claims, so the claims read
		// are the ones it dies with (it cannot finish them in between).
		if err := victim.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatalf("stop the victim: %v", err)
		}
		if len(victimClaims()) < 3 {
			if err := victim.cmd.Process.Signal(syscall.SIGCONT); err != nil {
				t.Fatalf("continue the victim: %v", err)
			}
			return false
		}
		victim.kill()
		killedAt = time.Now()
		return true
	})
	held := victimClaims()
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
	}
	// When the survivors started sending the dead instance's claims: they
	// may take one only once its lease has ended.
	for i, p := range procs[:2] {
		for id, starts := range attemptStarts(t, p) {
			end, ok := held[id]
			if !ok {
				continue
			}
			takenOver++
			for _, at := range starts {
				if at.Before(end) {
					t.Errorf("instance %d started sending %s at %s, before the dead instance's lease ended at %s",
						i, id, at.Format(time.StampMilli), end.Format(time.StampMilli))
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

// attemptStarts reads, from a process's delivery activity log, when each
// message's attempts started.
func attemptStarts(t *testing.T, p *proc) map[string][]time.Time {
	t.Helper()
	out := map[string][]time.Time{}
	for _, line := range strings.Split(p.logs(), "\n") {
		if !strings.Contains(line, " msg=sending ") {
			continue
		}
		var at time.Time
		var id string
		for _, field := range strings.Fields(line) {
			k, v, _ := strings.Cut(field, "=")
			switch k {
			case "time":
				parsed, err := time.Parse(time.RFC3339Nano, v)
				if err != nil {
					t.Fatalf("activity log line %q: time: %v", line, err)
				}
				at = parsed
			case "msg_id":
				id = v
			}
		}
		out[id] = append(out[id], at)
	}
	return out
}

// counter sums a counter of a process's /metrics for one account.
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
	dsn := pgtest.DSN(t)
	// Small claims (2 per account) so both senders keep coming back for
	// more, and an API-only instance to enqueue, so the NOTIFY wakes both
	// senders at once rather than one by its own kick.
	procs := startProxies(t, 2, pgEnv(dsn, map[string]string{"GMP_BATCH_SIZE_PER_ACCOUNT": "2", "GMP_MAX_SENDS": "2"}))
	api := startProxy(t, pgEnv(dsn, map[string]string{"GMP_SCHEDULER_ACTIVE": "false"}))
	body := map[string]any{"id": "limited", "host": "127.0.0.1", "port": srv.Port(), "use_tls": false,
		"limit_per_minute": limit}
	if code := api.call("POST", "/account", body, nil); code != 200 {
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
	api.call("POST", "/commands/add-messages", map[string]any{"messages": batch}, nil)

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
	var sent float64
	perInstance := make([]string, len(procs))
	for i, p := range procs {
		n, limited := p.counter(t, "gmp_sent_total", "limited"), p.counter(t, "gmp_rate_limited_total", "limited")
		sent += n
		perInstance[i] = fmt.Sprintf("instance %d: %v sent, %v rate-limited", i, n, limited)
	}
	if sent != limit {
		t.Errorf("the instances count %v sends together, want %d", sent, limit)
	}
	t.Logf("minute %s: %d accepted, %d deferred to %s; %s",
		window.Format(time.TimeOnly), perWindow[window], deferred, windowEnd.Format(time.TimeOnly), strings.Join(perInstance, "; "))
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
	// Enqueue only once the sender listens: a notification sent before its
	// LISTEN took effect is lost (the sender's wake at LISTEN covers that in
	// service, but this test is about the notification).
	waitFor(t, 30*time.Second, "the sender listening for notifications", func() bool {
		return strings.Contains(sender.logs(), "postgres: listening for work notifications")
	})
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
	// The server has the message a moment before its outcome commits.
	waitFor(t, 30*time.Second, "the message recorded sent", func() bool {
		return sender.messageIDs("default", "sent")["woken"]
	})
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
