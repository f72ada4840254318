package store

import (
	"context"
	"time"
)

// Suppression sources (issue 16.2).
const (
	SuppressedByBounce    = "bounce"    // a hard bounce
	SuppressedByComplaint = "complaint" // an ARF abuse report
	SuppressedManually    = "manual"    // POST /suppressions
)

// Suppression is one address a tenant no longer sends to. Addresses are
// stored lower-cased and compared case-insensitively.
type Suppression struct {
	TenantID  string
	Address   string
	Reason    string
	Source    string
	CreatedAt time.Time
}

// MessageLookup finds messages across tenants for bounce matching: by pk
// (a generated Message-ID carries it) or by client id (X-Genro-Mail-ID).
type MessageLookup struct {
	PK       string
	ClientID string
}

// Suppressions are the addresses each tenant no longer sends to.
type Suppressions interface {
	// AddSuppressions stores the entries (address lower-cased); an address
	// the tenant already suppresses keeps its first entry. added counts the
	// new ones.
	AddSuppressions(ctx context.Context, entries []Suppression) (added int, err error)
	// ListSuppressions lists a tenant's suppressions by address.
	ListSuppressions(ctx context.Context, tenantID string) ([]Suppression, error)
	// RemoveSuppression deletes one address (any case); removed is 0 or 1.
	RemoveSuppression(ctx context.Context, tenantID, address string) (removed int, err error)
	// SuppressedAmong returns which of addresses (any case) the tenant
	// suppresses, lower-cased.
	SuppressedAmong(ctx context.Context, tenantID string, addresses []string) (map[string]bool, error)
}

// Deliverability is the part of Store for suppressions and bounces.
type Deliverability interface {
	Suppressions

	// FindMessages returns the messages, of any tenant, with pk l.PK or
	// client id l.ClientID (each criterion ignored when empty), newest first.
	FindMessages(ctx context.Context, l MessageLookup) ([]Message, error)
	// AddBounce appends a bounce event (ev.MessagePK, At, Description,
	// Metadata) unless the message already has a bounce event with the same
	// description and metadata: a notification processed twice adds one.
	AddBounce(ctx context.Context, ev Event) (added bool, err error)
	// AcquireLease gives owner the named lease until `until` if it is free,
	// expired, or already owner's (one bounce poller among instances). A
	// lease is held before `until`, not at it: giving it up with until = now
	// frees it at once.
	AcquireLease(ctx context.Context, name, owner string, now, until time.Time) (bool, error)
}
