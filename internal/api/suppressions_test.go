package api_test

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestSuppressionsAPI(t *testing.T) {
	e := setup(t)
	key := e.tenant("acme")
	otherKey := e.tenant("other")

	r := e.must(200, "POST", "/suppressions", key, map[string]any{"addresses": []string{"Bob@Example.com", "Alice <alice@example.com>"}, "reason": "asked"})
	if got := string(r.Body); got != `{"ok":true,"added":2}` {
		t.Errorf("add = %s", got)
	}
	r = e.must(200, "POST", "/suppressions", adminToken, map[string]any{"tenant_id": "acme", "addresses": []string{"BOB@example.com"}})
	if got := string(r.Body); got != `{"ok":true,"added":0}` {
		t.Errorf("re-add = %s", got)
	}
	var list struct {
		OK           bool `json:"ok"`
		Suppressions []struct {
			Address, Reason, Source, CreatedAt string
		} `json:"suppressions"`
	}
	r = e.must(200, "GET", "/suppressions?tenant_id=acme", key, nil)
	if err := json.Unmarshal(r.Body, &list); err != nil || !list.OK || len(list.Suppressions) != 2 {
		t.Fatalf("list: %v %s", err, r.Body)
	}
	if s := list.Suppressions[1]; s.Address != "bob@example.com" || s.Reason != "asked" || s.Source != "manual" {
		t.Errorf("entry %+v", s)
	}
	if !strings.Contains(string(r.Body), `"created_at":"`) {
		t.Errorf("no created_at: %s", r.Body)
	}
	// Another tenant sees none of it, and cannot touch it.
	if r := e.must(200, "GET", "/suppressions", otherKey, nil); string(r.Body) != `{"ok":true,"suppressions":[]}` {
		t.Errorf("other tenant's list = %s", r.Body)
	}
	e.must(401, "DELETE", "/suppressions?tenant_id=acme&address=bob@example.com", otherKey, nil)

	// Bad input names the field.
	r = e.must(422, "POST", "/suppressions", key, map[string]any{"addresses": []any{"ok@example.com", "nope", 5}})
	locs := []string{}
	for _, is := range r.Issues(t) {
		b, _ := json.Marshal(is["loc"])
		locs = append(locs, string(b))
	}
	if strings.Join(locs, " ") != `["body","addresses",1] ["body","addresses",2]` {
		t.Errorf("422 locations %v: %s", locs, r.Body)
	}
	e.must(422, "POST", "/suppressions", key, map[string]any{})
	e.must(404, "POST", "/suppressions", adminToken, map[string]any{"tenant_id": "ghost", "addresses": []string{"a@example.com"}})

	r = e.must(200, "DELETE", "/suppressions?tenant_id=acme&address=BOB@EXAMPLE.COM", key, nil)
	if string(r.Body) != `{"ok":true,"removed":1}` {
		t.Errorf("remove = %s", r.Body)
	}
	if r := e.must(200, "DELETE", "/suppressions?address=bob@example.com", key, nil); string(r.Body) != `{"ok":true,"removed":0}` {
		t.Errorf("remove again = %s", r.Body)
	}
	e.must(422, "DELETE", "/suppressions?tenant_id=acme", key, nil)
}

func TestAddMessagesHonoursSuppressions(t *testing.T) {
	e := setup(t)
	key := e.tenant("acme")
	e.account("acme", "smtp")
	e.must(200, "POST", "/suppressions", key, map[string]any{"addresses": []string{"gone@example.com", "Left@Example.com"}})

	all := msg("all", "", "smtp")
	all["to"] = "Gone <GONE@example.com>"
	all["cc"] = []string{"left@example.com"}
	some := msg("some", "", "smtp")
	some["to"] = []string{"stay@example.com", "gone@example.com"}
	some["bcc"] = "left@example.com"
	r := e.must(200, "POST", "/commands/add-messages", key, batch(all, some, msg("free", "", "smtp")))
	var ans struct {
		Queued   int `json:"queued"`
		Rejected []struct {
			ID     string `json:"id"`
			Reason string `json:"reason"`
		} `json:"rejected"`
	}
	if err := json.Unmarshal(r.Body, &ans); err != nil {
		t.Fatal(err)
	}
	if ans.Queued != 2 || len(ans.Rejected) != 1 || ans.Rejected[0].ID != "all" ||
		ans.Rejected[0].Reason != "suppressed: gone@example.com, left@example.com" {
		t.Fatalf("answer %s", r.Body)
	}
	msgs := e.messages("acme", "&include_history=true")
	// The rejected one is stored as an error and reported, as an unknown account is.
	if m := msgs["all"]; m == nil || m["error"] == nil || !strings.Contains(m["error"].(string), "suppressed: gone@example.com") {
		t.Errorf("rejected message listed as %v", m)
	}
	ev, err := e.st.UnreportedEvents(t.Context(), "acme", 10)
	if err != nil || len(ev) != 1 || ev[0].MessageID != "all" || !strings.HasPrefix(ev[0].Description, "suppressed: ") {
		t.Errorf("unreported events %+v, %v", ev, err)
	}
	// The partly suppressed one names them; headers keep the addresses.
	payload, _ := json.Marshal(msgs["some"])
	if !strings.Contains(string(payload), `"suppressed":["gone@example.com","left@example.com"]`) {
		t.Errorf("partly suppressed message listed as %s", payload)
	}
	if strings.Contains(mustJSONString(t, msgs["free"]), "suppressed") {
		t.Errorf("unsuppressed message mentions suppression: %v", msgs["free"])
	}
}

func mustJSONString(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
