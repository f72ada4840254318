package api_test

import (
	"testing"
)

// Custom headers that would override the message's own validated fields
// are refused per item, with a reason naming the header; the other items
// of the batch are queued.
func TestAddMessagesRefusesIdentityHeaders(t *testing.T) {
	e := setup(t)
	key := e.tenant("acme")
	e.account("acme", "smtp")
	cases := map[string]string{
		"From": "From", "to": "to", "CC": "CC", "bcc": "bcc", "Sender": "Sender",
		"reply-to": "reply-to", "Message-Id": "Message-Id", "DATE": "DATE", "Return-Path": "Return-Path",
	}
	var msgs []map[string]any
	for name := range cases {
		m := msg("h-"+name, "", "smtp")
		m["headers"] = map[string]any{"X-Ok": "1", name: "evil@attacker.example"}
		msgs = append(msgs, m)
	}
	ok := msg("fine", "", "smtp")
	ok["headers"] = map[string]any{"X-Campaign": "spring", "List-Unsubscribe": "<mailto:u@example.com>"}
	msgs = append(msgs, ok)
	r := e.must(200, "POST", "/commands/add-messages", key, batch(msgs...))
	b := r.JSON(t)
	if b["queued"] != 1.0 {
		t.Fatalf("queued %v, want 1: %s", b["queued"], r.Body)
	}
	rej := b["rejected"].([]any)
	if len(rej) != len(cases) {
		t.Fatalf("%d rejected, want %d: %s", len(rej), len(cases), r.Body)
	}
	for _, x := range rej {
		it := x.(map[string]any)
		id := it["id"].(string)
		name := cases[id[len("h-"):]]
		reason, _ := it["reason"].(string)
		if want := "header not allowed: " + name + " ("; len(reason) < len(want) || reason[:len(want)] != want {
			t.Errorf("%s: reason %q, want it to start with %q", id, reason, want)
		}
	}
	// The refused items are stored as errors (the client learns it by sync too).
	got := e.messages("acme", "")
	if got["h-From"]["status"] != "error" || got["fine"]["status"] != "pending" {
		t.Fatalf("statuses h-From=%v fine=%v, want error and pending", got["h-From"]["status"], got["fine"]["status"])
	}
}
