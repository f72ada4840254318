package api_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/mailproxy/mailproxy/internal/dkim"
)

func TestAccountDKIM(t *testing.T) {
	e := setup(t)
	key := e.tenant("acme")
	_, pemText, err := dkim.GenerateKey("ed25519", 0)
	if err != nil {
		t.Fatal(err)
	}
	base := func() map[string]any {
		return map[string]any{"id": "smtp", "host": "mail.example.com", "port": 587,
			"dkim_domain": "example.com", "dkim_selector": "s2026", "dkim_private_key": pemText}
	}
	listed := func() map[string]any {
		r := e.must(200, "GET", "/accounts", key, nil)
		if strings.Contains(string(r.Body), "PRIVATE KEY") || strings.Contains(string(r.Body), "private_key") {
			t.Fatalf("the key in the listing: %s", r.Body)
		}
		var b struct {
			Accounts []map[string]any `json:"accounts"`
		}
		if err := json.Unmarshal(r.Body, &b); err != nil || len(b.Accounts) != 1 {
			t.Fatalf("accounts: %v %s", err, r.Body)
		}
		return b.Accounts[0]
	}
	e.must(200, "POST", "/account", key, base())
	a := listed()
	if a["dkim"] != true || a["dkim_domain"] != "example.com" || a["dkim_selector"] != "s2026" {
		t.Errorf("listing %v", a)
	}
	stored, err := e.st.GetAccount(t.Context(), "acme", "smtp")
	if err != nil || stored.DKIMPrivateKey != strings.TrimSpace(pemText) {
		t.Errorf("stored key %q, %v", stored.DKIMPrivateKey, err)
	}

	// A merge naming one field keeps the others.
	e.must(200, "POST", "/account", key, map[string]any{"id": "smtp", "dkim_selector": "s2027"})
	if a := listed(); a["dkim_selector"] != "s2027" || a["dkim"] != true {
		t.Errorf("after merge %v", a)
	}

	bad := func(name string, mutate func(map[string]any), wantLoc, wantMsg string) {
		t.Helper()
		body := base()
		mutate(body)
		r := e.must(422, "POST", "/account", key, body)
		if strings.Contains(string(r.Body), "PRIVATE KEY") {
			t.Errorf("%s: the key echoed: %s", name, r.Body)
		}
		for _, is := range r.Issues(t) {
			loc, _ := json.Marshal(is["loc"])
			if string(loc) == `["body","`+wantLoc+`"]` && strings.Contains(is["msg"].(string), wantMsg) {
				return
			}
		}
		t.Errorf("%s: no issue at %s containing %q: %s", name, wantLoc, wantMsg, r.Body)
	}
	bad("garbage key", func(m map[string]any) {
		m["dkim_private_key"] = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"
	},
		"dkim_private_key", "invalid DKIM private key")
	bad("no key", func(m map[string]any) { delete(m, "dkim_private_key") }, "dkim_private_key", "go together")
	bad("no selector", func(m map[string]any) { delete(m, "dkim_selector") }, "dkim_selector", "go together")
	bad("bad domain", func(m map[string]any) { m["dkim_domain"] = "exa mple.com" }, "dkim_domain", "not a domain")

	// Clearing all three turns signing off.
	e.must(200, "PUT", "/account/smtp", key, map[string]any{"dkim_domain": nil, "dkim_selector": nil, "dkim_private_key": nil})
	if a := listed(); a["dkim"] != false || a["dkim_domain"] != nil {
		t.Errorf("after clearing %v", a)
	}
	// The command log never holds the key.
	r := e.must(200, "GET", "/command-log?tenant_id=acme", adminToken, nil)
	if strings.Contains(string(r.Body), "PRIVATE KEY") {
		t.Errorf("the key in the command log: %s", r.Body)
	}
}
