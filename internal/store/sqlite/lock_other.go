//go:build !(linux || darwin || freebsd || openbsd || netbsd || dragonfly)

package sqlite

import (
	"errors"
	"os"
)

func lockFile(string) (*os.File, error) {
	return nil, errors.New("sqlite: exclusive open is not supported on this platform")
}

func unlockFile(f *os.File) error { return f.Close() }
