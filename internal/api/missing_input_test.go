package api_test

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestMissingEntriesEchoInput: a missing field's 422 entry carries pydantic's
// "input": the enclosing object, or null for a missing query parameter or
// body (issue 12.5). Secrets inside the echoed object are redacted.
func TestMissingEntriesEchoInput(t *testing.T) {
	e := setup(t)
	key := e.tenant("acme")
	tests := []struct {
		name, method, path, token string
		body                      any
		loc                       []any
		input                     any
	}{
		{"missing body", "POST", "/commands/add-messages", key, nil, []any{"body"}, nil},
		{"missing messages", "POST", "/commands/add-messages", key, `{"default_priority":1}`,
			[]any{"body", "messages"}, map[string]any{"default_priority": 1.0}},
		{"missing subject", "POST", "/commands/add-messages", key,
			`{"messages":[{"id":"a","account_id":"s","from":"a@example.com","to":"b@example.com"}]}`,
			[]any{"body", "messages", 0.0, "subject"},
			map[string]any{"id": "a", "account_id": "s", "from": "a@example.com", "to": "b@example.com"}},
		{"missing query parameter", "GET", "/accounts", adminToken, nil, []any{"query", "tenant_id"}, nil},
		{"missing account host, password redacted", "POST", "/account", key,
			`{"id":"new","port":25,"password":"pw-secret"}`, []any{"body", "host"},
			map[string]any{"id": "new", "port": 25.0, "password": "***"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.must(422, tt.method, tt.path, tt.token, tt.body)
			var b struct {
				Detail []map[string]json.RawMessage `json:"detail"`
			}
			if err := json.Unmarshal(r.Body, &b); err != nil {
				t.Fatalf("body %s: %v", r.Body, err)
			}
			for _, is := range b.Detail {
				var loc []any
				_ = json.Unmarshal(is["loc"], &loc)
				if !reflect.DeepEqual(loc, tt.loc) {
					continue
				}
				raw, ok := is["input"]
				if !ok {
					t.Fatalf("entry without input: %s", r.Body)
				}
				var got any
				if err := json.Unmarshal(raw, &got); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tt.input) {
					t.Errorf("input %s, want %v", raw, tt.input)
				}
				return
			}
			t.Fatalf("no entry at %v: %s", tt.loc, r.Body)
		})
	}
}
