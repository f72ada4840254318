package driver

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mailproxy/mailproxy/internal/store"
)

func TestNormalizeSuspended(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		codes []string
		want  []string
	}{
		{"nil is an empty list", nil, []string{}},
		{"empty stays empty", []string{}, []string{}},
		{"codes as given", []string{"b1", "b2"}, []string{"b1", "b2"}},
		{"all alone", []string{store.SuspendAll}, []string{store.SuspendAll}},
		{"all beats batch codes", []string{store.SuspendAll, "b1", "b2"}, []string{store.SuspendAll}},
		{"all anywhere in the list", []string{"b1", store.SuspendAll}, []string{store.SuspendAll}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := NormalizeSuspended(tt.codes)
			if got == nil {
				t.Fatalf("NormalizeSuspended(%#v) = nil, want a non-nil list", tt.codes)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("NormalizeSuspended(%#v) (-want +got):\n%s", tt.codes, diff)
			}
		})
	}
}

func TestSuspensionBatch(t *testing.T) {
	t.Parallel()
	str := func(s string) *string { return &s }
	tests := []struct {
		name string
		code *string
		want *string
	}{
		{"nil is the whole tenant", nil, nil},
		{"empty is the whole tenant", str(""), nil},
		{"star is the whole tenant", str(store.SuspendAll), nil},
		{"a batch code is that batch", str("spring"), str("spring")},
		{"a code containing a star is a batch", str("a*"), str("a*")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, SuspensionBatch(tt.code)); diff != "" {
				t.Errorf("SuspensionBatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestClientAuthRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		auth *store.ClientAuth
		text string // "" = nil
	}{
		{"none", nil, ""},
		{"bearer", &store.ClientAuth{Method: "bearer", Token: "tok"}, `{"method":"bearer","token":"tok"}`},
		{"basic", &store.ClientAuth{Method: "basic", User: "u", Password: "p"}, `{"method":"basic","user":"u","password":"p"}`},
		{"method only", &store.ClientAuth{Method: "none"}, `{"method":"none"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			text, err := EncodeClientAuth(tt.auth)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.text == "" && text != nil:
				t.Fatalf("EncodeClientAuth = %q, want nil", *text)
			case tt.text != "" && (text == nil || *text != tt.text):
				t.Fatalf("EncodeClientAuth = %v, want %s", text, tt.text)
			}
			back, err := DecodeClientAuth(text)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.auth, back); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeClientAuthRejectsBadJSON(t *testing.T) {
	t.Parallel()
	for _, text := range []string{"", "{", `"bearer"`, `{"method":1}`} {
		auth, err := DecodeClientAuth(&text)
		if err == nil || !strings.Contains(err.Error(), "decode client_auth") {
			t.Errorf("DecodeClientAuth(%q) = %+v, %v; want a decode client_auth error", text, auth, err)
		}
	}
}

func TestDefaultInstance(t *testing.T) {
	t.Parallel()
	want := store.Instance{Name: "mail-proxy", Edition: "ee", BounceIMAPPort: 993, BounceIMAPFolder: "INBOX",
		BouncePollInterval: 60}
	if diff := cmp.Diff(want, DefaultInstance()); diff != "" {
		t.Errorf("DefaultInstance (-want +got):\n%s", diff)
	}
}
