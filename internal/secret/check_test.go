package secret

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	key5 := newTestCipher(t, 5)

	empty := openSQLite(t, filepath.Join(dir, "empty.db"))
	plaintext := openSQLite(t, filepath.Join(dir, "plain.db"))
	seed(t, ctx, plaintext)
	encrypted := openSQLite(t, filepath.Join(dir, "enc.db"))
	seed(t, ctx, Wrap(encrypted, key5))
	// Half rotated: one value under key 6, the rest under key 5.
	mixed := openSQLite(t, filepath.Join(dir, "mixed.db"))
	seed(t, ctx, Wrap(mixed, key5))
	if err := Wrap(mixed, newTestCipher(t, 6)).SetSigningSecret(ctx, "t1", "whsec_other", nil); err != nil {
		t.Fatal(err)
	}
	// Only the instance row is encrypted: Check must look there too.
	instanceOnly := openSQLite(t, filepath.Join(dir, "inst.db"))
	inst, _ := instanceOnly.GetInstance(ctx)
	inst.APIToken = "tok"
	if err := Wrap(instanceOnly, key5).PutInstance(ctx, inst); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name       string
		st         store.Store
		c          *Cipher
		configured bool
		want       error // nil = starts
		wantText   string
	}{
		{name: "empty store, no key", st: empty},
		{name: "plaintext, no key", st: plaintext},
		{name: "plaintext, key (upgrade path)", st: plaintext, c: key5, configured: true},
		{name: "encrypted, right key", st: encrypted, c: key5, configured: true},
		{name: "half rotated", st: mixed, c: key5, configured: true},
		{name: "encrypted, no key", st: encrypted, want: ErrNoKey,
			wantText: "stored secrets are encrypted but no encryption key is configured (MAIL_PROXY_ENCRYPTION_KEY)"},
		{name: "encrypted instance row, no key", st: instanceOnly, want: ErrNoKey},
		{name: "encrypted, wrong key", st: encrypted, c: newTestCipher(t, 9), configured: true, want: ErrWrongKey,
			wantText: "encryption key does not decrypt stored secrets (wrong key?)"},
		{name: "encrypted instance row, wrong key", st: instanceOnly, c: newTestCipher(t, 9), configured: true, want: ErrWrongKey},
		{name: "configured key that did not load", st: empty, configured: true, wantText: "could not be loaded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := Check(ctx, tc.st, tc.c, tc.configured)
			if tc.want == nil && tc.wantText == "" {
				if err != nil {
					t.Fatalf("Check = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Check passed")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Check = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Fatalf("Check = %q, want it to say %q", err, tc.wantText)
			}
		})
	}
}

// TestSetup is what proxy.OpenStore does with an opened driver.
func TestSetup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	key := base64.StdEncoding.EncodeToString(testKey(5))

	t.Run("no key: unwrapped, warned", func(t *testing.T) {
		t.Parallel()
		db := openSQLite(t, filepath.Join(dir, "a.db"))
		var logs bytes.Buffer
		st, err := Setup(ctx, KeySource{}, db, slog.New(slog.NewTextHandler(&logs, nil)), nil)
		if err != nil {
			t.Fatal(err)
		}
		if st != store.Store(db) {
			t.Error("Setup wrapped the store without a key")
		}
		if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "secrets are stored in plaintext") {
			t.Errorf("no plaintext warning: %q", logs.String())
		}
	})
	t.Run("key: wrapped, plaintext left over warned", func(t *testing.T) {
		t.Parallel()
		db := openSQLite(t, filepath.Join(dir, "b.db"))
		seed(t, ctx, db)
		var logs bytes.Buffer
		st, err := Setup(ctx, KeySource{Key: key}, db, slog.New(slog.NewTextHandler(&logs, nil)), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(logs.String(), "encrypt-secrets") || !strings.Contains(logs.String(), "count=9") {
			t.Errorf("no leftover-plaintext warning: %q", logs.String())
		}
		if strings.Contains(logs.String(), "-plain") {
			t.Errorf("a secret reached the log: %q", logs.String())
		}
		if err := st.UpsertAccount(ctx, store.Account{TenantID: "t1", ID: "a2", Host: "h", Port: 25, Password: "p2", TTL: 300, LimitBehavior: "defer"}); err != nil {
			t.Fatal(err)
		}
		if a, _ := db.GetAccount(ctx, "t1", "a2"); !IsEncrypted(a.Password) {
			t.Errorf("Setup's store wrote %q", a.Password)
		}
	})
	t.Run("invalid key variable", func(t *testing.T) {
		t.Parallel()
		db := openSQLite(t, filepath.Join(dir, "c.db"))
		_, err := Setup(ctx, KeySource{Key: "c2hvcnQ="}, db, nil, nil)
		if err == nil || !strings.Contains(err.Error(), "MAIL_PROXY_ENCRYPTION_KEY") {
			t.Fatalf("Setup = %v, want an error naming MAIL_PROXY_ENCRYPTION_KEY", err)
		}
	})
	t.Run("encrypted store, no key", func(t *testing.T) {
		t.Parallel()
		db := openSQLite(t, filepath.Join(dir, "d.db"))
		seed(t, ctx, Wrap(db, newTestCipher(t, 5)))
		if _, err := Setup(ctx, KeySource{}, db, nil, nil); !errors.Is(err, ErrNoKey) {
			t.Fatalf("Setup = %v, want ErrNoKey", err)
		}
	})
}

func TestRewrite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openSQLite(t, filepath.Join(t.TempDir(), "mail.db"))
	seed(t, ctx, db) // all plaintext
	before, err := db.GetTenant(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	k1, k2 := newTestCipher(t, 1), newTestCipher(t, 2)

	// encrypt-secrets
	n, err := Rewrite(ctx, db, k1, k1)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Counts{Encrypted: 9, Records: 3}); n != want {
		t.Errorf("first encryption: %+v, want %+v", n, want)
	}
	assertSealed(t, ctx, db, k1)
	n, err = Rewrite(ctx, db, k1, k1)
	if err != nil || n != (Counts{Unchanged: 9}) {
		t.Errorf("second encryption: %+v, %v; want 9 unchanged, nothing written", n, err)
	}

	// rotate-key, interrupted after the accounts: redo it from the start.
	if err := db.UpsertAccount(ctx, reseal(t, ctx, db, k1, k2)); err != nil {
		t.Fatal(err)
	}
	n, err = Rewrite(ctx, db, k1, k2)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Counts{Reencrypted: 6, Unchanged: 3, Records: 2}); n != want {
		t.Errorf("rotation: %+v, want %+v", n, want)
	}
	assertSealed(t, ctx, db, k2)
	after, err := db.GetTenant(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	if !timesEqual(before.PrevSigningSecretUntil, after.PrevSigningSecretUntil) {
		t.Errorf("previous signing secret's end moved: %v -> %v", before.PrevSigningSecretUntil, after.PrevSigningSecretUntil)
	}

	// A value neither key opens is counted, left alone, and makes it fail.
	if err := Wrap(db, newTestCipher(t, 3)).UpsertAccount(ctx, store.Account{TenantID: "t1", ID: "lost", Host: "h", Port: 25, Password: "x", TTL: 300, LimitBehavior: "defer"}); err != nil {
		t.Fatal(err)
	}
	lostBefore, _ := db.GetAccount(ctx, "t1", "lost")
	n, err = Rewrite(ctx, db, k1, k2)
	if err == nil || !strings.Contains(err.Error(), "1 stored secrets could not be decrypted") {
		t.Errorf("Rewrite with an undecryptable value = %v", err)
	}
	if n.Undecryptable != 1 || n.Unchanged != 9 {
		t.Errorf("counts %+v", n)
	}
	if lostAfter, _ := db.GetAccount(ctx, "t1", "lost"); lostAfter.Password != lostBefore.Password {
		t.Error("an undecryptable value was rewritten")
	}
}

// reseal returns account a1 with its passwords moved from key from to key to.
func reseal(t *testing.T, ctx context.Context, db store.Store, from, to *Cipher) store.Account {
	t.Helper()
	a, err := db.GetAccount(ctx, "t1", "a1")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []*string{&a.Password, &a.IMAPPassword, &a.DKIMPrivateKey} {
		plain, err := from.Decrypt(*v)
		if err != nil {
			t.Fatal(err)
		}
		if *v, err = to.Encrypt(plain); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

// assertSealed checks every stored secret is ENC: and opens with c to the seeded value.
func assertSealed(t *testing.T, ctx context.Context, db store.Store, c *Cipher) {
	t.Helper()
	for name, v := range storedSecrets(t, ctx, db) {
		got, err := c.Decrypt(v)
		if !IsEncrypted(v) || err != nil || got != plainSecrets[name] {
			t.Errorf("%s: stored %.12q..., opens to %q, %v; want %q", name, v, got, err, plainSecrets[name])
		}
	}
}

func timesEqual(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}
