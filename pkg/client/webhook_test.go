package client_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/pkg/client"
)

// sign computes a Standard Webhooks v1 signature the way the spec states it,
// without the package's code.
func sign(key []byte, id string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + strconv.FormatInt(ts, 10) + "." + string(body)))
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func TestVerifyWebhook(t *testing.T) {
	t.Parallel()
	key := []byte("0123456789abcdef0123456789abcdef")
	otherKey := []byte("fedcba9876543210fedcba9876543210")
	secret := "whsec_" + base64.StdEncoding.EncodeToString(key)
	body := []byte(`{"delivery_report":[{"id":"m1","sent_ts":1767225660}]}`)
	now := time.Unix(1767225700, 0)
	ts := now.Unix() - 10

	headers := func(id string, ts int64, sig string) http.Header {
		h := http.Header{}
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
		h.Set("webhook-signature", sig)
		return h
	}
	tests := []struct {
		name    string
		secret  string
		h       http.Header
		body    []byte
		wantErr error
	}{
		{"valid", secret, headers("msg_1", ts, sign(key, "msg_1", ts, body)), body, nil},
		{"bare base64 secret", base64.StdEncoding.EncodeToString(key), headers("msg_1", ts, sign(key, "msg_1", ts, body)), body, nil},
		{"rotation: old key second", secret, headers("msg_1", ts, sign(otherKey, "msg_1", ts, body)+" "+sign(key, "msg_1", ts, body)), body, nil},
		{"other versions ignored", secret, headers("msg_1", ts, "v1a,abc "+sign(key, "msg_1", ts, body)), body, nil},
		{"wrong key", secret, headers("msg_1", ts, sign(otherKey, "msg_1", ts, body)), body, client.ErrWebhookSignature},
		{"tampered body", secret, headers("msg_1", ts, sign(key, "msg_1", ts, body)), []byte(`{"delivery_report":[]}`), client.ErrWebhookSignature},
		{"id swapped", secret, headers("msg_2", ts, sign(key, "msg_1", ts, body)), body, client.ErrWebhookSignature},
		{"garbage signature", secret, headers("msg_1", ts, "v1,!!!"), body, client.ErrWebhookSignature},
		{"too old", secret, headers("msg_1", now.Unix()-301, sign(key, "msg_1", now.Unix()-301, body)), body, client.ErrWebhookTimestamp},
		{"too new", secret, headers("msg_1", now.Unix()+301, sign(key, "msg_1", now.Unix()+301, body)), body, client.ErrWebhookTimestamp},
		{"no headers", secret, http.Header{}, body, client.ErrWebhookHeaders},
		{"timestamp not a number", secret, func() http.Header {
			h := headers("msg_1", ts, sign(key, "msg_1", ts, body))
			h.Set("webhook-timestamp", "soon")
			return h
		}(), body, client.ErrWebhookHeaders},
		{"secret not base64", "whsec_***", headers("msg_1", ts, sign(key, "msg_1", ts, body)), body, client.ErrWebhookSecret},
		{"empty secret", "", headers("msg_1", ts, sign(key, "msg_1", ts, body)), body, client.ErrWebhookSecret},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := client.VerifyWebhook(tc.secret, tc.h, tc.body, now, 0)
			if tc.wantErr == nil && err != nil {
				t.Fatalf("VerifyWebhook: %v, want nil", err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("VerifyWebhook = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestVerifyWebhookTolerance(t *testing.T) {
	t.Parallel()
	key := []byte("k")
	body := []byte("{}")
	now := time.Unix(1767225700, 0)
	ts := now.Unix() - 60
	h := http.Header{}
	h.Set("webhook-id", "msg_x")
	h.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	h.Set("webhook-signature", sign(key, "msg_x", ts, body))
	secret := "whsec_" + base64.StdEncoding.EncodeToString(key)
	if err := client.VerifyWebhook(secret, h, body, now, 30*time.Second); !errors.Is(err, client.ErrWebhookTimestamp) {
		t.Errorf("60 s old with 30 s tolerance: %v, want ErrWebhookTimestamp", err)
	}
	if err := client.VerifyWebhook(secret, h, body, now, 2*time.Minute); err != nil {
		t.Errorf("60 s old with 2 min tolerance: %v", err)
	}
}
