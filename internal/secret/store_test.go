package secret

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/store/sqlite"
)

// openSQLite opens (and migrates) a real SQLite store at path, closed at cleanup.
func openSQLite(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return st
}

func ptr[T any](v T) *T { return &v }

// seed writes one of every secret through st: instance token and bounce
// password, a tenant with client_auth, a live previous and a current signing
// secret, an API key, and an account with SMTP and IMAP passwords.
func seed(t *testing.T, ctx context.Context, st store.Store) {
	t.Helper()
	inst, err := st.GetInstance(ctx)
	if err != nil {
		t.Fatal(err)
	}
	inst.APIToken = "admin-token-plain"
	inst.BounceIMAPPassword = "bounce-pass-plain"
	if err := st.PutInstance(ctx, inst); err != nil {
		t.Fatal(err)
	}
	ca := &store.ClientAuth{Method: "basic", Token: "client-token-plain", User: "u", Password: "client-pass-plain"}
	if _, err := st.UpsertTenant(ctx, store.Tenant{ID: "t1", Name: ptr("T1"), Active: true, ClientAuth: ca}); err != nil {
		t.Fatal(err)
	}
	if ca.Token != "client-token-plain" || ca.Password != "client-pass-plain" {
		t.Fatalf("UpsertTenant changed the caller's ClientAuth: %+v", *ca)
	}
	if err := st.SetAPIKey(ctx, "t1", "keyhash", nil); err != nil {
		t.Fatal(err)
	}
	if err := st.SetSigningSecret(ctx, "t1", "whsec_old_plain", nil); err != nil {
		t.Fatal(err)
	}
	if err := st.SetSigningSecret(ctx, "t1", "whsec_new_plain", ptr(time.Now().Add(24*time.Hour))); err != nil {
		t.Fatal(err)
	}
	if err := st.UpsertAccount(ctx, store.Account{TenantID: "t1", ID: "a1", Host: "127.0.0.1", Port: 25, User: "smtp-user",
		Password: "smtp-pass-plain", TTL: 300, LimitBehavior: "defer", IMAPPassword: "imap-pass-plain",
		DKIMDomain: "example.com", DKIMSelector: "s1", DKIMPrivateKey: "dkim-key-plain"}); err != nil {
		t.Fatal(err)
	}
}

// storedSecrets lists every secret of raw as stored, by name.
func storedSecrets(t *testing.T, ctx context.Context, raw store.Store) map[string]string {
	t.Helper()
	inst, err := raw.GetInstance(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ten, err := raw.GetTenant(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	acc, err := raw.GetAccount(ctx, "t1", "a1")
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"api_token":            inst.APIToken,
		"bounce_imap_password": inst.BounceIMAPPassword,
		"client_auth.token":    ten.ClientAuth.Token,
		"client_auth.password": ten.ClientAuth.Password,
		"signing_secret":       ten.SigningSecret,
		"prev_signing_secret":  ten.PrevSigningSecret,
		"password":             acc.Password,
		"imap_password":        acc.IMAPPassword,
		"dkim_private_key":     acc.DKIMPrivateKey,
	}
}

var plainSecrets = map[string]string{
	"api_token":            "admin-token-plain",
	"bounce_imap_password": "bounce-pass-plain",
	"client_auth.token":    "client-token-plain",
	"client_auth.password": "client-pass-plain",
	"signing_secret":       "whsec_new_plain",
	"prev_signing_secret":  "whsec_old_plain",
	"password":             "smtp-pass-plain",
	"imap_password":        "imap-pass-plain",
	"dkim_private_key":     "dkim-key-plain",
}

func enqueueOne(t *testing.T, ctx context.Context, st store.Store, id string) {
	t.Helper()
	payload, _ := json.Marshal(store.Payload{ID: id, TenantID: "t1", AccountID: "a1", From: "a@example.com",
		To: []string{"b@example.com"}, Subject: "s", Body: "b", Priority: 2})
	res, err := st.EnqueueBatch(ctx, []store.NewMessage{{PK: uuid.NewString(), TenantID: "t1", ID: id, AccountID: "a1",
		Priority: 2, Payload: payload}}, time.Now())
	if err != nil || len(res) != 1 || res[0].Status != store.Queued {
		t.Fatalf("enqueue: %+v, %v", res, err)
	}
}

func claimAll(t *testing.T, ctx context.Context, st store.Store) []store.Claim {
	t.Helper()
	claims, err := st.Claim(ctx, store.ClaimRequest{Owner: "test", Now: time.Now(), Lease: time.Minute, Limit: 10, PerAccount: 10})
	if err != nil {
		t.Fatal(err)
	}
	return claims
}

func TestWrapEncryptsAtRestAndReadsPlaintext(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "mail.db")
	c := newTestCipher(t, 5)
	wrapped := Wrap(openSQLite(t, path), c)
	seed(t, ctx, wrapped)

	// The same file through a second, unwrapped store: every secret is ENC:
	// and opens to the value written.
	raw := openSQLite(t, path)
	for name, v := range storedSecrets(t, ctx, raw) {
		if !IsEncrypted(v) {
			t.Errorf("%s stored as %q, want an ENC: value", name, v)
			continue
		}
		if got, err := c.Decrypt(v); err != nil || got != plainSecrets[name] {
			t.Errorf("%s decrypts to %q, %v; want %q", name, got, err, plainSecrets[name])
		}
	}

	// Every read through the wrapper is plaintext.
	if got := storedSecrets(t, ctx, wrapped); !equalMaps(got, plainSecrets) {
		t.Errorf("wrapper reads %v\nwant %v", got, plainSecrets)
	}
	accounts, err := wrapped.ListAccounts(ctx, "")
	if err != nil || len(accounts) != 1 || accounts[0].Password != "smtp-pass-plain" || accounts[0].IMAPPassword != "imap-pass-plain" || accounts[0].CredentialsError != "" {
		t.Errorf("ListAccounts = %+v, %v", accounts, err)
	}
	tenants, err := wrapped.ListTenants(ctx, false)
	if err != nil || len(tenants) != 1 || tenants[0].ClientAuth.Token != "client-token-plain" || tenants[0].SigningSecret != "whsec_new_plain" {
		t.Errorf("ListTenants = %+v, %v", tenants, err)
	}
	byKey, err := wrapped.TenantByAPIKey(ctx, "keyhash", time.Now())
	if err != nil || byKey.ClientAuth.Password != "client-pass-plain" || byKey.PrevSigningSecret != "whsec_old_plain" {
		t.Errorf("TenantByAPIKey = %+v, %v", byKey, err)
	}
	enqueueOne(t, ctx, wrapped, "m1")
	enqueueOne(t, ctx, wrapped, "m2")
	claims := claimAll(t, ctx, wrapped)
	if len(claims) != 2 {
		t.Fatalf("claimed %d, want 2", len(claims))
	}
	for _, cl := range claims {
		if cl.Account == nil || cl.Account.Password != "smtp-pass-plain" || cl.Account.CredentialsError != "" {
			t.Errorf("claimed account %+v", cl.Account)
		}
	}

	// Plaintext rows written before a key existed still read as they are.
	if err := raw.UpsertAccount(ctx, store.Account{TenantID: "t1", ID: "legacy", Host: "h", Port: 25, Password: "legacy-plain", TTL: 300, LimitBehavior: "defer"}); err != nil {
		t.Fatal(err)
	}
	legacy, err := wrapped.GetAccount(ctx, "t1", "legacy")
	if err != nil || legacy.Password != "legacy-plain" || legacy.CredentialsError != "" {
		t.Errorf("legacy account = %+v, %v", legacy, err)
	}

	// Removing the signing secret still removes it.
	if err := wrapped.SetSigningSecret(ctx, "t1", "", nil); err != nil {
		t.Fatal(err)
	}
	if ten, err := raw.GetTenant(ctx, "t1"); err != nil || ten.SigningSecret != "" || ten.PrevSigningSecret != "" {
		t.Errorf("after removal: %q %q, %v", ten.SigningSecret, ten.PrevSigningSecret, err)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestWrongKeyNeverYieldsGarbage: through a wrapper with another key, an
// account comes back without passwords and with CredentialsError; every other
// secret is an ErrDecrypt error.
func TestWrongKeyNeverYieldsGarbage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "mail.db")
	seed(t, ctx, Wrap(openSQLite(t, path), newTestCipher(t, 5)))
	enqueueOne(t, ctx, openSQLite(t, path), "m1")
	wrong := Wrap(openSQLite(t, path), newTestCipher(t, 6))

	checkAccount := func(where string, a *store.Account) {
		t.Helper()
		if a == nil {
			t.Fatalf("%s: no account", where)
		}
		if a.Password != "" || a.IMAPPassword != "" {
			t.Errorf("%s: password %q, imap %q; want both empty", where, a.Password, a.IMAPPassword)
		}
		if !strings.Contains(a.CredentialsError, "password") {
			t.Errorf("%s: CredentialsError = %q", where, a.CredentialsError)
		}
		if a.Host != "127.0.0.1" || a.User != "smtp-user" {
			t.Errorf("%s: the rest of the account is lost: %+v", where, a)
		}
	}
	a, err := wrong.GetAccount(ctx, "t1", "a1")
	if err != nil {
		t.Fatal(err)
	}
	checkAccount("GetAccount", &a)
	list, err := wrong.ListAccounts(ctx, "t1")
	if err != nil || len(list) != 1 {
		t.Fatalf("ListAccounts = %d, %v", len(list), err)
	}
	checkAccount("ListAccounts", &list[0])
	claims := claimAll(t, ctx, wrong)
	if len(claims) != 1 {
		t.Fatalf("claimed %d, want 1", len(claims))
	}
	checkAccount("Claim", claims[0].Account)

	for name, call := range map[string]func() error{
		"GetInstance":    func() error { _, err := wrong.GetInstance(ctx); return err },
		"GetTenant":      func() error { _, err := wrong.GetTenant(ctx, "t1"); return err },
		"ListTenants":    func() error { _, err := wrong.ListTenants(ctx, false); return err },
		"TenantByAPIKey": func() error { _, err := wrong.TenantByAPIKey(ctx, "keyhash", time.Now()); return err },
	} {
		err := call()
		if !errors.Is(err, ErrDecrypt) {
			t.Errorf("%s: %v, want ErrDecrypt", name, err)
		} else if strings.Contains(err.Error(), "plain") || strings.Contains(err.Error(), Prefix) {
			t.Errorf("%s: error shows a stored value: %v", name, err)
		}
	}

	// Only the password that does not decrypt makes the account unusable:
	// rewriting it with the new key repairs it.
	a.Password, a.IMAPPassword = "new-pass", ""
	if err := wrong.UpsertAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	if got, err := wrong.GetAccount(ctx, "t1", "a1"); err != nil || got.Password != "new-pass" || got.CredentialsError != "" {
		t.Errorf("after rewrite: %+v, %v", got, err)
	}
}

// TestWrapWritesThroughToTheDriver: what the wrapper writes reaches the
// driver sealed. The driver's other capabilities (store.Waker) and its raw
// view stay with whoever opened it (proxy's TestOpenStoreViews).
func TestWrapWritesThroughToTheDriver(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openSQLite(t, filepath.Join(t.TempDir(), "mail.db"))
	wrapped := Wrap(db, newTestCipher(t, 1))
	if wrapped.Store != store.Store(db) {
		t.Error("the wrapper does not hold the driver")
	}
	if _, err := wrapped.UpsertTenant(ctx, store.Tenant{ID: "default", Active: true}); err != nil {
		t.Fatal(err)
	}
	if err := wrapped.UpsertAccount(ctx, store.Account{TenantID: "default", ID: "a", Host: "h", Port: 25, Password: "p", TTL: 300, LimitBehavior: "defer"}); err != nil {
		t.Fatal(err)
	}
	if a, err := db.GetAccount(ctx, "default", "a"); err != nil || !IsEncrypted(a.Password) {
		t.Errorf("through the wrapper the password is stored as %q, %v", a.Password, err)
	}
}
