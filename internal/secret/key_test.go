package secret

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailproxy/mailproxy/internal/config"
)

func TestLoadKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	envKey := testKey(0x11)
	fileKey := testKey(0x22)
	rawWithWhitespace := append(append([]byte("  \n"), testKey('k')...), "\r\n"...)
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rawFile := write("raw", rawWithWhitespace)
	b64File := write("b64", []byte(base64.StdEncoding.EncodeToString(fileKey)+"\n"))
	shortFile := write("short", []byte("0123456789"))
	short64File := write("short64", []byte(base64.StdEncoding.EncodeToString(testKey(1)[:16])))
	emptyFile := write("empty", []byte("\n"))
	missing := filepath.Join(dir, "missing")

	// defaultAt reads DefaultKeyFile from path instead (the real default path
	// belongs to the machine); every other path is read as it is.
	defaultAt := func(path string) func(string) ([]byte, error) {
		return func(p string) ([]byte, error) {
			if p == DefaultKeyFile {
				p = path
			}
			return os.ReadFile(p)
		}
	}

	for _, tc := range []struct {
		name       string
		envKey     string
		keyFile    string
		readFile   func(string) ([]byte, error)
		want       []byte
		configured bool
		errNames   string // the variable an error must name; "" = no error
	}{
		{name: "env", envKey: base64.StdEncoding.EncodeToString(envKey), keyFile: b64File, want: envKey, configured: true},
		{name: "env with surrounding space", envKey: " " + base64.StdEncoding.EncodeToString(envKey) + "\n", want: envKey, configured: true},
		{name: "env not base64", envKey: "not base64!", keyFile: b64File, errNames: "MAIL_PROXY_ENCRYPTION_KEY"},
		{name: "env 16 bytes", envKey: base64.StdEncoding.EncodeToString(envKey[:16]), errNames: "MAIL_PROXY_ENCRYPTION_KEY"},
		{name: "env raw 32 characters", envKey: string(testKey('k')), errNames: "MAIL_PROXY_ENCRYPTION_KEY"},
		{name: "raw file, whitespace trimmed", keyFile: rawFile, want: testKey('k'), configured: true},
		{name: "base64 file", keyFile: b64File, want: fileKey, configured: true},
		{name: "file of 10 bytes", keyFile: shortFile, errNames: "GMP_ENCRYPTION_KEY_FILE"},
		{name: "file with base64 of 16 bytes", keyFile: short64File, errNames: "GMP_ENCRYPTION_KEY_FILE"},
		{name: "empty file", keyFile: emptyFile, errNames: "GMP_ENCRYPTION_KEY_FILE"},
		{name: "chosen file missing", keyFile: missing, errNames: "GMP_ENCRYPTION_KEY_FILE"},
		{name: "default file missing", keyFile: DefaultKeyFile, readFile: defaultAt(missing)},
		{name: "default file present", keyFile: DefaultKeyFile, readFile: defaultAt(b64File), want: fileKey, configured: true},
		{name: "default file invalid", keyFile: DefaultKeyFile, readFile: defaultAt(shortFile), errNames: "GMP_ENCRYPTION_KEY_FILE"},
		{name: "nothing set", keyFile: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			key, configured, err := LoadKey(KeySource{Key: tc.envKey, File: tc.keyFile}, tc.readFile)
			if tc.errNames != "" {
				if err == nil {
					t.Fatalf("LoadKey accepted it: key %d bytes", len(key))
				}
				if !strings.Contains(err.Error(), tc.errNames) {
					t.Fatalf("error %q does not name %s", err, tc.errNames)
				}
				for _, secret := range []string{tc.envKey, string(testKey('k')), base64.StdEncoding.EncodeToString(envKey[:16])} {
					if len(strings.TrimSpace(secret)) > 8 && strings.Contains(err.Error(), strings.TrimSpace(secret)) {
						t.Fatalf("error %q contains key material", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if configured != tc.configured || !bytes.Equal(key, tc.want) {
				t.Fatalf("LoadKey = %x, configured %v; want %x, %v", key, configured, tc.want, tc.configured)
			}
		})
	}
}

// TestLoadKeyFromLoadedConfig goes through config.Load, as the CLI does, so
// the variable names and the default path are the contract's.
func TestLoadKeyFromLoadedConfig(t *testing.T) {
	t.Parallel()
	key := testKey(0x33)
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(key)), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"GMP_ENCRYPTION_KEY_FILE": path}
	cfg, _, err := config.Load(func(k string) string { return env[k] }, "")
	if err != nil {
		t.Fatal(err)
	}
	got, configured, err := LoadKey(KeySource{Key: cfg.EncryptionKey, File: cfg.EncryptionKeyFile}, nil)
	if err != nil || !configured || !bytes.Equal(got, key) {
		t.Fatalf("LoadKey = %x, %v, %v", got, configured, err)
	}

	cfg, _, err = config.Load(func(string) string { return "" }, "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.EncryptionKeyFile != DefaultKeyFile {
		t.Fatalf("GMP_ENCRYPTION_KEY_FILE default is %q, DefaultKeyFile %q", cfg.EncryptionKeyFile, DefaultKeyFile)
	}
}

func TestDecodeKeyFileKeepsRawBytes(t *testing.T) {
	t.Parallel()
	raw := bytes.Repeat([]byte{0x42}, KeySize)
	edgy := append([]byte{'\n'}, bytes.Repeat([]byte{0x42}, KeySize-2)...)
	edgy = append(edgy, ' ') // random key bytes may look like whitespace at either end
	for _, tc := range []struct {
		name string
		file []byte
		want []byte
	}{
		{"raw", raw, raw},
		{"raw with whitespace bytes at the ends", edgy, edgy},
		{"base64 with a newline", []byte(base64.StdEncoding.EncodeToString(raw) + "\n"), raw},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeKeyFile(tc.file)
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("decodeKeyFile = %x, %v; want %x", got, err, tc.want)
			}
		})
	}
}
