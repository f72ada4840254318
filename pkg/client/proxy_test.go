package client_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/pkg/client"
)

// TestAgainstRealProxy runs every call of the package against the real
// mail-proxy binary (built here, SQLite in a temp dir, loopback only).
func TestAgainstRealProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs mail-proxy; skipped with -short")
	}
	const adminToken = "client-test-admin-token-0123456789"
	baseURL, logs := startRealProxy(t, adminToken)
	ctx := context.Background()
	admin := client.New(baseURL, adminToken)
	fail := func(what string, err error) {
		t.Helper()
		t.Fatalf("%s: %v\nproxy log:\n%s", what, err, logs())
	}
	wantAPIError := func(what string, err error, status int, detailPart string) {
		t.Helper()
		var apiErr *client.APIError
		if !errors.As(err, &apiErr) || apiErr.Status != status || !strings.Contains(err.Error(), detailPart) {
			t.Errorf("%s: err = %v, want *APIError %d mentioning %q", what, err, status, detailPart)
		}
	}

	if h, err := admin.Health(ctx); err != nil || h.Status != "ok" {
		fail("Health", err)
	}
	if st, err := admin.Status(ctx); err != nil || !st.OK || !st.Active {
		t.Errorf("Status = %+v, %v; want ok and active", st, err)
	}
	_, err := client.New(baseURL, "not-a-token").Status(ctx)
	wantAPIError("Status with a bad token", err, 401, "Invalid or missing API token")

	key, err := admin.CreateTenant(ctx, client.Tenant{ID: "t1", Name: "Tenant One", ClientBaseURL: "http://" + closedAddr(t)})
	if err != nil || len(key) != 43 {
		t.Fatalf("CreateTenant: key %q (%d chars), %v", key, len(key), err)
	}
	if again, err := admin.CreateTenant(ctx, client.Tenant{ID: "t1", Name: "Tenant One", ClientBaseURL: "http://" + closedAddr(t)}); err != nil || again != "" {
		t.Errorf("CreateTenant on an existing id: key %q, %v; want no new key", again, err)
	}
	tenant := client.New(baseURL, key)
	_, err = tenant.ListTenants(ctx, false)
	wantAPIError("ListTenants with a tenant key", err, 403, "Admin token required")

	if err := tenant.UpsertAccount(ctx, client.Account{ID: "a1", Host: "127.0.0.1", Port: mustPort(t, closedAddr(t))}); err != nil {
		fail("UpsertAccount", err)
	}
	accts, err := tenant.ListAccounts(ctx, "")
	if err != nil || len(accts) != 1 || accts[0].ID != "a1" || accts[0].TenantID != "t1" {
		t.Errorf("ListAccounts = %+v, %v", accts, err)
	}

	// Suspended, so nothing is attempted while we look at the queue.
	sus, err := tenant.Suspend(ctx, "t1", "")
	if err != nil || !slices.Equal(sus.SuspendedBatches, []string{"*"}) {
		t.Errorf("Suspend = %+v, %v", sus, err)
	}
	msg := func(id, account string) client.Message {
		return client.Message{ID: id, AccountID: account, From: "App <app@example.com>", To: []string{"rcpt@example.org"}, Subject: "s", Body: "b"}
	}
	resp, err := tenant.AddMessages(ctx, client.AddMessagesRequest{Messages: []client.Message{msg("m1", "a1"), msg("m2", "a1"), msg("m3", "nope")}})
	if err != nil || !resp.OK || resp.Queued != 2 || len(resp.Rejected) != 1 || resp.Rejected[0] != (client.Rejection{ID: "m3", Reason: "account not found for tenant"}) {
		t.Errorf("AddMessages = %+v, %v", resp, err)
	}
	resp, err = tenant.AddMessages(ctx, client.AddMessagesRequest{Messages: []client.Message{msg("m4", "nope")}})
	if !client.IsRejection(err) || resp.OK || len(resp.Rejected) != 1 || resp.Rejected[0].ID != "m4" {
		t.Errorf("AddMessages all rejected = %+v, %v; want the 400 with m4", resp, err)
	}
	bad := msg("m5", "a1")
	bad.Subject = ""
	_, err = tenant.AddMessages(ctx, client.AddMessagesRequest{Messages: []client.Message{bad}})
	wantAPIError("AddMessages without subject", err, 422, "subject")

	active, err := tenant.ListMessages(ctx, client.ListMessagesOptions{ActiveOnly: true, IncludeHistory: true})
	if err != nil {
		fail("ListMessages", err)
	}
	var activeIDs []string
	for _, m := range active {
		activeIDs = append(activeIDs, m.ID)
	}
	if !slices.Equal(activeIDs, []string{"m1", "m2"}) {
		t.Errorf("active messages = %v, want [m1 m2]", activeIDs)
	}
	all, err := tenant.ListMessages(ctx, client.ListMessagesOptions{IncludeHistory: true})
	if err != nil {
		fail("ListMessages all", err)
	}
	for _, m := range all {
		if m.ID == "m3" && (m.ErrorTS == nil || m.Error != "account not found for tenant" || len(m.History) == 0) {
			t.Errorf("rejected m3 = %+v, want an error with history", m)
		}
	}

	del, err := tenant.DeleteMessages(ctx, "", []string{"m1", "ghost"})
	if err != nil || del.Removed != 1 || !slices.Equal(del.NotFound, []string{"ghost"}) {
		t.Errorf("DeleteMessages = %+v, %v", del, err)
	}
	if _, err := tenant.CleanupMessages(ctx, "", nil); err != nil {
		t.Errorf("CleanupMessages: %v", err)
	}
	_, err = tenant.Activate(ctx, "t1", "b1")
	wantAPIError("Activate one batch of a full suspension", err, 400, "cannot activate single batch")
	if _, err := tenant.DeleteMessages(ctx, "", []string{"m2"}); err != nil {
		t.Errorf("DeleteMessages m2: %v", err)
	}
	act, err := tenant.Activate(ctx, "t1", "")
	if err != nil || len(act.SuspendedBatches) != 0 {
		t.Errorf("Activate = %+v, %v", act, err)
	}
	if err := tenant.RunNow(ctx, ""); err != nil {
		t.Errorf("RunNow: %v", err)
	}

	if err := tenant.DeleteAccount(ctx, "", "a1"); err != nil {
		t.Errorf("DeleteAccount: %v", err)
	}
	err = tenant.DeleteAccount(ctx, "", "a1")
	wantAPIError("DeleteAccount twice", err, 400, "account not found")

	name := "Renamed"
	if err := admin.UpdateTenant(ctx, "t1", client.TenantUpdate{Name: &name}); err != nil {
		t.Errorf("UpdateTenant: %v", err)
	}
	info, err := tenant.GetTenant(ctx, "t1")
	if err != nil || info.Name != "Renamed" || !info.Active {
		t.Errorf("GetTenant = %+v, %v", info, err)
	}
	_, err = admin.GetTenant(ctx, "nobody")
	wantAPIError("GetTenant unknown", err, 404, "Tenant 'nobody' not found")

	secret, err := admin.CreateSigningSecret(ctx, "t1")
	if err != nil || !strings.HasPrefix(secret, "whsec_") {
		t.Errorf("CreateSigningSecret = %q, %v", secret, err)
	}
	if info, err := admin.GetTenant(ctx, "t1"); err != nil || !info.SigningSecretSet {
		t.Errorf("GetTenant after signing secret = %+v, %v", info, err)
	}
	if err := admin.DeleteSigningSecret(ctx, "t1"); err != nil {
		t.Errorf("DeleteSigningSecret: %v", err)
	}

	newKey, err := admin.CreateAPIKey(ctx, "t1", nil)
	if err != nil || newKey == "" || newKey == key {
		t.Errorf("CreateAPIKey = %q, %v", newKey, err)
	}
	_, err = tenant.GetTenant(ctx, "t1")
	wantAPIError("old key after CreateAPIKey", err, 401, "Invalid or missing API token")
	if err := admin.RevokeAPIKey(ctx, "t1"); err != nil {
		t.Errorf("RevokeAPIKey: %v", err)
	}
	_, err = client.New(baseURL, newKey).GetTenant(ctx, "t1")
	wantAPIError("revoked key", err, 401, "Invalid or missing API token")

	ss, err := admin.SyncStatus(ctx)
	if err != nil || !slices.ContainsFunc(ss.Tenants, func(s client.TenantSyncStatus) bool { return s.ID == "t1" }) {
		t.Errorf("SyncStatus = %+v, %v", ss, err)
	}
	inst, err := admin.Instance(ctx)
	if err != nil || inst.ID != 1 {
		t.Errorf("Instance = %+v, %v", inst, err)
	}
	poll := 120
	if err := admin.UpdateInstance(ctx, client.InstanceUpdate{BouncePollInterval: &poll}); err != nil {
		t.Errorf("UpdateInstance: %v", err)
	}
	if inst, err := admin.Instance(ctx); err != nil || inst.BouncePollInterval != 120 {
		t.Errorf("Instance after update = %+v, %v", inst, err)
	}
	cl, err := admin.CommandLog(ctx, client.CommandLogQuery{TenantID: "t1"})
	if err != nil || cl.Total == 0 || len(cl.Commands) != cl.Total {
		t.Errorf("CommandLog = %+v, %v", cl, err)
	}
	stats, err := admin.Stats(ctx)
	if err != nil || !slices.ContainsFunc(stats, func(s client.TenantStats) bool { return s.TenantID == "t1" }) {
		t.Errorf("Stats = %+v, %v", stats, err)
	}

	if err := admin.DeleteTenant(ctx, "t1"); err != nil {
		t.Errorf("DeleteTenant: %v", err)
	}
	_, err = admin.GetTenant(ctx, "t1")
	wantAPIError("GetTenant after delete", err, 404, "Tenant 't1' not found")
}

func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func mustPort(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// startRealProxy builds and starts `mail-proxy serve` and returns its URL
// and a function returning its log so far. It is stopped at cleanup.
func startRealProxy(t *testing.T, adminToken string) (string, func() string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mail-proxy")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/mailproxy/mailproxy/cmd/mail-proxy").CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/mail-proxy: %v\n%s", err, out)
	}
	addr := closedAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "serve")
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(),
		"GMP_DB_PATH=" + filepath.Join(t.TempDir(), "mail_service.db"),
		"GMP_HOST=127.0.0.1", "GMP_PORT=" + port, "GMP_API_TOKEN=" + adminToken,
		// Secrets at rest encrypted with a key of this run, never the host's.
		"MAIL_PROXY_ENCRYPTION_KEY=" + testEncryptionKey(t),
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var log strings.Builder
	logs := func() string {
		mu.Lock()
		defer mu.Unlock()
		return log.String()
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			mu.Lock()
			log.WriteString(sc.Text() + "\n")
			mu.Unlock()
		}
	}()
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			t.Errorf("mail-proxy ignored SIGINT; killing it")
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	url := "http://" + addr
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("mail-proxy exited during start-up:\n%s", logs())
		case <-deadline:
			t.Fatalf("mail-proxy did not answer /health within 60 s:\n%s", logs())
		case <-tick.C:
		}
		resp, err := http.Get(url + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url, logs
			}
		}
	}
}
