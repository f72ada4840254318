package report

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mailproxy/mailproxy/internal/store"
)

// produceSent stores n sent messages of one tenant in three transactions.
func (e *env) produceSent(tenantID string, n int) {
	e.t.Helper()
	items := make([]store.NewMessage, n)
	for i := range items {
		id := uuid.NewString()
		payload, _ := json.Marshal(store.Payload{ID: id, TenantID: tenantID, AccountID: "acc",
			From: "a@example.test", To: []string{"b@example.test"}, Subject: "s", Body: "b", Priority: 2})
		items[i] = store.NewMessage{PK: uuid.NewString(), TenantID: tenantID, ID: id, AccountID: "acc",
			Priority: 2, Payload: payload}
	}
	if _, err := e.st.EnqueueBatch(e.ctx, items, e.now()); err != nil {
		e.t.Fatal(err)
	}
	claims, err := e.st.Claim(e.ctx, store.ClaimRequest{Owner: "test-worker", Now: e.now(), Lease: time.Hour,
		Limit: n, PerAccount: n, TenantID: tenantID})
	if err != nil || len(claims) != n {
		e.t.Fatalf("claimed %d of %d: %v", len(claims), n, err)
	}
	for _, c := range claims {
		e.record(c, store.Outcome{Kind: store.OutcomeSent, At: e.now()})
	}
}

// BenchmarkCycle measures reporting throughput: 1000 sent events per
// iteration posted in batches of 250 to a local receiver and marked.
func BenchmarkCycle(b *testing.B) {
	e := newEnv(b, false)
	rc := newReceiver(b, okReply)
	e.tenant("t1", rc.srv.URL, nil)
	l := e.loop(Options{BatchSize: 250})
	const events = 1000
	for b.Loop() {
		b.StopTimer()
		e.produceSent("t1", events)
		b.StartTimer()
		if err := l.Cycle(e.ctx); err != nil {
			b.Fatal(err)
		}
		if n := e.unreported("t1"); n != 0 {
			b.Fatalf("%d unreported after a cycle", n)
		}
	}
	b.ReportMetric(float64(events*b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkWakeToReport measures the latency from an outcome (and Wake) to
// the client answering its report, with the loop running.
func BenchmarkWakeToReport(b *testing.B) {
	e := newEnv(b, false)
	got := make(chan struct{}, 1)
	rc := newReceiver(b, func(n int, r *http.Request) (int, string) {
		select {
		case got <- struct{}{}:
		default:
		}
		return okReply(n, r)
	})
	e.tenant("t1", rc.srv.URL, nil)
	l := e.loop(Options{SyncInterval: time.Hour})
	e.run(l)
	<-got // the first heartbeat
	i := 0
	for b.Loop() {
		b.StopTimer()
		e.enqueue("t1", fmt.Sprint("m", i))
		b.StartTimer()
		e.attempt("t1", fmt.Sprint("m", i), store.OutcomeSent, "", e.now())
		l.Wake()
		<-got
		i++
	}
}
