package cli

import (
	"errors"
	"fmt"

	"github.com/mailproxy/mailproxy/internal/config"
	"github.com/mailproxy/mailproxy/internal/proxy"
	"github.com/mailproxy/mailproxy/internal/secret"
)

// secretCmds are the local commands of encryption at rest, embedded in root
// (kong flattens them into the command list).
type secretCmds struct {
	EncryptSecrets encryptSecretsCmd `cmd:"" name:"encrypt-secrets" help:"Encrypt every plaintext secret in the store with the configured key (local)."`
	RotateKey      rotateKeyCmd      `cmd:"" name:"rotate-key" help:"Re-encrypt every stored secret with --new-key (local); then configure that key."`
}

type encryptSecretsCmd struct {
	DB string `name:"db" help:"SQLite file or postgres:// DSN (env GMP_DB_PATH, GMP_DATABASE_URL)." placeholder:"PATH|DSN"`
}

// Run seals every plaintext secret in the store with the configured key.
func (c *encryptSecretsCmd) Run(e *env) error {
	cfg, _, err := e.loadConfig()
	if err != nil {
		return err
	}
	applyDB(&cfg, c.DB)
	key, err := secret.LoadCipher(proxy.KeySource(cfg), nil)
	if err != nil {
		return fmt.Errorf("encrypt-secrets: %w", err)
	}
	if key == nil {
		return errors.New("encrypt-secrets: no encryption key configured: set MAIL_PROXY_ENCRYPTION_KEY (mail-proxy gen-key makes one) or GMP_ENCRYPTION_KEY_FILE")
	}
	st, err := openStore(e.ctx, cfg) // checks that the key opens what is already encrypted
	if err != nil {
		return err
	}
	defer closeStore(e.stderr, st)

	n, rerr := secret.Rewrite(e.ctx, st.Raw, key, key)
	if err := printCounts(e, n, fmt.Sprintf("encrypted %d plaintext secrets (%d already encrypted); %d records written",
		n.Encrypted, n.Unchanged, n.Records)); err != nil {
		return err
	}
	if rerr != nil {
		return fmt.Errorf("encrypt-secrets: %w", rerr)
	}
	return nil
}

type rotateKeyCmd struct {
	NewKey string `name:"new-key" required:"" help:"The new key: base64 of 32 bytes (mail-proxy gen-key makes one)." placeholder:"KEY"`
	DB     string `name:"db" help:"SQLite file or postgres:// DSN (env GMP_DB_PATH, GMP_DATABASE_URL)." placeholder:"PATH|DSN"`
}

// Run re-seals every stored secret with the new key: ENC: values are opened
// with the configured key, plaintext ones are sealed directly.
func (c *rotateKeyCmd) Run(e *env) error {
	raw, err := config.DecodeEncryptionKey(c.NewKey)
	if err != nil {
		return usageErrorf("rotate-key: --new-key: %v", err)
	}
	next, err := secret.NewCipher(raw)
	if err != nil {
		return fmt.Errorf("rotate-key: --new-key: %w", err)
	}
	cfg, _, err := e.loadConfig()
	if err != nil {
		return err
	}
	applyDB(&cfg, c.DB)
	current, err := secret.LoadCipher(proxy.KeySource(cfg), nil) // nil: nothing is encrypted yet (open checks)
	if err != nil {
		return fmt.Errorf("rotate-key: %w", err)
	}
	st, err := openStore(e.ctx, cfg)
	if err != nil {
		return err
	}
	defer closeStore(e.stderr, st)

	n, rerr := secret.Rewrite(e.ctx, st.Raw, current, next)
	if err := printCounts(e, n, fmt.Sprintf("re-encrypted %d secrets with the new key, encrypted %d plaintext secrets (%d already under the new key); %d records written; configure the new key (MAIL_PROXY_ENCRYPTION_KEY) before the next start",
		n.Reencrypted, n.Encrypted, n.Unchanged, n.Records)); err != nil {
		return err
	}
	if rerr != nil {
		return fmt.Errorf("rotate-key: %w", rerr)
	}
	return nil
}

func printCounts(e *env, n secret.Counts, text string) error {
	if e.flags.JSON {
		return writeJSON(e.stdout, n)
	}
	_, err := fmt.Fprintln(e.stdout, text)
	return err
}
