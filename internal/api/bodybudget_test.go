package api_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The bytes of request bodies being read and decoded at once are bounded
// by GMP_MAX_REQUEST_MB: while one slow body holds most of it, another
// request that does not fit is answered 503 with Retry-After, like a
// saturated store; once the first is done, it is accepted.
func TestBodyBudgetAnswers503WhenFull(t *testing.T) {
	e := setup(t, func(d *apiDeps, _ *sqliteOptions) { d.BodyWait = 200 * time.Millisecond })
	key := e.tenant("acme")
	e.account("acme", "smtp")

	// A: a chunked body of 600 KB, then a stall (its budget stays held).
	pr, pw := io.Pipe()
	reqA, err := http.NewRequest("POST", e.srv.URL+"/commands/add-messages", pr)
	if err != nil {
		t.Fatal(err)
	}
	reqA.Header.Set("X-API-Token", key)
	doneA := make(chan int, 1)
	go func() {
		res, err := e.client.Do(reqA)
		if err != nil {
			doneA <- 0
			return
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		doneA <- res.StatusCode
	}()
	head := `{"messages":[{"id":"slow","account_id":"smtp","from":"a@example.com","to":"b@example.com","subject":"s","body":"`
	if _, err := pw.Write([]byte(head + strings.Repeat("x", 600<<10))); err != nil {
		t.Fatal(err)
	}

	// B: 300 KB with a Content-Length; 503 once A's bytes are held.
	bBody := func(id string) []byte {
		return mustJSON(t, batch(map[string]any{"id": id, "account_id": "smtp", "from": "a@example.com",
			"to": "b@example.com", "subject": "s", "body": strings.Repeat("y", 300<<10)}))
	}
	var refused resp
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; refused.Status == 0; i++ {
		if time.Now().After(deadline) {
			t.Fatal("no 503 while a slow body held the budget")
		}
		r := e.do("POST", "/commands/add-messages", key, bBody(fmt.Sprintf("b%d", i)))
		switch r.Status {
		case 200: // A's bytes not read yet
			time.Sleep(20 * time.Millisecond)
		case 503:
			refused = r
		default:
			t.Fatalf("B: status %d: %s", r.Status, r.Body)
		}
	}
	if refused.Header.Get("Retry-After") != "1" || refused.Detail(t) != "Service overloaded, retry later" {
		t.Fatalf("B refused with Retry-After %q, %s", refused.Header.Get("Retry-After"), refused.Body)
	}

	// A completes: 200; then B fits again.
	if _, err := pw.Write([]byte(`"}]}`)); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if st := <-doneA; st != 200 {
		t.Fatalf("A: status %d, want 200", st)
	}
	e.must(200, "POST", "/commands/add-messages", key, bBody("after"))
	if got := e.messages("acme", ""); got["slow"] == nil || got["after"] == nil {
		t.Fatalf("stored %d messages, want slow and after among them", len(got))
	}
}
