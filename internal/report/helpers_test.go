package report

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/mailproxy/mailproxy/internal/metrics"
	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/store/sqlite"
	"github.com/mailproxy/mailproxy/internal/testclock"
)

// t0 is the fake clock's start: 2026-01-01T00:00:00Z.
var t0 = time.Unix(1767225600, 0)

// env is one test's real SQLite store, clock and metrics.
type env struct {
	t       testing.TB
	ctx     context.Context
	path    string
	st      store.Store
	clock   *testclock.Clock // nil: real time
	metrics *metrics.Metrics
}

// newEnv opens a fresh SQLite store; fake selects the fake clock.
func newEnv(t testing.TB, fake bool) *env {
	t.Helper()
	e := &env{t: t, ctx: t.Context(), path: filepath.Join(t.TempDir(), "t.db"), metrics: metrics.New()}
	if fake {
		e.clock = testclock.New(t0)
	}
	e.open()
	t.Cleanup(func() {
		if e.st != nil {
			if err := e.st.Close(); err != nil {
				t.Errorf("closing store: %v", err)
			}
		}
	})
	return e
}

func (e *env) open() {
	e.t.Helper()
	st, err := sqlite.Open(e.ctx, e.path, sqlite.Options{})
	if err != nil {
		e.t.Fatalf("opening store: %v", err)
	}
	e.st = st
}

// reopen closes the store and opens the same file again (a restart).
func (e *env) reopen() {
	e.t.Helper()
	if err := e.st.Close(); err != nil {
		e.t.Fatalf("closing store: %v", err)
	}
	e.st = nil
	e.open()
}

func (e *env) now() time.Time {
	if e.clock != nil {
		return e.clock.Now()
	}
	return time.Now()
}

// loop builds a loop on the env's store and clock with test-sized timings.
func (e *env) loop(opts Options) *Loop {
	if e.clock != nil && opts.Now == nil {
		opts.Now = e.clock.Now
	}
	if opts.Metrics == nil {
		opts.Metrics = e.metrics
	}
	if opts.Owner == "" {
		opts.Owner = "test-instance"
	}
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Second
	}
	opts.UserAgent = "mail-proxy/test"
	return New(e.st, opts)
}

// tenant creates an active tenant with an account "acc"; url "" means no
// client_base_url.
func (e *env) tenant(id, url string, auth *store.ClientAuth) {
	e.t.Helper()
	tn := store.Tenant{ID: id, Active: true, ClientAuth: auth}
	if url != "" {
		tn.ClientBaseURL = &url
	}
	if _, err := e.st.UpsertTenant(e.ctx, tn); err != nil {
		e.t.Fatalf("creating tenant %s: %v", id, err)
	}
	acc := store.Account{TenantID: id, ID: "acc", Host: "127.0.0.1", Port: 2525, TTL: 300, LimitBehavior: "defer"}
	if err := e.st.UpsertAccount(e.ctx, acc); err != nil {
		e.t.Fatalf("creating account: %v", err)
	}
}

// enqueue stores one message ready to send.
func (e *env) enqueue(tenantID, msgID string) {
	e.t.Helper()
	payload, err := json.Marshal(store.Payload{ID: msgID, TenantID: tenantID, AccountID: "acc",
		From: "a@example.test", To: []string{"b@example.test"}, Subject: "s", Body: "b", Priority: 2})
	if err != nil {
		e.t.Fatal(err)
	}
	res, err := e.st.EnqueueBatch(e.ctx, []store.NewMessage{{PK: uuid.NewString(), TenantID: tenantID, ID: msgID,
		AccountID: "acc", Priority: 2, Payload: payload}}, e.now())
	if err != nil || len(res) != 1 || res[0].Status != store.Queued {
		e.t.Fatalf("enqueue %s: %v %+v", msgID, err, res)
	}
}

// attempt claims msgID and records an outcome at `at`. A deferral makes the
// message due again at once, so a later attempt can claim it.
func (e *env) attempt(tenantID, msgID string, kind store.OutcomeKind, desc string, at time.Time) {
	e.t.Helper()
	claims, err := e.st.Claim(e.ctx, store.ClaimRequest{Owner: "test-worker", Now: e.now(), Lease: time.Hour,
		Limit: 100, PerAccount: 100, TenantID: tenantID})
	if err != nil {
		e.t.Fatalf("claim: %v", err)
	}
	var found *store.Claim
	for i := range claims {
		if claims[i].Message.ID == msgID {
			found = &claims[i]
			continue
		}
		e.record(claims[i], store.Outcome{Kind: store.OutcomeRelease, At: at})
	}
	if found == nil {
		e.t.Fatalf("message %s/%s was not claimable", tenantID, msgID)
	}
	o := store.Outcome{Kind: kind, At: at, Description: desc}
	if kind == store.OutcomeDeferred {
		due := e.now()
		o.DeferredUntil = &due
		o.RetryCount = found.Message.RetryCount + 1
		o.Metadata = json.RawMessage(`{"retry_count":1}`)
	}
	e.record(*found, o)
}

func (e *env) record(c store.Claim, o store.Outcome) {
	e.t.Helper()
	o.MessagePK, o.Owner, o.Attempt = c.Message.PK, "test-worker", c.Message.Attempt
	if err := e.st.RecordOutcome(e.ctx, o); err != nil {
		e.t.Fatalf("record outcome: %v", err)
	}
}

// sent stores a message and its sent event.
func (e *env) sent(tenantID, msgID string) {
	e.t.Helper()
	e.enqueue(tenantID, msgID)
	e.attempt(tenantID, msgID, store.OutcomeSent, "", e.now())
}

func (e *env) unreported(tenantID string) int {
	e.t.Helper()
	n, err := e.st.CountUnreported(e.ctx, tenantID)
	if err != nil {
		e.t.Fatalf("count unreported: %v", err)
	}
	return n
}

func (e *env) syncState(tenantID string) store.SyncState {
	e.t.Helper()
	s, err := e.st.GetSyncState(e.ctx, tenantID)
	if err != nil {
		e.t.Fatalf("sync state: %v", err)
	}
	return s
}

// posts reads gmp_report_posts_total{tenant_id,result}.
func (e *env) posts(tenantID, result string) float64 {
	return metricValue(e.t, e.metrics.ReportPosts.WithLabelValues(tenantID, result))
}

// pending reads gmp_reports_pending{tenant_id}.
func (e *env) pending(tenantID string) float64 {
	return metricValue(e.t, e.metrics.ReportsPending.WithLabelValues(tenantID))
}

func metricValue(t testing.TB, m prometheus.Metric) float64 {
	t.Helper()
	var pb dto.Metric
	if err := m.Write(&pb); err != nil {
		t.Fatalf("reading metric: %v", err)
	}
	if pb.Counter != nil {
		return pb.Counter.GetValue()
	}
	return pb.Gauge.GetValue()
}

func (e *env) cycle(l *Loop) {
	e.t.Helper()
	if err := l.Cycle(e.ctx); err != nil {
		e.t.Fatalf("cycle: %v", err)
	}
}

// run starts l.Run and returns a stop function that waits for it.
func (e *env) run(l *Loop) (stop func()) {
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				e.t.Errorf("Run: %v", err)
			}
		})
	}
	e.t.Cleanup(stop)
	return stop
}

// received is one POST as the client application saw it.
type received struct {
	At     time.Time // arrival, real time
	Path   string
	Header http.Header
	Body   []byte
	Items  []map[string]any // numbers as json.Number
	Status int              // what the receiver answered; 0 while pending
	Answer string           // the answer's body
}

func (r received) ids() []string {
	var ids []string
	for _, it := range r.Items {
		ids = append(ids, it["id"].(string))
	}
	return ids
}

// hangUp is a reply status that closes the connection without an answer.
const hangUp = -1

// replyFunc answers the n-th POST (from 0): a status and a body (for a
// 3xx status, also the Location).
type replyFunc func(n int, r *http.Request) (status int, body string)

func okReply(int, *http.Request) (int, string) { return http.StatusOK, `{"ok":true}` }

// receiver is a client application's sync endpoint on 127.0.0.1.
type receiver struct {
	t     testing.TB
	srv   *httptest.Server
	mu    sync.Mutex
	got   []received
	reply replyFunc
}

func newReceiver(t testing.TB, reply replyFunc) *receiver {
	t.Helper()
	rc := &receiver{t: t, reply: reply}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		rc.t.Errorf("receiver: reading body: %v", err)
		return
	}
	var doc struct {
		DeliveryReport *[]map[string]any `json:"delivery_report"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil || doc.DeliveryReport == nil {
		rc.t.Errorf("receiver: body is not {\"delivery_report\":[...]}: %v %s", err, body)
	}
	rc.mu.Lock()
	n := len(rc.got)
	var items []map[string]any
	if doc.DeliveryReport != nil {
		items = *doc.DeliveryReport
	}
	rc.got = append(rc.got, received{At: time.Now(), Path: r.URL.Path, Header: r.Header.Clone(), Body: body, Items: items})
	reply := rc.reply
	rc.mu.Unlock()

	status, answer := reply(n, r)
	rc.mu.Lock()
	rc.got[n].Status, rc.got[n].Answer = status, answer
	rc.mu.Unlock()
	if status == hangUp {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			rc.t.Errorf("receiver: hijack: %v", err)
			return
		}
		_ = conn.Close()
		return
	}
	if status >= 300 && status <= 399 {
		w.Header().Set("Location", answer)
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, answer)
}

func (rc *receiver) all() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.got)
}

// accepted counts, per "id/kind", the items of POSTs answered 2xx and not
// "ok": false.
func (rc *receiver) accepted() map[string]int {
	seen := map[string]int{}
	for _, p := range rc.all() {
		if p.Status < 200 || p.Status > 299 || strings.Contains(p.Answer, `"ok":false`) {
			continue
		}
		for _, it := range p.Items {
			seen[it["id"].(string)+"/"+itemKind(it)]++
		}
	}
	return seen
}

func itemKind(it map[string]any) string {
	for _, k := range []string{"sent_ts", "error_ts", "deferred_ts", "bounce_ts"} {
		if _, ok := it[k]; ok {
			return strings.TrimSuffix(k, "_ts")
		}
	}
	return "?"
}

// waitFor polls cond every 10 ms until it holds or a generous deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		tick := time.NewTimer(10 * time.Millisecond)
		<-tick.C
	}
}

// logBuffer is a concurrency-safe log sink for asserting on log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
