package report

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/store/sqlite"
)

func num(t time.Time) json.Number { return json.Number(fmt.Sprint(t.Unix())) }

func TestReportItemsOrderAndHeaders(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	rc := newReceiver(t, okReply)
	e.tenant("t1", rc.srv.URL+"/", &store.ClientAuth{Method: "bearer", Token: "s3cret-token"})

	deferredAt := e.now()
	e.enqueue("t1", "m1")
	e.attempt("t1", "m1", store.OutcomeDeferred, "4.7.1 try later (SMTP 451)", deferredAt)
	e.clock.Advance(30 * time.Second)
	errorAt := e.now()
	e.enqueue("t1", "m2")
	e.attempt("t1", "m2", store.OutcomeError, "5.1.1 user unknown (SMTP 550)", errorAt)
	e.clock.Advance(30 * time.Second)
	sentAt := e.now()
	e.attempt("t1", "m1", store.OutcomeSent, "", sentAt)

	e.cycle(e.loop(Options{}))

	got := rc.all()
	if len(got) != 1 {
		t.Fatalf("got %d POSTs, want 1", len(got))
	}
	want := []map[string]any{
		{"id": "m1", "deferred_ts": num(deferredAt), "deferred_reason": "4.7.1 try later (SMTP 451)"},
		{"id": "m2", "error_ts": num(errorAt), "error": "5.1.1 user unknown (SMTP 550)"},
		{"id": "m1", "sent_ts": num(sentAt)},
	}
	if diff := cmp.Diff(want, got[0].Items); diff != "" {
		t.Errorf("items (-want +got):\n%s", diff)
	}
	p := got[0]
	for k, v := range map[string]string{
		"Content-Type":        "application/json",
		"User-Agent":          "mail-proxy/test",
		"X-Mail-Proxy-Tenant": "t1",
		"Authorization":       "Bearer s3cret-token",
		"Webhook-Signature":   "",
	} {
		if g := p.Header.Get(k); g != v {
			t.Errorf("header %s = %q, want %q", k, g, v)
		}
	}
	if p.Path != "/mail-proxy/sync" {
		t.Errorf("path = %q, want /mail-proxy/sync", p.Path)
	}
	if n := e.unreported("t1"); n != 0 {
		t.Errorf("%d events still unreported", n)
	}
	s := e.syncState("t1")
	if s.LastSyncAt == nil || !s.LastSyncAt.Equal(sentAt) || s.ConsecutiveFailures != 0 || s.NextRetryAt != nil {
		t.Errorf("sync state after success = %+v", s)
	}
	if v := e.posts("t1", "ok"); v != 1 {
		t.Errorf("gmp_report_posts_total{result=ok} = %v, want 1", v)
	}
	if v := e.pending("t1"); v != 0 {
		t.Errorf("gmp_reports_pending = %v, want 0", v)
	}
	// Nothing new and no heartbeat due: a second cycle posts nothing.
	e.cycle(e.loop(Options{}))
	if n := rc.count(); n != 1 {
		t.Errorf("second cycle posted: %d POSTs in all", n)
	}
}

func TestFailureMarksNothingAndBacksOff(t *testing.T) {
	t.Parallel()
	var redirected atomic.Int32
	elsewhere := newReceiver(t, func(int, *http.Request) (int, string) {
		redirected.Add(1)
		return http.StatusOK, `{"ok":true}`
	})
	tests := []struct {
		name   string
		reply  replyFunc
		result string
	}{
		{"500", func(int, *http.Request) (int, string) { return 500, "boom" }, resultHTTPError},
		{"404", func(int, *http.Request) (int, string) { return 404, `{"ok":true}` }, resultHTTPError},
		{"redirect not followed", func(int, *http.Request) (int, string) {
			return http.StatusFound, elsewhere.srv.URL + "/elsewhere"
		}, resultHTTPError},
		{"connection closed", func(int, *http.Request) (int, string) { return hangUp, "" }, resultNetworkError},
		{"ok false", func(int, *http.Request) (int, string) { return 200, `{"ok":false,"error":[]}` }, resultRejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, true)
			var failing atomic.Bool
			failing.Store(true)
			rc := newReceiver(t, func(n int, r *http.Request) (int, string) {
				if failing.Load() {
					return tt.reply(n, r)
				}
				return okReply(n, r)
			})
			e.tenant("t1", rc.srv.URL, &store.ClientAuth{Method: "bearer", Token: "s3cret-token"})
			e.sent("t1", "m1")
			l := e.loop(Options{SyncInterval: 300 * time.Second})

			wantWaits := []time.Duration{5 * time.Second, 15 * time.Second, 60 * time.Second, 300 * time.Second}
			for i, wait := range wantWaits {
				e.cycle(l)
				if n := rc.count(); n != i+1 {
					t.Fatalf("after cycle %d: %d POSTs, want %d", i+1, n, i+1)
				}
				s := e.syncState("t1")
				if s.ConsecutiveFailures != i+1 || s.NextRetryAt == nil || !s.NextRetryAt.Equal(e.now().Add(wait)) {
					t.Fatalf("after failure %d: state %+v, want retry in %s", i+1, s, wait)
				}
				if s.LastError == "" || strings.Contains(s.LastError, "s3cret") || strings.Contains(s.LastError, rc.srv.URL) {
					t.Errorf("last error %q: empty, or carries the token or URL", s.LastError)
				}
				if n := e.unreported("t1"); n != 1 {
					t.Fatalf("a failed POST marked events: %d unreported", n)
				}
				// In backoff: a cycle just before the retry time posts nothing.
				e.clock.Advance(wait - time.Millisecond)
				e.cycle(l)
				if n := rc.count(); n != i+1 {
					t.Fatalf("posted during backoff: %d POSTs", n)
				}
				e.clock.Advance(time.Millisecond)
			}
			if v := e.posts("t1", tt.result); v != 4 {
				t.Errorf("gmp_report_posts_total{result=%s} = %v, want 4", tt.result, v)
			}
			// run-now clears the backoff even though the retry is not due.
			e.clock.Advance(-time.Second)
			failing.Store(false)
			l.RunNow("t1")
			e.cycle(l)
			if n := rc.count(); n != 5 {
				t.Fatalf("run-now: %d POSTs, want 5", n)
			}
			s := e.syncState("t1")
			if e.unreported("t1") != 0 || s.ConsecutiveFailures != 0 || s.NextRetryAt != nil || s.LastError != "" {
				t.Errorf("after recovery: %d unreported, state %+v", e.unreported("t1"), s)
			}
			if got := rc.accepted(); !cmp.Equal(got, map[string]int{"m1/sent": 1}) {
				t.Errorf("accepted items = %v", got)
			}
			if n := redirected.Load(); n != 0 {
				t.Errorf("a redirect was followed %d times", n)
			}
		})
	}
}

func TestAny2xxIsSuccess(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		body   string
	}{
		{"ok true", 200, `{"ok":true}`},
		{"not JSON", 200, `thanks!`},
		{"no content", 204, ``},
		{"ok absent", 202, `{"queued":0}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, true)
			rc := newReceiver(t, func(int, *http.Request) (int, string) { return tt.status, tt.body })
			e.tenant("t1", rc.srv.URL, nil)
			e.sent("t1", "m1")
			e.sent("t1", "m2")
			e.cycle(e.loop(Options{}))
			if n := e.unreported("t1"); n != 0 {
				t.Errorf("%d events unreported after a %d %q answer", n, tt.status, tt.body)
			}
			if got := rc.all(); len(got) != 1 || got[0].Header.Get("Authorization") != "" {
				t.Errorf("POSTs = %d (auth %q), want 1 without Authorization", len(got), got[0].Header.Get("Authorization"))
			}
		})
	}
}

func TestQueuedAsksForImmediateResync(t *testing.T) {
	t.Parallel()
	t.Run("until queued is 0", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, true)
		rc := newReceiver(t, func(n int, _ *http.Request) (int, string) {
			if n < 3 {
				return 200, `{"ok":true,"queued":3}`
			}
			return 200, `{"ok":true,"queued":0}`
		})
		e.tenant("t1", rc.srv.URL, nil)
		e.sent("t1", "m1")
		e.cycle(e.loop(Options{}))
		got := rc.all()
		if len(got) != 4 {
			t.Fatalf("got %d POSTs, want 4 (1 + 3 resyncs)", len(got))
		}
		if ids := got[0].ids(); len(ids) != 1 || ids[0] != "m1" {
			t.Errorf("first POST items %v", ids)
		}
		for _, p := range got[1:] {
			if len(p.Items) != 0 {
				t.Errorf("resync carried %v, want a heartbeat", p.ids())
			}
		}
	})
	t.Run("bounded to 10 in a row", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, true)
		rc := newReceiver(t, func(int, *http.Request) (int, string) { return 200, `{"ok":true,"queued":7}` })
		e.tenant("t1", rc.srv.URL, nil)
		l := e.loop(Options{})
		e.cycle(l)
		if n := rc.count(); n != 11 {
			t.Fatalf("got %d POSTs, want 11 (1 + 10 resyncs)", n)
		}
		if s := e.syncState("t1"); s.QueuedStreak != 0 {
			t.Errorf("queued streak = %d after stopping, want 0", s.QueuedStreak)
		}
		e.cycle(l)
		if n := rc.count(); n != 11 {
			t.Errorf("resyncs went on in the next cycle: %d POSTs", n)
		}
	})
}

func TestDoNotDisturb(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	var nextAfter atomic.Int64 // Unix s; 0 = none
	rc := newReceiver(t, func(int, *http.Request) (int, string) {
		if v := nextAfter.Load(); v != 0 {
			return 200, fmt.Sprintf(`{"ok":true,"next_sync_after":%d}`, v)
		}
		return 200, `{"ok":true,"next_sync_after":null}`
	})
	e.tenant("t1", rc.srv.URL, nil)
	l := e.loop(Options{SyncInterval: 300 * time.Second})
	dndEnd := e.now().Add(time.Hour)
	nextAfter.Store(dndEnd.Unix())

	e.cycle(l) // never synced: called on the first cycle
	if n := rc.count(); n != 1 {
		t.Fatalf("first cycle: %d POSTs, want a heartbeat", n)
	}
	if s := e.syncState("t1"); s.DNDUntil == nil || !s.DNDUntil.Equal(dndEnd) {
		t.Fatalf("DND = %v, want %v", s.DNDUntil, dndEnd)
	}
	e.clock.Advance(10 * time.Minute) // past SyncInterval, inside DND
	e.cycle(l)
	if n := rc.count(); n != 1 {
		t.Fatalf("heartbeat during do-not-disturb: %d POSTs", n)
	}

	e.sent("t1", "m1") // event reports still go
	e.cycle(l)
	if got := rc.all(); len(got) != 2 || len(got[1].ids()) != 1 {
		t.Fatalf("event during DND: %d POSTs", len(got))
	}

	e.clock.Advance(dndEnd.Sub(e.now()) - time.Second)
	e.cycle(l)
	if n := rc.count(); n != 2 {
		t.Fatalf("heartbeat a second before DND ends: %d POSTs", n)
	}
	e.clock.Advance(time.Second) // exactly next_sync_after
	nextAfter.Store(0)
	e.cycle(l)
	if got := rc.all(); len(got) != 3 || len(got[2].Items) != 0 {
		t.Fatalf("no heartbeat at DND end: %d POSTs", len(got))
	}
	if s := e.syncState("t1"); s.DNDUntil != nil {
		t.Errorf("DND %v not cleared by a null next_sync_after", s.DNDUntil)
	}

	// Without DND the heartbeat comes SyncInterval after the last sync.
	e.clock.Advance(300*time.Second - time.Millisecond)
	e.cycle(l)
	if n := rc.count(); n != 3 {
		t.Fatalf("heartbeat before SyncInterval: %d POSTs", n)
	}
	e.clock.Advance(time.Millisecond)
	nextAfter.Store(e.now().Add(time.Hour).Unix())
	e.cycle(l)
	if n := rc.count(); n != 4 {
		t.Fatalf("no heartbeat at SyncInterval: %d POSTs", n)
	}

	// run-now overrides do-not-disturb.
	l.RunNow("t1")
	e.cycle(l)
	if n := rc.count(); n != 5 {
		t.Fatalf("run-now during DND: %d POSTs, want 5", n)
	}
}

func TestSlowEndpointTimesOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	var ended atomic.Int32
	rc := newReceiver(t, func(_ int, r *http.Request) (int, string) {
		<-r.Context().Done() // hold the POST until the proxy gives up
		ended.Add(1)
		return 200, `{"ok":true}`
	})
	e.tenant("t1", rc.srv.URL, nil)
	e.sent("t1", "m1")
	e.cycle(e.loop(Options{Timeout: 150 * time.Millisecond}))

	if v := e.posts("t1", resultTimeout); v != 1 {
		t.Errorf("gmp_report_posts_total{result=timeout} = %v, want 1", v)
	}
	if n := e.unreported("t1"); n != 1 {
		t.Errorf("%d unreported after a timeout, want 1", n)
	}
	s := e.syncState("t1")
	if s.ConsecutiveFailures != 1 || !strings.Contains(s.LastError, "timeout") {
		t.Errorf("state after timeout = %+v", s)
	}
	waitFor(t, "the receiver to see its request end", func() bool { return ended.Load() == 1 })
}

func TestBrokenTenantDoesNotDelayOthers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	entered := make(chan struct{})
	var once sync.Once
	hanging := newReceiver(t, func(_ int, r *http.Request) (int, string) {
		once.Do(func() { close(entered) })
		<-r.Context().Done()
		return 200, `{"ok":true}`
	})
	healthy := newReceiver(t, okReply)
	e.tenant("slow", hanging.srv.URL, nil)
	e.tenant("fast", healthy.srv.URL, nil)
	l := e.loop(Options{Timeout: time.Minute, SyncInterval: time.Hour})
	stop := e.run(l)

	select { // the slow tenant's first POST now hangs for a minute
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the slow tenant was never called")
	}
	e.sent("slow", "s1")
	for i := range 3 {
		e.sent("fast", fmt.Sprintf("f%d", i))
		l.Wake()
	}
	waitFor(t, "the fast tenant's reports", func() bool { return e.unreported("fast") == 0 })
	want := map[string]int{"f0/sent": 1, "f1/sent": 1, "f2/sent": 1}
	if got := healthy.accepted(); !cmp.Equal(got, want) {
		t.Errorf("fast tenant received %v, want %v", got, want)
	}
	if n := hanging.count(); n != 1 {
		t.Errorf("slow tenant got %d POSTs while one was in flight, want 1", n)
	}
	stop()
	// Shutdown interrupts the hanging POST: nothing marked, no failure recorded.
	if n := e.unreported("slow"); n != 1 {
		t.Errorf("slow tenant: %d unreported, want 1", n)
	}
	if s := e.syncState("slow"); s.ConsecutiveFailures != 0 {
		t.Errorf("shutdown counted as a client failure: %+v", s)
	}
}

func TestEndpointDownThenUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	var phase atomic.Int32 // 0: connection dropped, 1: 500, 2: up
	rc := newReceiver(t, func(n int, r *http.Request) (int, string) {
		switch phase.Load() {
		case 0:
			return hangUp, ""
		case 1:
			return 500, "down for maintenance"
		}
		return okReply(n, r)
	})
	e.tenant("t1", rc.srv.URL, nil)
	l := e.loop(Options{Backoff: []time.Duration{20 * time.Millisecond, 40 * time.Millisecond},
		SyncInterval: 100 * time.Millisecond})
	e.run(l)

	want := map[string]int{}
	produce := func(id string) {
		e.sent("t1", id)
		want[id+"/sent"] = 1
		l.Wake()
	}
	produce("m0")
	waitFor(t, "dropped connections", func() bool { return e.posts("t1", resultNetworkError) >= 2 })
	produce("m1")
	phase.Store(1)
	waitFor(t, "500 answers", func() bool { return e.posts("t1", resultHTTPError) >= 2 })
	produce("m2")
	if n := e.unreported("t1"); n != 3 {
		t.Fatalf("%d unreported while down, want 3", n)
	}
	phase.Store(2)
	waitFor(t, "all reports after recovery", func() bool { return e.unreported("t1") == 0 })
	produce("m3")
	waitFor(t, "a report after recovery", func() bool { return e.unreported("t1") == 0 })
	if got := rc.accepted(); !cmp.Equal(got, want) {
		t.Errorf("accepted items = %v, want each once: %v", got, want)
	}
	if s := e.syncState("t1"); s.ConsecutiveFailures != 0 || s.NextRetryAt != nil {
		t.Errorf("state after recovery = %+v", s)
	}
}

func TestRestartWithPendingReports(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	var up atomic.Bool
	rc := newReceiver(t, func(n int, r *http.Request) (int, string) {
		if up.Load() {
			return okReply(n, r)
		}
		return 503, ""
	})
	e.tenant("t1", rc.srv.URL, nil)
	opts := Options{Backoff: []time.Duration{10 * time.Millisecond}, SyncInterval: 50 * time.Millisecond}
	l := e.loop(opts)
	stop := e.run(l)
	for i := range 3 {
		e.sent("t1", fmt.Sprintf("m%d", i))
	}
	l.Wake()
	waitFor(t, "a failed POST", func() bool { return e.syncState("t1").ConsecutiveFailures >= 1 })
	stop()

	e.reopen()
	if n := e.unreported("t1"); n != 3 {
		t.Fatalf("after restart %d unreported, want 3", n)
	}
	if s := e.syncState("t1"); s.ConsecutiveFailures < 1 || s.NextRetryAt == nil || s.LastError == "" {
		t.Errorf("backoff not stored across the restart: %+v", s)
	}
	up.Store(true)
	e.run(e.loop(opts))
	waitFor(t, "reports after the restart", func() bool { return e.unreported("t1") == 0 })
	want := map[string]int{"m0/sent": 1, "m1/sent": 1, "m2/sent": 1}
	if got := rc.accepted(); !cmp.Equal(got, want) {
		t.Errorf("accepted = %v, want %v", got, want)
	}
}

func TestErrorIDsGoAgainWithNextPost(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	rc := newReceiver(t, func(n int, _ *http.Request) (int, string) {
		if n < 2 {
			return 200, `{"ok":true,"error":["m2"],"not_found":["m1"]}`
		}
		return 200, `{"ok":true}`
	})
	e.tenant("t1", rc.srv.URL, nil)
	e.sent("t1", "m1")
	e.clock.Advance(time.Second)
	e.sent("t1", "m2")
	l := e.loop(Options{SyncInterval: 300 * time.Second})

	e.cycle(l)
	if got := rc.all(); len(got) != 1 || !cmp.Equal(got[0].ids(), []string{"m1", "m2"}) {
		t.Fatalf("first POST: %d POSTs", len(got))
	}
	if n := e.unreported("t1"); n != 1 {
		t.Fatalf("%d unreported, want 1 (m2, refused)", n)
	}
	e.cycle(l) // no new event, no heartbeat due: no tight loop on m2
	if n := rc.count(); n != 1 {
		t.Fatalf("refused item resent at once: %d POSTs", n)
	}
	e.clock.Advance(300 * time.Second) // the heartbeat carries it
	e.cycle(l)
	if got := rc.all(); len(got) != 2 || !cmp.Equal(got[1].ids(), []string{"m2"}) {
		t.Fatalf("heartbeat POST: %d POSTs", len(got))
	}
	e.sent("t1", "m3") // a new event: the refused one goes first
	e.cycle(l)
	got := rc.all()
	if len(got) != 3 || !cmp.Equal(got[2].ids(), []string{"m2", "m3"}) {
		t.Fatalf("next POST: %d POSTs, last %v", len(got), got[len(got)-1].ids())
	}
	if n := e.unreported("t1"); n != 0 {
		t.Errorf("%d unreported at the end", n)
	}
}

func TestRunNowWhileRunning(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	rc := newReceiver(t, func(int, *http.Request) (int, string) {
		return 200, fmt.Sprintf(`{"ok":true,"next_sync_after":%d}`, time.Now().Add(time.Hour).Unix())
	})
	e.tenant("t1", rc.srv.URL, nil)
	l := e.loop(Options{SyncInterval: time.Hour})
	e.run(l)
	waitFor(t, "the first heartbeat", func() bool { return rc.count() == 1 })
	l.RunNow("t1")
	waitFor(t, "the forced heartbeat", func() bool { return rc.count() == 2 })
	l.RunNow("") // wakes, but forces nobody: DND holds
	e.sent("t1", "m1")
	l.Wake()
	waitFor(t, "the event report", func() bool { return e.unreported("t1") == 0 })
	if got := rc.all(); len(got) != 3 || len(got[2].Items) != 1 {
		t.Errorf("got %d POSTs, want 3 with the event last", len(got))
	}
}

func TestTwoInstancesPostOneAtATime(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	var inflight, maxInflight atomic.Int32
	rc := newReceiver(t, func(n int, r *http.Request) (int, string) {
		cur := inflight.Add(1)
		defer inflight.Add(-1)
		for {
			m := maxInflight.Load()
			if cur <= m || maxInflight.CompareAndSwap(m, cur) {
				break
			}
		}
		return okReply(n, r)
	})
	e.tenant("t1", rc.srv.URL, nil)
	second, err := sqlite.Open(e.ctx, e.path, sqlite.Options{}) // another instance on the same database
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = second.Close() })
	opts := Options{SyncInterval: time.Hour}
	a := e.loop(Options{Owner: "instance-a", SyncInterval: time.Hour})
	opts.Owner, opts.Metrics = "instance-b", e.metrics
	b := New(second, opts)
	e.run(a)
	e.run(b)
	want := map[string]int{}
	for i := range 30 {
		id := fmt.Sprintf("m%02d", i)
		e.sent("t1", id)
		want[id+"/sent"] = 1
		a.Wake()
		b.Wake()
	}
	waitFor(t, "all reports", func() bool { return e.unreported("t1") == 0 })
	if got := rc.accepted(); !cmp.Equal(got, want) {
		t.Errorf("accepted (-want +got):\n%s", cmp.Diff(want, got))
	}
	if m := maxInflight.Load(); m != 1 {
		t.Errorf("%d POSTs of one tenant were in flight at once, want 1", m)
	}
}

func TestRunWakesAtDoNotDisturbEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	var dndEnd atomic.Int64 // Unix ms of the first answer's next_sync_after
	rc := newReceiver(t, func(n int, _ *http.Request) (int, string) {
		if n == 0 {
			end := time.Now().Add(300 * time.Millisecond)
			dndEnd.Store(end.UnixMilli())
			return 200, fmt.Sprintf(`{"ok":true,"next_sync_after":%.3f}`, float64(end.UnixMilli())/1000)
		}
		return 200, fmt.Sprintf(`{"ok":true,"next_sync_after":%d}`, time.Now().Add(time.Hour).Unix())
	})
	e.tenant("t1", rc.srv.URL, nil)
	e.run(e.loop(Options{SyncInterval: time.Hour}))
	waitFor(t, "the heartbeat at do-not-disturb's end", func() bool { return rc.count() == 2 })
	if at := rc.all()[1].At; at.UnixMilli() < dndEnd.Load() {
		t.Errorf("heartbeat came %s before next_sync_after", time.UnixMilli(dndEnd.Load()).Sub(at))
	}
}
