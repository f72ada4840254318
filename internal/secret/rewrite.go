package secret

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
)

// Counts is what Rewrite did with the stored secrets.
type Counts struct {
	Encrypted     int `json:"encrypted"`     // plaintext values now sealed with the target key
	Reencrypted   int `json:"reencrypted"`   // values opened with the old key and sealed with the target key
	Unchanged     int `json:"unchanged"`     // values already sealed with the target key
	Undecryptable int `json:"undecryptable"` // values neither key opens; left as they are
	Records       int `json:"records"`       // accounts, tenants, instance and message rows written
}

// Rewrite re-seals every stored secret of raw (an unwrapped store) with to:
// plaintext values are encrypted, values that from opens are re-encrypted
// (from nil or equal to to: none), values to already opens are left alone.
// It writes one record at a time (stored messages' attachment auth: one batch
// of messages at a time), so an interrupted run can be repeated.
// Values neither key opens are left unchanged and counted; Rewrite goes on
// and then returns an error saying how many.
//
// A tenant's signing secrets can only be written through SetSigningSecret,
// which moves the current secret to the previous slot; while a live previous
// secret is re-sealed the tenant briefly signs with it alone.
func Rewrite(ctx context.Context, raw store.Store, from, to *Cipher) (Counts, error) {
	if to == nil {
		return Counts{}, errors.New("rewrite secrets: no target key")
	}
	if from == to {
		from = nil
	}
	rw := rewriter{from: from, to: to}
	if err := rw.accounts(ctx, raw); err != nil {
		return rw.n, err
	}
	if err := rw.tenants(ctx, raw); err != nil {
		return rw.n, err
	}
	if err := rw.instance(ctx, raw); err != nil {
		return rw.n, err
	}
	if err := rw.messages(ctx, raw); err != nil {
		return rw.n, err
	}
	if rw.n.Undecryptable > 0 {
		return rw.n, fmt.Errorf("%d stored secrets could not be decrypted with either key and were left unchanged", rw.n.Undecryptable)
	}
	return rw.n, nil
}

type rewriter struct {
	from, to *Cipher
	n        Counts
}

// seal rewrites one value in place; it reports whether the value changed.
func (rw *rewriter) seal(v *string) (bool, error) {
	switch {
	case *v == "":
		return false, nil
	case !IsEncrypted(*v):
		sealed, err := rw.to.Encrypt(*v)
		if err != nil {
			return false, err
		}
		*v = sealed
		rw.n.Encrypted++
		return true, nil
	}
	if _, err := rw.to.Decrypt(*v); err == nil {
		rw.n.Unchanged++
		return false, nil
	}
	if rw.from != nil {
		if plain, err := rw.from.Decrypt(*v); err == nil {
			sealed, err := rw.to.Encrypt(plain)
			if err != nil {
				return false, err
			}
			*v = sealed
			rw.n.Reencrypted++
			return true, nil
		}
	}
	rw.n.Undecryptable++
	return false, nil
}

// sealAll seals every value; it reports whether any changed.
func (rw *rewriter) sealAll(vs ...*string) (bool, error) {
	changed := false
	for _, v := range vs {
		c, err := rw.seal(v)
		if err != nil {
			return false, err
		}
		changed = changed || c
	}
	return changed, nil
}

func (rw *rewriter) accounts(ctx context.Context, raw store.Store) error {
	accounts, err := raw.ListAccounts(ctx, "")
	if err != nil {
		return fmt.Errorf("list accounts: %w", err)
	}
	for _, a := range accounts {
		changed, err := rw.sealAll(&a.Password, &a.IMAPPassword, &a.DKIMPrivateKey)
		if err != nil {
			return err
		}
		if !changed {
			continue
		}
		if err := raw.UpsertAccount(ctx, a); err != nil {
			return fmt.Errorf("write account %q of tenant %q: %w", a.ID, a.TenantID, err)
		}
		rw.n.Records++
	}
	return nil
}

func (rw *rewriter) tenants(ctx context.Context, raw store.Store) error {
	tenants, err := raw.ListTenants(ctx, false)
	if err != nil {
		return fmt.Errorf("list tenants: %w", err)
	}
	for _, t := range tenants {
		written := false
		if t.ClientAuth != nil {
			ca := *t.ClientAuth
			changed, err := rw.sealAll(&ca.Token, &ca.Password)
			if err != nil {
				return err
			}
			if changed {
				t.ClientAuth = &ca
				if _, err := raw.UpsertTenant(ctx, t); err != nil {
					return fmt.Errorf("write tenant %q: %w", t.ID, err)
				}
				written = true
			}
		}
		changed, err := rw.signingSecrets(ctx, raw, t)
		if err != nil {
			return err
		}
		if written || changed {
			rw.n.Records++
		}
	}
	return nil
}

// signingSecrets re-seals a tenant's signing secrets. SetSigningSecret(s,
// until) makes s current and the old current previous, so:
//   - a live previous secret (its end in the future) goes in first and the
//     current one on top of it; in between the tenant signs with the previous
//     secret alone, which its client still accepts;
//   - otherwise the current secret is written twice, so the old value leaves
//     the previous slot too (which then holds the current secret, unused as
//     its end is not in the future). The tenant never signs with nothing.
func (rw *rewriter) signingSecrets(ctx context.Context, raw store.Store, t store.Tenant) (bool, error) {
	cur, prev := t.SigningSecret, t.PrevSigningSecret
	if cur == "" {
		// No secret. (A previous one without a current one, which the API never
		// leaves, cannot be written back through the interface.)
		return false, nil
	}
	set := func(v string, until *time.Time) error {
		if err := raw.SetSigningSecret(ctx, t.ID, v, until); err != nil {
			return fmt.Errorf("write signing secret of tenant %q: %w", t.ID, err)
		}
		return nil
	}
	curChanged, err := rw.seal(&cur)
	if err != nil {
		return false, err
	}
	live := prev != "" && t.PrevSigningSecretUntil != nil && t.PrevSigningSecretUntil.After(time.Now())
	if !live {
		// A dead previous value is not counted; it is replaced if not yet
		// sealed with the target key.
		if !curChanged && !rw.needsSealing(prev) {
			return false, nil
		}
		if err := set(cur, nil); err != nil {
			return false, err
		}
		return true, set(cur, nil)
	}
	prevChanged, err := rw.seal(&prev)
	if err != nil {
		return false, err
	}
	if !curChanged && !prevChanged {
		return false, nil
	}
	if err := set(prev, nil); err != nil {
		return false, err
	}
	return true, set(cur, t.PrevSigningSecretUntil)
}

// needsSealing reports whether a stored value is neither empty nor sealed
// with the target key.
func (rw *rewriter) needsSealing(v string) bool {
	if v == "" {
		return false
	}
	_, err := rw.to.Decrypt(v)
	return !IsEncrypted(v) || err != nil
}

func (rw *rewriter) instance(ctx context.Context, raw store.Store) error {
	inst, err := raw.GetInstance(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read instance settings: %w", err)
	}
	changed, err := rw.sealAll(&inst.APIToken, &inst.BounceIMAPPassword)
	if err != nil || !changed {
		return err
	}
	if err := raw.PutInstance(ctx, inst); err != nil {
		return fmt.Errorf("write instance settings: %w", err)
	}
	rw.n.Records++
	return nil
}

// messages re-seals the attachment auth secrets inside stored messages'
// payloads, so queued messages still fetch their attachments after a
// rotation. A payload that does not decode is left alone: delivery reports it.
func (rw *rewriter) messages(ctx context.Context, raw store.Store) error {
	n, err := raw.RewriteAuthPayloads(ctx, 0, func(payload json.RawMessage) (json.RawMessage, bool, error) {
		changed := false
		p, _, err := store.RewriteAttachmentAuth(payload, func(a *store.ClientAuth) error {
			c, err := rw.sealAll(&a.Token, &a.Password)
			changed = changed || c
			return err
		})
		var syntax *json.SyntaxError
		var typ *json.UnmarshalTypeError
		if errors.As(err, &syntax) || errors.As(err, &typ) {
			return payload, false, nil
		}
		if err != nil || !changed {
			return payload, false, err
		}
		return p, true, nil
	})
	rw.n.Records += n
	if err != nil {
		return fmt.Errorf("rewrite attachment auth of stored messages: %w", err)
	}
	return nil
}
