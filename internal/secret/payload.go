package secret

import (
	"context"
	"fmt"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
)

// EnqueueBatch encrypts the token and password of every attachment's auth
// in the items' payloads before they are stored.
func (s *Store) EnqueueBatch(ctx context.Context, items []store.NewMessage, now time.Time) ([]store.EnqueueResult, error) {
	var sealed []store.NewMessage // copied on the first change: the caller's items stay plaintext
	for i := range items {
		p, changed, err := store.RewriteAttachmentAuth(items[i].Payload, func(a *store.ClientAuth) error {
			var err error
			if a.Token, err = s.c.Encrypt(a.Token); err != nil {
				return err
			}
			a.Password, err = s.c.Encrypt(a.Password)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("seal attachment auth of message %q: %w", items[i].ID, err)
		}
		if !changed {
			if sealed != nil {
				sealed[i] = items[i]
			}
			continue
		}
		if sealed == nil {
			sealed = make([]store.NewMessage, len(items))
			copy(sealed, items[:i])
		}
		sealed[i] = items[i]
		sealed[i].Payload = p
	}
	if sealed == nil {
		sealed = items
	}
	return s.Store.EnqueueBatch(ctx, sealed, now)
}

// openPayload decrypts a claimed message's attachment credentials. A value
// that does not decrypt is never used: the claim's CredentialsError says so
// and the secret is left out.
func (s *Store) openPayload(c *store.Claim) {
	bad := false
	p, _, err := store.RewriteAttachmentAuth(c.Message.Payload, func(a *store.ClientAuth) error {
		var err error
		if a.Token, err = s.c.Decrypt(a.Token); err != nil {
			a.Token, bad = "", true
		}
		if a.Password, err = s.c.Decrypt(a.Password); err != nil {
			a.Password, bad = "", true
		}
		return nil
	})
	if err != nil {
		return // not ours to judge: the dispatcher reports the invalid payload
	}
	if bad {
		c.CredentialsError = "cannot decrypt stored attachment credentials (wrong key or altered value)"
	}
	c.Message.Payload = p
}
