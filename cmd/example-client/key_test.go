package main

import (
	"crypto/rand"
	"encoding/base64"
	"testing"
)

// testEncryptionKey is a fresh MAIL_PROXY_ENCRYPTION_KEY value (base64 of 32 bytes).
func testEncryptionKey(t *testing.T) string {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(k)
}
