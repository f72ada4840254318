package secret

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/mailproxy/mailproxy/internal/config"
)

// DefaultKeyFile is GMP_ENCRYPTION_KEY_FILE's default; unlike a path the
// operator chose, it may be missing (no key configured).
const DefaultKeyFile = "/run/secrets/encryption_key"

// KeySource is where the encryption key is configured.
type KeySource struct {
	Key  string // MAIL_PROXY_ENCRYPTION_KEY: standard base64 of 32 bytes
	File string // GMP_ENCRYPTION_KEY_FILE
}

// LoadKey finds the encryption key (tenancy-security.md §4):
// MAIL_PROXY_ENCRYPTION_KEY, standard base64 of exactly 32 bytes; else the
// file GMP_ENCRYPTION_KEY_FILE holding 32 raw bytes after trimming whitespace,
// or the base64 text of 32 bytes. configured is false when neither is set (an
// empty variable, an empty file path, or a missing default file). A key that
// is set but unusable is an error naming the variable; errors never contain
// key material. readFile nil means os.ReadFile.
func LoadKey(src KeySource, readFile func(string) ([]byte, error)) (key []byte, configured bool, err error) {
	if src.Key != "" {
		key, err := config.DecodeEncryptionKey(src.Key)
		if err != nil {
			return nil, false, fmt.Errorf("MAIL_PROXY_ENCRYPTION_KEY: %w", err)
		}
		return key, true, nil
	}
	path := src.File
	if path == "" {
		return nil, false, nil
	}
	if readFile == nil {
		readFile = os.ReadFile
	}
	data, err := readFile(path)
	if errors.Is(err, fs.ErrNotExist) && path == DefaultKeyFile {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("GMP_ENCRYPTION_KEY_FILE: read key file: %w", err)
	}
	key, err = decodeKeyFile(data)
	if err != nil {
		return nil, false, fmt.Errorf("GMP_ENCRYPTION_KEY_FILE %s: %w", path, err)
	}
	return key, true, nil
}

// decodeKeyFile accepts 32 raw bytes, or the base64 text of 32 bytes around
// optional whitespace (a trailing newline from echo or an editor). A file of
// exactly 32 bytes is raw as it is: random key bytes may start or end with
// what looks like whitespace, and trimming them would change the key.
func decodeKeyFile(data []byte) ([]byte, error) {
	if len(data) == KeySize {
		return bytes.Clone(data), nil
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == KeySize {
		return bytes.Clone(trimmed), nil
	}
	key := make([]byte, base64.StdEncoding.DecodedLen(len(trimmed)))
	n, err := base64.StdEncoding.Decode(key, trimmed)
	if err != nil || n != KeySize {
		return nil, fmt.Errorf("must hold %d raw bytes or the base64 text of %d bytes, got %d bytes", KeySize, KeySize, len(trimmed))
	}
	return key[:n], nil
}

// LoadCipher is LoadKey followed by NewCipher: nil when no key is configured.
func LoadCipher(src KeySource, readFile func(string) ([]byte, error)) (*Cipher, error) {
	key, configured, err := LoadKey(src, readFile)
	if err != nil || !configured {
		return nil, err
	}
	return NewCipher(key)
}
