//go:build unix

package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/mailproxy/mailproxy/internal/store"
)

// TestFilesAreOwnerOnly: a fresh store's directory is 0700 and the database,
// its -wal and -shm files and the lock file are 0600, whatever the umask
// would give (issue 11.8). A pre-existing file keeps its mode.
func TestFilesAreOwnerOnly(t *testing.T) {
	// Not parallel: it sets the process umask to the common 022.
	old := syscall.Umask(0o022)
	t.Cleanup(func() { syscall.Umask(old) })

	dir := filepath.Join(t.TempDir(), "data", "mail")
	path := filepath.Join(dir, "mail.db")
	st, err := Open(context.Background(), path, Options{Exclusive: true})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	name := "Acme"
	if _, err := st.UpsertTenant(context.Background(), store.Tenant{ID: "acme", Name: &name, Active: true}); err != nil {
		t.Fatalf("UpsertTenant: %v", err)
	}
	want := map[string]os.FileMode{dir: 0o700, path: 0o600, path + "-wal": 0o600, path + "-shm": 0o600, path + ".lock": 0o600}
	for p, mode := range want {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("stat %s: %v", p, err)
		}
		if got := fi.Mode().Perm(); got != mode {
			t.Errorf("%s: mode %o, want %o", filepath.Base(p), got, mode)
		}
	}

	existing := filepath.Join(t.TempDir(), "shared.db")
	if err := os.WriteFile(existing, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	st2, err := Open(context.Background(), existing, Options{})
	if err != nil {
		t.Fatalf("Open existing: %v", err)
	}
	t.Cleanup(func() { _ = st2.Close() })
	if fi, err := os.Stat(existing); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("existing file: mode %v (%v), want 640 kept", fi.Mode().Perm(), err)
	}
}
