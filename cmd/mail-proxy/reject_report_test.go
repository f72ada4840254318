package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestRejectedMessageReportedPromptly: a message rejected at enqueue
// (unknown account, invalid address) is stored as errored and its error
// report reaches the client promptly, not at the next heartbeat: the sync
// interval stays at its 300 s default (issue 12.2).
func TestRejectedMessageReportedPromptly(t *testing.T) {
	t.Parallel()
	var (
		mu     sync.Mutex
		errors = map[string]string{}
	)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			DeliveryReport []struct {
				ID    string  `json:"id"`
				Error *string `json:"error"`
			} `json:"delivery_report"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		for _, it := range body.DeliveryReport {
			if it.Error != nil {
				errors[it.ID] = *it.Error
			}
		}
		mu.Unlock()
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(receiver.Close)
	p := startProxy(t, map[string]string{"GMP_DB_PATH": filepath.Join(t.TempDir(), "mail.db")})
	if code := p.call("POST", "/tenant", map[string]any{"id": "shop", "client_base_url": receiver.URL}, nil); code != 200 {
		t.Fatalf("POST /tenant: %d", code)
	}
	// Let the report loop pass over the new tenant once (its first sync is a
	// heartbeat); afterwards only a wake-up, or 300 s, brings another POST.
	if code := p.call("POST", "/commands/run-now?tenant_id=shop", nil, nil); code != 200 {
		t.Fatalf("run-now: %d", code)
	}
	waitFor(t, 30*time.Second, "the first sync", func() bool {
		var st struct {
			Tenants []struct {
				ID         string `json:"id"`
				LastSyncTS *int64 `json:"last_sync_ts"`
			} `json:"tenants"`
		}
		p.call("GET", "/tenants/sync-status", nil, &st)
		for _, tn := range st.Tenants {
			if tn.ID == "shop" && tn.LastSyncTS != nil {
				return true
			}
		}
		return false
	})

	bad := msg("no-account", "missing", "a@example.com")
	bad["tenant_id"] = "shop"
	badAddr := msg("bad-address", "missing", "not an address")
	badAddr["tenant_id"] = "shop"
	if code := p.call("POST", "/commands/add-messages", map[string]any{"messages": []any{bad, badAddr}}, nil); code != 400 {
		t.Fatalf("add-messages: %d, want 400 (all rejected)", code)
	}
	waitFor(t, 10*time.Second, "both error reports", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return errors["no-account"] != "" && errors["bad-address"] != ""
	})
	mu.Lock()
	defer mu.Unlock()
	if errors["no-account"] != "account not found for tenant" || errors["bad-address"] != "invalid address: not an address" {
		t.Errorf("reports %v", errors)
	}
}
