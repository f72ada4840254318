package webhook_test

import (
	"fmt"
	"time"

	"github.com/mailproxy/mailproxy/internal/webhook"
)

// A sender signs a POST body; the receiver verifies it with the same secret.
func ExampleVerify() {
	secret, err := webhook.NewSecret()
	if err != nil {
		fmt.Println(err)
		return
	}
	body := []byte(`{"delivery_report":[]}`)
	now := time.Now()
	h, err := webhook.Headers([]string{secret}, body, now)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(webhook.Verify(secret, h, body, now, 5*time.Minute))
	fmt.Println(webhook.Verify(secret, h, []byte(`{}`), now, 5*time.Minute))
	// Output:
	// <nil>
	// webhook: no matching signature
}
