package attach

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"testing"

	"github.com/mailproxy/mailproxy/internal/store"
)

func TestCleanFilename(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, clean, md5 string }{
		{"report_{MD5:abc}.pdf", "report.pdf", "abc"},
		{"report.pdf", "report.pdf", ""},
		{"{MD5:ABCDEF0123}_invoice.pdf", "invoice.pdf", "abcdef0123"},
		{"a__b___{MD5:00}__c.txt", "a_b_c.txt", "00"},
		{"_lead_and_trail_", "lead_and_trail", ""},
		{"x_{MD5:zz}.pdf", "x_{MD5:zz}.pdf", ""}, // not hex: not a marker
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			clean, sum := CleanFilename(tc.in)
			if clean != tc.clean || sum != tc.md5 {
				t.Fatalf("CleanFilename(%q) = %q, %q; want %q, %q", tc.in, clean, sum, tc.clean, tc.md5)
			}
		})
	}
}

func TestResolveMimeType(t *testing.T) {
	t.Parallel()
	tests := []struct{ declared, filename, want string }{
		{"application/x-custom", "a.pdf", "application/x-custom"},
		{"pdf", "a.pdf", "application/pdf"}, // no slash: guessed
		{"", "photo.PNG", "image/png"},
		{"", "sheet.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
		{"", "notes.txt", "text/plain"},
		{"", "README", "application/octet-stream"},
		{"", "blob.zzzunknown", "application/octet-stream"},
	}
	for _, tc := range tests {
		t.Run(tc.filename, func(t *testing.T) {
			t.Parallel()
			if got := resolveMimeType(tc.declared, tc.filename); got != tc.want {
				t.Fatalf("resolveMimeType(%q, %q) = %q, want %q", tc.declared, tc.filename, got, tc.want)
			}
		})
	}
}

func TestResolveSource(t *testing.T) {
	t.Parallel()
	tests := []struct {
		path, mode string
		want       source
		wantErr    string
	}{
		{"base64:SGVsbG8=", "", source{mode: ModeBase64}, ""},
		{"http://example.test/a.pdf", "", source{mode: ModeHTTPURL, url: "http://example.test/a.pdf"}, ""},
		{"HTTPS://example.test/a.pdf", "", source{mode: ModeHTTPURL, url: "HTTPS://example.test/a.pdf"}, ""},
		{"/srv/files/a.pdf", "", source{mode: ModeFilesystem}, ""},
		{"docs/42", "", source{mode: ModeEndpoint}, ""},
		{"SGVsbG8=", "", source{mode: ModeEndpoint}, ""}, // no prefix: not detected as base64
		{"[https://files.test/get]", "", source{mode: ModeHTTPURL, url: "https://files.test/get"}, ""},
		{"[https://files.test/get]doc=42", "", source{mode: ModeHTTPURL, url: "https://files.test/get", post: true, params: "doc=42"}, ""},
		{"[no closing bracket", "", source{mode: ModeEndpoint}, ""},
		{"/looks/like/a/file", "endpoint", source{mode: ModeEndpoint}, ""}, // explicit mode skips detection
		{"SGVsbG8=", "BASE64", source{mode: ModeBase64}, ""},
		{"x", "ftp", source{}, "Unknown fetch_mode: ftp"},
	}
	for _, tc := range tests {
		t.Run(tc.mode+" "+tc.path, func(t *testing.T) {
			t.Parallel()
			got, err := resolveSource(store.Attachment{StoragePath: tc.path, FetchMode: tc.mode})
			if tc.wantErr != "" {
				if err == nil || err.Reason != tc.wantErr || err.Temporary {
					t.Fatalf("resolveSource error = %v, want permanent %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("resolveSource = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestDecodeBase64(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		want     string
		wantErr  string
	}{
		{"prefix and padding", "base64:SGVsbG8=", "Hello", ""},
		{"missing padding", "SGVsbG8", "Hello", ""},
		{"two pads missing", "SGk", "Hi", ""},
		{"surrounding whitespace", "  base64:SGVsbG8=\n", "Hello", ""},
		{"line breaks", "SGVs\r\nbG8=", "Hello", ""},
		{"url alphabet refused", "base64:-_-_", "", "Invalid base64 content: illegal base64 data at input byte 0"},
		{"inner space refused", "SGVs bG8=", "", "Invalid base64 content: illegal base64 data at input byte 4"},
		{"impossible length", "SGVsb", "", "Invalid base64 content: illegal base64 data at input byte 5"},
		{"too large", base64.StdEncoding.EncodeToString(make([]byte, 2000)), "", "Attachment 'a.bin' (0.0 MB) exceeds limit (0.0009765625 MB)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := decodeBase64(tc.in, "a.bin", 1024)
			if tc.wantErr != "" {
				if err == nil || err.Reason != tc.wantErr || err.Temporary {
					t.Fatalf("decodeBase64(%q) error = %v, want permanent %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("decodeBase64(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func md5Of(b []byte) string {
	sum := md5.Sum(b)
	return hex.EncodeToString(sum[:])
}
