package store

import "time"

// Dashboard reads (the web dashboard under /ui/): queue counts per account,
// the oldest due message, recent throughput and a filtered message search.

// Message states a dashboard search can select (MessageSearch.State).
const (
	StatePending  = "pending"  // unprocessed and due (deferred_ts absent or past)
	StateDeferred = "deferred" // unprocessed, deferred_ts in the future
	StateSent     = "sent"     // final outcome sent
	StateError    = "error"    // final outcome error (rejected at enqueue included)
	StateBounced  = "bounced"  // processed and has a bounce event
)

// SearchStates are the valid MessageSearch.State values besides "".
var SearchStates = []string{StatePending, StateDeferred, StateSent, StateError, StateBounced}

// AccountCounts is the number of messages in each state for one account of
// one tenant. Pending, Deferred, Sent and Error partition the messages;
// Bounced counts the processed ones with a bounce event (a bounced message
// is also counted as sent or error).
type AccountCounts struct {
	TenantID  string `json:"tenant_id"`
	AccountID string `json:"account_id"`
	Pending   int    `json:"pending"`
	Deferred  int    `json:"deferred"`
	Sent      int    `json:"sent"`
	Error     int    `json:"error"`
	Bounced   int    `json:"bounced"`
}

// MinuteOutcomes is how many messages reached their final outcome in one
// UTC minute (Minute is the minute's start).
type MinuteOutcomes struct {
	Minute time.Time
	Sent   int
	Error  int
}

// QueueOverview is one consistent read of the queue for the dashboard.
type QueueOverview struct {
	// Counts per (tenant, account) that has messages, by tenant then account.
	Counts []AccountCounts
	// OldestDue is the queued message waiting longest since it became due
	// (due = deferral end, or creation when not deferred); nil if none.
	OldestDue *Message
	// Throughput lists the minutes since `since` with final outcomes (messages
	// rejected at enqueue excluded), oldest first; minutes without any are absent.
	Throughput []MinuteOutcomes
}

// MessageSearch selects messages for the dashboard's list, newest first:
// by insertion order descending (the row's sequence, kept when an
// unprocessed message is replaced), which walks the primary key instead of
// sorting the table (1.5 s -> 1.5 ms for the first page of 100,000).
type MessageSearch struct {
	TenantID  string // "" = all tenants
	AccountID string // "" = any
	ID        string // exact client id; "" = any
	State     string // one of SearchStates; "" = any
	BatchCode string // exact; "" = any
	// Text matches, case-insensitively (ASCII), a substring of the subject or
	// of a recipient (to, cc, bcc); "" = any.
	Text           string
	IncludeHistory bool
	Limit          int // 0 = no limit
	Offset         int
}
