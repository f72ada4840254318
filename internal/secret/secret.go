// Package secret encrypts mailproxy's stored secrets at rest
// (tenancy-security.md §4): account passwords, the instance's admin token and
// bounce IMAP password, tenants' client_auth token/password and signing
// secrets. It sits between the storage driver and everything above it, so
// neither the drivers nor the API, dispatcher and report loop know about it.
//
// How it works:
//  1. The key comes from MAIL_PROXY_ENCRYPTION_KEY (base64 of 32 bytes), else
//     from the GMP_ENCRYPTION_KEY_FILE file (32 raw bytes or their base64);
//     neither set means secrets are stored in plaintext, with a warning.
//  2. A value is sealed with AES-256-GCM under a fresh 12-byte random nonce
//     and stored as "ENC:" + base64(nonce ‖ ciphertext ‖ tag), the original's
//     format. A value without the prefix is read as plaintext (upgrade path).
//  3. At open, Check scans the stored secrets: ENC: values without a key, or a
//     key that decrypts none of them, stop the start with the cause named.
//  4. Wrap decorates the store: secrets are encrypted on every write and
//     decrypted on every read. An account whose password does not decrypt is
//     returned without it and with CredentialsError set; any other secret that
//     does not decrypt is an error wrapping ErrDecrypt. No garbage is used.
//  5. Rewrite (the encrypt-secrets and rotate-key commands) re-seals every
//     stored value in place, record by record, through the Store interface.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// Prefix marks an encrypted stored value.
const Prefix = "ENC:"

// KeySize is the AES-256 key length in bytes.
const KeySize = 32

const (
	nonceSize = 12
	tagSize   = 16
)

// ErrDecrypt: a stored ENC: value is malformed or was sealed under another key.
var ErrDecrypt = errors.New("cannot decrypt stored secret")

// Cipher seals and opens stored secrets with one AES-256-GCM key. It is safe
// for concurrent use. It prints as [redacted], so it cannot leak its key into
// a log line or an error.
type Cipher struct {
	aead cipher.AEAD
}

// NewCipher returns a Cipher for a 32-byte key.
func NewCipher(key []byte) (*Cipher, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("encryption key must be %d bytes, got %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("encryption key: %w", err)
	}
	aead, err := cipher.NewGCM(block) // 12-byte nonce, 16-byte tag
	if err != nil {
		return nil, fmt.Errorf("encryption key: %w", err)
	}
	return &Cipher{aead: aead}, nil
}

// IsEncrypted reports whether a stored value carries the ENC: prefix.
func IsEncrypted(s string) bool { return strings.HasPrefix(s, Prefix) }

// Encrypt seals plain as "ENC:" + base64(nonce ‖ ciphertext ‖ tag). The empty
// string stays empty: it means "no secret" throughout the store.
func (c *Cipher) Encrypt(plain string) (string, error) {
	if plain == "" {
		return "", nil
	}
	buf := make([]byte, nonceSize, nonceSize+len(plain)+tagSize)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("encrypt secret: nonce: %w", err)
	}
	sealed := c.aead.Seal(buf, buf[:nonceSize], []byte(plain), nil)
	return Prefix + base64.StdEncoding.EncodeToString(sealed), nil
}

// Decrypt opens an ENC: value; a value without the prefix is plaintext and is
// returned unchanged. Failures wrap ErrDecrypt and never contain the value.
func (c *Cipher) Decrypt(s string) (string, error) {
	if !IsEncrypted(s) {
		return s, nil
	}
	raw, err := base64.StdEncoding.DecodeString(s[len(Prefix):])
	if err != nil {
		return "", fmt.Errorf("%w: not valid base64", ErrDecrypt)
	}
	if len(raw) < nonceSize+tagSize {
		return "", fmt.Errorf("%w: %d bytes is shorter than nonce and tag", ErrDecrypt, len(raw))
	}
	plain, err := c.aead.Open(nil, raw[:nonceSize], raw[nonceSize:], nil)
	if err != nil {
		return "", fmt.Errorf("%w: authentication failed (wrong key or altered value)", ErrDecrypt)
	}
	return string(plain), nil
}

// String hides the key material from fmt.
func (c *Cipher) String() string { return "[redacted]" }

// GoString hides the key material from %#v.
func (c *Cipher) GoString() string { return "[redacted]" }

// LogValue hides the key material from slog.
func (c *Cipher) LogValue() slog.Value { return slog.StringValue("[redacted]") }
