package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mailproxy/mailproxy/internal/config"
	"github.com/mailproxy/mailproxy/internal/proxy"
	"github.com/mailproxy/mailproxy/internal/secret"
	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/store/postgres/pgtest"
	"github.com/mailproxy/mailproxy/internal/store/sqlite"
	"github.com/mailproxy/mailproxy/internal/testsmtp"
)

func newKey(t *testing.T) (b64 string, c *secret.Cipher, raw []byte) {
	t.Helper()
	r := run(t, nil, "gen-key")
	if r.code != 0 {
		t.Fatalf("gen-key: exit %d %q", r.code, r.stderr)
	}
	b64 = strings.TrimSpace(r.stdout)
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	if c, err = secret.NewCipher(raw); err != nil {
		t.Fatal(err)
	}
	return b64, c, raw
}

// skipIfDefaultKeyFile skips a "no key configured" case on a machine that has
// the default key file, which would configure a key.
func skipIfDefaultKeyFile(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(secret.DefaultKeyFile); err == nil {
		t.Skipf("%s exists on this machine", secret.DefaultKeyFile)
	}
}

// rawSecrets opens the SQLite file without encryption and returns the stored
// admin token, account a1's password and tenant t1's client_auth token and
// signing secret, as stored.
func rawSecrets(t *testing.T, db string) (token, password, clientToken, signing string) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, db, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	inst, err := st.GetInstance(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a, err := st.GetAccount(ctx, "t1", "a1")
	if err != nil {
		t.Fatal(err)
	}
	ten, err := st.GetTenant(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	return inst.APIToken, a.Password, ten.ClientAuth.Token, ten.SigningSecret
}

// rawAttachToken returns message m1's attachment bearer token as stored.
func rawAttachToken(t *testing.T, db string) string {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, db, sqlite.Options{})
	mustDo(t, err)
	defer st.Close()
	recs, err := st.ListMessages(ctx, store.MessageFilter{TenantID: "t1"}, time.Now())
	mustDo(t, err)
	if len(recs) != 1 {
		t.Fatalf("%d messages stored, want 1", len(recs))
	}
	p, err := store.DecodePayload(recs[0].Payload)
	mustDo(t, err)
	return p.Attachments[0].Auth.Token
}

func TestEncryptSecretsAndRotateKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "mail.db")

	// A store from before encryption: every secret in plaintext.
	st, err := sqlite.Open(ctx, db, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	inst, _ := st.GetInstance(ctx)
	inst.APIToken = "plain-admin-token"
	mustDo(t, st.PutInstance(ctx, inst))
	_, err = st.UpsertTenant(ctx, store.Tenant{ID: "t1", Active: true,
		ClientAuth: &store.ClientAuth{Method: "bearer", Token: "plain-client-token"}})
	mustDo(t, err)
	mustDo(t, st.SetSigningSecret(ctx, "t1", "whsec_plain", nil))
	mustDo(t, st.UpsertAccount(ctx, store.Account{TenantID: "t1", ID: "a1", Host: "127.0.0.1", Port: 25,
		Password: "plain-smtp-pass", TTL: 300, LimitBehavior: "defer"}))
	payload, err := json.Marshal(store.Payload{ID: "m1", TenantID: "t1", AccountID: "a1", From: "a@example.com",
		To: []string{"b@example.com"}, Subject: "s", Body: "b", Attachments: []store.Attachment{{Filename: "a.txt",
			StoragePath: "https://files.example/a", Auth: &store.ClientAuth{Method: "bearer", Token: "plain-attach-token"}}}})
	mustDo(t, err)
	_, err = st.EnqueueBatch(ctx, []store.NewMessage{{PK: uuid.NewString(), TenantID: "t1", ID: "m1", AccountID: "a1",
		Priority: store.PriorityMedium, Payload: payload}}, time.Now())
	mustDo(t, err)
	mustDo(t, st.Close())

	key1, c1, _ := newKey(t)
	key2, c2, raw2 := newKey(t)
	with := func(key string) map[string]string {
		return map[string]string{"GMP_DB_PATH": db, "MAIL_PROXY_ENCRYPTION_KEY": key}
	}

	t.Run("encrypt-secrets needs a key", func(t *testing.T) {
		skipIfDefaultKeyFile(t)
		mustFail(t, map[string]string{"GMP_DB_PATH": db}, ExitFailed, "no encryption key configured", "encrypt-secrets")
		if tok, _, _, _ := rawSecrets(t, db); tok != "plain-admin-token" {
			t.Fatalf("store changed: token %q", tok)
		}
	})

	// encrypt-secrets: 5 plaintext values (token, client token, signing
	// secret, password, attachment token) in 4 records (account, tenant,
	// instance, message).
	out := mustRun(t, with(key1), "encrypt-secrets")
	if want := "encrypted 5 plaintext secrets (0 already encrypted); 4 records written\n"; out != want {
		t.Errorf("encrypt-secrets printed %q, want %q", out, want)
	}
	tok, pass, ctok, sig := rawSecrets(t, db)
	atok := rawAttachToken(t, db)
	for name, tc := range map[string][2]string{
		"api token": {tok, "plain-admin-token"}, "password": {pass, "plain-smtp-pass"},
		"client_auth.token": {ctok, "plain-client-token"}, "signing secret": {sig, "whsec_plain"},
		"attachment auth token": {atok, "plain-attach-token"},
	} {
		got, err := c1.Decrypt(tc[0])
		if !secret.IsEncrypted(tc[0]) || err != nil || got != tc[1] {
			t.Errorf("%s stored as %.16q, decrypts to %q, %v", name, tc[0], got, err)
		}
	}
	// A second run has nothing left to do.
	out = mustRun(t, map[string]string{"GMP_DB_PATH": db, "MAIL_PROXY_ENCRYPTION_KEY": key1}, "--json", "encrypt-secrets")
	if n := decode[secret.Counts](t, out); n != (secret.Counts{Unchanged: 5}) {
		t.Errorf("second encrypt-secrets: %+v", n)
	}

	// Local commands read through the key.
	if got := strings.TrimSpace(mustRun(t, with(key1), "token")); got != "plain-admin-token" {
		t.Errorf("token with the key shows %q", got)
	}
	t.Run("encrypted store without a key", func(t *testing.T) {
		skipIfDefaultKeyFile(t)
		mustFail(t, map[string]string{"GMP_DB_PATH": db}, ExitFailed,
			"stored secrets are encrypted but no encryption key is configured (MAIL_PROXY_ENCRYPTION_KEY)", "token")
	})
	mustFail(t, with(key2), ExitFailed, "encryption key does not decrypt stored secrets (wrong key?)", "token")
	mustFail(t, with("bm90IDMyIGJ5dGVz"), ExitFailed, "MAIL_PROXY_ENCRYPTION_KEY", "token")

	// rotate-key: a bad new key is a usage error and changes nothing.
	mustFail(t, with(key1), ExitUsage, "--new-key", "rotate-key", "--new-key", "c2hvcnQ=")
	if _, p, _, _ := rawSecrets(t, db); p != pass {
		t.Fatal("a rejected rotate-key changed the store")
	}
	out = mustRun(t, with(key1), "--json", "rotate-key", "--new-key", key2)
	if n := decode[secret.Counts](t, out); n != (secret.Counts{Reencrypted: 5, Records: 4}) {
		t.Errorf("rotate-key: %+v", n)
	}
	tok, pass, ctok, sig = rawSecrets(t, db)
	for _, v := range []string{tok, pass, ctok, sig, rawAttachToken(t, db)} {
		if _, err := c1.Decrypt(v); err == nil {
			t.Errorf("%.16q still opens with the old key", v)
		}
		if _, err := c2.Decrypt(v); err != nil {
			t.Errorf("%.16q does not open with the new key: %v", v, err)
		}
	}
	mustFail(t, with(key1), ExitFailed, "wrong key?", "token")

	// The new key from a key file of 32 raw bytes.
	keyFile := filepath.Join(t.TempDir(), "encryption_key")
	mustDo(t, os.WriteFile(keyFile, raw2, 0o600))
	fileEnv := map[string]string{"GMP_DB_PATH": db, "GMP_ENCRYPTION_KEY_FILE": keyFile}
	if got := strings.TrimSpace(mustRun(t, fileEnv, "token")); got != "plain-admin-token" {
		t.Errorf("token with the new key file shows %q", got)
	}
	out = mustRun(t, fileEnv, "rotate-key", "--new-key", key2) // repeated: nothing to do
	if !strings.HasPrefix(out, "re-encrypted 0 secrets with the new key, encrypted 0 plaintext secrets (5 already under the new key)") {
		t.Errorf("repeated rotate-key printed %q", out)
	}
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// secretsLogBuffer is a bytes.Buffer safe to read while proxy.Run writes it.
type secretsLogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *secretsLogBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *secretsLogBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServeWithEncryptionKey: serve with a key stores the generated admin
// token and an account's password encrypted, and still delivers through the
// account with its real password.
func TestServeWithEncryptionKey(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "mail.db")
	key, c, _ := newKey(t)
	smtp := testsmtp.Start(t, testsmtp.Options{Users: map[string]string{"smtp-user": "smtp-secret-pass"}, AuthRequired: true})

	env := map[string]string{"GMP_DB_PATH": db, "GMP_HOST": "127.0.0.1", "GMP_PORT": "0",
		"MAIL_PROXY_ENCRYPTION_KEY": key, "GMP_SEND_LOOP_INTERVAL": "0.05", "GMP_SHUTDOWN_TIMEOUT": "2"}
	cfg, _, err := config.Load(func(k string) string { return env[k] }, "")
	mustDo(t, err)
	mustDo(t, cfg.Validate())
	var stderr, logBuf secretsLogBuffer
	logs := slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("proxy.Run panicked: %v", p)
			}
		}()
		done <- proxy.Run(ctx, cfg, proxy.Options{Ready: func(a net.Addr) { ready <- a }, Stderr: &stderr, Logger: logs, Version: "test"})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("proxy.Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("proxy.Run did not stop within 30 s of cancel")
		}
		if t.Failed() {
			t.Log(logBuf.String())
		}
	})
	var addr net.Addr
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("proxy.Run ended before listening: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("proxy.Run did not listen within 60 s")
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	token := lines[len(lines)-1]
	if len(token) != 43 {
		t.Fatalf("no generated token on stderr: %q", stderr.String())
	}
	if strings.Contains(logBuf.String(), "stored in plaintext") {
		t.Error("plaintext warning although a key is configured")
	}

	admin := map[string]string{"GMP_URL": "http://" + addr.String(), "GMP_API_TOKEN": token, "GMP_TENANT": "default"}
	mustRun(t, admin, "accounts", "add", "a1", "--host", smtp.Host(), "--port", strconv.Itoa(smtp.Port()),
		"--user", "smtp-user", "--password", "smtp-secret-pass", "--no-use-tls")
	mustRun(t, admin, "send", "--account", "a1", "--from", "from@example.com", "--to", "to@example.com",
		"--subject", "encrypted", "--body", "hello")
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	if err := smtp.WaitForCount(wctx, 1); err != nil {
		t.Fatalf("message not delivered with the decrypted password: %v", err)
	}
	if got := smtp.Messages()[0].AuthUser; got != "smtp-user" {
		t.Errorf("delivered as %q", got)
	}

	// At rest: the token and the password are ENC: values under the key.
	rctx := context.Background()
	raw, err := sqlite.Open(rctx, db, sqlite.Options{})
	mustDo(t, err)
	defer raw.Close()
	inst, err := raw.GetInstance(rctx)
	mustDo(t, err)
	acct, err := raw.GetAccount(rctx, "default", "a1")
	mustDo(t, err)
	for name, tc := range map[string][2]string{"api token": {inst.APIToken, token}, "password": {acct.Password, "smtp-secret-pass"}} {
		got, err := c.Decrypt(tc[0])
		if !secret.IsEncrypted(tc[0]) || err != nil || got != tc[1] {
			t.Errorf("%s stored as %.16q, opens to %q, %v", name, tc[0], got, err)
		}
	}
	if strings.Contains(logBuf.String(), "smtp-secret-pass") || strings.Contains(logBuf.String(), token) {
		t.Error("a secret reached the service log")
	}
	// The local token command, beside the running serve, reads it through the key.
	if got := strings.TrimSpace(mustRun(t, map[string]string{"GMP_DB_PATH": db, "MAIL_PROXY_ENCRYPTION_KEY": key}, "token")); got != token {
		t.Errorf("token shows %q, want the generated %q", got, token)
	}
}

// TestSecretsOnPostgreSQL: the same commands on a PostgreSQL store, which
// opens with its store.Waker beside the encrypted view.
func TestSecretsOnPostgreSQL(t *testing.T) {
	t.Parallel()
	dsn := pgtest.Schema(t, pgtest.DSN(t))
	key1, _, _ := newKey(t)
	key2, c2, _ := newKey(t)
	env := func(key string) map[string]string {
		return map[string]string{"GMP_DATABASE_URL": dsn, "MAIL_PROXY_ENCRYPTION_KEY": key}
	}
	tok := strings.TrimSpace(mustRun(t, env(key1), "token", "--regenerate"))
	out := mustRun(t, env(key1), "rotate-key", "--new-key", key2)
	if !strings.HasPrefix(out, "re-encrypted 1 secrets with the new key") {
		t.Errorf("rotate-key printed %q", out)
	}
	mustFail(t, env(key1), ExitFailed, "wrong key?", "token")
	if got := strings.TrimSpace(mustRun(t, env(key2), "token")); got != tok {
		t.Errorf("token shows %q, want %q", got, tok)
	}

	ctx := context.Background()
	cfg, _, err := config.Load(func(k string) string { return env(key2)[k] }, "")
	mustDo(t, err)
	st, err := proxy.OpenStore(ctx, cfg, slog.New(slog.DiscardHandler), false)
	mustDo(t, err)
	defer closeStore(os.Stderr, st)
	if st.Waker == nil {
		t.Error("the opened PostgreSQL store has no store.Waker")
	}
	inst, err := st.Raw.GetInstance(ctx)
	mustDo(t, err)
	if got, err := c2.Decrypt(inst.APIToken); !secret.IsEncrypted(inst.APIToken) || err != nil || got != tok {
		t.Errorf("stored token %.16q opens to %q, %v", inst.APIToken, got, err)
	}
}
