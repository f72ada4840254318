// Package webhook signs and verifies HTTP POSTs the Standard Webhooks way
// (client-sync.md §5), for client sync reports and endpoint-mode attachment
// requests.
//
// Signing:
//  1. A secret is "whsec_" + base64 of 32 random bytes; the HMAC key is the
//     base64-decoded part after the prefix.
//  2. The signed content is "<webhook-id>.<webhook-timestamp>.<raw body>", the
//     timestamp in Unix seconds.
//  3. webhook-signature holds one "v1,<base64 HMAC-SHA256>" per secret,
//     space-separated, current secret first (rotation keeps the previous one
//     signing for a while).
//
// Verifying accepts the request when the timestamp lies within the tolerance
// and any one of the v1 signatures matches.
package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names of the Standard Webhooks specification.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts every secret we issue.
const SecretPrefix = "whsec_"

// DefaultTolerance is how far a timestamp may be off when Verify is given no
// tolerance: the five minutes receivers are told to allow.
const DefaultTolerance = 5 * time.Minute

const secretBytes = 32

// Verification failures, for errors.Is.
var (
	ErrMissingHeaders = errors.New("webhook: missing webhook-id, webhook-timestamp or webhook-signature header")
	ErrTimestamp      = errors.New("webhook: timestamp invalid or outside tolerance")
	ErrNoMatch        = errors.New("webhook: no matching signature")
	ErrNoSecret       = errors.New("webhook: no signing secret")
)

// NewSecret returns a fresh "whsec_" secret of 32 random bytes.
func NewSecret() (string, error) {
	key := make([]byte, secretBytes)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("webhook: random secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(key), nil
}

// Sign returns the webhook-signature value for body: one "v1,<sig>" per
// secret, in the order given, separated by spaces.
func Sign(secrets []string, id string, ts time.Time, body []byte) (string, error) {
	if len(secrets) == 0 {
		return "", ErrNoSecret
	}
	timestamp := strconv.FormatInt(ts.Unix(), 10)
	sigs := make([]string, 0, len(secrets))
	for i, secret := range secrets {
		key, err := decodeSecret(secret)
		if err != nil {
			return "", fmt.Errorf("webhook: secret %d: %w", i+1, err)
		}
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(mac(key, id, timestamp, body)))
	}
	return strings.Join(sigs, " "), nil
}

// Headers returns the three Standard Webhooks headers for one POST of body at
// now, with a new random webhook-id.
func Headers(secrets []string, body []byte, now time.Time) (http.Header, error) {
	id, err := newID()
	if err != nil {
		return nil, err
	}
	sig, err := Sign(secrets, id, now, body)
	if err != nil {
		return nil, err
	}
	h := make(http.Header, 3)
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	h.Set(HeaderSignature, sig)
	return h, nil
}

// Verify checks the headers of a received POST against secret: the timestamp
// must be within tolerance of now (DefaultTolerance when tolerance ≤ 0) and
// at least one v1 signature must match body.
func Verify(secret string, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	key, err := decodeSecret(secret)
	if err != nil {
		return fmt.Errorf("webhook: secret: %w", err)
	}
	id, timestamp, sigHeader := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || timestamp == "" || sigHeader == "" {
		return ErrMissingHeaders
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %q is not Unix seconds", ErrTimestamp, timestamp)
	}
	if skew := now.Sub(time.Unix(sec, 0)); skew > tolerance || skew < -tolerance {
		return fmt.Errorf("%w: off by %s", ErrTimestamp, skew.Round(time.Second))
	}
	want := mac(key, id, timestamp, body)
	for _, field := range strings.Fields(sigHeader) {
		version, encoded, ok := strings.Cut(field, ",")
		if !ok || version != "v1" {
			continue // other schemes (v1a, ...) are allowed alongside and ignored
		}
		got, err := base64.StdEncoding.DecodeString(encoded)
		if err != nil {
			continue
		}
		if hmac.Equal(got, want) {
			return nil
		}
	}
	return ErrNoMatch
}

func mac(key []byte, id, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// decodeSecret returns the HMAC key of a secret. The prefix is optional, as
// in other Standard Webhooks implementations. Errors never quote the secret.
func decodeSecret(secret string) ([]byte, error) {
	encoded := strings.TrimPrefix(strings.TrimSpace(secret), SecretPrefix)
	if encoded == "" {
		return nil, ErrNoSecret
	}
	key, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		return nil, errors.New("not valid base64 after the whsec_ prefix")
	}
	return key, nil
}

// newID returns "msg_" + 16 random bytes in URL-safe base64 (no '.', which
// separates the signed fields).
func newID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("webhook: random id: %w", err)
	}
	return "msg_" + base64.RawURLEncoding.EncodeToString(b), nil
}
