package api_test

import (
	"context"
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
)

// TestRetryDeferredAnswers: POST /commands/retry-deferred is tenant-scoped
// like suspend, answers how many messages it made due, and wakes the
// dispatcher only when there were any (issue 12.7).
func TestRetryDeferredAnswers(t *testing.T) {
	e := setup(t)
	key := e.tenant("acme")
	e.account("acme", "smtp")
	e.must(200, "POST", "/commands/add-messages", key, batch(msg("m1", "", "smtp")))
	ctx := context.Background()
	now := time.Now()
	claims, err := e.st.Claim(ctx, store.ClaimRequest{Owner: "test", Now: now, Lease: time.Minute, Limit: 10, PerAccount: 10})
	if err != nil || len(claims) != 1 {
		t.Fatalf("claim: %v, %d claims", err, len(claims))
	}
	c := claims[0]
	until := now.Add(time.Hour)
	if err := e.st.RecordOutcome(ctx, store.Outcome{MessagePK: c.Message.PK, Owner: "test", Attempt: c.Message.Attempt,
		Kind: store.OutcomeDeferred, At: now, Description: "451 later", DeferredUntil: &until, RetryCount: 1}); err != nil {
		t.Fatal(err)
	}
	if st := e.messages("acme", "")["m1"]["status"]; st != "deferred" {
		t.Fatalf("status %v, want deferred", st)
	}
	wakes := e.wakeCount()
	if r := e.must(200, "POST", "/commands/retry-deferred", key, nil); string(r.Body) != `{"ok":true,"retried":1}` {
		t.Errorf("answer %s", r.Body)
	}
	if e.wakeCount() != wakes+1 {
		t.Errorf("dispatcher woken %d times, want once", e.wakeCount()-wakes)
	}
	if st := e.messages("acme", "")["m1"]["status"]; st != "pending" {
		t.Errorf("status after retry-deferred %v, want pending", st)
	}
	if r := e.must(200, "POST", "/commands/retry-deferred?tenant_id=acme&batch_code=x", adminToken, nil); string(r.Body) != `{"ok":true,"retried":0}` {
		t.Errorf("second answer %s", r.Body)
	}
	if e.wakeCount() != wakes+1 {
		t.Error("woken although nothing was retried")
	}
	e.must(422, "POST", "/commands/retry-deferred", adminToken, nil)
	if d := e.must(400, "POST", "/commands/retry-deferred?tenant_id=nosuch", adminToken, nil).Detail(t); d != "tenant not found" {
		t.Errorf("unknown tenant: %q", d)
	}
}
