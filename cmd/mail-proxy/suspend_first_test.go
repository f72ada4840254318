package main

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/internal/testsmtp"
)

// TestSuspendBatchBeforeItsMessagesExist: suspending a batch code that no
// message carries yet holds the messages added later with that code, while
// other mail flows; activate releases them (issue 12.6).
func TestSuspendBatchBeforeItsMessagesExist(t *testing.T) {
	t.Parallel()
	srv := newSMTP(t, testsmtp.Options{})
	p := startProxy(t, map[string]string{"GMP_DB_PATH": filepath.Join(t.TempDir(), "mail.db")})
	addAccount(t, p, "acc", srv)
	var sus struct {
		SuspendedBatches []string `json:"suspended_batches"`
		PendingMessages  int      `json:"pending_messages"`
	}
	if code := p.call("POST", "/commands/suspend?tenant_id=default&batch_code=B", nil, &sus); code != 200 {
		t.Fatalf("suspend: %d", code)
	}
	if len(sus.SuspendedBatches) != 1 || sus.SuspendedBatches[0] != "B" || sus.PendingMessages != 0 {
		t.Fatalf("suspend answer %+v", sus)
	}
	held := []any{}
	for _, id := range []string{"b1", "b2", "b3"} {
		m := msg(id, "acc", "a@example.com")
		m["batch_code"] = "B"
		held = append(held, m)
	}
	if code := p.call("POST", "/commands/add-messages", map[string]any{"messages": held}, nil); code != 200 {
		t.Fatalf("add held: %d", code)
	}
	// Added after the held ones, so it would be claimed after them (FIFO):
	// once it has arrived, the held ones would have too.
	if code := p.call("POST", "/commands/add-messages", map[string]any{"messages": []any{msg("free", "acc", "a@example.com")}}, nil); code != 200 {
		t.Fatalf("add free: %d", code)
	}
	waitFor(t, 30*time.Second, "the unbatched message", func() bool { return receivedIDs(srv)["free"] == 1 })
	if got := receivedIDs(srv); len(got) != 1 {
		t.Fatalf("received %v: the suspended batch was sent", got)
	}
	// The server has a message a moment before its outcome commits.
	waitFor(t, 30*time.Second, "the unbatched message recorded sent", func() bool {
		return p.messageIDs("default", "sent")["free"]
	})
	if pending := p.messageIDs("default", "pending"); len(pending) != 3 {
		t.Fatalf("pending %v, want the three held messages", pending)
	}
	if code := p.call("POST", "/commands/activate?tenant_id=default&batch_code=B", nil, nil); code != 200 {
		t.Fatalf("activate: %d", code)
	}
	waitFor(t, 30*time.Second, "the released batch", func() bool { return len(receivedIDs(srv)) == 4 })
}
