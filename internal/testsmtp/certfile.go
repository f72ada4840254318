package testsmtp

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// WriteCertificate writes a throwaway self-signed certificate for 127.0.0.1,
// ::1 and localhost as PEM files in dir, for servers configured by file
// (GMP_SMTP_TLS_CERT/KEY); pool trusts it.
func WriteCertificate(dir string) (certFile, keyFile string, pool *x509.CertPool, err error) {
	cert, pool, err := selfSigned(time.Now())
	if err != nil {
		return "", "", nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return "", "", nil, fmt.Errorf("testsmtp: marshal key: %w", err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		return "", "", nil, fmt.Errorf("testsmtp: %w", err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return "", "", nil, fmt.Errorf("testsmtp: %w", err)
	}
	return certFile, keyFile, pool, nil
}
