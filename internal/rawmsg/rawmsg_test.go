package rawmsg

import (
	"errors"
	"slices"
	"testing"
)

func TestParseKeepsBytes(t *testing.T) {
	for _, tc := range []struct {
		name, in string
	}{
		{"crlf", "From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n"},
		{"lf", "From: a@example.com\nSubject: hi\n\nbody\n"},
		{"folded", "From: a@example.com\r\nSubject: a\r\n  long\r\n\tvalue\r\n\r\nbody"},
		{"header only", "From: a@example.com\r\nSubject: x\r\n"},
		{"8bit body", "From: a@example.com\r\n\r\n\xff\xfe binary\r\n.\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if got := string(m.Bytes()); got != tc.in {
				t.Fatalf("round trip:\n%q\nwant\n%q", got, tc.in)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	for _, in := range []string{"", "\r\nbody", "just text\r\n", " From: a\r\n", "From: a\r\nnot a field\r\n\r\n"} {
		if _, err := Parse([]byte(in)); err == nil {
			t.Errorf("Parse(%q) = nil error", in)
		}
	}
	if _, err := Parse([]byte("hello world\r\n")); !errors.Is(err, ErrNoHeader) {
		t.Errorf("err = %v, want ErrNoHeader", err)
	}
}

func TestEdits(t *testing.T) {
	in := "From: A <a@example.com>\r\nBcc: x@example.com,\r\n y@example.com\r\nX-Mail-Proxy-Id: id-1\r\n" +
		"x-mail-proxy-priority: high\r\nSubject: s\r\n\r\nbody\r\n"
	m, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	env := m.HeaderEnvelope()
	if env.From != `"A" <a@example.com>` || !slices.Equal(env.Bcc, []string{"<x@example.com>", "<y@example.com>"}) {
		t.Fatalf("envelope %+v", env)
	}
	c := m.TakeControl()
	if c.ID != "id-1" || c.Priority != "high" || c.DeferredTS != "" {
		t.Fatalf("control %+v", c)
	}
	if got := m.Remove("BCC"); len(got) != 1 || got[0] != "x@example.com, y@example.com" {
		t.Fatalf("removed %q", got)
	}
	if err := m.Prepend("Date", "Mon, 1 Jan 2026 00:00:00 +0000"); err != nil {
		t.Fatal(err)
	}
	want := "Date: Mon, 1 Jan 2026 00:00:00 +0000\r\nFrom: A <a@example.com>\r\nSubject: s\r\n\r\nbody\r\n"
	if got := string(m.Bytes()); got != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
	if err := m.Prepend("Bad", "a\r\nInjected: x"); err == nil {
		t.Fatal("line break accepted")
	}
}

func TestHeaderEnvelopeInvalid(t *testing.T) {
	m, err := Parse([]byte("From: a@example.com\r\nTo: not an address\r\n\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if env := m.HeaderEnvelope(); env.InvalidRcpt != "not an address" || env.InvalidFrom != "" || len(env.To) != 0 {
		t.Fatalf("envelope %+v", env)
	}
}
