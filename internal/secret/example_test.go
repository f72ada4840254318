package secret_test

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/mailproxy/mailproxy/internal/secret"
)

func ExampleCipher() {
	c, err := secret.NewCipher(bytes.Repeat([]byte{0x42}, secret.KeySize))
	if err != nil {
		fmt.Println(err)
		return
	}
	stored, _ := c.Encrypt("smtp-password")
	fmt.Println(strings.HasPrefix(stored, "ENC:"))

	plain, _ := c.Decrypt(stored)
	fmt.Println(plain)

	legacy, _ := c.Decrypt("stored-before-encryption") // no ENC: prefix: plaintext
	fmt.Println(legacy)
	fmt.Println(c) // never the key
	// Output:
	// true
	// smtp-password
	// stored-before-encryption
	// [redacted]
}
