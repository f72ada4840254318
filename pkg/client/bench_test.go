package client_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/pkg/client"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// discardWriter is an http.ResponseWriter that drops everything.
type discardWriter struct{}

func (discardWriter) Header() http.Header         { return http.Header{} }
func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (discardWriter) WriteHeader(int)             {}

// reportBody is a full sync POST of n items.
func reportBody(n int) []byte {
	var sb strings.Builder
	sb.WriteString(`{"delivery_report":[`)
	for i := range n {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"id":"test_1767225600000_%04d","sent_ts":%d}`, i, 1767225600+i)
	}
	sb.WriteString(`]}`)
	return []byte(sb.String())
}

func BenchmarkDecodeSyncRequest1000(b *testing.B) {
	body := reportBody(1000)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		var req client.SyncRequest
		if err := json.Unmarshal(body, &req); err != nil || len(req.DeliveryReport) != 1000 {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyWebhook1000Items(b *testing.B) {
	key := []byte("0123456789abcdef0123456789abcdef")
	secret := "whsec_" + base64.StdEncoding.EncodeToString(key)
	body := reportBody(1000)
	now := time.Now()
	ts := strconv.FormatInt(now.Unix(), 10)
	m := hmac.New(sha256.New, key)
	m.Write([]byte("msg_1." + ts + "." + string(body)))
	h := http.Header{}
	h.Set("webhook-id", "msg_1")
	h.Set("webhook-timestamp", ts)
	h.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)))
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := client.VerifyWebhook(secret, h, body, now, 0); err != nil {
			b.Fatal(err)
		}
	}
}
