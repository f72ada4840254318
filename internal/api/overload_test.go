package api_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// TestOverloadedStoreAnswers503 holds SQLite's write lock from another
// connection so that queued writes wait past the store's overload limit.
func TestOverloadedStoreAnswers503(t *testing.T) {
	e := setup(t, func(_ *apiDeps, o *sqliteOptions) { o.OverloadAfter = 100 * time.Millisecond })
	key := e.tenant("acme")
	e.account("acme", "smtp")
	ctx := context.Background()
	db, err := sql.Open("sqlite", e.dbPath+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	locked := true
	release := func() {
		if locked {
			locked = false
			if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
				t.Error(err)
			}
		}
	}
	defer release()

	type result struct {
		status     int
		retryAfter string
		body       string
		err        error
	}
	const n = 4
	results := make(chan result, n)
	for i := range n {
		go func() {
			body := fmt.Sprintf(`{"messages":[{"id":"o%d","account_id":"smtp","from":"a@example.com","to":"b@example.com","subject":"s"}]}`, i)
			req, _ := http.NewRequest("POST", e.srv.URL+"/commands/add-messages", bytes.NewReader([]byte(body)))
			req.Header.Set("X-API-Token", key)
			res, err := e.client.Do(req)
			if err != nil {
				results <- result{err: err}
				return
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			results <- result{status: res.StatusCode, retryAfter: res.Header.Get("Retry-After"), body: string(b)}
		}()
	}
	saw503 := false
	deadline := time.After(30 * time.Second)
	for got := 0; got < n; got++ {
		var r result
		select {
		case r = <-results:
		case <-deadline:
			t.Fatal("no answer within 30 s")
		}
		if r.err != nil {
			t.Fatal(r.err)
		}
		switch r.status {
		case http.StatusServiceUnavailable:
			saw503 = true
			if r.retryAfter != "1" || r.body != `{"detail":"Service overloaded, retry later"}` {
				t.Errorf("503 answer: Retry-After %q, body %s", r.retryAfter, r.body)
			}
			release() // let the request holding the writer finish
		case http.StatusOK:
		default:
			t.Errorf("status %d: %s", r.status, r.body)
		}
	}
	if !saw503 {
		t.Fatal("no request was refused with 503 while the store was saturated")
	}
	release()
	e.must(200, "POST", "/commands/add-messages", key, batch(msg("after", "", "smtp")))
}
