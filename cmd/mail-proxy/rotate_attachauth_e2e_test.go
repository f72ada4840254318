package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/internal/secret"
	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/store/sqlite"
	"github.com/mailproxy/mailproxy/internal/testsmtp"
)

// A message queued under key A with attachment credentials still fetches its
// attachments with the right Authorization after rotate-key to key B: the
// command re-seals the secrets inside stored payloads too.
func TestRotateKeyReSealsQueuedAttachmentAuth(t *testing.T) {
	t.Parallel()
	const (
		token    = "rotate-attach-bearer-7f3a"
		password = "rotate-attach-basic-91c2"
	)
	c := newAttachAuthCase(t, token, password)
	smtp := newSMTP(t, testsmtp.Options{})
	newKey := func() (string, *secret.Cipher) {
		raw := make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			t.Fatal(err)
		}
		c, err := secret.NewCipher(raw)
		if err != nil {
			t.Fatal(err)
		}
		return base64.StdEncoding.EncodeToString(raw), c
	}
	keyA, cipherA := newKey()
	keyB, cipherB := newKey()
	db := filepath.Join(t.TempDir(), "mail.db")
	env := func(key string) map[string]string {
		return map[string]string{"GMP_DB_PATH": db, "GMP_ATTACHMENT_ALLOW_PRIVATE": "true", "MAIL_PROXY_ENCRYPTION_KEY": key}
	}

	// Under key A: the tenant is suspended, so the message stays queued.
	p := startProxy(t, env(keyA))
	c.setUp(t, p, smtp)
	if code := p.call("POST", "/commands/suspend?tenant_id=acme", nil, nil); code != 200 {
		t.Fatalf("suspend: %d", code)
	}
	c.enqueue(t, p)
	p.stop()

	out, code := runBinary(t, env(keyA), "--json", "rotate-key", "--new-key", keyB)
	if code != 0 {
		t.Fatalf("rotate-key: exit %d\n%s", code, out)
	}
	var n secret.Counts
	if err := json.Unmarshal([]byte(out), &n); err != nil || n != (secret.Counts{Reencrypted: 2, Records: 1}) {
		t.Errorf("rotate-key answered %s (%v), want the two attachment secrets re-encrypted in one record", out, err)
	}

	// At rest: the secrets open with B only, and no byte holds the plaintext.
	ctx := context.Background()
	raw, err := sqlite.Open(ctx, db, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := raw.ListMessages(ctx, store.MessageFilter{TenantID: "acme"}, time.Now())
	raw.Close()
	if err != nil || len(recs) != 1 {
		t.Fatalf("ListMessages: %d records, %v", len(recs), err)
	}
	pl, err := store.DecodePayload(recs[0].Payload)
	if err != nil || len(pl.Attachments) != 2 {
		t.Fatalf("stored payload: %+v, %v", pl, err)
	}
	for i, sealed := range []string{pl.Attachments[0].Auth.Token, pl.Attachments[1].Auth.Password} {
		if _, err := cipherA.Decrypt(sealed); err == nil {
			t.Errorf("attachment %d's secret still opens with the old key", i)
		}
		if got, err := cipherB.Decrypt(sealed); err != nil || (got != token && got != password) {
			t.Errorf("attachment %d's secret opens with the new key to %q, %v", i, got, err)
		}
	}
	c.assertNoPlaintext(t, db)

	// Under key B the released message fetches both attachments and is sent.
	p = startProxy(t, env(keyB))
	if code := p.call("POST", "/commands/activate?tenant_id=acme", nil, nil); code != 200 {
		t.Fatalf("activate: %d", code)
	}
	c.assertDelivered(t, smtp)
}
