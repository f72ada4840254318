package client_test

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mailproxy/mailproxy/pkg/client"
)

func i64(v int64) *int64 { return &v }

func TestSyncRequestDecoding(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body string
		want       []client.ReportItem
	}{
		{"heartbeat", `{"delivery_report":[]}`, []client.ReportItem{}},
		{"contract example", `{"delivery_report":[{"id":"m1","deferred_ts":1767225600,"deferred_reason":"4.7.1 try later (SMTP 451)"},{"id":"m1","sent_ts":1767225660}]}`,
			[]client.ReportItem{{ID: "m1", DeferredTS: i64(1767225600), DeferredReason: "4.7.1 try later (SMTP 451)"}, {ID: "m1", SentTS: i64(1767225660)}}},
		{"error item", `{"delivery_report":[{"id":"m2","error_ts":1767225601,"error":"550 5.1.1 no such user"}]}`,
			[]client.ReportItem{{ID: "m2", ErrorTS: i64(1767225601), Error: "550 5.1.1 no such user"}}},
		{"bounce with numeric code", `{"delivery_report":[{"id":"m3","bounce_ts":1767225602.75,"bounce_type":"hard","bounce_code":550,"bounce_reason":"gone"}]}`,
			[]client.ReportItem{{ID: "m3", BounceTS: i64(1767225602), BounceType: "hard", BounceCode: "550", BounceReason: "gone"}}},
		{"float times and nulls", `{"delivery_report":[{"id":"m4","sent_ts":1767225660.9,"error_ts":null,"error":null,"deferred_ts":null,"account_id":"x","priority":2}]}`,
			[]client.ReportItem{{ID: "m4", SentTS: i64(1767225660)}}},
		{"legacy reports", `{"reports":[{"id":"m5","status":"sent","timestamp":1761215435},{"id":"m6","status":"error","timestamp":1761215436,"error":"boom"}]}`,
			[]client.ReportItem{{ID: "m5", SentTS: i64(1761215435)}, {ID: "m6", ErrorTS: i64(1761215436), Error: "boom"}}},
		{"no list at all", `{}`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got client.SyncRequest
			if err := json.Unmarshal([]byte(tc.body), &got); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if diff := cmp.Diff(tc.want, got.DeliveryReport); diff != "" {
				t.Errorf("items (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSyncRequestDecodingErrors(t *testing.T) {
	t.Parallel()
	for name, body := range map[string]string{
		"string timestamp":    `{"delivery_report":[{"id":"m1","sent_ts":"yesterday"}]}`,
		"huge float":          `{"delivery_report":[{"id":"m1","sent_ts":1e300}]}`,
		"object bounce code":  `{"delivery_report":[{"id":"m1","bounce_ts":1,"bounce_code":{}}]}`,
		"items not objects":   `{"delivery_report":[1,2]}`,
		"legacy bad status":   `{"reports":[{"id":"m1","status":"lost"}]}`,
		"not JSON":            `{"delivery_report":[`,
		"list instead of obj": `[]`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var got client.SyncRequest
			if err := json.Unmarshal([]byte(body), &got); err == nil {
				t.Errorf("Unmarshal(%s) = %+v, want an error", body, got)
			}
		})
	}
}

func TestSyncResponseEncoding(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(client.SyncResponse{OK: true, Queued: 2, NotFound: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"ok":true,"queued":2,"not_found":["x"]}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func FuzzSyncRequest(f *testing.F) {
	f.Add([]byte(`{"delivery_report":[{"id":"m1","sent_ts":1767225660}]}`))
	f.Add([]byte(`{"delivery_report":[{"id":"m3","bounce_ts":1.5,"bounce_code":550}]}`))
	f.Add([]byte(`{"reports":[{"id":"m5","status":"sent","timestamp":1761215435}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var req client.SyncRequest
		if err := json.Unmarshal(data, &req); err != nil {
			return
		}
		// What decodes must survive a round trip through the contract's encoding.
		b, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("Marshal after Unmarshal: %v", err)
		}
		var again client.SyncRequest
		if err := json.Unmarshal(b, &again); err != nil {
			t.Fatalf("re-decoding %s: %v", b, err)
		}
		if len(again.DeliveryReport) != len(req.DeliveryReport) {
			t.Fatalf("round trip changed item count: %d vs %d", len(again.DeliveryReport), len(req.DeliveryReport))
		}
	})
}
