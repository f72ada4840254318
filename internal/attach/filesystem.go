package attach

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// fileRoot is GMP_ATTACHMENT_BASE_DIR, absolute and with symlinks resolved,
// so absolute storage paths can be compared with either spelling.
type fileRoot struct {
	dir  string // absolute, cleaned
	real string // dir with symlinks resolved
}

func newFileRoot(baseDir string) (*fileRoot, error) {
	if baseDir == "" {
		return nil, nil
	}
	dir, err := filepath.Abs(baseDir)
	if err != nil {
		return nil, err
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, err
	}
	info, err := os.Stat(real)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return nil, errors.New("not a directory")
	}
	return &fileRoot{dir: dir, real: real}, nil
}

// relative turns a storage path into a path inside the root, or reports
// traversal: ".." that climbs out, or an absolute path elsewhere.
func (r *fileRoot) relative(storagePath string) (string, bool) {
	if strings.IndexByte(storagePath, 0) >= 0 {
		return "", false
	}
	p := filepath.Clean(storagePath)
	if filepath.IsAbs(p) {
		for _, base := range []string{r.dir, r.real} {
			if rel, err := filepath.Rel(base, p); err == nil && filepath.IsLocal(rel) {
				return rel, true
			}
		}
		return "", false
	}
	return p, filepath.IsLocal(p)
}

// fetchFile reads a regular file below the base directory. os.Root does the
// containment: it refuses ".." and symlinks that lead out of the root, also
// when the tree changes between our checks and the open.
func (f *Fetcher) fetchFile(ctx context.Context, storagePath, name string, limit int64) ([]byte, *Error) {
	if f.root == nil {
		return nil, permanent("Filesystem attachments are disabled", resultRejected)
	}
	rel, ok := f.root.relative(storagePath)
	if !ok {
		return nil, permanent("Path traversal detected", resultRejected)
	}
	root, err := os.OpenRoot(f.root.dir)
	if err != nil {
		return nil, temporary("Attachment base directory unavailable", resultRejected, err)
	}
	defer func() {
		if err := root.Close(); err != nil {
			f.log.Debug("closing attachment root", "err", err)
		}
	}()
	// Stat before opening: opening a FIFO for reading would block.
	info, err := root.Stat(rel)
	if err != nil {
		return nil, fileError(err, storagePath)
	}
	if !info.Mode().IsRegular() {
		return nil, permanent("Not a regular file: "+storagePath, resultRejected)
	}
	if info.Size() > limit {
		return nil, sizeError(name, info.Size(), limit)
	}
	file, err := root.Open(rel)
	if err != nil {
		return nil, fileError(err, storagePath)
	}
	defer func() {
		if err := file.Close(); err != nil {
			f.log.Debug("closing attachment file", "err", err)
		}
	}()
	if info, err = file.Stat(); err != nil || !info.Mode().IsRegular() {
		return nil, permanent("Not a regular file: "+storagePath, resultRejected)
	}
	data, ferr := readLimited(ctxReader{ctx: ctx, r: file}, info.Size(), name, limit)
	if ferr != nil && ferr.result == resultNetworkError {
		ferr = temporary("Cannot read file: "+storagePath, resultRejected, ferr.cause)
	}
	return data, ferr
}

// fileError classifies an os.Root failure. The root's "path escapes"
// error is the only one that is not a system errno.
func fileError(err error, storagePath string) *Error {
	var errno syscall.Errno
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return permanent("File not found: "+storagePath, resultRejected)
	case errors.Is(err, fs.ErrPermission):
		return permanent("Permission denied: "+storagePath, resultRejected)
	case !errors.As(err, &errno):
		return permanent("Path traversal detected", resultRejected)
	default:
		return permanent("Cannot read file: "+storagePath+": "+errno.Error(), resultRejected)
	}
}

// ctxReader stops a long read when the fetch is cancelled or times out.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
