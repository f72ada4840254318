// Package auth turns a request's token into a Principal and enforces the
// scope matrix of tenancy-security.md §3.
//
// How a request is authenticated:
//  1. The token comes from X-API-Token or, when that header is absent, from
//     "Authorization: Bearer"; never from the query string.
//  2. Its SHA-256 digest is compared in constant time with the digest of the
//     admin token (computed once, replaced atomically when the token changes).
//  3. Otherwise the hex digest is looked up as a tenant API key
//     (store.TenantByAPIKey); expired or revoked keys are unknown tokens.
//  4. Require applies the route's class: public, auth, admin or tenant.
package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
)

// Class is a route's authentication class (api.md §1).
type Class int

// Route classes.
const (
	Public Class = iota // no token needed
	Any                 // admin token or any live tenant key ("auth")
	Admin               // admin token only
	Tenant              // admin token, or a key of the request's tenant
)

// Authentication and scope failures. The API maps each to its status and
// detail string.
var (
	// ErrNoToken: no token was presented on a route that needs one.
	ErrNoToken = errors.New("no API token")
	// ErrInvalidToken: a token that is neither the admin token nor a live key.
	ErrInvalidToken = errors.New("invalid API token")
	// ErrAdminRequired: a tenant key on an admin route.
	ErrAdminRequired = errors.New("admin token required")
	// ErrWrongTenant: a tenant key naming another tenant.
	ErrWrongTenant = errors.New("token not authorized for this tenant")
)

// Principal is who a request acts as.
type Principal struct {
	Admin    bool
	TenantID string // the key's tenant; "" for the admin token and public calls
}

// Authenticated reports whether the principal presented a valid token.
func (p Principal) Authenticated() bool { return p.Admin || p.TenantID != "" }

// Scope is the idempotency scope of the caller: "admin" or "tenant:<id>".
func (p Principal) Scope() string {
	if p.Admin {
		return "admin"
	}
	return "tenant:" + p.TenantID
}

// CheckTenant says whether the principal may act on tenantID: the admin
// token may act on any tenant, a key only on its own.
func (p Principal) CheckTenant(tenantID string) error {
	if p.Admin || (p.TenantID != "" && p.TenantID == tenantID) {
		return nil
	}
	return ErrWrongTenant
}

// DefaultTenant is the tenant a request acts on when it names none: the
// key's tenant, or "default" for the admin token.
func (p Principal) DefaultTenant() string {
	if p.TenantID != "" {
		return p.TenantID
	}
	return "default"
}

// KeyLookup is the store operation the authenticator needs.
type KeyLookup interface {
	TenantByAPIKey(ctx context.Context, hash string, now time.Time) (store.Tenant, error)
}

// Authenticator checks tokens. It is safe for concurrent use.
type Authenticator struct {
	keys        KeyLookup
	now         func() time.Time
	adminDigest atomic.Pointer[[sha256.Size]byte]
}

// New returns an Authenticator for the given admin token (which must not be
// empty) and tenant-key lookup. now may be nil (time.Now).
func New(keys KeyLookup, adminToken string, now func() time.Time) (*Authenticator, error) {
	if now == nil {
		now = time.Now
	}
	a := &Authenticator{keys: keys, now: now}
	if err := a.SetAdminToken(adminToken); err != nil {
		return nil, err
	}
	return a, nil
}

// SetAdminToken replaces the live admin token (PUT /instance api_token).
func (a *Authenticator) SetAdminToken(token string) error {
	if token == "" {
		return errors.New("auth: empty admin token")
	}
	d := sha256.Sum256([]byte(token))
	a.adminDigest.Store(&d)
	return nil
}

// IsAdminToken compares token with the admin token in constant time.
func (a *Authenticator) IsAdminToken(token string) bool {
	d := sha256.Sum256([]byte(token))
	return a.isAdminDigest(&d)
}

func (a *Authenticator) isAdminDigest(d *[sha256.Size]byte) bool {
	want := a.adminDigest.Load()
	return subtle.ConstantTimeCompare(d[:], want[:]) == 1
}

// Token returns the token a request presents: X-API-Token, else an
// "Authorization: Bearer" credential; "" if none.
func Token(r *http.Request) string {
	if v := r.Header.Values("X-API-Token"); len(v) > 0 {
		return strings.TrimSpace(v[0])
	}
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// Authenticate resolves the request's token. A request without a token
// gives the zero Principal and ErrNoToken; an unknown token ErrInvalidToken.
// Other errors come from the store.
func (a *Authenticator) Authenticate(ctx context.Context, r *http.Request) (Principal, error) {
	return a.AuthenticateToken(ctx, Token(r))
}

// AuthenticateToken resolves a token presented outside HTTP (an SMTP AUTH
// password) exactly as Authenticate resolves a request's.
func (a *Authenticator) AuthenticateToken(ctx context.Context, token string) (Principal, error) {
	if token == "" {
		return Principal{}, ErrNoToken
	}
	d := sha256.Sum256([]byte(token))
	if a.isAdminDigest(&d) {
		return Principal{Admin: true}, nil
	}
	t, err := a.keys.TenantByAPIKey(ctx, hex.EncodeToString(d[:]), a.now())
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, ErrInvalidToken
	}
	if err != nil {
		return Principal{}, fmt.Errorf("auth: look up tenant key: %w", err)
	}
	return Principal{TenantID: t.ID}, nil
}

// Require authenticates the request for a route of the given class. Tenant
// routes check the tenant itself later (CheckTenant), once it is known.
func (a *Authenticator) Require(ctx context.Context, r *http.Request, class Class) (Principal, error) {
	if class == Public {
		return Principal{}, nil
	}
	p, err := a.Authenticate(ctx, r)
	if err != nil {
		return p, err
	}
	if class == Admin && !p.Admin {
		return p, ErrAdminRequired
	}
	return p, nil
}
