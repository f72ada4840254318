package dkim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
)

func pemOf(t *testing.T, typ string, der []byte) string {
	t.Helper()
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

func TestParsePrivateKey(t *testing.T) {
	t.Parallel()
	_, ed, err := GenerateKey("ed25519", 0)
	if err != nil {
		t.Fatal(err)
	}
	rsa2048, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	small, _ := x509.MarshalPKCS8PrivateKey(rsa1024)
	pub, _ := x509.MarshalPKIXPublicKey(&rsa2048.PublicKey)
	cases := []struct {
		name, pem, wantErr string
	}{
		{"ed25519 pkcs8", ed, ""},
		{"rsa pkcs1", pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsa2048)), ""},
		{"rsa 1024 refused", pemOf(t, "PRIVATE KEY", small), "1024 bits"},
		{"ecdsa refused", pemOf(t, "PRIVATE KEY", ecDER), "unsupported key type"},
		{"public key refused", pemOf(t, "PUBLIC KEY", pub), "not a private key"},
		{"garbage", "hello", "not a PEM block"},
		{"two blocks", ed + ed, "more than one"},
		{"bad der", pemOf(t, "PRIVATE KEY", []byte("xx")), "cannot parse"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParsePrivateKey(tc.pem)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestZoneRecordSplitsLongValues(t *testing.T) {
	t.Parallel()
	key, _, err := GenerateKey("rsa", 2048)
	if err != nil {
		t.Fatal(err)
	}
	v, err := PublicRecord(key)
	if err != nil {
		t.Fatal(err)
	}
	line := ZoneRecord("example.com", "s1", v)
	if !strings.HasPrefix(line, "s1._domainkey.example.com. IN TXT ( \"v=DKIM1; k=rsa; p=") {
		t.Errorf("record %q", line)
	}
	joined := strings.NewReplacer(`" "`, "").Replace(line)
	if !strings.Contains(joined, v) {
		t.Error("the chunks do not join to the value")
	}
	for _, chunk := range strings.Split(line, `"`)[1:] {
		if len(chunk) > 255 {
			t.Errorf("chunk of %d characters", len(chunk))
		}
	}
}
