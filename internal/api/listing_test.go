package api_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"testing"
)

func listIDs(t *testing.T, r resp) (ids []string, next *string) {
	t.Helper()
	var b struct {
		OK       bool `json:"ok"`
		Messages []struct {
			ID string `json:"id"`
		} `json:"messages"`
		NextAfter *string `json:"next_after"`
	}
	if err := json.Unmarshal(r.Body, &b); err != nil || !b.OK {
		t.Fatalf("listing: %v: %.300s", err, r.Body)
	}
	for _, m := range b.Messages {
		ids = append(ids, m.ID)
	}
	return ids, b.NextAfter
}

// GET /messages answers every message whatever limit says, as the original
// did (its client library always sends limit=100); page_size and after
// page on request. Checked over several internal read pages.
func TestListMessagesAllWhateverLimit(t *testing.T) {
	e := setup(t)
	key := e.tenant("acme")
	e.account("acme", "smtp")
	const n = 150
	var msgs []map[string]any
	for i := range n {
		msgs = append(msgs, msg(fmt.Sprintf("m%03d", i), "", "smtp"))
	}
	e.must(200, "POST", "/commands/add-messages", key, batch(msgs...))

	for _, q := range []string{"", "&limit=100", "&limit=100&offset=20", "&limit=0", "&include_history=true&active_only=true"} {
		r := e.must(200, "GET", "/messages?tenant_id=acme"+q, adminToken, nil)
		ids, next := listIDs(t, r)
		if len(ids) != n || next != nil {
			t.Errorf("GET /messages%s: %d messages (next_after %v), want all %d", q, len(ids), next, n)
		}
		seen := map[string]bool{}
		for _, id := range ids {
			seen[id] = true
		}
		if len(seen) != n {
			t.Errorf("GET /messages%s: %d distinct ids, want %d", q, len(seen), n)
		}
	}

	// Our paging: pages of 60, joined by next_after, in listing order.
	full, _ := listIDs(t, e.must(200, "GET", "/messages", key, nil))
	var paged []string
	after := ""
	for page := 0; page < 10; page++ {
		path := "/messages?page_size=60"
		if after != "" {
			path += "&after=" + url.QueryEscape(after)
		}
		ids, next := listIDs(t, e.must(200, "GET", path, key, nil))
		if want := min(60, n-len(paged)); len(ids) != want {
			t.Fatalf("page %d: %d messages, want %d", page, len(ids), want)
		}
		paged = append(paged, ids...)
		if next == nil {
			break
		}
		after = *next
	}
	if fmt.Sprint(paged) != fmt.Sprint(full) {
		t.Errorf("pages joined differ from the full listing:\n%v\n%v", paged, full)
	}
	r := e.must(422, "GET", "/messages?after=garbage", key, nil)
	if is := r.Issues(t); len(is) != 1 || !sameLoc(is[0]["loc"], "query", "after") {
		t.Errorf("bad after: %s", r.Body)
	}
	e.must(422, "GET", "/messages?page_size=0", key, nil)
}
