package secret

import (
	"errors"
	"testing"
)

// FuzzDecrypt: any stored string either passes through (no prefix), opens,
// or fails with ErrDecrypt and no output; never a panic.
func FuzzDecrypt(f *testing.F) {
	c, err := NewCipher(testKey(1))
	if err != nil {
		f.Fatal(err)
	}
	sealed, _ := c.Encrypt("hunter2")
	for _, s := range []string{"", "plain", Prefix, Prefix + "AAAA", Prefix + "!!", sealed, sealed[:len(sealed)-4], sealed + "=="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := c.Decrypt(s)
		switch {
		case !IsEncrypted(s):
			if err != nil || got != s {
				t.Fatalf("plaintext %q came back as %q, %v", s, got, err)
			}
		case err != nil:
			if !errors.Is(err, ErrDecrypt) || got != "" {
				t.Fatalf("failure %v with output %q", err, got)
			}
		default:
			again, err := c.Encrypt(got)
			if err != nil {
				t.Fatal(err)
			}
			if back, err := c.Decrypt(again); err != nil || back != got {
				t.Fatalf("re-sealing %q gave %q, %v", got, back, err)
			}
		}
	})
}

// FuzzRoundTrip: every plaintext survives Encrypt then Decrypt.
func FuzzRoundTrip(f *testing.F) {
	c, err := NewCipher(testKey(2))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"", "x", "ENC:x", "päss\x00word"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, plain string) {
		sealed, err := c.Encrypt(plain)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Decrypt(sealed)
		if err != nil || got != plain {
			t.Fatalf("round trip of %q: %q, %v", plain, got, err)
		}
	})
}

// FuzzKeyFile: a key file's content gives a 32-byte key or an error.
func FuzzKeyFile(f *testing.F) {
	for _, s := range []string{"", "\n", string(testKey('k')), "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=\n", "short"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		key, err := decodeKeyFile(data)
		if err == nil && len(key) != KeySize {
			t.Fatalf("key of %d bytes accepted", len(key))
		}
	})
}
