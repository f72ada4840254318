package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
)

// SigningSecretPrefix starts every Standard Webhooks signing secret.
const SigningSecretPrefix = "whsec_"

// HashKey is the stored form of a tenant API key: its SHA-256 digest in hex.
func HashKey(key string) string {
	d := sha256.Sum256([]byte(key))
	return hex.EncodeToString(d[:])
}

// NewToken returns 32 random bytes as URL-safe base64 without padding (43
// characters): the format of admin tokens and tenant API keys.
func NewToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// NewAPIKey returns a new tenant key and the hash to store.
func NewAPIKey() (key, hash string) {
	key = NewToken()
	return key, HashKey(key)
}

// NewSigningSecret returns "whsec_" + standard base64 of 32 random bytes.
func NewSigningSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return SigningSecretPrefix + base64.StdEncoding.EncodeToString(b[:])
}
