package secret

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

func newTestCipher(t *testing.T, b byte) *Cipher {
	t.Helper()
	c, err := NewCipher(testKey(b))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	c := newTestCipher(t, 1)
	for _, plain := range []string{
		"x",
		"hunter2",
		"pässwörd ✉ 密码",
		"ENC:looks-encrypted-but-is-a-password",
		strings.Repeat("long secret ", 1000),
		"whsec_" + base64.StdEncoding.EncodeToString(testKey(9)),
	} {
		t.Run(fmt.Sprintf("%.20s", plain), func(t *testing.T) {
			t.Parallel()
			sealed, err := c.Encrypt(plain)
			if err != nil {
				t.Fatal(err)
			}
			if !IsEncrypted(sealed) {
				t.Fatalf("sealed value %q lacks the ENC: prefix", sealed)
			}
			if len(plain) >= 6 && strings.Contains(sealed, plain) { // shorter ones may occur in base64 by chance
				t.Fatal("sealed value contains the plaintext")
			}
			got, err := c.Decrypt(sealed)
			if err != nil {
				t.Fatal(err)
			}
			if got != plain {
				t.Fatalf("Decrypt(Encrypt(%q)) = %q", plain, got)
			}
		})
	}
}

func TestEmptyStaysEmpty(t *testing.T) {
	t.Parallel()
	c := newTestCipher(t, 1)
	sealed, err := c.Encrypt("")
	if err != nil || sealed != "" {
		t.Fatalf(`Encrypt("") = %q, %v; want "" (no secret)`, sealed, err)
	}
}

// TestFormat checks the stored layout: ENC: + standard padded base64 of a
// 12-byte nonce, the ciphertext (as long as the plaintext) and a 16-byte tag,
// with a fresh nonce each time.
func TestFormat(t *testing.T) {
	t.Parallel()
	key := testKey(7)
	c, err := NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, plain := range []string{"a", "hunter2", strings.Repeat("z", 100)} {
		t.Run(plain[:1], func(t *testing.T) {
			t.Parallel()
			seen := map[string]bool{}
			for range 3 {
				sealed, err := c.Encrypt(plain)
				if err != nil {
					t.Fatal(err)
				}
				raw, err := base64.StdEncoding.Strict().DecodeString(strings.TrimPrefix(sealed, Prefix))
				if err != nil {
					t.Fatalf("not standard base64 after ENC:: %v", err)
				}
				if want := 12 + len(plain) + 16; len(raw) != want {
					t.Fatalf("decoded length %d, want nonce 12 + %d + tag 16 = %d", len(raw), len(plain), want)
				}
				// Open it independently of the package.
				block, _ := aes.NewCipher(key)
				gcm, _ := cipher.NewGCM(block)
				got, err := gcm.Open(nil, raw[:12], raw[12:], nil)
				if err != nil || string(got) != plain {
					t.Fatalf("independent AES-GCM open: %q, %v", got, err)
				}
				nonce := string(raw[:12])
				if seen[nonce] {
					t.Fatal("nonce reused")
				}
				seen[nonce] = true
			}
		})
	}
}

// TestDecryptsForeignValues decrypts values sealed outside the package: the
// published AES-256-GCM test case 15 of the GCM specification (96-bit IV,
// no additional data) and a value sealed here with crypto/cipher directly.
func TestDecryptsForeignValues(t *testing.T) {
	t.Parallel()
	unhex := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	katKey := unhex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
	katIV := unhex("cafebabefacedbaddecaf888")
	katPlain := unhex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255")
	katCipher := unhex("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad")
	katTag := unhex("b094dac5d93471bdec1a502270e3cc6c")

	ownKey := testKey(3)
	ownNonce := []byte("twelve bytes")
	block, _ := aes.NewCipher(ownKey)
	gcm, _ := cipher.NewGCM(block)
	ownSealed := gcm.Seal(append([]byte(nil), ownNonce...), ownNonce, []byte("smtp-password"), nil)

	for _, tc := range []struct {
		name   string
		key    []byte
		stored string
		want   string
	}{
		{"GCM spec test case 15", katKey,
			Prefix + base64.StdEncoding.EncodeToString(bytes.Join([][]byte{katIV, katCipher, katTag}, nil)), string(katPlain)},
		{"crypto/cipher", ownKey, Prefix + base64.StdEncoding.EncodeToString(ownSealed), "smtp-password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := NewCipher(tc.key)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Decrypt(tc.stored)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("Decrypt = %x, want %x", got, tc.want)
			}
		})
	}
}

func TestDecryptRejects(t *testing.T) {
	t.Parallel()
	c := newTestCipher(t, 1)
	sealed, err := c.Encrypt("hunter2")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(sealed[len(Prefix):])
	flip := func(i int) string {
		b := bytes.Clone(raw)
		b[i] ^= 0x01
		return Prefix + base64.StdEncoding.EncodeToString(b)
	}
	otherKey, err := newTestCipher(t, 2).Encrypt("hunter2")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, stored string }{
		{"nonce bit flipped", flip(0)},
		{"ciphertext bit flipped", flip(12)},
		{"tag bit flipped", flip(len(raw) - 1)},
		{"truncated tag", Prefix + base64.StdEncoding.EncodeToString(raw[:len(raw)-1])},
		{"shorter than nonce and tag", Prefix + base64.StdEncoding.EncodeToString(raw[:27])},
		{"empty payload", Prefix},
		{"not base64", Prefix + "!!!not base64!!!"},
		{"sealed under another key", otherKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := c.Decrypt(tc.stored)
			if !errors.Is(err, ErrDecrypt) {
				t.Fatalf("Decrypt = %q, %v; want ErrDecrypt", got, err)
			}
			if got != "" {
				t.Fatalf("a failed decryption returned %q", got)
			}
		})
	}
}

func TestPlaintextPassesThrough(t *testing.T) {
	t.Parallel()
	c := newTestCipher(t, 1)
	for _, v := range []string{"", "hunter2", "enc:lowercase is not the prefix", " ENC:leading space"} {
		got, err := c.Decrypt(v)
		if err != nil || got != v {
			t.Errorf("Decrypt(%q) = %q, %v; want it unchanged", v, got, err)
		}
	}
}

func TestNewCipherRejectsKeyLength(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 16, 24, 31, 33, 64} {
		if _, err := NewCipher(make([]byte, n)); err == nil {
			t.Errorf("NewCipher accepted a %d-byte key", n)
		}
	}
}

func TestCipherPrintsRedacted(t *testing.T) {
	t.Parallel()
	c := newTestCipher(t, 0xAB)
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "cipher", c)
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s", c, c, c, c), logs.String()} {
		if !strings.Contains(s, "[redacted]") || strings.Contains(strings.ToLower(s), "abab") {
			t.Errorf("cipher printed as %q", s)
		}
	}
}

func BenchmarkEncrypt(b *testing.B) {
	c, _ := NewCipher(testKey(1))
	for b.Loop() {
		if _, err := c.Encrypt("a typical smtp password"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecrypt(b *testing.B) {
	c, _ := NewCipher(testKey(1))
	sealed, _ := c.Encrypt("a typical smtp password")
	for b.Loop() {
		if _, err := c.Decrypt(sealed); err != nil {
			b.Fatal(err)
		}
	}
}
