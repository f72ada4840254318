package secret

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/mailproxy/mailproxy/internal/store"
)

// Startup failures of Check; the returned errors wrap them.
var (
	// ErrNoKey: the store holds ENC: values but no key is configured.
	ErrNoKey = errors.New("stored secrets are encrypted but no encryption key is configured (MAIL_PROXY_ENCRYPTION_KEY)")
	// ErrWrongKey: the configured key decrypts none of the stored ENC: values.
	ErrWrongKey = errors.New("encryption key does not decrypt stored secrets (wrong key?)")
)

// Survey counts the secrets a store holds, as stored.
type Survey struct {
	Plaintext     int // non-empty values without the ENC: prefix
	Encrypted     int // ENC: values
	Undecryptable int // ENC: values the key does not open (0 without a key)
}

// survey reads every stored secret of raw (an unwrapped store) and counts
// them; with c it tries to open every ENC: value.
func survey(ctx context.Context, raw store.Store, c *Cipher) (Survey, error) {
	var sv Survey
	see := func(v string) {
		switch {
		case v == "":
		case !IsEncrypted(v):
			sv.Plaintext++
		default:
			sv.Encrypted++
			if c != nil {
				if _, err := c.Decrypt(v); err != nil {
					sv.Undecryptable++
				}
			}
		}
	}
	inst, err := raw.GetInstance(ctx)
	switch {
	case errors.Is(err, store.ErrNotFound): // no settings row yet
	case err != nil:
		return sv, fmt.Errorf("read instance settings: %w", err)
	default:
		see(inst.APIToken)
		see(inst.BounceIMAPPassword)
	}
	tenants, err := raw.ListTenants(ctx, false)
	if err != nil {
		return sv, fmt.Errorf("list tenants: %w", err)
	}
	for _, t := range tenants {
		if t.ClientAuth != nil {
			see(t.ClientAuth.Token)
			see(t.ClientAuth.Password)
		}
		see(t.SigningSecret)
		see(t.PrevSigningSecret)
	}
	accounts, err := raw.ListAccounts(ctx, "")
	if err != nil {
		return sv, fmt.Errorf("list accounts: %w", err)
	}
	for _, a := range accounts {
		see(a.Password)
		see(a.IMAPPassword)
		see(a.DKIMPrivateKey)
	}
	return sv, nil
}

// Check is the start-up check on raw, the unwrapped store. It fails when a
// key is configured (configured) but c is missing, when the store holds ENC:
// values and no key is configured, or when the key opens none of the stored
// ENC: values (a wrong key). A store where only some values fail to open
// (an interrupted rotate-key, or an altered row) starts: those values fail
// where they are used.
func Check(ctx context.Context, raw store.Store, c *Cipher, configured bool) error {
	_, err := check(ctx, raw, c, configured)
	return err
}

func check(ctx context.Context, raw store.Store, c *Cipher, configured bool) (Survey, error) {
	if configured && c == nil {
		return Survey{}, errors.New("encryption key is configured but could not be loaded")
	}
	sv, err := survey(ctx, raw, c)
	if err != nil {
		return sv, fmt.Errorf("check stored secrets: %w", err)
	}
	switch {
	case sv.Encrypted > 0 && c == nil:
		return sv, ErrNoKey
	case sv.Encrypted > 0 && sv.Undecryptable == sv.Encrypted:
		return sv, ErrWrongKey
	}
	return sv, nil
}

// Setup makes an opened store encrypt its secrets at rest with src: it loads
// the key (readFile nil means os.ReadFile), runs Check and returns st
// wrapped. With no key configured it returns st unchanged and logs that
// secrets are stored in plaintext. On error st is left open for the caller
// to close.
func Setup(ctx context.Context, src KeySource, st store.Store, log *slog.Logger, readFile func(string) ([]byte, error)) (store.Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	key, configured, err := LoadKey(src, readFile)
	if err != nil {
		return nil, err
	}
	var c *Cipher
	if configured {
		if c, err = NewCipher(key); err != nil {
			return nil, err
		}
	}
	sv, err := check(ctx, st, c, configured)
	if err != nil {
		return nil, err
	}
	if c == nil {
		log.Warn("no encryption key configured: secrets are stored in plaintext (set MAIL_PROXY_ENCRYPTION_KEY; mail-proxy gen-key makes one)")
		return st, nil
	}
	if sv.Plaintext > 0 {
		log.Warn("some stored secrets are still in plaintext; run mail-proxy encrypt-secrets", "count", sv.Plaintext)
	}
	if sv.Undecryptable > 0 {
		log.Error("some stored secrets do not decrypt with the configured key and will not be used", "count", sv.Undecryptable)
	}
	return Wrap(st, c), nil
}
