package report

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestTenantSetURLMeetsAddressPolicy: a client_base_url the tenant set with
// its own key is dialled through the public-only policy (the receiver on
// 127.0.0.1 gets nothing) unless the instance allows private client URLs.
func TestTenantSetURLMeetsAddressPolicy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	rc := newReceiver(t, okReply)
	e.tenant("t1", rc.srv.URL, nil)
	tn, err := e.st.GetTenant(e.ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	tn.ClientURLByTenant = true
	if _, err := e.st.UpsertTenant(e.ctx, tn); err != nil {
		t.Fatal(err)
	}
	e.sent("t1", "m1")

	e.cycle(e.loop(Options{SyncInterval: 300 * time.Second}))
	if n := rc.count(); n != 0 {
		t.Fatalf("tenant-set loopback URL got %d POSTs, want 0", n)
	}
	if s := e.syncState("t1"); s.LastError != "address not allowed: 127.0.0.1" {
		t.Fatalf("last error %q, want address not allowed: 127.0.0.1", s.LastError)
	}
	if n := e.unreported("t1"); n != 1 {
		t.Fatalf("%d unreported events, want 1 (kept for a later POST)", n)
	}

	e.clock.Advance(5 * time.Second) // the first failure's backoff
	e.cycle(e.loop(Options{SyncInterval: 300 * time.Second, ClientURLAllowPrivate: true}))
	if n := rc.count(); n != 1 || e.unreported("t1") != 0 {
		t.Fatalf("with GMP_CLIENT_URL_ALLOW_PRIVATE: %d POSTs, %d unreported; want 1, 0", rc.count(), e.unreported("t1"))
	}
}

// TestRedirectOfReportNamed: a redirect of a report POST is not followed and
// the stored error names it (status and target, without the query).
func TestRedirectOfReportNamed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	internal := newReceiver(t, okReply)
	rc := newReceiver(t, func(int, *http.Request) (int, string) {
		return http.StatusTemporaryRedirect, internal.srv.URL + "/admin?token=x"
	})
	e.tenant("t1", rc.srv.URL, nil)
	e.sent("t1", "m1")
	e.cycle(e.loop(Options{SyncInterval: 300 * time.Second}))
	want := "HTTP 307 redirect of POST to " + internal.srv.URL + "/admin not followed"
	if s := e.syncState("t1"); s.LastError != want || strings.Contains(s.LastError, "token") {
		t.Fatalf("last error %q, want %q", s.LastError, want)
	}
	if n := internal.count(); n != 0 {
		t.Fatalf("redirect target got %d POSTs, want 0", n)
	}
}
