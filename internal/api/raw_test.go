package api_test

import (
	"encoding/base64"
	"reflect"
	"strings"
	"testing"
)

const rawMessage = "From: Shop <shop@example.com>\r\nTo: a@example.com, \"B\" <b@example.com>\r\nCc: c@example.com\r\n" +
	"Bcc: d@example.com\r\nSubject: raw\r\n\r\nbody\r\n"

func rawItem(id string, extra map[string]any) map[string]any {
	m := map[string]any{"id": id, "account_id": "smtp", "raw": rawMessage}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func TestAddMessagesRawEnvelope(t *testing.T) {
	e := setup(t)
	key := e.tenant("acme")
	e.account("acme", "smtp")
	b64 := base64.StdEncoding.EncodeToString([]byte(rawMessage + "\xff"))
	r := e.must(200, "POST", "/commands/add-messages", key, batch(
		rawItem("headers", nil),
		rawItem("given", map[string]any{"from": "bounce@example.com", "to": []any{"x@example.org"}, "priority": "high"}),
		rawItem("binary", map[string]any{"raw": b64, "raw_encoding": "base64"}),
	))
	if got := string(r.Body); got != `{"ok":true,"queued":3,"rejected":[]}` {
		t.Fatalf("answer %s", got)
	}
	recs := e.messages("acme", "")
	cases := map[string]map[string]any{
		"headers": {"from": `"Shop" <shop@example.com>`, "to": []any{"<a@example.com>", `"B" <b@example.com>`},
			"cc": []any{"<c@example.com>"}, "bcc": []any{"<d@example.com>"}, "raw": rawMessage},
		"given":  {"from": "bounce@example.com", "to": []any{"x@example.org"}, "raw": rawMessage},
		"binary": {"from": `"Shop" <shop@example.com>`, "raw": b64, "raw_encoding": "base64"},
	}
	for id, want := range cases {
		p, _ := recs[id]["message"].(map[string]any)
		for k, v := range want {
			if !reflect.DeepEqual(p[k], v) {
				t.Errorf("%s: %s = %#v, want %#v", id, k, p[k], v)
			}
		}
		if _, ok := p["subject"]; ok && p["subject"] != "" {
			t.Errorf("%s: subject %v stored", id, p["subject"])
		}
	}
}

func TestAddMessagesRawRefusals(t *testing.T) {
	e := setup(t)
	key := e.tenant("acme")
	e.account("acme", "smtp")
	// Schema errors: 422 naming the field, nothing stored.
	for _, tc := range []struct {
		item map[string]any
		loc  string
	}{
		{rawItem("s", map[string]any{"subject": "x"}), "subject"},
		{rawItem("a", map[string]any{"attachments": []any{map[string]any{"filename": "a", "storage_path": "x"}}}), "attachments"},
		{rawItem("h", map[string]any{"headers": map[string]any{"X-A": "1"}}), "headers"},
		{rawItem("e", map[string]any{"raw_encoding": "hex"}), "raw_encoding"},
		{rawItem("b", map[string]any{"raw": "%%%", "raw_encoding": "base64"}), "raw"},
		{rawItem("t", map[string]any{"raw": 5}), "raw"},
	} {
		r := e.must(422, "POST", "/commands/add-messages", key, batch(tc.item))
		is := r.Issues(t)
		if len(is) == 0 || !reflect.DeepEqual(is[0]["loc"], []any{"body", "messages", 0.0, tc.loc}) {
			t.Errorf("%v: issues %v", tc.item, is)
		}
	}
	// Zero values of the content fields (clients that send every field) are ignored.
	e.must(200, "POST", "/commands/add-messages", key, batch(rawItem("zero", map[string]any{"subject": "", "attachments": []any{}, "headers": map[string]any{}})))
	// Per-item reasons: stored as errored, reported as any rejection.
	r := e.must(400, "POST", "/commands/add-messages", key, batch(
		rawItem("nohead", map[string]any{"raw": "just text"}),
		rawItem("nofrom", map[string]any{"raw": "To: a@example.com\r\n\r\nx"}),
		rawItem("noto", map[string]any{"raw": "From: a@example.com\r\n\r\nx"}),
		rawItem("badto", map[string]any{"raw": "From: a@example.com\r\nTo: not an address\r\n\r\nx"}),
	))
	body := string(r.Body)
	for _, want := range []string{`"nohead","reason":"invalid raw message: message has no header fields"`,
		`"nofrom","reason":"missing from"`, `"noto","reason":"missing to"`, `"badto","reason":"invalid address: not an address"`} {
		if !strings.Contains(body, want) {
			t.Errorf("answer %s lacks %s", body, want)
		}
	}
	if rec := e.messages("acme", "")["nohead"]; rec == nil || rec["status"] != "error" {
		t.Errorf("nohead record %v", rec)
	}
}
