package api

import (
	"encoding/json"
	"testing"
)

// FuzzParseAddMessages feeds arbitrary bodies to the add-messages parser:
// it must never panic, must answer either 422 entries or items, and every
// entry must carry a pydantic type, a loc starting with "body" and a msg.
func FuzzParseAddMessages(f *testing.F) {
	f.Add([]byte(`{"messages":[{"id":"a","account_id":"s","from":"a@b.c","to":"x@y.z, w@y.z","subject":"s"}]}`))
	f.Add([]byte(`{"default_priority":"high","messages":[{"id":"a","account_id":"s","from_addr":"A <a@b.c>","to":["x@y.z"],"cc":null,"subject":"s","priority":7,"deferred_ts":1.0,"headers":{"X":1,"Y":null},"attachments":[{"filename":"f","storage_path":"p","fetch_mode":"base64","auth":{"token":"t"}}]}]}`))
	f.Add([]byte(`{"messages":[3,{"id":1}]}`))
	f.Add([]byte(`{"messages": [`))
	s := &server{}
	f.Fuzz(func(t *testing.T, body []byte) {
		top, aerr := parseJSONBody(body, false)
		var is issues
		var items []item
		if aerr == nil {
			items, _ = s.parseAddMessages(top, &is)
		} else {
			is.list = aerr.detail.([]issue)
		}
		for _, e := range is.list {
			if e.Type == "" || e.Msg == "" || len(e.Loc) == 0 || e.Loc[0] != "body" {
				t.Fatalf("malformed entry %+v", e)
			}
			if _, err := json.Marshal(e); err != nil {
				t.Fatalf("entry does not encode: %v", err)
			}
		}
		if !is.empty() {
			return
		}
		for i := range items {
			itemReason(&items[i])
			if _, err := json.Marshal(&items[i].payload); err != nil {
				t.Fatalf("payload does not encode: %v", err)
			}
		}
	})
}
