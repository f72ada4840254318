package auth_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/internal/auth"
	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/store/sqlite"
)

func TestToken(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		headers map[string]string
		want    string
	}{
		{"X-API-Token", map[string]string{"X-API-Token": " abc "}, "abc"},
		{"bearer", map[string]string{"Authorization": "Bearer xyz"}, "xyz"},
		{"bearer any case", map[string]string{"Authorization": "BEARER xyz"}, "xyz"},
		{"X-API-Token first", map[string]string{"X-API-Token": "abc", "Authorization": "Bearer xyz"}, "abc"},
		{"basic ignored", map[string]string{"Authorization": "Basic eHl6"}, ""},
		{"none", nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("GET", "/status?api_token=q", nil)
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			if got := auth.Token(r); got != tc.want {
				t.Errorf("Token = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestKeys(t *testing.T) {
	t.Parallel()
	key, hash := auth.NewAPIKey()
	if raw, err := base64.RawURLEncoding.DecodeString(key); err != nil || len(raw) != 32 || len(key) != 43 {
		t.Errorf("key %q", key)
	}
	if hash != auth.HashKey(key) || len(hash) != 64 {
		t.Errorf("hash %q", hash)
	}
	if k2, _ := auth.NewAPIKey(); k2 == key {
		t.Error("two equal keys")
	}
	sec := auth.NewSigningSecret()
	if raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(sec, "whsec_")); !strings.HasPrefix(sec, "whsec_") || err != nil || len(raw) != 32 {
		t.Errorf("secret %q", sec)
	}
}

func TestAuthenticate(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "t.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if _, err := st.UpsertTenant(ctx, store.Tenant{ID: "acme", Active: true}); err != nil {
		t.Fatal(err)
	}
	key, hash := auth.NewAPIKey()
	if err := st.SetAPIKey(ctx, "acme", hash, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.New(st, "", nil); err == nil {
		t.Error("empty admin token accepted")
	}
	a, err := auth.New(st, "admin-secret", nil)
	if err != nil {
		t.Fatal(err)
	}
	req := func(token string) (auth.Principal, error) {
		r := httptest.NewRequest("GET", "/", nil)
		if token != "" {
			r.Header.Set("X-API-Token", token)
		}
		return a.Authenticate(ctx, r)
	}
	if p, err := req("admin-secret"); err != nil || !p.Admin || p.Scope() != "admin" || p.DefaultTenant() != "default" {
		t.Errorf("admin: %+v %v", p, err)
	}
	p, err := req(key)
	if err != nil || p.Admin || p.TenantID != "acme" || p.Scope() != "tenant:acme" {
		t.Errorf("tenant key: %+v %v", p, err)
	}
	if p.CheckTenant("acme") != nil || !errors.Is(p.CheckTenant("other"), auth.ErrWrongTenant) {
		t.Error("CheckTenant")
	}
	if _, err := req(""); !errors.Is(err, auth.ErrNoToken) {
		t.Errorf("no token: %v", err)
	}
	if _, err := req("admin-secretX"); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("near miss: %v", err)
	}
	// Admin route with a tenant key.
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-API-Token", key)
	if _, err := a.Require(ctx, r, auth.Admin); !errors.Is(err, auth.ErrAdminRequired) {
		t.Errorf("admin route with key: %v", err)
	}
	// The admin token changes at once; an expired key is unknown.
	if err := a.SetAdminToken("rotated"); err != nil {
		t.Fatal(err)
	}
	if _, err := req("admin-secret"); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("old admin token: %v", err)
	}
	past := time.Now().Add(-time.Second)
	if err := st.SetAPIKey(ctx, "acme", hash, &past); err != nil {
		t.Fatal(err)
	}
	if _, err := req(key); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("expired key: %v", err)
	}
}
