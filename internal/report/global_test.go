package report

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mailproxy/mailproxy/internal/store"
)

// testSecret is a whsec_ secret whose key is 32 copies of b.
func testSecret(b byte) (secret string, key []byte) {
	key = bytes.Repeat([]byte{b}, 32)
	return "whsec_" + base64.StdEncoding.EncodeToString(key), key
}

// expectedSignature computes a Standard Webhooks v1 signature by hand.
func expectedSignature(key []byte, id, ts string, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// checkSigned verifies p's webhook headers against keys (new first).
func checkSigned(t *testing.T, p received, now time.Time, keys ...[]byte) {
	t.Helper()
	id, ts := p.Header.Get("webhook-id"), p.Header.Get("webhook-timestamp")
	if !strings.HasPrefix(id, "msg_") || len(id) < 10 {
		t.Errorf("webhook-id = %q, want msg_ + random", id)
	}
	if ts != strconv.FormatInt(now.Unix(), 10) {
		t.Errorf("webhook-timestamp = %q, want %d", ts, now.Unix())
	}
	var want []string
	for _, k := range keys {
		want = append(want, expectedSignature(k, id, ts, p.Body))
	}
	if got := p.Header.Get("webhook-signature"); got != strings.Join(want, " ") {
		t.Errorf("webhook-signature = %q, want %q", got, strings.Join(want, " "))
	}
}

func TestSignedReports(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	rc := newReceiver(t, okReply)
	e.tenant("t1", rc.srv.URL, nil)
	oldSecret, oldKey := testSecret(1)
	newSecret, newKey := testSecret(2)
	if err := e.st.SetSigningSecret(e.ctx, "t1", oldSecret, nil); err != nil {
		t.Fatal(err)
	}
	prevUntil := e.now().Add(24 * time.Hour)
	if err := e.st.SetSigningSecret(e.ctx, "t1", newSecret, &prevUntil); err != nil {
		t.Fatal(err)
	}
	e.sent("t1", "m1")
	l := e.loop(Options{})
	e.cycle(l)
	got := rc.all()
	if len(got) != 1 {
		t.Fatalf("got %d POSTs", len(got))
	}
	checkSigned(t, got[0], e.now(), newKey, oldKey) // rotation: both sign, new first

	e.clock.Advance(24 * time.Hour) // the previous secret has expired
	e.sent("t1", "m2")
	e.cycle(l)
	got = rc.all()
	if len(got) != 2 {
		t.Fatalf("got %d POSTs", len(got))
	}
	checkSigned(t, got[1], e.now(), newKey)
	if got[0].Header.Get("webhook-id") == got[1].Header.Get("webhook-id") {
		t.Error("two POSTs share a webhook-id")
	}
}

func TestGlobalURL(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	global := newReceiver(t, okReply)
	own := newReceiver(t, okReply)
	e.tenant("g1", "", nil)
	e.tenant("g2", "", &store.ClientAuth{Method: "bearer", Token: "tenant-token-unused"})
	e.tenant("own", own.srv.URL, nil)
	secret, key := testSecret(7)
	l := e.loop(Options{GlobalURL: global.srv.URL + "/global-sync", GlobalToken: "gtok",
		GlobalUser: "u", GlobalPassword: "p", GlobalSecret: secret})

	e.cycle(l)
	if n := global.count(); n != 0 {
		t.Errorf("global URL got %d heartbeats, want none", n)
	}
	if n := own.count(); n != 1 {
		t.Errorf("own-URL tenant got %d heartbeats on the first cycle, want 1", n)
	}
	l.RunNow("g1") // forced, but still no heartbeat to the global URL
	e.cycle(l)
	if n := global.count(); n != 0 {
		t.Errorf("run-now sent %d heartbeats to the global URL", n)
	}

	e.sent("g1", "a")
	e.sent("g2", "a") // the same client id under another tenant
	e.cycle(l)
	got := global.all()
	if len(got) != 2 {
		t.Fatalf("global URL got %d POSTs, want one per tenant", len(got))
	}
	tenants := map[string]bool{}
	for _, p := range got {
		tenants[p.Header.Get("X-Mail-Proxy-Tenant")] = true
		if p.Path != "/global-sync" || p.Header.Get("Authorization") != "Bearer gtok" {
			t.Errorf("POST to %s with Authorization %q", p.Path, p.Header.Get("Authorization"))
		}
		if !cmp.Equal(p.ids(), []string{"a"}) {
			t.Errorf("items %v", p.ids())
		}
		checkSigned(t, p, e.now(), key)
	}
	if !tenants["g1"] || !tenants["g2"] {
		t.Errorf("X-Mail-Proxy-Tenant values %v, want g1 and g2", tenants)
	}
	if e.unreported("g1")+e.unreported("g2") != 0 {
		t.Error("global reports not marked")
	}
}

func TestTenantWithoutEndpointWaits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	own := newReceiver(t, okReply)
	e.tenant("nowhere", "", nil)
	e.tenant("own", own.srv.URL, nil)
	global := newReceiver(t, okReply)
	e.sent("nowhere", "x1")
	e.sent("own", "o1")
	e.cycle(e.loop(Options{}))
	if got := own.all(); len(got) != 1 || !cmp.Equal(got[0].ids(), []string{"o1"}) {
		t.Fatalf("own tenant: %d POSTs", len(got))
	}
	if n := e.unreported("nowhere"); n != 1 {
		t.Errorf("tenant without endpoint: %d unreported, want 1 (waiting)", n)
	}
	if v := e.pending("nowhere"); v != 1 {
		t.Errorf("gmp_reports_pending{nowhere} = %v, want 1", v)
	}
	// Once a global URL is configured the waiting events go there.
	e.cycle(e.loop(Options{GlobalURL: global.srv.URL, GlobalUser: "u", GlobalPassword: "p"}))
	got := global.all()
	if len(got) != 1 || !cmp.Equal(got[0].ids(), []string{"x1"}) {
		t.Fatalf("global URL: %d POSTs", len(got))
	}
	if a := got[0].Header.Get("Authorization"); a != "Basic "+base64.StdEncoding.EncodeToString([]byte("u:p")) {
		t.Errorf("Authorization = %q, want basic u:p", a)
	}
	if n := e.unreported("nowhere"); n != 0 {
		t.Errorf("%d unreported after the global POST", n)
	}
}
