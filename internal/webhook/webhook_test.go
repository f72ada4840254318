package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// independentSignature computes the v1 signature straight from the
// specification, without any code of this package.
func independentSignature(t *testing.T, secret, id string, ts int64, body []byte) string {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatalf("decode test secret: %v", err)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + strconv.FormatInt(ts, 10) + "." + string(body)))
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func TestNewSecret(t *testing.T) {
	t.Parallel()
	a, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatalf("two secrets are equal: %q", a)
	}
	if !strings.HasPrefix(a, "whsec_") {
		t.Fatalf("secret %q lacks the whsec_ prefix", a)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(a, "whsec_"))
	if err != nil || len(key) != 32 {
		t.Fatalf("secret key: %d bytes, err %v; want 32 bytes", len(key), err)
	}
}

func TestSignMatchesSpecification(t *testing.T) {
	t.Parallel()
	// The example of the Standard Webhooks specification.
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	const id = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	body := []byte(`{"test": 2432232314}`)
	ts := time.Unix(1614265330, 0)

	got, err := Sign([]string{secret}, id, ts, body)
	if err != nil {
		t.Fatal(err)
	}
	if want := independentSignature(t, secret, id, ts.Unix(), body); got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("Sign = %q, want the specification's %q", got, want)
	}
}

func TestSignRotationOrder(t *testing.T) {
	t.Parallel()
	current, _ := NewSecret()
	previous, _ := NewSecret()
	body := []byte(`{"delivery_report":[]}`)
	ts := time.Unix(1_700_000_000, 0)
	got, err := Sign([]string{current, previous}, "msg_x", ts, body)
	if err != nil {
		t.Fatal(err)
	}
	want := independentSignature(t, current, "msg_x", ts.Unix(), body) + " " +
		independentSignature(t, previous, "msg_x", ts.Unix(), body)
	if got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
}

func TestHeaders(t *testing.T) {
	t.Parallel()
	secret, _ := NewSecret()
	body := []byte(`{"a":1}`)
	now := time.Unix(1_700_000_123, 0)
	h, err := Headers([]string{secret}, body, now)
	if err != nil {
		t.Fatal(err)
	}
	id := h.Get("webhook-id")
	if !strings.HasPrefix(id, "msg_") || len(id) < 10 || strings.Contains(id, ".") {
		t.Fatalf("webhook-id = %q", id)
	}
	if got := h.Get("webhook-timestamp"); got != "1700000123" {
		t.Fatalf("webhook-timestamp = %q", got)
	}
	if got, want := h.Get("webhook-signature"), independentSignature(t, secret, id, now.Unix(), body); got != want {
		t.Fatalf("webhook-signature = %q, want %q", got, want)
	}
	h2, _ := Headers([]string{secret}, body, now)
	if h2.Get("webhook-id") == id {
		t.Fatal("two POSTs got the same webhook-id")
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	current, _ := NewSecret()
	previous, _ := NewSecret()
	other, _ := NewSecret()
	body := []byte(`{"delivery_report":[{"id":"m1"}]}`)
	now := time.Unix(1_700_000_000, 0)

	headers := func(id string, ts int64, sig string) http.Header {
		h := http.Header{}
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
		h.Set("webhook-signature", sig)
		return h
	}
	good := independentSignature(t, current, "msg_1", now.Unix(), body)
	rotated := independentSignature(t, current, "msg_1", now.Unix(), body) + " " +
		independentSignature(t, previous, "msg_1", now.Unix(), body)

	tests := []struct {
		name    string
		secret  string
		h       http.Header
		body    []byte
		now     time.Time
		wantErr error
	}{
		{"valid", current, headers("msg_1", now.Unix(), good), body, now, nil},
		{"rotation: new secret", current, headers("msg_1", now.Unix(), rotated), body, now, nil},
		{"rotation: previous secret", previous, headers("msg_1", now.Unix(), rotated), body, now, nil},
		{"unknown scheme ignored", current, headers("msg_1", now.Unix(), "v1a,xyz "+good), body, now, nil},
		{"within tolerance", current, headers("msg_1", now.Unix(), good), body, now.Add(4 * time.Minute), nil},
		{"wrong secret", other, headers("msg_1", now.Unix(), rotated), body, now, ErrNoMatch},
		{"tampered body", current, headers("msg_1", now.Unix(), good), []byte(`{"delivery_report":[]}`), now, ErrNoMatch},
		{"tampered id", current, headers("msg_2", now.Unix(), good), body, now, ErrNoMatch},
		{"tampered timestamp", current, headers("msg_1", now.Unix()+1, good), body, now, ErrNoMatch},
		{"timestamp too old", current, headers("msg_1", now.Unix(), good), body, now.Add(6 * time.Minute), ErrTimestamp},
		{"timestamp in the future", current, headers("msg_1", now.Unix(), good), body, now.Add(-6 * time.Minute), ErrTimestamp},
		{"timestamp not a number", current, headers("msg_1", 0, good), body, now, ErrTimestamp},
		{"missing signature", current, headers("msg_1", now.Unix(), ""), body, now, ErrMissingHeaders},
		{"garbage signature", current, headers("msg_1", now.Unix(), "v1,!!! nonsense"), body, now, ErrNoMatch},
	}
	tests[11].h.Set("webhook-timestamp", "soon")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := Verify(tc.secret, tc.h, tc.body, tc.now, 5*time.Minute)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("Verify = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestVerifyRoundTrip(t *testing.T) {
	t.Parallel()
	secret, _ := NewSecret()
	body := []byte("raw body, not JSON")
	now := time.Now()
	h, err := Headers([]string{secret}, body, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(secret, h, body, now.Add(time.Second), 0); err != nil {
		t.Fatalf("Verify of our own headers: %v", err)
	}
}

func TestBadSecret(t *testing.T) {
	t.Parallel()
	const secret = "whsec_not*base64"
	_, err := Sign([]string{secret}, "msg_1", time.Now(), nil)
	if err == nil {
		t.Fatal("Sign accepted an invalid secret")
	}
	if strings.Contains(err.Error(), "not*base64") {
		t.Fatalf("error quotes the secret: %v", err)
	}
	if _, err := Sign(nil, "msg_1", time.Now(), nil); !errors.Is(err, ErrNoSecret) {
		t.Fatalf("Sign without secrets = %v, want ErrNoSecret", err)
	}
	if err := Verify("", http.Header{}, nil, time.Now(), 0); !errors.Is(err, ErrNoSecret) {
		t.Fatalf("Verify with empty secret = %v, want ErrNoSecret", err)
	}
}
