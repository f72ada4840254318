// Package store is mailproxy's storage contract: the domain types, the
// sentinel errors and the one interface every driver implements (SQLite in
// store/sqlite, PostgreSQL in store/postgres; store/storetest is the suite
// both pass). The API, the dispatcher and the report loop consume it. What
// only the drivers need lives below, in store/internal/driver.
//
// Rules every driver follows:
//  1. Each method is one transaction; no transaction handle leaks out.
//  2. Times cross the interface as time.Time and are stored as integer Unix
//     milliseconds; callers convert to the wire's Unix seconds.
//  3. Domain states are the sentinel errors below, checked with errors.Is.
//  4. A message is claimable when it is unprocessed (no final outcome), its
//     DeferredUntil is nil or not after now, its tenant and batch are not
//     suspended, and it has no live lease (no owner, or the lease expired).
//  5. Outcomes are applied only while the caller still holds the lease
//     (same owner and attempt); a late outcome after a rescue is dropped.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Drivers wrap them with context; callers use errors.Is.
var (
	ErrNotFound = errors.New("not found")
	// ErrTenantNotFound is the ErrNotFound of a call naming a tenant that
	// does not exist (errors.Is(err, ErrNotFound) holds for it): callers
	// that answer every missing thing alike check ErrNotFound alone.
	ErrTenantNotFound = fmt.Errorf("tenant %w", ErrNotFound)
	// ErrFullySuspended: activating one batch while the tenant is suspended with "*".
	ErrFullySuspended = errors.New("tenant fully suspended")
	// ErrLeaseLost: an outcome or renewal for a claim this owner no longer holds.
	ErrLeaseLost = errors.New("claim lease lost")
	// ErrLocked: another process holds the store exclusively (a second serve on one SQLite file).
	ErrLocked = errors.New("store locked by another process")
	// ErrOverloaded: the store could not take the write in time (the API answers 503).
	ErrOverloaded = errors.New("store overloaded")
	// ErrDuplicate: a write collided with an existing unique key that is not
	// an upsert's own key (e.g. a caller-chosen message pk already in use).
	ErrDuplicate = errors.New("duplicate key")
)

// Priority values (lifecycle.md §4).
const (
	PriorityImmediate = 0
	PriorityHigh      = 1
	PriorityMedium    = 2
	PriorityLow       = 3
)

// EventType is the kind of a message event.
type EventType string

// Event types (lifecycle.md §2).
const (
	EventSent     EventType = "sent"
	EventError    EventType = "error"
	EventDeferred EventType = "deferred"
	EventBounce   EventType = "bounce"
)

// SuspendAll in SuspendedBatches means the whole tenant is suspended.
const SuspendAll = "*"

// ClientAuth is a tenant's credentials for its client endpoints (sync, attachments).
type ClientAuth struct {
	Method   string `json:"method"` // none, bearer, basic
	Token    string `json:"token,omitempty"`
	User     string `json:"user,omitempty"`
	Password string `json:"password,omitempty"`
}

// Tenant is a client application (api.md §4.2) plus stored state.
type Tenant struct {
	ID                   string
	Name                 *string
	ClientAuth           *ClientAuth
	ClientBaseURL        *string
	ClientSyncPath       *string
	ClientAttachmentPath *string
	RateLimits           json.RawMessage // stored only
	LargeFileConfig      json.RawMessage
	Active               bool
	// ClientURLByTenant: client_base_url was last set with the tenant's own
	// API key, not the admin token. Such an origin meets the public-only
	// address policy unless the instance allows private client URLs.
	ClientURLByTenant bool

	// Stored state, kept by UpsertTenant.
	SuspendedBatches       []string // nil/empty: none; ["*"]: all; else sorted codes
	APIKeyHash             string   // SHA-256 hex; "" = no key
	APIKeyExpiresAt        *time.Time
	SigningSecret          string // "whsec_..."; "" = none
	PrevSigningSecret      string // still signs until PrevSigningSecretUntil
	PrevSigningSecretUntil *time.Time
	CreatedAt              time.Time
	UpdatedAt              time.Time
}

// SyncState is a tenant's client-sync bookkeeping (client-sync.md), stored so
// that restarts and other instances see it.
type SyncState struct {
	TenantID            string
	LastSyncAt          *time.Time // last successful POST
	DNDUntil            *time.Time // next_sync_after in the future
	ConsecutiveFailures int
	NextRetryAt         *time.Time // failure backoff
	LastError           string
	QueuedStreak        int // consecutive queued>0 resyncs
}

// Account is SMTP credentials and limits (api.md §4.1).
type Account struct {
	TenantID       string
	ID             string
	Host           string
	Port           int
	User           string
	Password       string
	TTL            int // max connection age, seconds (default 300)
	LimitPerMinute *int
	LimitPerHour   *int
	LimitPerDay    *int
	LimitBehavior  string // "defer" or "reject"
	UseTLS         *bool  // nil = auto
	TLSVerify      bool
	BatchSize      *int
	IsPECAccount   bool
	IMAPHost       *string
	IMAPPort       *int
	IMAPUser       *string
	IMAPPassword   string
	IMAPSSL        *bool
	// DKIM signing (all three set, or none): the d= domain, the s= selector
	// and the PEM private key (sealed at rest by internal/secret).
	DKIMDomain     string
	DKIMSelector   string
	DKIMPrivateKey string
	// HostByTenant: host was last set with the tenant's own API key. With
	// GMP_ACCOUNT_TARGETS_PUBLIC_ONLY such a host must be public, at dial too.
	HostByTenant bool
	CreatedAt    time.Time
	UpdatedAt    time.Time

	// CredentialsError is set (never stored) when a stored password could not
	// be decrypted: Password/IMAPPassword are then empty and must not be used.
	CredentialsError string
}

// Message is one stored message (lifecycle.md §2). Payload is the normalised
// client item (lifecycle.md §3) as JSON.
type Message struct {
	PK                string // UUID
	TenantID          string
	ID                string // client id, unique per tenant
	AccountID         string
	Priority          int
	Payload           json.RawMessage
	BatchCode         *string
	DeferredUntil     *time.Time // nil = ready
	FinalAt           *time.Time // smtp_ts: time of the final outcome; nil = unprocessed
	RetryCount        int
	RejectedAtEnqueue bool
	LeaseOwner        string     // "" = unclaimed
	LeaseUntil        *time.Time // claim lease expiry
	Attempt           int        // claims so far; guards outcomes
	CreatedAt         time.Time
	UpdatedAt         time.Time
}

// Event is one append-only record on a message.
type Event struct {
	ID          int64 // monotonic
	MessagePK   string
	TenantID    string
	MessageID   string // client id, for report items
	Type        EventType
	At          time.Time
	Description string
	Metadata    json.RawMessage // JSON object or nil
	ReportedAt  *time.Time
}

// MessageRecord is a message as listed by GET /messages: the row, its
// tenant's name, its latest events, and (on request) its history.
type MessageRecord struct {
	Message
	TenantName  *string
	LatestError *Event // latest error event
	LatestEvent *Event // latest event of any kind (reported_ts comes from it)
	Bounce      *Event // latest bounce event
	Final       *Event // the event that made it final (sent or error), if processed
	History     []Event
}

// NewMessage is one add-messages item ready to store. When RejectReason is
// set the item is stored as an errored message with an error event carrying
// the reason (if its tenant exists), never queued.
type NewMessage struct {
	PK            string // generated by the caller (UUID) if the row is new
	TenantID      string
	ID            string
	AccountID     string
	Priority      int
	Payload       json.RawMessage
	BatchCode     *string
	DeferredUntil *time.Time
	RejectReason  string
}

// EnqueueStatus is what EnqueueBatch did with one item.
type EnqueueStatus int

// Enqueue statuses.
const (
	Queued            EnqueueStatus = iota // stored or replaced, counted in "queued"
	Rejected                               // stored as error (or not stored); Reason says why
	AlreadySent                            // processed by delivery; left unchanged
	SendingInProgress                      // live claim; left unchanged
)

// Reject reasons EnqueueBatch gives by itself (api.md §3.3).
const (
	ReasonNoID      = "missing id"                   // never stored: there is no key to store it under
	ReasonNoAccount = "account not found for tenant" // stored as an errored message when its tenant exists
)

// EnqueueResult is the outcome for one NewMessage, in request order.
type EnqueueResult struct {
	Status EnqueueStatus
	Reason string // for Rejected: the caller's reject reason, or ReasonNoID or ReasonNoAccount
	PK     string
}

// ClaimRequest asks for due messages.
type ClaimRequest struct {
	Owner      string        // instance id
	Now        time.Time     // due cut-off and lease start
	Lease      time.Duration // lease length
	Limit      int           // total rows at most
	PerAccount int           // rows per (tenant, account) at most, unless the account's batch_size is set
	// SkipAccounts are accounts whose send lanes are full: claim none of
	// theirs, so free slots go to other accounts. Key: AccountKey(tenant, id).
	SkipAccounts map[string]bool
	// TenantID restricts the claim to one tenant ("" = all).
	TenantID string
}

// AccountKey is the map key for one account of one tenant.
func AccountKey(tenantID, accountID string) string { return tenantID + "\x00" + accountID }

// Claim is a claimed message: the row (lease set, DeferredUntil cleared,
// Attempt incremented) with its account, nil if the account is missing.
type Claim struct {
	Message Message
	Account *Account

	// CredentialsError is set (never stored) when a stored attachment
	// credential of the message could not be decrypted; it was left out of
	// the payload and the message must not be attempted with it.
	CredentialsError string
}

// OutcomeKind is how an attempt ended.
type OutcomeKind int

// Outcome kinds.
const (
	OutcomeSent     OutcomeKind = iota // event sent, FinalAt set
	OutcomeDeferred                    // event deferred, DeferredUntil set, RetryCount as given
	OutcomeError                       // event error, FinalAt set
	OutcomeRelease                     // no event; back to pending (shutdown before SMTP)
	// OutcomeSilentDefer: re-deferred without a new event (repeated rate_limit deferral).
	OutcomeSilentDefer
)

// Outcome is the one transaction that ends an attempt.
type Outcome struct {
	MessagePK     string
	Owner         string
	Attempt       int
	Kind          OutcomeKind
	At            time.Time
	Description   string
	Metadata      json.RawMessage
	DeferredUntil *time.Time // for deferred kinds
	RetryCount    int        // new retry_count for deferred/error
	// ReleaseRate gives back the rate slots reserved at this time (failed attempt).
	ReleaseRate *RateKey
}

// RateKey names one account's reserved slot: the windows containing At.
type RateKey struct {
	TenantID  string
	AccountID string
	At        time.Time
}

// RateRequest reserves one slot in every configured window (ratelimits.md §3).
type RateRequest struct {
	TenantID  string
	AccountID string
	Now       time.Time
	PerMinute int // <= 0: no limit
	PerHour   int
	PerDay    int
}

// RateDecision is the answer to a reservation.
type RateDecision struct {
	OK        bool
	Window    string    // "minute", "hour" or "day": the first full window
	WindowEnd time.Time // when that window ends
}

// RateUsage is the count in each current window.
type RateUsage struct {
	Minute int `json:"minute"`
	Hour   int `json:"hour"`
	Day    int `json:"day"`
}

// MessageFilter selects messages for listing.
type MessageFilter struct {
	TenantID       string
	ActiveOnly     bool
	IncludeHistory bool
	Limit          int // 0 = no limit
	Offset         int
	// After pages by position instead of Offset: only messages after this
	// one in listing order. It needs TenantID (the order is total within
	// a tenant) and reads an index, so each page costs the same.
	After *MessageCursor
}

// MessageCursor is a position in a tenant's listing order (priority,
// created_at, id). ListStart is before every message.
type MessageCursor struct {
	Priority  int
	CreatedAt time.Time
	ID        string
}

// ListStart is the cursor of a listing's first page.
var ListStart = MessageCursor{Priority: -1, CreatedAt: time.UnixMilli(0)}

// Cursor is the record's position in the listing order.
func (r *MessageRecord) Cursor() MessageCursor {
	return MessageCursor{Priority: r.Priority, CreatedAt: r.CreatedAt, ID: r.ID}
}

// DeleteResult is the answer of delete-messages.
type DeleteResult struct {
	Removed      int
	NotFound     []string
	Unauthorized []string
}

// SuspendResult is the state after suspend/activate.
type SuspendResult struct {
	SuspendedBatches []string // ["*"], or sorted codes, or empty
	PendingMessages  int      // unprocessed messages, restricted to the batch if given
}

// TenantStats is the per-tenant summary of GET /stats.
type TenantStats struct {
	TenantID string `json:"tenant_id"`
	Accounts int    `json:"accounts"`
	Pending  int    `json:"pending"`
	Deferred int    `json:"deferred"`
	Sent     int    `json:"sent"`
	Error    int    `json:"error"`
}

// CommandLogEntry is one recorded mutating call.
type CommandLogEntry struct {
	ID       int64
	At       time.Time
	Endpoint string  // command name, e.g. addMessages
	TenantID *string // the tenant the call targeted
	// Caller is who made the call: "admin" or "tenant:<id>" (the key's
	// tenant); "" for entries recorded before callers were.
	Caller         string
	Payload        json.RawMessage
	ResponseStatus int
	ResponseBody   json.RawMessage
}

// CommandLogFilter selects command-log entries.
type CommandLogFilter struct {
	TenantID       string
	Since, Until   *time.Time
	EndpointFilter string // substring of the command name
	Limit          int    // 0 = no limit
	OldestFirst    bool
}

// Instance is the instance settings row (api.md §4.3).
type Instance struct {
	Name               string
	APIToken           string // stored admin token
	Edition            string
	BounceEnabled      bool
	BounceIMAPHost     *string
	BounceIMAPPort     int
	BounceIMAPUser     *string
	BounceIMAPPassword string
	BounceIMAPFolder   string
	BounceIMAPSSL      bool
	BouncePollInterval int
	BounceReturnPath   *string
	CreatedAt          time.Time
	UpdatedAt          time.Time
}

// IdempotencyRecord is a stored add-messages answer (api.md §3.5).
type IdempotencyRecord struct {
	Scope     string // "admin" or "tenant:<id>"
	Key       string
	BodyHash  string // SHA-256 hex
	Status    int    // 0 while the first request is running
	Response  json.RawMessage
	CreatedAt time.Time
}

// Store is every persistent operation mailproxy performs, in groups by
// domain. A consumer names the groups or methods it uses (queue.Store,
// auth.KeyLookup, api.Store); a driver implements them all.
type Store interface {
	Settings
	Tenants
	Accounts
	Messages
	Delivery
	Rates
	Reports
	CommandLog
	Idempotency
	Deliverability

	// PurgeExpired drops idempotency records and rate windows older than cutoff.
	PurgeExpired(ctx context.Context, cutoff time.Time) error

	Close() error
}

// Settings is the instance settings row.
type Settings interface {
	GetInstance(ctx context.Context) (Instance, error)
	PutInstance(ctx context.Context, inst Instance) error
}

// Tenants are the client applications, their keys, secrets and suspensions.
type Tenants interface {
	// UpsertTenant creates or replaces the payload fields, keeping key,
	// signing secrets and suspended batches; created reports a new id.
	UpsertTenant(ctx context.Context, t Tenant) (created bool, err error)
	GetTenant(ctx context.Context, id string) (Tenant, error)
	ListTenants(ctx context.Context, activeOnly bool) ([]Tenant, error) // by id
	// DeleteTenant removes the tenant with its accounts, messages, events,
	// counters, idempotency records and sync state.
	DeleteTenant(ctx context.Context, id string) error
	// SetAPIKey stores a key hash (or "" to revoke) and its expiry.
	SetAPIKey(ctx context.Context, tenantID, hash string, expiresAt *time.Time) error
	// TenantByAPIKey finds the tenant whose live (unexpired at now) key has this hash.
	TenantByAPIKey(ctx context.Context, hash string, now time.Time) (Tenant, error)
	// SetSigningSecret installs a new secret (or "" to remove all); the old one
	// becomes the previous secret until prevUntil.
	SetSigningSecret(ctx context.Context, tenantID, secret string, prevUntil *time.Time) error
	Suspend(ctx context.Context, tenantID string, batchCode *string) (SuspendResult, error)
	Activate(ctx context.Context, tenantID string, batchCode *string) (SuspendResult, error)
	// RetryDeferred makes due at once the tenant's messages waiting for a
	// retry (unprocessed, unclaimed, retry_count > 0, deferred past now), of
	// one batch when batchCode is set, and answers how many. A deferred_ts
	// the client chose, and rate-limit deferrals of never-failed messages,
	// are left alone. Unknown tenant: ErrTenantNotFound.
	RetryDeferred(ctx context.Context, tenantID string, batchCode *string, now time.Time) (int, error)
}

// Accounts are the tenants' SMTP accounts.
type Accounts interface {
	// UpsertAccount replaces every field (callers merge partial updates).
	UpsertAccount(ctx context.Context, a Account) error
	GetAccount(ctx context.Context, tenantID, id string) (Account, error)
	ListAccounts(ctx context.Context, tenantID string) ([]Account, error) // "" = all tenants
	DeleteAccount(ctx context.Context, tenantID, id string) error
}

// Messages are enqueue, listing, deletion, retention and counts.
type Messages interface {
	// EnqueueBatch stores the items in one durable transaction (upsert rules:
	// lifecycle.md §3) and answers per item in order. Concurrent calls may
	// share one commit; none returns before its data is durable.
	EnqueueBatch(ctx context.Context, items []NewMessage, now time.Time) ([]EnqueueResult, error)
	ListMessages(ctx context.Context, f MessageFilter, now time.Time) ([]MessageRecord, error)
	DeleteMessages(ctx context.Context, tenantID string, ids []string) (DeleteResult, error)
	// GetMessage reads one message by client id as ListMessages lists it,
	// with its history (ErrNotFound if the tenant has none by that id).
	// tenantID "" looks in every tenant and takes the first in listing order.
	GetMessage(ctx context.Context, tenantID, id string) (MessageRecord, error)
	// CountBatchPending counts a batch's unprocessed messages (no final
	// outcome: queued, deferred or claimed); tenantID "" counts every
	// tenant's. An unknown tenant or batch counts 0.
	CountBatchPending(ctx context.Context, tenantID, batchCode string) (int, error)
	// CleanupMessages deletes processed messages (tenantID "" = all tenants)
	// with no unreported event whose latest reported time is before cutoff,
	// at most limit (0 = no limit) rows.
	CleanupMessages(ctx context.Context, tenantID string, cutoff time.Time, limit int) (int, error)
	// RewriteAuthPayloads calls fn on the payload of every message (any
	// state, all tenants) that may carry attachment auth, batch (<= 0: 500)
	// messages per transaction in storage order, and stores each payload fn
	// reports changed. It returns how many payloads it wrote. fn may be called
	// again for a batch whose transaction is retried.
	RewriteAuthPayloads(ctx context.Context, batch int, fn func(payload json.RawMessage) (json.RawMessage, bool, error)) (int, error)
	// CountUnprocessed counts messages without a final outcome, all tenants.
	CountUnprocessed(ctx context.Context) (int, error)
	Stats(ctx context.Context, tenantID string, now time.Time) ([]TenantStats, error) // "" = all
	// Overview reads the dashboard's queue summary for one tenant ("" = all):
	// counts at now, the oldest due message and the outcomes per minute since.
	Overview(ctx context.Context, tenantID string, now, since time.Time) (QueueOverview, error)
	// SearchMessages lists messages matching s, newest first, as ListMessages
	// builds records (latest events; history on request).
	SearchMessages(ctx context.Context, s MessageSearch, now time.Time) ([]MessageRecord, error)
}

// Delivery is the dispatcher's side of a message: claims, leases, outcomes.
type Delivery interface {
	Claim(ctx context.Context, req ClaimRequest) ([]Claim, error)
	// RenewLease extends the leases this owner still holds; returns the pks renewed.
	RenewLease(ctx context.Context, owner string, pks []string, until time.Time) ([]string, error)
	// RecordOutcome applies the outcome if the lease is still held (else ErrLeaseLost).
	RecordOutcome(ctx context.Context, o Outcome) error
	// ReleaseClaims returns this owner's live claims to pending without an
	// event; owner "" releases every claim (SQLite at startup).
	ReleaseClaims(ctx context.Context, owner string) (int, error)
	// NextDue is the earliest time after now at which some unprocessed,
	// unsuspended message becomes claimable (deferral or lease expiry).
	NextDue(ctx context.Context, now time.Time) (time.Time, bool, error)
	// LastEvent returns the message's latest event (ErrNotFound if none).
	LastEvent(ctx context.Context, messagePK string) (Event, error)
}

// Rates are the per-account rate windows (ratelimits.md).
type Rates interface {
	ReserveRate(ctx context.Context, req RateRequest) (RateDecision, error)
	RateUsage(ctx context.Context, tenantID, accountID string, now time.Time) (RateUsage, error)
}

// Reports are the client-sync bookkeeping: unreported events, sync state
// and the per-tenant report lease.
type Reports interface {
	// UnreportedEvents returns a tenant's unreported events in (At, ID) order.
	UnreportedEvents(ctx context.Context, tenantID string, limit int) ([]Event, error)
	// TenantsWithUnreported lists tenant ids that have unreported events.
	TenantsWithUnreported(ctx context.Context) ([]string, error)
	CountUnreported(ctx context.Context, tenantID string) (int, error)
	MarkReported(ctx context.Context, eventIDs []int64, at time.Time) error
	GetSyncState(ctx context.Context, tenantID string) (SyncState, error) // zero state if none
	PutSyncState(ctx context.Context, s SyncState) error
	// AcquireReportLease gives owner the tenant's report slot until `until`
	// if it is free, expired, or already owner's.
	AcquireReportLease(ctx context.Context, tenantID, owner string, now, until time.Time) (bool, error)
	ReleaseReportLease(ctx context.Context, tenantID, owner string) error
}

// CommandLog is the record of mutating calls.
type CommandLog interface {
	AppendCommand(ctx context.Context, e CommandLogEntry) error
	ListCommands(ctx context.Context, f CommandLogFilter) ([]CommandLogEntry, error)
}

// Idempotency keeps add-messages answers by Idempotency-Key (api.md §3.5).
type Idempotency interface {
	// BeginIdempotent inserts a running record, or returns the existing one
	// (existing=true) without changing it.
	BeginIdempotent(ctx context.Context, rec IdempotencyRecord) (existing IdempotencyRecord, found bool, err error)
	FinishIdempotent(ctx context.Context, scope, key string, status int, response json.RawMessage) error
	AbortIdempotent(ctx context.Context, scope, key string) error
}

// Waker is a driver's optional capability beside Store: its instances can
// wake each other (PostgreSQL LISTEN/NOTIFY). EnqueueBatch and Activate
// signal it themselves.
type Waker interface {
	// SignalWork wakes every instance listening on this store (run-now).
	SignalWork(ctx context.Context) error
	// Listen calls wake whenever any instance signals work, until ctx ends.
	Listen(ctx context.Context, wake func()) error
}
