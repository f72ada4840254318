package attach

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailproxy/mailproxy/internal/store"
)

func FuzzCleanFilename(f *testing.F) {
	for _, s := range []string{"report_{MD5:abc}.pdf", "{MD5:}", "__{MD5:0}__.x", "a_{MD5:ff}{MD5:ee}_.b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		clean, sum := CleanFilename(in)
		if md5Marker.MatchString(clean) && sum != "" {
			// Removal may expose a new marker ("{MD5:{MD5:a}b}"), never the same one twice.
			if again, _ := CleanFilename(clean); again == clean {
				t.Fatalf("marker left in %q", clean)
			}
		}
		if strings.HasPrefix(clean, "_") || strings.HasSuffix(clean, "_") || strings.Contains(clean, "__") {
			t.Fatalf("CleanFilename(%q) = %q keeps stray underscores", in, clean)
		}
		if sum != strings.ToLower(sum) {
			t.Fatalf("marker MD5 %q not lowercased", sum)
		}
	})
}

func FuzzDecodeBase64(f *testing.F) {
	for _, s := range []string{"base64:SGVsbG8=", "SGVsbG8", " SGk \n", "====", "base64:", "-_", "SGVs\r\nbG8="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		const limit = 1 << 10
		data, err := decodeBase64(in, "f.bin", limit)
		if err != nil {
			if err.Temporary {
				t.Fatalf("decodeBase64(%q): temporary error %q", in, err.Reason)
			}
			return
		}
		if len(data) > limit {
			t.Fatalf("decodeBase64 returned %d bytes over the limit", len(data))
		}
	})
}

func FuzzResolveSource(f *testing.F) {
	for _, s := range []string{"[http://a/b]c", "[", "[]", "base64:x", "http://x", "/etc", "rel", "[x]"} {
		f.Add(s, "")
	}
	f.Add("x", "http_url")
	f.Fuzz(func(t *testing.T, path, mode string) {
		src, err := resolveSource(store.Attachment{StoragePath: path, FetchMode: mode})
		if err != nil {
			if err.Temporary || !strings.HasPrefix(err.Reason, "Unknown fetch_mode") {
				t.Fatalf("resolveSource(%q, %q): %+v", path, mode, err)
			}
			return
		}
		switch src.mode {
		case ModeBase64, ModeHTTPURL, ModeFilesystem, ModeEndpoint:
		default:
			t.Fatalf("resolveSource(%q, %q) = unknown mode %q", path, mode, src.mode)
		}
		if src.post && src.mode != ModeHTTPURL {
			t.Fatalf("POST outside http_url: %+v", src)
		}
	})
}

// FuzzRelativePath: a path accepted by the lexical check always lies inside
// the base directory.
func FuzzRelativePath(f *testing.F) {
	for _, s := range []string{"a/b", "../x", "/base/a", "/base/../etc", "a/../../b", ".", "/", "a\x00b", "/base"} {
		f.Add(s)
	}
	root := &fileRoot{dir: "/base", real: "/real/base"}
	f.Fuzz(func(t *testing.T, in string) {
		rel, ok := root.relative(in)
		if !ok {
			return
		}
		joined := filepath.Join(root.dir, rel)
		if joined != root.dir && !strings.HasPrefix(joined, root.dir+string(filepath.Separator)) {
			t.Fatalf("relative(%q) = %q escapes to %q", in, rel, joined)
		}
	})
}
