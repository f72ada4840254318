package queue

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mailproxy/mailproxy/internal/store"
)

// TestSuppressedRecipientsNamedInHistory: recipients dropped at enqueue for
// the suppression list get no RCPT and are named in the sent event.
func TestSuppressedRecipientsNamedInHistory(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{}, nil)
	p := store.Payload{ID: "m", TenantID: "t1", AccountID: "acc", From: "s@example.com",
		To: []string{"stay@example.com", "gone@example.com"}, Subject: "x", Suppressed: []string{"gone@example.com"}}
	raw, _ := json.Marshal(p)
	b.enqueue(t, store.NewMessage{ID: "m", Payload: raw})
	b.run()
	b.waitEvents(t, "m", 1)
	r := b.record(t, "m")
	if r.Final == nil || r.Final.Type != store.EventSent {
		t.Fatalf("final %+v", r.Final)
	}
	var meta struct {
		Suppressed []string `json:"suppressed"`
	}
	if err := json.Unmarshal(r.Final.Metadata, &meta); err != nil || !cmp.Equal(meta.Suppressed, []string{"gone@example.com"}) {
		t.Errorf("sent metadata %s, %v", r.Final.Metadata, err)
	}
	got := b.srv.Messages()
	if len(got) != 1 || !cmp.Equal(got[0].Rcpts, []string{"stay@example.com"}) {
		t.Errorf("server got %+v", got)
	}
}
