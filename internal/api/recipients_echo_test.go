package api_test

import (
	"reflect"
	"testing"
)

// TestMessageRecipientsEchoedAsSubmitted: GET /messages returns to, cc and
// bcc in the form they were submitted: a string stays a string, a list a
// list (issue 12.4).
func TestMessageRecipientsEchoedAsSubmitted(t *testing.T) {
	e := setup(t)
	key := e.tenant("acme")
	e.account("acme", "smtp")
	text := msg("text", "", "smtp")
	text["to"] = "a@example.com, B <b@example.com>"
	text["cc"] = []any{"c@example.com"}
	text["bcc"] = "d@example.com"
	list := msg("list", "", "smtp")
	list["to"] = []any{"a@example.com", "b@example.com"}
	e.must(200, "POST", "/commands/add-messages", key, batch(text, list))

	got := e.messages("acme", "")
	for _, tc := range []struct {
		id, field string
		want      any
	}{
		{"text", "to", "a@example.com, B <b@example.com>"},
		{"text", "cc", []any{"c@example.com"}},
		{"text", "bcc", "d@example.com"},
		{"list", "to", []any{"a@example.com", "b@example.com"}},
	} {
		m, _ := got[tc.id]["message"].(map[string]any)
		if !reflect.DeepEqual(m[tc.field], tc.want) {
			t.Errorf("%s: %s = %#v, want %#v", tc.id, tc.field, m[tc.field], tc.want)
		}
	}
}
