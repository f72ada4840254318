package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mailproxy/mailproxy/pkg/client"
)

// recorded is one request as the server saw it.
type recorded struct {
	Method, Path, RawQuery, Token, ContentType string
	Body                                       string
}

// fakeAPI is a real HTTP server on loopback that records each request and
// answers with a canned status and body per "METHOD /path". It stands in for
// the proxy only to pin down the wire format of each call; the calls against
// the real proxy are in proxy_test.go.
type fakeAPI struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	got     []recorded
	answers map[string]answer
}

type answer struct {
	status int
	body   string
}

func newFakeAPI(t *testing.T, answers map[string]answer) *fakeAPI {
	t.Helper()
	f := &fakeAPI{t: t, answers: answers}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.got = append(f.got, recorded{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("X-API-Token"), r.Header.Get("Content-Type"), string(body)})
		f.mu.Unlock()
		a, ok := f.answers[r.Method+" "+r.URL.Path]
		if !ok {
			a = answer{404, `{"detail":"Not Found"}`}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPI) last() recorded {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.got) == 0 {
		f.t.Fatal("no request reached the server")
	}
	return f.got[len(f.got)-1]
}

// jsonEqual compares two JSON texts structurally.
func jsonEqual(t *testing.T, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("request body is not JSON: %v: %s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want JSON: %v", err)
	}
	if diff := cmp.Diff(w, g); diff != "" {
		t.Errorf("request body (-want +got):\n%s", diff)
	}
}

func TestAddMessagesSendsContractBodyAndParses200(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t, map[string]answer{
		"POST /commands/add-messages": {200, `{"ok":true,"queued":1,"rejected":[{"id":"m0","reason":"already sent"}]}`},
	})
	c := client.New(api.srv.URL+"/", "tok-1")
	prio := client.PriorityHigh
	resp, err := c.AddMessages(context.Background(), client.AddMessagesRequest{Messages: []client.Message{{
		ID: "m1", TenantID: "demo", AccountID: "smtp-main", From: "Me <me@example.com>",
		To: []string{"you@example.com"}, Subject: "Hi", Body: "<b>x</b>", ContentType: "html", Priority: &prio,
	}}})
	if err != nil {
		t.Fatalf("AddMessages: %v", err)
	}
	want := client.AddMessagesResponse{OK: true, Queued: 1, Rejected: []client.Rejection{{ID: "m0", Reason: "already sent"}}}
	if diff := cmp.Diff(want, resp); diff != "" {
		t.Errorf("response (-want +got):\n%s", diff)
	}
	req := api.last()
	if req.Method != "POST" || req.Path != "/commands/add-messages" || req.Token != "tok-1" || req.ContentType != "application/json" {
		t.Errorf("request = %+v", req)
	}
	jsonEqual(t, req.Body, `{"messages":[{"id":"m1","tenant_id":"demo","account_id":"smtp-main","from":"Me <me@example.com>",
		"to":["you@example.com"],"subject":"Hi","body":"<b>x</b>","content_type":"html","priority":1}]}`)
}

func TestAddMessages400ReturnsRejectionsAndAPIError(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t, map[string]answer{
		"POST /commands/add-messages": {400, `{"detail":{"error":null,"rejected":[{"id":"m1","reason":"account not found for tenant"},{"id":null,"reason":"missing id"}]}}`},
	})
	resp, err := client.New(api.srv.URL, "t").AddMessages(context.Background(), client.AddMessagesRequest{})
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 400 || !client.IsRejection(err) {
		t.Fatalf("err = %v, want *APIError 400", err)
	}
	if errors.Is(err, client.ErrUnreachable) {
		t.Error("a 400 answer must not count as unreachable")
	}
	want := client.AddMessagesResponse{Rejected: []client.Rejection{{ID: "m1", Reason: "account not found for tenant"}, {ID: "", Reason: "missing id"}}}
	if diff := cmp.Diff(want, resp); diff != "" {
		t.Errorf("response (-want +got):\n%s", diff)
	}
	jsonEqual(t, api.last().Body, `{"messages":[]}`)
}

func TestAddMessagesBatchTooLarge(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t, map[string]answer{
		"POST /commands/add-messages": {400, `{"detail":{"error":"Cannot enqueue more than 1000 messages at once","rejected":null}}`},
	})
	resp, err := client.New(api.srv.URL, "t").AddMessages(context.Background(), client.AddMessagesRequest{})
	if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "Cannot enqueue more than 1000") {
		t.Fatalf("err = %v, want the 400 with its error text", err)
	}
	if resp.Error != "Cannot enqueue more than 1000 messages at once" || len(resp.Rejected) != 0 {
		t.Errorf("resp = %+v", resp)
	}
}

func TestAPIErrorMessages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body string
		status     int
		want       string
	}{
		{"string detail", `{"detail":"Invalid or missing API token"}`, 401, "mailproxy: HTTP 401: Invalid or missing API token"},
		{"validation list", `{"detail":[{"type":"missing","loc":["body","messages",0,"subject"],"msg":"Field required"}]}`, 422,
			"mailproxy: HTTP 422: body.messages.0.subject: Field required"},
		{"not JSON", `<html>bad gateway</html>`, 502, "mailproxy: HTTP 502: <html>bad gateway</html>"},
		{"empty body", ``, 503, "mailproxy: HTTP 503: Service Unavailable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			api := newFakeAPI(t, map[string]answer{"GET /status": {tc.status, tc.body}})
			_, err := client.New(api.srv.URL, "t").Status(context.Background())
			var apiErr *client.APIError
			if !errors.As(err, &apiErr) || apiErr.Status != tc.status {
				t.Fatalf("err = %#v, want *APIError %d", err, tc.status)
			}
			if err.Error() != tc.want {
				t.Errorf("Error() = %q, want %q", err.Error(), tc.want)
			}
		})
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestUnreachable(t *testing.T) {
	t.Parallel()
	c := client.New("http://"+closedPort(t), "t")
	err := c.RunNow(context.Background(), "")
	if !errors.Is(err, client.ErrUnreachable) {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
	var ue *client.UnreachableError
	if !errors.As(err, &ue) || ue.Method != "POST" || !strings.HasSuffix(ue.URL, "/commands/run-now") {
		t.Errorf("err = %#v", err)
	}
	var apiErr *client.APIError
	if errors.As(err, &apiErr) {
		t.Error("unreachable must not be an *APIError")
	}
	if strings.Contains(err.Error(), "t\"") {
		t.Error("token leaked into the error")
	}
}

func TestTimeoutIsUnreachableButCancelIsNot(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })

	_, err := client.New(srv.URL, "t", client.WithTimeout(50*time.Millisecond)).Health(context.Background())
	if !errors.Is(err, client.ErrUnreachable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("timeout: err = %v, want ErrUnreachable wrapping DeadlineExceeded", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := client.New(srv.URL, "t").Health(ctx)
		done <- err
	}()
	cancel()
	err = <-done
	if !errors.Is(err, context.Canceled) || errors.Is(err, client.ErrUnreachable) {
		t.Errorf("cancel: err = %v, want context.Canceled and not unreachable", err)
	}
}

func TestWithHTTPClientIsUsed(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t, map[string]answer{"GET /health": {200, `{"status":"ok"}`}})
	var used bool
	hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		used = true
		return http.DefaultTransport.RoundTrip(r)
	})}
	h, err := client.New(api.srv.URL, "", client.WithHTTPClient(hc)).Health(context.Background())
	if err != nil || h.Status != "ok" || !used {
		t.Fatalf("Health = %+v, %v, custom client used: %v", h, err, used)
	}
	if api.last().Token != "" {
		t.Error("an empty token must send no X-API-Token")
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestRequestShapes pins method, path, query and body of every other call.
func TestRequestShapes(t *testing.T) {
	t.Parallel()
	ok := answer{200, `{"ok":true}`}
	api := newFakeAPI(t, map[string]answer{
		"POST /commands/run-now":          ok,
		"POST /commands/suspend":          {200, `{"ok":true,"tenant_id":"t1","batch_code":"b1","suspended_batches":["b1"],"pending_messages":3}`},
		"POST /commands/activate":         {200, `{"ok":true,"tenant_id":"t1","suspended_batches":[],"pending_messages":0}`},
		"POST /commands/delete-messages":  {200, `{"ok":true,"removed":1,"not_found":["x"],"unauthorized":[]}`},
		"POST /commands/cleanup-messages": {200, `{"ok":true,"removed":4}`},
		"POST /account":                   ok,
		"GET /accounts":                   {200, `{"ok":true,"accounts":[{"id":"a1","tenant_id":"t1","host":"h","port":25,"ttl":300,"is_pec_account":false,"rate_usage":{"minute":1,"hour":2,"day":3}}]}`},
		"DELETE /account/a 1":             ok,
		"GET /messages":                   {200, `{"ok":true,"messages":[{"pk":"u1","id":"m1","tenant_id":"t1","priority":2,"sent_ts":1767225660,"status":"sent","retry_count":0,"is_pec":false,"history":[{"event_id":7,"event_type":"sent","event_ts":1767225660}]}]}`},
		"POST /tenant":                    {200, `{"ok":true,"api_key":"k-new"}`},
		"GET /tenant/t1":                  {200, `{"id":"t1","active":true,"signing_secret_set":true}`},
		"GET /tenants":                    {200, `{"ok":true,"tenants":[{"id":"t1","active":true,"signing_secret_set":false}]}`},
		"PUT /tenant/t1":                  ok,
		"DELETE /tenant/t1":               ok,
		"POST /tenant/t1/api-key":         {200, `{"ok":true,"api_key":"k2"}`},
		"DELETE /tenant/t1/api-key":       ok,
		"POST /tenant/t1/signing-secret":  {200, `{"ok":true,"signing_secret":"whsec_AAAA"}`},
		"GET /tenants/sync-status":        {200, `{"ok":true,"sync_interval_seconds":300,"tenants":[{"id":"t1","active":true,"next_sync_due":false,"in_dnd":true,"pending_reports":2,"consecutive_failures":0}]}`},
		"GET /instance":                   {200, `{"id":1,"name":"mail-proxy","bounce_enabled":false,"bounce_imap_ssl":false}`},
		"PUT /instance":                   ok,
		"GET /command-log":                {200, `{"ok":true,"commands":[{"id":3,"command_ts":10,"endpoint":"POST /tenant","payload":{"id":"t1"},"response_status":200}],"total":1}`},
		"GET /stats":                      {200, `{"ok":true,"tenants":[{"tenant_id":"t1","accounts":1,"pending":2,"deferred":0,"sent":5,"error":1}]}`},
	})
	c := client.New(api.srv.URL, "adm")
	ctx := context.Background()
	check := func(name, method, path, query, body string) {
		t.Helper()
		got := api.last()
		if got.Method != method || got.Path != path || got.RawQuery != query {
			t.Errorf("%s: sent %s %s?%s, want %s %s?%s", name, got.Method, got.Path, got.RawQuery, method, path, query)
		}
		if body == "" {
			if got.Body != "" {
				t.Errorf("%s: sent body %s, want none", name, got.Body)
			}
			return
		}
		jsonEqual(t, got.Body, body)
	}
	must := func(name string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}

	must("RunNow", c.RunNow(ctx, "t1"))
	check("RunNow", "POST", "/commands/run-now", "tenant_id=t1", "")

	s, err := c.Suspend(ctx, "t1", "b1")
	must("Suspend", err)
	check("Suspend", "POST", "/commands/suspend", "batch_code=b1&tenant_id=t1", "")
	if s.PendingMessages != 3 || s.BatchCode != "b1" || !cmp.Equal(s.SuspendedBatches, []string{"b1"}) {
		t.Errorf("Suspend = %+v", s)
	}
	_, err = c.Activate(ctx, "t1", "")
	must("Activate", err)
	check("Activate", "POST", "/commands/activate", "tenant_id=t1", "")

	d, err := c.DeleteMessages(ctx, "t1", []string{"m1", "x"})
	must("DeleteMessages", err)
	check("DeleteMessages", "POST", "/commands/delete-messages", "tenant_id=t1", `{"ids":["m1","x"]}`)
	if d.Removed != 1 || !cmp.Equal(d.NotFound, []string{"x"}) {
		t.Errorf("DeleteMessages = %+v", d)
	}
	older := int64(3600)
	cl, err := c.CleanupMessages(ctx, "t1", &older)
	must("CleanupMessages", err)
	check("CleanupMessages", "POST", "/commands/cleanup-messages", "tenant_id=t1", `{"older_than_seconds":3600}`)
	if cl.Removed != 4 {
		t.Errorf("CleanupMessages = %+v", cl)
	}
	_, err = c.CleanupMessages(ctx, "t1", nil)
	must("CleanupMessages nil", err)
	check("CleanupMessages nil", "POST", "/commands/cleanup-messages", "tenant_id=t1", `{"older_than_seconds":null}`)

	limit := 10
	must("UpsertAccount", c.UpsertAccount(ctx, client.Account{ID: "a1", TenantID: "t1", Host: "127.0.0.1", Port: 2525, LimitPerMinute: &limit}))
	check("UpsertAccount", "POST", "/account", "", `{"id":"a1","tenant_id":"t1","host":"127.0.0.1","port":2525,"limit_per_minute":10}`)
	must("UpsertAccount merge", c.UpsertAccount(ctx, client.Account{ID: "a1", LimitPerMinute: &limit}))
	check("UpsertAccount merge", "POST", "/account", "", `{"id":"a1","limit_per_minute":10}`)
	accts, err := c.ListAccounts(ctx, "t1")
	must("ListAccounts", err)
	check("ListAccounts", "GET", "/accounts", "tenant_id=t1", "")
	if len(accts) != 1 || accts[0].Port != 25 || accts[0].RateUsage == nil || accts[0].RateUsage.Day != 3 {
		t.Errorf("ListAccounts = %+v", accts)
	}
	must("DeleteAccount", c.DeleteAccount(ctx, "t1", "a 1"))
	check("DeleteAccount", "DELETE", "/account/a 1", "tenant_id=t1", "")

	msgs, err := c.ListMessages(ctx, client.ListMessagesOptions{TenantID: "t1", ActiveOnly: true, IncludeHistory: true, Limit: 5})
	must("ListMessages", err)
	check("ListMessages", "GET", "/messages", "active_only=true&include_history=true&limit=5&tenant_id=t1", "")
	if len(msgs) != 1 || msgs[0].SentTS == nil || *msgs[0].SentTS != 1767225660 || len(msgs[0].History) != 1 || msgs[0].History[0].EventType != "sent" {
		t.Errorf("ListMessages = %+v", msgs)
	}

	key, err := c.CreateTenant(ctx, client.Tenant{ID: "t1", ClientBaseURL: "http://127.0.0.1:8081", ClientAuth: &client.ClientAuth{Method: "bearer", Token: "x"}})
	must("CreateTenant", err)
	check("CreateTenant", "POST", "/tenant", "", `{"id":"t1","client_base_url":"http://127.0.0.1:8081","client_auth":{"method":"bearer","token":"x"}}`)
	if key != "k-new" {
		t.Errorf("CreateTenant key = %q", key)
	}
	ti, err := c.GetTenant(ctx, "t1")
	must("GetTenant", err)
	check("GetTenant", "GET", "/tenant/t1", "", "")
	if !ti.SigningSecretSet || !ti.Active {
		t.Errorf("GetTenant = %+v", ti)
	}
	ts, err := c.ListTenants(ctx, true)
	must("ListTenants", err)
	check("ListTenants", "GET", "/tenants", "active_only=true", "")
	if len(ts) != 1 {
		t.Errorf("ListTenants = %+v", ts)
	}
	name := "Demo"
	must("UpdateTenant", c.UpdateTenant(ctx, "t1", client.TenantUpdate{Name: &name}))
	check("UpdateTenant", "PUT", "/tenant/t1", "", `{"name":"Demo"}`)
	must("DeleteTenant", c.DeleteTenant(ctx, "t1"))
	check("DeleteTenant", "DELETE", "/tenant/t1", "", "")
	exp := int64(2000000000)
	k2, err := c.CreateAPIKey(ctx, "t1", &exp)
	must("CreateAPIKey", err)
	check("CreateAPIKey", "POST", "/tenant/t1/api-key", "", `{"expires_at":2000000000}`)
	if k2 != "k2" {
		t.Errorf("CreateAPIKey = %q", k2)
	}
	must("RevokeAPIKey", c.RevokeAPIKey(ctx, "t1"))
	check("RevokeAPIKey", "DELETE", "/tenant/t1/api-key", "", "")
	sec, err := c.CreateSigningSecret(ctx, "t1")
	must("CreateSigningSecret", err)
	if sec != "whsec_AAAA" {
		t.Errorf("CreateSigningSecret = %q", sec)
	}
	ss, err := c.SyncStatus(ctx)
	must("SyncStatus", err)
	if ss.SyncIntervalSeconds != 300 || len(ss.Tenants) != 1 || !ss.Tenants[0].InDND || ss.Tenants[0].PendingReports != 2 {
		t.Errorf("SyncStatus = %+v", ss)
	}
	inst, err := c.Instance(ctx)
	must("Instance", err)
	if inst.ID != 1 || inst.Name != "mail-proxy" {
		t.Errorf("Instance = %+v", inst)
	}
	tok := "new-admin"
	must("UpdateInstance", c.UpdateInstance(ctx, client.InstanceUpdate{APIToken: &tok}))
	check("UpdateInstance", "PUT", "/instance", "", `{"api_token":"new-admin"}`)
	cmdLog, err := c.CommandLog(ctx, client.CommandLogQuery{TenantID: "t1", SinceTS: 5, Limit: 20})
	must("CommandLog", err)
	check("CommandLog", "GET", "/command-log", "limit=20&since_ts=5&tenant_id=t1", "")
	if cmdLog.Total != 1 || cmdLog.Commands[0].Endpoint != "POST /tenant" || string(cmdLog.Commands[0].Payload) != `{"id":"t1"}` {
		t.Errorf("CommandLog = %+v", cmdLog)
	}
	stats, err := c.Stats(ctx)
	must("Stats", err)
	if diff := cmp.Diff([]client.TenantStats{{TenantID: "t1", Accounts: 1, Pending: 2, Sent: 5, Error: 1}}, stats); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
}
