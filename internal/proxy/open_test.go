package proxy

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/mailproxy/mailproxy/internal/config"
	"github.com/mailproxy/mailproxy/internal/secret"
	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/store/sqlite"
)

// TestOpenStoreViews: with a key, the service's view seals secrets and the
// raw view reads them as stored; SQLite has no Waker. (PostgreSQL's Waker:
// cli's TestSecretsOnPostgreSQL.)
func TestOpenStoreViews(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	cfg := config.Config{DBPath: filepath.Join(t.TempDir(), "mail.db"), EncryptionKey: base64.StdEncoding.EncodeToString(key)}
	st, err := OpenStore(ctx, cfg, slog.New(slog.DiscardHandler), false)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	}()
	if _, ok := st.Raw.(*sqlite.Store); !ok {
		t.Errorf("raw view is %T, want the SQLite driver", st.Raw)
	}
	if st.Waker != nil {
		t.Errorf("a SQLite store has a Waker %T", st.Waker)
	}
	if _, err := st.Store.UpsertTenant(ctx, store.Tenant{ID: "t1", Active: true}); err != nil {
		t.Fatal(err)
	}
	if err := st.Store.UpsertAccount(ctx, store.Account{TenantID: "t1", ID: "a", Host: "h", Port: 25, Password: "pw", TTL: 300, LimitBehavior: "defer"}); err != nil {
		t.Fatal(err)
	}
	if a, err := st.Raw.GetAccount(ctx, "t1", "a"); err != nil || !secret.IsEncrypted(a.Password) {
		t.Errorf("raw view reads the password as %q, %v; want it sealed", a.Password, err)
	}
	if a, err := st.Store.GetAccount(ctx, "t1", "a"); err != nil || a.Password != "pw" {
		t.Errorf("service view reads the password as %q, %v", a.Password, err)
	}
}
