package api

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestSummarizeJSON(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 1000)
	cases := []struct {
		name, in, want string
		budget         int
	}{
		{"scalars", `{"a":1,"b":true,"c":null,"d":"s","e":[1,2.5,"x"]}`, `{"a":1,"b":true,"c":null,"d":"s","e":[1,2.5,"x"]}`, 1000},
		{"secrets", `{"password":"p","nested":{"api_key":{"x":1},"auth":{"token":"t","method":"bearer"}},"token":"keep"}`,
			`{"password":"***","nested":{"api_key":"***","auth":{"token":"***","method":"bearer"}},"token":"keep"}`, 1000},
		{"attachment auth", `{"messages":[{"attachments":[{"auth":{"method":"basic","password":"p","token":"t"}}]}]}`,
			`{"messages":[{"attachments":[{"auth":{"method":"basic","password":"***","token":"***"}}]}]}`, 1000},
		{"null secret stays null", `{"password":null}`, `{"password":null}`, 1000},
		{"long string cut", `{"body":"` + long + `"}`, `{"body":"` + long[:logStringMax] + `…"}`, 1000},
		{"budget closes containers", `{"messages":[{"id":"a"},{"id":"b"},{"id":"c"}],"more":1}`, `{"messages":[{"id":"a"}]}`, 20},
		{"top-level array", `[1,2,3]`, `[1,2,3]`, 100},
		{"secret container skipped", `{"password":["a",{"b":"]"}],"x" : 1}`, `{"password":"***","x":1}`, 100},
		{"spaces and escapes", "{ \"a\" : \"q\\\"x\" , \"b\":[ true ,false, null ] }", `{"a":"q\"x","b":[true,false,null]}`, 100},
	}
	for _, long := range []string{strings.Repeat(`é\"\u00e9`, 200), strings.Repeat(`\\`, 300), strings.Repeat("€", 200)} {
		got := summarizeJSON([]byte(`{"body":"`+long+`"}`), 1000)
		if !json.Valid(got) || len(got) > logStringMax+20 {
			t.Errorf("cut string %.40s…: %d bytes, valid %v: %s", long, len(got), json.Valid(got), got)
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := summarizeJSON([]byte(tc.in), tc.budget)
			if !json.Valid(got) {
				t.Fatalf("not valid JSON: %s", got)
			}
			if string(got) != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestLogBody(t *testing.T) {
	t.Parallel()
	if whole, facts := logBody([]byte(`{"id":"x","password":`)); whole != nil || facts["body_size"] != 21 || len(facts["body_sha256"].(string)) != 64 || len(facts) != 2 {
		t.Fatalf("malformed body: %s %v, want only its size and hash", whole, facts)
	}
	if whole, facts := logBody([]byte(` {"a":1} `)); string(whole) != `{"a":1}` || facts != nil {
		t.Fatalf("small body: %s %v", whole, facts)
	}
	big := `{"messages":[` + strings.Repeat(`{"id":"m","body":"`+strings.Repeat("b", 5000)+`"},`, 100) + `{"id":"last"}]}`
	whole, facts := logBody([]byte(big))
	if whole != nil || facts["body_size"] != len(big) {
		t.Fatalf("large body: whole %d bytes, facts %v", len(whole), facts["body_size"])
	}
	if s := facts["body_summary"].(json.RawMessage); len(s) > logSummaryMax+2*logStringMax || !json.Valid(s) {
		t.Fatalf("summary of %d bytes (valid %v), want at most about %d", len(s), json.Valid(s), logSummaryMax)
	}
}
