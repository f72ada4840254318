package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mailproxy/mailproxy/pkg/client"
)

func TestSendTestEmailCountValidation(t *testing.T) {
	t.Parallel()
	proxy := newProxyDouble(t)
	ta := newTestApp(t, testConfig(t, proxy.srv.URL))
	for _, q := range []string{"?count=0", "?count=101", "?count=-3", "?count=abc", "?count=2.5"} {
		status, body, _ := ta.sendTest(t, q)
		if status != http.StatusUnprocessableEntity {
			t.Errorf("%s: status %d, want 422 (%v)", q, status, body)
			continue
		}
		detail, _ := body["detail"].([]any)
		if len(detail) != 1 || !strings.Contains(fmt.Sprint(detail[0]), "count") {
			t.Errorf("%s: detail %v does not name count", q, body["detail"])
		}
	}
	if s := ta.stats(t); s.Total != 0 {
		t.Errorf("rejected requests stored rows: %+v", s)
	}
	if ids := proxy.submittedIDs(); len(ids) != 0 {
		t.Errorf("rejected requests reached the proxy: %v", ids)
	}
	status, _, ids := ta.sendTest(t, "?count=100")
	if status != http.StatusOK || len(ids) != 100 {
		t.Fatalf("count=100: status %d, %d ids", status, len(ids))
	}
	status, _, ids = ta.sendTest(t, "")
	if status != http.StatusOK || len(ids) != 1 {
		t.Fatalf("default count: status %d, %d ids", status, len(ids))
	}
}

func TestSendTestEmailSubmitsTheContractPayload(t *testing.T) {
	t.Parallel()
	proxy := newProxyDouble(t)
	ta := newTestApp(t, testConfig(t, proxy.srv.URL))
	status, body, ids := ta.sendTest(t, "?count=3&subject=Integration%20Test")
	if status != http.StatusOK {
		t.Fatalf("status %d: %v", status, body)
	}
	if body["status"] != "success" || body["message"] != "Successfully queued 3 test email(s)" ||
		body["note"] != "Check /stats endpoint to monitor delivery status" {
		t.Errorf("answer = %v", body)
	}
	if msr, _ := body["mail_service_response"].(map[string]any); msr["queued"] != float64(3) || msr["ok"] != true {
		t.Errorf("mail_service_response = %v", body["mail_service_response"])
	}
	for _, id := range ids {
		if !idPattern(id) {
			t.Errorf("id %q is not test_<unix ms>_<4 digits>", id)
		}
	}
	if diff := cmp.Diff(ids, proxy.submittedIDs()); diff != "" {
		t.Errorf("ids handed to the proxy (-answered +submitted):\n%s", diff)
	}
	proxy.mu.Lock()
	m := proxy.batches[0].Messages[0]
	token := proxy.tokens[0]
	proxy.mu.Unlock()
	if token != "test-token" {
		t.Errorf("X-API-Token = %q", token)
	}
	want := client.Message{
		ID: ids[0], TenantID: "demo", AccountID: "smtp-main", From: "Example Sender <sender@example.com>",
		To: []string{"rcpt@example.org"}, Subject: "Integration Test", ContentType: "html",
	}
	got := m
	got.Body = ""
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("message (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(m.Body, "<html>") || !strings.Contains(m.Body, ids[0]) {
		t.Errorf("body is not the HTML test body: %q", m.Body)
	}
	if n := proxy.runNowCount(); n != 1 {
		t.Errorf("run-now calls = %d, want 1", n)
	}
	if s := ta.stats(t); s != (statistics{Total: 3, Submitted: 3}) {
		t.Errorf("stats = %+v, want 3 submitted", s)
	}

	// GET /messages lists in-flight rows with RFC 3339 times.
	status, list := call(t, http.MethodGet, ta.srv.URL+"/messages", nil, nil)
	if status != 200 || list["count"] != float64(3) {
		t.Fatalf("GET /messages = %d %v", status, list)
	}
	first := list["messages"].([]any)[0].(map[string]any)
	for _, k := range []string{"created_at", "submitted_at"} {
		if _, err := time.Parse(time.RFC3339, fmt.Sprint(first[k])); err != nil || !strings.HasSuffix(fmt.Sprint(first[k]), "Z") {
			t.Errorf("%s = %v, want RFC 3339 UTC", k, first[k])
		}
	}
	if first["status"] != "submitted" || first["recipient"] != "rcpt@example.org" || first["subject"] != "Integration Test" {
		t.Errorf("message = %v", first)
	}
}

func idPattern(id string) bool {
	parts := strings.Split(id, "_")
	if len(parts) != 3 || parts[0] != "test" || len(parts[2]) != 4 {
		return false
	}
	ms, err1 := strconv.ParseInt(parts[1], 10, 64)
	_, err2 := strconv.Atoi(parts[2])
	return err1 == nil && err2 == nil && ms > 1_700_000_000_000
}

func TestSendTestEmailRecordsRejections(t *testing.T) {
	t.Parallel()
	proxy := newProxyDouble(t)
	ta := newTestApp(t, testConfig(t, proxy.srv.URL))
	proxy.setRespond(func(req client.AddMessagesRequest) (int, any) {
		return 200, map[string]any{"ok": true, "queued": 1, "rejected": []any{
			map[string]any{"id": req.Messages[1].ID, "reason": "already sent"},
			map[string]any{"id": req.Messages[2].ID, "reason": "invalid address: rcpt@"},
		}}
	})
	status, body, ids := ta.sendTest(t, "?count=3")
	if status != 200 || body["message"] != "Successfully queued 1 test email(s)" {
		t.Fatalf("status %d: %v", status, body)
	}
	for i, want := range []string{statusSubmitted, statusSubmitted, statusFailed} {
		if got := ta.row(t, ids[i]).Status; got != want {
			t.Errorf("row %d status %q, want %q", i, got, want)
		}
	}
	if e := ta.row(t, ids[2]).Error; e == nil || *e != "invalid address: rcpt@" {
		t.Errorf("failed row error = %v", e)
	}

	// 400: every item rejected; the listed ids become failed.
	proxy.setRespond(func(req client.AddMessagesRequest) (int, any) {
		rej := []any{}
		for _, m := range req.Messages {
			rej = append(rej, map[string]any{"id": m.ID, "reason": "account not found for tenant"})
		}
		return 400, map[string]any{"detail": map[string]any{"error": nil, "rejected": rej}}
	})
	status, body, ids = ta.sendTest(t, "?count=2")
	if status != 200 {
		t.Fatalf("400 from proxy: status %d: %v", status, body)
	}
	if msr, _ := body["mail_service_response"].(map[string]any); msr["detail"] == nil {
		t.Errorf("mail_service_response = %v, want the proxy's 400 body", body["mail_service_response"])
	}
	for _, id := range ids {
		r := ta.row(t, id)
		if r.Status != statusFailed || r.Error == nil || *r.Error != "account not found for tenant" {
			t.Errorf("row %s = %s %v, want failed with the reason", id, r.Status, r.Error)
		}
	}
	if s := ta.stats(t); s != (statistics{Total: 5, Submitted: 2, Failed: 3}) {
		t.Errorf("stats = %+v", s)
	}
}

func TestProxyUnreachableKeepsRowsPending(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, testConfig(t, closedURL(t)))
	status, body, _ := ta.sendTest(t, "?count=4")
	if status != http.StatusServiceUnavailable || body["status"] != "error" ||
		!strings.HasPrefix(fmt.Sprint(body["detail"]), "Mail service unavailable: ") {
		t.Fatalf("status %d: %v, want 503 Mail service unavailable", status, body)
	}
	if s := ta.stats(t); s != (statistics{Total: 4, Pending: 4}) {
		t.Errorf("stats = %+v, want 4 pending", s)
	}
	_, list := call(t, http.MethodGet, ta.srv.URL+"/messages", nil, nil)
	if list["count"] != float64(4) {
		t.Errorf("GET /messages count = %v, want 4 pending", list["count"])
	}
	if first := list["messages"].([]any)[0].(map[string]any); first["submitted_at"] != nil || first["status"] != "pending" {
		t.Errorf("pending row = %v", first)
	}
}

func TestProxyErrorStatusIs502(t *testing.T) {
	t.Parallel()
	proxy := newProxyDouble(t)
	proxy.setRespond(func(client.AddMessagesRequest) (int, any) {
		return 401, map[string]any{"detail": "Invalid or missing API token"}
	})
	ta := newTestApp(t, testConfig(t, proxy.srv.URL))
	status, body, _ := ta.sendTest(t, "?count=2")
	if status != http.StatusBadGateway || body["detail"] != "Mail service error: 401 Invalid or missing API token" {
		t.Fatalf("status %d: %v", status, body)
	}
	if s := ta.stats(t); s != (statistics{Total: 2, Pending: 2}) {
		t.Errorf("stats = %+v, want 2 pending", s)
	}
}

// postSync posts a sync body to the given path and decodes the answer.
func postSync(t *testing.T, url string, body string, header http.Header) (int, map[string]any) {
	t.Helper()
	return call(t, http.MethodPost, url, []byte(body), header)
}

func TestSyncAppliesReportsIdempotently(t *testing.T) {
	t.Parallel()
	proxy := newProxyDouble(t)
	ta := newTestApp(t, testConfig(t, proxy.srv.URL))
	_, _, ids := ta.sendTest(t, "?count=5")
	sent, errd, deferred, bounced, late := ids[0], ids[1], ids[2], ids[3], ids[4]

	report := fmt.Sprintf(`{"delivery_report":[
		{"id":%q,"sent_ts":1767225660},
		{"id":%q,"error_ts":1767225661,"error":"550 5.1.1 no such user"},
		{"id":%q,"deferred_ts":1767225662,"deferred_reason":"4.7.1 try later (SMTP 451)"},
		{"id":%q,"sent_ts":1767225663},
		{"id":%q,"bounce_ts":1767225664,"bounce_type":"hard","bounce_code":"5.1.1","bounce_reason":"mailbox gone"},
		{"id":%q,"sent_ts":1767225665},
		{"id":"ghost-1","sent_ts":1767225666},
		{"id":"ghost-1","error_ts":1767225667,"error":"x"}]}`, sent, errd, deferred, bounced, bounced, late)

	check := func(round string) {
		t.Helper()
		want := map[string]struct {
			status, err string
			delivered   int64
		}{
			sent:     {statusDelivered, "", 1767225660},
			errd:     {statusFailed, "550 5.1.1 no such user", 0},
			deferred: {statusSubmitted, "4.7.1 try later (SMTP 451)", 0},
			bounced:  {statusFailed, "mailbox gone", 1767225663},
			late:     {statusDelivered, "", 1767225665},
		}
		for id, w := range want {
			r := ta.row(t, id)
			gotErr := ""
			if r.Error != nil {
				gotErr = *r.Error
			}
			var gotDelivered int64
			if r.DeliveredAt != nil {
				gotDelivered = *r.DeliveredAt
			}
			if r.Status != w.status || gotErr != w.err || gotDelivered != w.delivered {
				t.Errorf("%s: row %s = (%s, %q, %d), want (%s, %q, %d)", round, id, r.Status, gotErr, gotDelivered, w.status, w.err, w.delivered)
			}
		}
	}
	for _, path := range []string{"/mail-proxy/sync", "/email/mailproxy/mp_endpoint/proxy_sync"} {
		status, body := postSync(t, ta.srv.URL+path, report, nil)
		if status != 200 {
			t.Fatalf("%s: status %d: %v", path, status, body)
		}
		want := map[string]any{"ok": true, "queued": float64(0), "not_found": []any{"ghost-1"}}
		if diff := cmp.Diff(want, body); diff != "" {
			t.Errorf("%s answer (-want +got):\n%s", path, diff)
		}
		check(path) // the second path replays the same report: nothing changes
	}

	// A late deferred (an at-least-once resend of an older batch) never downgrades a final row.
	status, body := postSync(t, ta.srv.URL+"/mail-proxy/sync", fmt.Sprintf(`{"delivery_report":[
		{"id":%q,"deferred_ts":1767225600,"deferred_reason":"late"},
		{"id":%q,"deferred_ts":1767225600,"deferred_reason":"late"},
		{"id":%q,"sent_ts":1767225600}]}`, sent, errd, bounced), nil)
	if status != 200 || body["ok"] != true {
		t.Fatalf("late items: %d %v", status, body)
	}
	check("late items")
	if s := ta.stats(t); s != (statistics{Total: 5, Submitted: 1, Delivered: 2, Failed: 2}) {
		t.Errorf("stats = %+v", s)
	}
}

func TestSyncAcceptsLegacyReportsAndHeartbeat(t *testing.T) {
	t.Parallel()
	proxy := newProxyDouble(t)
	ta := newTestApp(t, testConfig(t, proxy.srv.URL))
	_, _, ids := ta.sendTest(t, "?count=1")
	status, body := postSync(t, ta.srv.URL+"/email/mailproxy/mp_endpoint/proxy_sync",
		fmt.Sprintf(`{"reports":[{"id":%q,"status":"sent","timestamp":1761215435}]}`, ids[0]), nil)
	if status != 200 || body["ok"] != true {
		t.Fatalf("legacy: %d %v", status, body)
	}
	if r := ta.row(t, ids[0]); r.Status != statusDelivered {
		t.Errorf("legacy sent report: status %s", r.Status)
	}
	status, body = postSync(t, ta.srv.URL+"/mail-proxy/sync", `{"delivery_report":[]}`, nil)
	if diff := cmp.Diff(map[string]any{"ok": true, "queued": float64(0), "not_found": []any{}}, body); status != 200 || diff != "" {
		t.Errorf("heartbeat: %d (-want +got):\n%s", status, diff)
	}
	status, body = postSync(t, ta.srv.URL+"/mail-proxy/sync", `{"delivery_report":[{"id":"x","sent_ts":"soon"}]}`, nil)
	if status != http.StatusUnprocessableEntity || body["ok"] != false {
		t.Errorf("malformed report: %d %v, want 422 ok:false", status, body)
	}
}

func TestSyncHandsOverPendingRows(t *testing.T) {
	t.Parallel()
	proxy := newProxyDouble(t)
	proxy.setRespond(func(client.AddMessagesRequest) (int, any) {
		return 503, map[string]any{"detail": "Service overloaded, retry later"}
	})
	ta := newTestApp(t, testConfig(t, proxy.srv.URL))
	if status, _, _ := ta.sendTest(t, "?count=3"); status != http.StatusBadGateway {
		t.Fatalf("overloaded proxy: status %d, want 502", status)
	}
	if s := ta.stats(t); s.Pending != 3 {
		t.Fatalf("stats = %+v, want 3 pending", s)
	}
	proxy.setRespond(nil) // the proxy recovers

	status, body := postSync(t, ta.srv.URL+"/mail-proxy/sync", `{"delivery_report":[]}`, nil)
	if status != 200 || body["queued"] != float64(3) {
		t.Fatalf("first heartbeat: %d %v, want queued 3", status, body)
	}
	if s := ta.stats(t); s != (statistics{Total: 3, Submitted: 3}) {
		t.Errorf("stats = %+v, want 3 submitted", s)
	}
	// queued counts only this call's hand-over, never what is still in flight.
	status, body = postSync(t, ta.srv.URL+"/mail-proxy/sync", `{"delivery_report":[]}`, nil)
	if status != 200 || body["queued"] != float64(0) {
		t.Errorf("second heartbeat: %d %v, want queued 0", status, body)
	}
	if n := len(proxy.submittedIDs()); n != 6 {
		// 3 refused with 503, then 3 accepted; the second heartbeat sent nothing.
		t.Errorf("proxy saw %d submissions, want 6", n)
	}
}

func TestSyncSignatureVerification(t *testing.T) {
	t.Parallel()
	key := []byte("an example 32-byte signing key!!")
	proxy := newProxyDouble(t)
	cfg := testConfig(t, proxy.srv.URL)
	cfg.SigningSecret = "whsec_" + base64.StdEncoding.EncodeToString(key)
	ta := newTestApp(t, cfg)
	_, _, ids := ta.sendTest(t, "?count=1")
	body := fmt.Sprintf(`{"delivery_report":[{"id":%q,"sent_ts":1767225660}]}`, ids[0])

	signed := func(k []byte, ts int64, payload string) http.Header {
		m := hmac.New(sha256.New, k)
		fmt.Fprintf(m, "msg_abc.%d.%s", ts, payload)
		h := http.Header{}
		h.Set("webhook-id", "msg_abc")
		h.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
		h.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)))
		return h
	}
	now := time.Now().Unix()
	for name, h := range map[string]http.Header{
		"unsigned":       nil,
		"wrong key":      signed([]byte("another key of thirty-two bytes!"), now, body),
		"other body":     signed(key, now, `{"delivery_report":[]}`),
		"stale (10 min)": signed(key, now-600, body),
	} {
		status, answer := postSync(t, ta.srv.URL+"/mail-proxy/sync", body, h)
		if status != http.StatusUnauthorized || answer["ok"] != false {
			t.Errorf("%s: %d %v, want 401", name, status, answer)
		}
	}
	if r := ta.row(t, ids[0]); r.Status != statusSubmitted {
		t.Fatalf("a refused report changed the row: %s", r.Status)
	}
	status, answer := postSync(t, ta.srv.URL+"/email/mailproxy/mp_endpoint/proxy_sync", body, signed(key, now, body))
	if status != 200 || answer["ok"] != true {
		t.Fatalf("good signature: %d %v", status, answer)
	}
	if r := ta.row(t, ids[0]); r.Status != statusDelivered {
		t.Errorf("signed report not applied: %s", r.Status)
	}
}

func TestIndexDescribesService(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, testConfig(t, closedURL(t)))
	status, body := call(t, http.MethodGet, ta.srv.URL+"/", nil, nil)
	if status != 200 || body["tenant_id"] != "demo" || body["endpoints"] == nil {
		t.Errorf("GET / = %d %v", status, body)
	}
	resp, err := http.Get(ta.srv.URL + "/nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("GET /nope = %d, want 404", resp.StatusCode)
	}
}

func TestReportUpdateRulesArePure(t *testing.T) {
	t.Parallel()
	ts := int64(5)
	tests := []struct {
		name string
		item client.ReportItem
		want string // the fragment that decides which rows may change
	}{
		{"sent", client.ReportItem{ID: "a", SentTS: &ts}, "status IN ('pending', 'submitted')"},
		{"deferred", client.ReportItem{ID: "a", DeferredTS: &ts}, "status IN ('pending', 'submitted')"},
		{"error", client.ReportItem{ID: "a", ErrorTS: &ts}, "status IN ('pending', 'submitted')"},
		{"bounce overrides delivered", client.ReportItem{ID: "a", BounceTS: &ts}, "WHERE id = ?"},
		{"empty", client.ReportItem{ID: "a"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			stmt, _ := reportUpdate(tc.item)
			if !strings.Contains(stmt, tc.want) || (tc.want == "" && stmt != "") {
				t.Errorf("reportUpdate = %q, want it to contain %q", stmt, tc.want)
			}
		})
	}
}
