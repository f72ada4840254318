package attach

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/mailproxy/mailproxy/internal/store"
)

func TestFilesystem(t *testing.T) {
	t.Parallel()
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret.txt")
	if err := os.WriteFile(secret, []byte("outside the root"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	mustWrite := func(rel, content string) {
		t.Helper()
		p := filepath.Join(base, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mustWrite("invoices/2024/a.pdf", "invoice A")
	mustWrite("notes.txt", "notes")
	mustSymlink := func(target, rel string) {
		t.Helper()
		if err := os.Symlink(target, filepath.Join(base, rel)); err != nil {
			t.Fatal(err)
		}
	}
	mustSymlink(secret, "abs-link.txt")                                                    // absolute target outside
	mustSymlink(filepath.Join("..", filepath.Base(outside), "secret.txt"), "rel-link.txt") // relative target outside
	mustSymlink("invoices/2024/a.pdf", "inside-link.pdf")                                  // stays inside
	mustSymlink(filepath.Join(outside, "missing"), "dangling-out")                         // outside, does not exist
	if err := syscall.Mkfifo(filepath.Join(base, "pipe"), 0o600); err != nil {
		t.Fatal(err)
	}

	f := newTestFetcher(t, func(o *Options) { o.BaseDir = base; o.MemoryMaxBytes = 0 })
	tenant := tenantWithBase("t1", "")
	ok := []struct{ path, mode, want string }{
		{"invoices/2024/a.pdf", "filesystem", "invoice A"},
		{"invoices/../notes.txt", "filesystem", "notes"},
		{filepath.Join(base, "notes.txt"), "", "notes"}, // absolute inside, auto-detected
		{"inside-link.pdf", "filesystem", "invoice A"},
	}
	for _, tc := range ok {
		t.Run("ok "+tc.path, func(t *testing.T) {
			t.Parallel()
			c := fetchOneOK(t, f, tenant, store.Attachment{Filename: "x", StoragePath: tc.path, FetchMode: tc.mode})
			wantData(t, c, []byte(tc.want))
		})
	}
	refused := []struct{ path, reason string }{
		{"../../etc/passwd", "Path traversal detected"},
		{"invoices/../../" + filepath.Base(outside) + "/secret.txt", "Path traversal detected"},
		{"/etc/passwd", "Path traversal detected"},
		{secret, "Path traversal detected"},
		{"abs-link.txt", "Path traversal detected"},
		{"rel-link.txt", "Path traversal detected"},
		{"dangling-out", "Path traversal detected"},
		{"missing.pdf", "File not found: missing.pdf"},
		{"notes.txt/inner", "File not found: notes.txt/inner"},
		{"invoices", "Not a regular file: invoices"},
		{"pipe", "Not a regular file: pipe"},
		{"bad\x00name", "Path traversal detected"},
	}
	for _, tc := range refused {
		t.Run("refused "+tc.path, func(t *testing.T) {
			t.Parallel()
			_, err := f.FetchAll(context.Background(), tenant, []store.Attachment{{Filename: "x.txt", StoragePath: tc.path, FetchMode: "filesystem"}})
			wantError(t, err, tc.reason, false)
		})
	}
}

func TestFilesystemDisabled(t *testing.T) {
	t.Parallel()
	f := newTestFetcher(t, nil)
	_, err := f.FetchAll(context.Background(), tenantWithBase("t1", ""), []store.Attachment{{Filename: "x.txt", StoragePath: "/srv/x.txt"}})
	wantError(t, err, "Filesystem attachments are disabled", false)
}

func TestFilesystemSizeLimit(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	if err := os.WriteFile(filepath.Join(base, "big.bin"), make([]byte, 3<<20/2), 0o600); err != nil {
		t.Fatal(err)
	}
	f := newTestFetcher(t, func(o *Options) { o.BaseDir = base; o.MaxAttachmentBytes = 1 << 20 })
	_, err := f.FetchAll(context.Background(), tenantWithBase("t1", ""), []store.Attachment{{Filename: "big.bin", StoragePath: "big.bin", FetchMode: "filesystem"}})
	wantError(t, err, "Attachment 'big.bin' (1.5 MB) exceeds limit (1 MB)", false)
}

func TestNewRejectsMissingBaseDir(t *testing.T) {
	t.Parallel()
	if _, err := New(Options{BaseDir: filepath.Join(t.TempDir(), "nope")}); err == nil {
		t.Fatal("New accepted a base directory that does not exist")
	}
	if _, err := New(Options{MaxConcurrent: -1}); err == nil {
		t.Fatal("New accepted a negative MaxConcurrent")
	}
}
