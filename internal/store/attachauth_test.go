package store

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestRewriteAttachmentAuth(t *testing.T) {
	strip := func(a *ClientAuth) error { a.Token, a.Password = "", ""; return nil }
	cases := []struct {
		name, in, want string
	}{
		{"no attachments", `{"id":"m","subject":"auth"}`, `{"id":"m","subject":"auth"}`},
		{"no auth", `{"attachments":[{"filename":"a"}],"id":"m"}`, `{"attachments":[{"filename":"a"}],"id":"m"}`},
		{"bearer", `{"id":"m","x":{"k":1},"attachments":[{"filename":"a","auth":{"method":"bearer","token":"s3cret"}},{"filename":"b"}]}`,
			`{"attachments":[{"auth":{"method":"bearer"},"filename":"a"},{"filename":"b"}],"id":"m","x":{"k":1}}`},
		{"basic keeps user", `{"attachments":[{"auth":{"method":"basic","user":"u","password":"pw"}}]}`,
			`{"attachments":[{"auth":{"method":"basic","user":"u"}}]}`},
		{"null auth", `{"attachments":[{"auth":null}]}`, `{"attachments":[{"auth":null}]}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := RewriteAttachmentAuth(json.RawMessage(tc.in), strip)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("got %s\nwant %s", got, tc.want)
			}
		})
	}
	if _, _, err := RewriteAttachmentAuth(json.RawMessage(`{"attachments":"auth"}`), strip); err == nil || !strings.Contains(err.Error(), "attachments") {
		t.Fatalf("malformed attachments: err %v, want a decode error", err)
	}
}
