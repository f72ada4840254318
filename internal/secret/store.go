package secret

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
)

// Store is a store.Store whose secrets are encrypted at rest: it encrypts
// them on every write and decrypts them on every read, passing every other
// method straight to the driver it wraps.
type Store struct {
	store.Store
	c *Cipher
}

// Wrap decorates st so that its secrets are encrypted with c. The driver's
// other capabilities (store.Waker) are not the wrapper's: whoever opens the
// store keeps the driver for them (proxy.OpenStore).
func Wrap(st store.Store, c *Cipher) *Store { return &Store{Store: st, c: c} }

// GetInstance decrypts the admin token and the bounce IMAP password.
func (s *Store) GetInstance(ctx context.Context) (store.Instance, error) {
	inst, err := s.Store.GetInstance(ctx)
	if err != nil {
		return inst, err
	}
	if inst.APIToken, err = s.c.Decrypt(inst.APIToken); err != nil {
		return store.Instance{}, fmt.Errorf("instance api_token: %w", err)
	}
	if inst.BounceIMAPPassword, err = s.c.Decrypt(inst.BounceIMAPPassword); err != nil {
		return store.Instance{}, fmt.Errorf("instance bounce_imap_password: %w", err)
	}
	return inst, nil
}

// PutInstance encrypts the admin token and the bounce IMAP password.
func (s *Store) PutInstance(ctx context.Context, inst store.Instance) error {
	var err error
	if inst.APIToken, err = s.c.Encrypt(inst.APIToken); err != nil {
		return err
	}
	if inst.BounceIMAPPassword, err = s.c.Encrypt(inst.BounceIMAPPassword); err != nil {
		return err
	}
	return s.Store.PutInstance(ctx, inst)
}

// UpsertTenant encrypts client_auth's token and password. (The driver keeps
// the signing secrets; SetSigningSecret writes them.)
func (s *Store) UpsertTenant(ctx context.Context, t store.Tenant) (bool, error) {
	if t.ClientAuth != nil {
		ca := *t.ClientAuth // the caller's value stays plaintext
		var err error
		if ca.Token, err = s.c.Encrypt(ca.Token); err != nil {
			return false, err
		}
		if ca.Password, err = s.c.Encrypt(ca.Password); err != nil {
			return false, err
		}
		t.ClientAuth = &ca
	}
	return s.Store.UpsertTenant(ctx, t)
}

// GetTenant decrypts the tenant's secrets.
func (s *Store) GetTenant(ctx context.Context, id string) (store.Tenant, error) {
	t, err := s.Store.GetTenant(ctx, id)
	if err != nil {
		return t, err
	}
	return s.openTenant(t)
}

// ListTenants decrypts every tenant's secrets.
func (s *Store) ListTenants(ctx context.Context, activeOnly bool) ([]store.Tenant, error) {
	ts, err := s.Store.ListTenants(ctx, activeOnly)
	if err != nil {
		return nil, err
	}
	for i := range ts {
		if ts[i], err = s.openTenant(ts[i]); err != nil {
			return nil, err
		}
	}
	return ts, nil
}

// TenantByAPIKey decrypts the found tenant's secrets.
func (s *Store) TenantByAPIKey(ctx context.Context, hash string, now time.Time) (store.Tenant, error) {
	t, err := s.Store.TenantByAPIKey(ctx, hash, now)
	if err != nil {
		return t, err
	}
	return s.openTenant(t)
}

// SetSigningSecret encrypts the new signing secret ("" still removes both).
func (s *Store) SetSigningSecret(ctx context.Context, tenantID, secret string, prevUntil *time.Time) error {
	sealed, err := s.c.Encrypt(secret)
	if err != nil {
		return err
	}
	return s.Store.SetSigningSecret(ctx, tenantID, sealed, prevUntil)
}

func (s *Store) openTenant(t store.Tenant) (store.Tenant, error) {
	fail := func(field string, err error) (store.Tenant, error) {
		return store.Tenant{}, fmt.Errorf("tenant %q %s: %w", t.ID, field, err)
	}
	var err error
	if t.ClientAuth != nil {
		ca := *t.ClientAuth // the driver's value is not ours to change
		if ca.Token, err = s.c.Decrypt(ca.Token); err != nil {
			return fail("client_auth.token", err)
		}
		if ca.Password, err = s.c.Decrypt(ca.Password); err != nil {
			return fail("client_auth.password", err)
		}
		t.ClientAuth = &ca
	}
	if t.SigningSecret, err = s.c.Decrypt(t.SigningSecret); err != nil {
		return fail("signing_secret", err)
	}
	if t.PrevSigningSecret, err = s.c.Decrypt(t.PrevSigningSecret); err != nil {
		return fail("previous signing_secret", err)
	}
	return t, nil
}

// UpsertAccount encrypts the SMTP and IMAP passwords and the DKIM key.
func (s *Store) UpsertAccount(ctx context.Context, a store.Account) error {
	var err error
	if a.Password, err = s.c.Encrypt(a.Password); err != nil {
		return err
	}
	if a.IMAPPassword, err = s.c.Encrypt(a.IMAPPassword); err != nil {
		return err
	}
	if a.DKIMPrivateKey, err = s.c.Encrypt(a.DKIMPrivateKey); err != nil {
		return err
	}
	a.CredentialsError = ""
	return s.Store.UpsertAccount(ctx, a)
}

// GetAccount decrypts the passwords (see openAccount).
func (s *Store) GetAccount(ctx context.Context, tenantID, id string) (store.Account, error) {
	a, err := s.Store.GetAccount(ctx, tenantID, id)
	if err != nil {
		return a, err
	}
	return s.openAccount(a), nil
}

// ListAccounts decrypts every account's passwords (see openAccount).
func (s *Store) ListAccounts(ctx context.Context, tenantID string) ([]store.Account, error) {
	as, err := s.Store.ListAccounts(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	for i := range as {
		as[i] = s.openAccount(as[i])
	}
	return as, nil
}

// Claim decrypts each claimed message's attachment credentials, and its
// account once per distinct account value the driver returned.
func (s *Store) Claim(ctx context.Context, req store.ClaimRequest) ([]store.Claim, error) {
	claims, err := s.Store.Claim(ctx, req)
	if err != nil {
		return nil, err
	}
	opened := make(map[*store.Account]*store.Account)
	for i := range claims {
		s.openPayload(&claims[i])
		raw := claims[i].Account
		if raw == nil {
			continue
		}
		a, ok := opened[raw]
		if !ok {
			v := s.openAccount(*raw)
			a = &v
			opened[raw] = a
		}
		claims[i].Account = a
	}
	return claims, nil
}

// openAccount decrypts a's passwords and DKIM key. One that does not decrypt
// is cleared and named in CredentialsError, so it can never be used.
func (s *Store) openAccount(a store.Account) store.Account {
	var bad []string
	var err error
	if a.Password, err = s.c.Decrypt(a.Password); err != nil {
		a.Password = ""
		bad = append(bad, "password")
	}
	if a.IMAPPassword, err = s.c.Decrypt(a.IMAPPassword); err != nil {
		a.IMAPPassword = ""
		bad = append(bad, "imap_password")
	}
	if a.DKIMPrivateKey, err = s.c.Decrypt(a.DKIMPrivateKey); err != nil {
		bad = append(bad, "dkim_private_key")
	}
	if len(bad) > 0 {
		// The dispatcher fails sends with "Cannot decrypt account credentials".
		a.Password, a.IMAPPassword, a.DKIMPrivateKey = "", "", ""
		a.CredentialsError = "cannot decrypt stored " + strings.Join(bad, ", ") + " (wrong key or altered value)"
	}
	return a
}

var _ store.Store = (*Store)(nil)
