package client

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DefaultWebhookTolerance is how far a webhook-timestamp may be from now
// when VerifyWebhook is given no tolerance (client-sync.md §5: 5 minutes).
const DefaultWebhookTolerance = 5 * time.Minute

// Webhook verification failures; VerifyWebhook wraps one of them.
var (
	ErrWebhookHeaders   = errors.New("webhook: missing or malformed signature headers")
	ErrWebhookTimestamp = errors.New("webhook: timestamp outside tolerance")
	ErrWebhookSignature = errors.New("webhook: no matching signature")
	ErrWebhookSecret    = errors.New("webhook: invalid signing secret")
)

// VerifyWebhook checks the Standard Webhooks signature of a request the
// proxy signed with secret ("whsec_" + base64 key; a bare base64 key is
// accepted too). It returns nil when one v1 signature matches and the
// timestamp is within tolerance of now (tolerance <= 0: 5 minutes).
func VerifyWebhook(secret string, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	key, err := webhookKey(secret)
	if err != nil {
		return err
	}
	id := h.Get("webhook-id")
	tsText := h.Get("webhook-timestamp")
	sigs := h.Get("webhook-signature")
	if id == "" || tsText == "" || sigs == "" {
		return fmt.Errorf("%w: webhook-id, webhook-timestamp and webhook-signature are required", ErrWebhookHeaders)
	}
	ts, err := strconv.ParseInt(strings.TrimSpace(tsText), 10, 64)
	if err != nil {
		return fmt.Errorf("%w: webhook-timestamp %q is not Unix seconds", ErrWebhookHeaders, tsText)
	}
	if tolerance <= 0 {
		tolerance = DefaultWebhookTolerance
	}
	skew := now.Sub(time.Unix(ts, 0))
	if skew > tolerance || skew < -tolerance {
		return fmt.Errorf("%w: %s off (tolerance %s)", ErrWebhookTimestamp, skew.Round(time.Second), tolerance)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(tsText))
	mac.Write([]byte{'.'})
	mac.Write(body)
	expected := mac.Sum(nil)
	for _, sig := range strings.Fields(sigs) {
		version, encoded, ok := strings.Cut(sig, ",")
		if !ok || version != "v1" {
			continue // other schemes (v1a, future versions) are not ours to check
		}
		got, err := base64.StdEncoding.DecodeString(encoded)
		if err != nil {
			continue
		}
		if hmac.Equal(got, expected) {
			return nil
		}
	}
	return ErrWebhookSignature
}

func webhookKey(secret string) ([]byte, error) {
	encoded := strings.TrimPrefix(strings.TrimSpace(secret), "whsec_")
	if encoded == "" {
		return nil, fmt.Errorf("%w: empty", ErrWebhookSecret)
	}
	key, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		return nil, fmt.Errorf("%w: not base64 after whsec_", ErrWebhookSecret)
	}
	return key, nil
}
