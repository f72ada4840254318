// Package dkim signs outgoing messages with an account's DKIM key (RFC 6376,
// relaxed/relaxed, via emersion/go-msgauth), checks the keys operators
// upload, and generates new keys with their DNS TXT record.
package dkim

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/textproto"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
)

// MinRSABits is the smallest RSA key accepted (RFC 8301 requires 1024;
// 2048 is what receivers expect today).
const MinRSABits = 2048

// SignedHeaders are the header fields signed when present (in this order).
var SignedHeaders = []string{"From", "To", "Cc", "Subject", "Date", "Message-ID", "MIME-Version",
	"Content-Type", "Reply-To"}

// ParsePrivateKey reads a PEM private key: PKCS #8 (RSA or Ed25519) or
// PKCS #1 RSA, RSA of at least MinRSABits bits. The error says why a key is
// refused, without echoing it.
func ParsePrivateKey(pemText string) (crypto.Signer, error) {
	block, rest := pem.Decode([]byte(strings.TrimSpace(pemText)))
	if block == nil {
		return nil, errors.New("not a PEM block")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("more than one PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM type %q is not a private key (want PRIVATE KEY or RSA PRIVATE KEY)", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot parse the key: %w", err)
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if bits := k.N.BitLen(); bits < MinRSABits {
			return nil, fmt.Errorf("RSA key of %d bits; at least %d required", bits, MinRSABits)
		}
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	default:
		return nil, fmt.Errorf("unsupported key type %T (want RSA or Ed25519)", key)
	}
}

// Sign returns message with a DKIM-Signature header prepended. message is a
// complete RFC 5322 message with CRLF line ends, as sent to DATA.
func Sign(message []byte, domain, selector string, key crypto.Signer) ([]byte, error) {
	keys, err := presentHeaders(message)
	if err != nil {
		return nil, err
	}
	s, err := dkim.NewSigner(&dkim.SignOptions{
		Domain: domain, Selector: selector, Signer: key,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
		HeaderKeys:             keys,
	})
	if err != nil {
		return nil, fmt.Errorf("dkim: %w", err)
	}
	if _, err := s.Write(message); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("dkim: %w", err)
	}
	if err := s.Close(); err != nil {
		return nil, fmt.Errorf("dkim: %w", err)
	}
	sig := s.Signature()
	out := make([]byte, 0, len(sig)+len(message))
	return append(append(out, sig...), message...), nil
}

// presentHeaders is SignedHeaders restricted to those the message has; From
// is always included (the signer requires it).
func presentHeaders(message []byte) ([]string, error) {
	hdr, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(message))).ReadMIMEHeader()
	if err != nil && len(hdr) == 0 {
		return nil, fmt.Errorf("dkim: read message header: %w", err)
	}
	var keys []string
	for _, k := range SignedHeaders {
		if _, ok := hdr[textproto.CanonicalMIMEHeaderKey(k)]; ok || k == "From" {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// PublicRecord is the DNS TXT record value publishing key's public half.
func PublicRecord(key crypto.Signer) (string, error) {
	switch pub := key.Public().(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return "", err
		}
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der), nil
	case ed25519.PublicKey:
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub), nil
	default:
		return "", fmt.Errorf("unsupported key type %T", pub)
	}
}

// GenerateKey makes a new key: "rsa" (bits, at least MinRSABits) or
// "ed25519", as a PKCS #8 PEM block.
func GenerateKey(kind string, bits int) (crypto.Signer, string, error) {
	var key crypto.Signer
	switch kind {
	case "rsa":
		if bits < MinRSABits {
			return nil, "", fmt.Errorf("RSA keys need at least %d bits", MinRSABits)
		}
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			return nil, "", err
		}
		key = k
	case "ed25519":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, "", err
		}
		key = k
	default:
		return nil, "", fmt.Errorf("key type %q: want rsa or ed25519", kind)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, "", err
	}
	return key, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), nil
}

// ZoneRecord renders the TXT record for selector._domainkey.domain as a
// zone-file line, the value split into quoted strings of at most 255
// characters (RFC 1035 character-strings).
func ZoneRecord(domain, selector, value string) string {
	var parts []string
	for len(value) > 255 {
		parts = append(parts, `"`+value[:255]+`"`)
		value = value[255:]
	}
	parts = append(parts, `"`+value+`"`)
	return fmt.Sprintf("%s._domainkey.%s. IN TXT ( %s )", selector, strings.TrimSuffix(domain, "."), strings.Join(parts, " "))
}
