package api

import (
	"encoding/json"
	"testing"
)

func TestValidAddress(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]bool{
		"a@example.com": true, "Alice <a@example.com>": true, `"A, B" <ab@example.com>`: true,
		"user@localhost": true, "a": false, "a@": false, "@example.com": false, "a@b@c": false,
		"<>": false, "Alice": false,
	} {
		if got := validAddress(in); got != want {
			t.Errorf("validAddress(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestPriority(t *testing.T) {
	t.Parallel()
	cases := []struct {
		raw     string
		want    int
		errType string
	}{
		{`0`, 0, ""}, {`3`, 3, ""}, {`7`, 3, ""}, {`-1`, 0, ""}, {`2.0`, 2, ""},
		{`"immediate"`, 0, ""}, {`"low"`, 3, ""}, {`"1"`, 1, ""}, {`"9"`, 3, ""},
		{`"LOW"`, 0, "literal_error"}, {`"urgent"`, 0, "literal_error"}, {`1.5`, 0, "int_from_float"},
		{`true`, 0, "int_type"}, {`[1]`, 0, "int_type"},
	}
	for _, tc := range cases {
		t.Run(tc.raw, func(t *testing.T) {
			t.Parallel()
			var is issues
			got, ok := parsePriority(json.RawMessage(tc.raw), []any{"body", "priority"}, &is)
			switch {
			case tc.errType == "" && (!ok || got != tc.want):
				t.Errorf("priority %s = %d (ok %v), want %d; %v", tc.raw, got, ok, tc.want, is.list)
			case tc.errType != "" && (ok || len(is.list) != 1 || is.list[0].Type != tc.errType):
				t.Errorf("priority %s: %v, want one %s", tc.raw, is.list, tc.errType)
			}
		})
	}
	for in, want := range map[string]int{"": 2, "2": 2, "low": 3, "HIGH": 1, " 0 ": 0, "9": 3} {
		if got, err := parseDefaultPriority(in); err != nil || got != want {
			t.Errorf("parseDefaultPriority(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if _, err := parseDefaultPriority("soon"); err == nil {
		t.Error("parseDefaultPriority accepted soon")
	}
}

func TestRedactJSON(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{`{"id":"a","password":"p","nested":{"imap_password":"q"}}`, `{"id":"a","nested":{"imap_password":"***"},"password":"***"}`},
		{`{"client_auth":{"method":"bearer","token":"t"},"token":"kept"}`, `{"client_auth":{"method":"bearer","token":"***"},"token":"kept"}`},
		{`{"messages":[{"attachments":[{"auth":{"token":"t","password":"p"}}]}]}`, `{"messages":[{"attachments":[{"auth":{"password":"***","token":"***"}}]}]}`},
		{`{"api_key":"k","signing_secret":"s","api_token":"a","n":1.50}`, `{"api_key":"***","api_token":"***","n":1.50,"signing_secret":"***"}`},
		{`{"password":null}`, `{"password":null}`},
		{`{"id":"plain"}`, `{"id":"plain"}`},
	}
	for _, tc := range cases {
		if got := string(redactJSON(json.RawMessage(tc.in))); got != tc.want {
			t.Errorf("redactJSON(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestJSONInvalidOffset(t *testing.T) {
	t.Parallel()
	for body, want := range map[string]float64{`{"a": }`: 6, `{"a": `: 6, `{`: 1, `{"a":1,}`: 7, `x`: 0} {
		_, aerr := parseJSONBody([]byte(body), false)
		if aerr == nil {
			t.Fatalf("%q parsed", body)
		}
		list := aerr.detail.([]issue)
		if list[0].Type != "json_invalid" || list[0].Loc[1] != toInt64(want) {
			t.Errorf("%q: %v, want json_invalid at %v", body, list[0], want)
		}
	}
}

func toInt64(f float64) any { return int64(f) }

func TestIdempotencyKeyFormat(t *testing.T) {
	t.Parallel()
	for k, want := range map[string]bool{"a": true, "order-42 retry": true, "": false, "caf\u00e9": false, "a\tb": false} {
		if got := validIdempotencyKey(k); got != want {
			t.Errorf("validIdempotencyKey(%q) = %v", k, got)
		}
	}
}
