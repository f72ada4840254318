package store

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestSplitAddresses(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want []string
	}{
		{"a@x.y", []string{"a@x.y"}},
		{" a@x.y , b@x.y ,, ", []string{"a@x.y", "b@x.y"}},
		{`"Doe, John" <j@x.y>, k@x.y`, []string{`"Doe, John" <j@x.y>`, "k@x.y"}},
		{`"say \"hi, there\"" <q@x.y>`, []string{`"say \"hi, there\"" <q@x.y>`}},
		{" , ", nil},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			if got := SplitAddresses(tc.in); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("SplitAddresses(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestPayloadKeepsRecipientForm: a recipient field given as text is stored
// and read back as that text, a list as a list; the addresses are the same.
func TestPayloadKeepsRecipientForm(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		in   Payload
		json string
	}{
		{"lists", Payload{ID: "a", To: []string{"x@y.z"}, Cc: []string{"c@y.z"}},
			`{"id":"a","tenant_id":"","account_id":"","from":"","to":["x@y.z"],"cc":["c@y.z"],"subject":"","body":"","priority":0}`},
		{"text", Payload{ID: "a", To: []string{"x@y.z", "w@y.z"}, ToText: "x@y.z, w@y.z", Bcc: []string{"b@y.z"}, BccText: "b@y.z"},
			`{"id":"a","tenant_id":"","account_id":"","from":"","subject":"","body":"","priority":0,"to":"x@y.z, w@y.z","bcc":"b@y.z"}`},
		{"text to, list cc", Payload{ID: "a", To: []string{"x@y.z"}, ToText: "x@y.z", Cc: []string{"c@y.z"}},
			`{"id":"a","tenant_id":"","account_id":"","from":"","subject":"","body":"","priority":0,"to":"x@y.z","cc":["c@y.z"]}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			raw, err := json.Marshal(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(raw) != tc.json {
				t.Errorf("stored %s\nwant   %s", raw, tc.json)
			}
			back, err := DecodePayload(raw)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, tc.in) {
				t.Errorf("read back %+v, want %+v", back, tc.in)
			}
		})
	}
}
