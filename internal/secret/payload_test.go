package secret

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/store/postgres"
	"github.com/mailproxy/mailproxy/internal/store/postgres/pgtest"
)

const (
	attachToken    = "attach-token-plain-7f3a"
	attachPassword = "attach-pass-plain-91c2"
)

// enqueueWithAuth stores one message whose attachments carry a bearer token
// and a basic password.
func enqueueWithAuth(t *testing.T, ctx context.Context, st store.Store, id string) []byte {
	t.Helper()
	payload, _ := json.Marshal(store.Payload{ID: id, TenantID: "t1", AccountID: "a1", From: "a@example.com",
		To: []string{"b@example.com"}, Subject: "s", Body: "b", Priority: 2, Attachments: []store.Attachment{
			{Filename: "a.txt", StoragePath: "https://files.example.com/a", FetchMode: "http_url",
				Auth: &store.ClientAuth{Method: "bearer", Token: attachToken}},
			{Filename: "b.txt", StoragePath: "doc-b", FetchMode: "endpoint",
				Auth: &store.ClientAuth{Method: "basic", User: "files-user", Password: attachPassword}},
		}})
	items := []store.NewMessage{{PK: uuid.NewString(), TenantID: "t1", ID: id, AccountID: "a1", Priority: 2, Payload: payload}}
	res, err := st.EnqueueBatch(ctx, items, time.Now())
	if err != nil || len(res) != 1 || res[0].Status != store.Queued {
		t.Fatalf("enqueue: %+v, %v", res, err)
	}
	if !bytes.Equal(items[0].Payload, payload) {
		t.Fatal("EnqueueBatch changed the caller's payload")
	}
	return payload
}

// checkClaimedAuth claims the one message and checks that the dispatcher
// sees the plaintext credentials.
func checkClaimedAuth(t *testing.T, ctx context.Context, st store.Store) {
	t.Helper()
	claims := claimAll(t, ctx, st)
	if len(claims) != 1 {
		t.Fatalf("claimed %d, want 1", len(claims))
	}
	p, err := store.DecodePayload(claims[0].Message.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if claims[0].CredentialsError != "" || p.Attachments[0].Auth.Token != attachToken ||
		p.Attachments[1].Auth.Password != attachPassword || p.Attachments[1].Auth.User != "files-user" {
		t.Fatalf("claimed payload auth %+v %+v (%q), want the plaintext credentials",
			*p.Attachments[0].Auth, *p.Attachments[1].Auth, claims[0].CredentialsError)
	}
}

// Attachment credentials are sealed in the SQLite file: no byte of the
// database or its WAL holds them, while the claim reads them back.
func TestAttachmentAuthEncryptedInSQLiteFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "mail.db")
	wrapped := Wrap(openSQLite(t, path), newTestCipher(t, 7))
	seed(t, ctx, wrapped)
	enqueueWithAuth(t, ctx, wrapped, "m1")
	checkClaimedAuth(t, ctx, wrapped)

	files, _ := filepath.Glob(path + "*")
	if len(files) == 0 {
		t.Fatal("no database files")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{attachToken, attachPassword} {
			if bytes.Contains(data, []byte(s)) {
				t.Errorf("%s holds the plaintext %q", filepath.Base(f), s)
			}
		}
	}
}

// The same on PostgreSQL: the messages table, every column as text.
func TestAttachmentAuthEncryptedInPostgresTable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	pg, err := postgres.Open(ctx, dsn, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Close() })
	wrapped := Wrap(pg, newTestCipher(t, 8))
	seed(t, ctx, wrapped)
	enqueueWithAuth(t, ctx, wrapped, "m1")
	checkClaimedAuth(t, ctx, wrapped)

	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var rows string
	if err := conn.QueryRow(ctx, `SELECT coalesce(string_agg(m::text, E'\n'), '') FROM messages m`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains([]byte(rows), []byte(`ENC:`)) {
		t.Fatalf("messages table holds no ENC: value: %s", rows)
	}
	for _, s := range []string{attachToken, attachPassword} {
		if bytes.Contains([]byte(rows), []byte(s)) {
			t.Errorf("messages table holds the plaintext %q", s)
		}
	}
}

// A credential sealed under another key is never used: the claim says so
// and carries no secret.
func TestAttachmentAuthWrongKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "mail.db")
	raw := openSQLite(t, path)
	seed(t, ctx, Wrap(raw, newTestCipher(t, 1)))
	enqueueWithAuth(t, ctx, Wrap(raw, newTestCipher(t, 1)), "m1")
	claims := claimAll(t, ctx, Wrap(raw, newTestCipher(t, 2)))
	if len(claims) != 1 || claims[0].CredentialsError == "" {
		t.Fatalf("claims %+v, want one with CredentialsError", claims)
	}
	p, err := store.DecodePayload(claims[0].Message.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if p.Attachments[0].Auth.Token != "" || p.Attachments[1].Auth.Password != "" {
		t.Fatalf("undecryptable credentials passed on: %+v %+v", *p.Attachments[0].Auth, *p.Attachments[1].Auth)
	}
}
