package client_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/mailproxy/mailproxy/pkg/client"
)

// Submitting messages and telling "rejected" from "unreachable".
func ExampleClient_AddMessages() {
	c := client.New("http://127.0.0.1:8000", "tenant-api-key", client.WithTimeout(10*time.Second))
	resp, err := c.AddMessages(context.Background(), client.AddMessagesRequest{Messages: []client.Message{{
		ID: "order-42-confirmation", AccountID: "smtp-main",
		From: "Shop <shop@example.com>", To: []string{"customer@example.org"},
		Subject: "Your order", Body: "<p>Thanks!</p>", ContentType: "html",
	}}})
	switch {
	case errors.Is(err, client.ErrUnreachable):
		fmt.Println("proxy down: keep the message and retry later")
	case client.IsRejection(err):
		fmt.Println("every item refused:", resp.Rejected)
	case err != nil:
		fmt.Println("proxy error:", err)
	default:
		fmt.Println("queued", resp.Queued)
	}
}

// A sync receiver: verify the signature, decode the report, answer.
func ExampleVerifyWebhook() {
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	handler := func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "read error", http.StatusBadRequest)
			return
		}
		if err := client.VerifyWebhook(secret, r.Header, body, time.Now(), 0); err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var req client.SyncRequest
		if err := json.Unmarshal(body, &req); err != nil {
			http.Error(w, "bad report", http.StatusUnprocessableEntity)
			return
		}
		for _, item := range req.DeliveryReport {
			if item.SentTS != nil {
				fmt.Println(item.ID, "delivered at", *item.SentTS)
			}
		}
		_ = json.NewEncoder(w).Encode(client.SyncResponse{OK: true, NotFound: []string{}})
	}

	// What the proxy would send.
	body := []byte(`{"delivery_report":[{"id":"m1","sent_ts":1767225660}]}`)
	ts := fmt.Sprint(time.Now().Unix())
	mac := hmac.New(sha256.New, []byte("0123456789abcdef0123456789abcdef"))
	mac.Write([]byte("msg_1." + ts + "." + string(body)))
	r, _ := http.NewRequest(http.MethodPost, "/mail-proxy/sync", bytesReader(body))
	r.Header.Set("webhook-id", "msg_1")
	r.Header.Set("webhook-timestamp", ts)
	r.Header.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	handler(discardWriter{}, r)
	// Output: m1 delivered at 1767225660
}
