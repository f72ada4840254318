// Package storetest is the conformance suite every store.Store driver passes
// (SQLite and PostgreSQL). A driver's test calls Run with a factory
// returning a fresh, empty, migrated store; the suite speaks only the
// store.Store interface, so it states the contract once for all drivers.
//
// How a case runs:
//  1. Run groups the cases by area (enqueue, claim, outcome, rate, ...) and
//     runs every case as a parallel subtest with its own store.
//  2. A case seeds tenants, accounts and messages with explicit times around
//     a fixed, day-aligned base instant, so nothing depends on the wall clock
//     and nothing sleeps.
//  3. It asserts what the store's callers observe through the interface:
//     answers, listings, events and errors (checked with errors.Is).
package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/mailproxy/mailproxy/internal/store"
)

// baseUnix is 2026-01-01T00:00:00Z: aligned to the minute, hour and day, so
// window ends in the rate cases are easy to read.
const baseUnix = 1767225600

// farUnix is 2100-01-01T00:00:00Z, for the few methods that take no `now`
// (RenewLease, ReleaseClaims): leases there are live by any clock.
const farUnix = 4102444800

// at is the base instant plus sec seconds.
func at(sec int) time.Time { return time.Unix(baseUnix+int64(sec), 0) }

// farAt is the far instant plus sec seconds.
func farAt(sec int) time.Time { return time.Unix(farUnix+int64(sec), 0) }

// ptr returns a pointer to v.
func ptr[T any](v T) *T { return &v }

// testCase is one conformance case; it gets a fresh store.
type testCase struct {
	name string
	run  func(t *testing.T, h *harness)
}

// Run runs the whole conformance suite. newStore returns a fresh, empty,
// migrated store for one subtest and registers its own cleanup.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Helper()
	groups := []struct {
		name  string
		cases []testCase
	}{
		{"Enqueue", enqueueCases()},
		{"Claim", claimCases()},
		{"Outcome", outcomeCases()},
		{"Suspension", suspensionCases()},
		{"RetryDeferred", retryDeferredCases()},
		{"Rate", rateCases()},
		{"Reports", reportCases()},
		{"Messages", messageCases()},
		{"Tenants", tenantCases()},
		{"Accounts", accountCases()},
		{"CommandLog", commandLogCases()},
		{"Idempotency", idempotencyCases()},
		{"Instance", instanceCases()},
		{"Dashboard", dashboardCases()},
		{"Deliverability", deliverabilityCases()},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			for _, c := range g.cases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					c.run(t, &harness{t: t, ctx: t.Context(), s: newStore(t)})
				})
			}
		})
	}
}

// harness wraps a store with helpers that fail the test on unexpected errors.
type harness struct {
	t   *testing.T
	ctx context.Context
	s   store.Store
}

// tenant creates an active tenant named "<id> name".
func (h *harness) tenant(id string) {
	h.t.Helper()
	created, err := h.s.UpsertTenant(h.ctx, store.Tenant{ID: id, Name: ptr(id + " name"), Active: true})
	if err != nil {
		h.t.Fatalf("UpsertTenant(%q): %v", id, err)
	}
	if !created {
		h.t.Fatalf("UpsertTenant(%q) on a fresh id: created = false, want true", id)
	}
}

// account creates an account; opts adjust it before it is stored.
func (h *harness) account(tenantID, id string, opts ...func(*store.Account)) store.Account {
	h.t.Helper()
	a := store.Account{
		TenantID:      tenantID,
		ID:            id,
		Host:          "127.0.0.1",
		Port:          2525,
		User:          "user-" + id,
		Password:      "secret-" + id,
		TTL:           300,
		LimitBehavior: "defer",
		TLSVerify:     true,
	}
	for _, o := range opts {
		o(&a)
	}
	if err := h.s.UpsertAccount(h.ctx, a); err != nil {
		h.t.Fatalf("UpsertAccount(%q, %q): %v", tenantID, id, err)
	}
	return a
}

// tenantWithAccount creates tenant tenantID with account "acc".
func (h *harness) tenantWithAccount(tenantID string) {
	h.t.Helper()
	h.tenant(tenantID)
	h.account(tenantID, "acc")
}

// msgOption adjusts a message built by msg.
type msgOption func(*msgBuilder)

type msgBuilder struct {
	m store.NewMessage
	p store.Payload
}

func priority(p int) msgOption {
	return func(b *msgBuilder) { b.m.Priority = p; b.p.Priority = p }
}

func batch(code string) msgOption {
	return func(b *msgBuilder) { b.m.BatchCode = &code; b.p.BatchCode = code }
}

func deferredUntil(t time.Time) msgOption {
	return func(b *msgBuilder) {
		b.m.DeferredUntil = &t
		sec := t.Unix()
		b.p.DeferredTS = &sec
	}
}

func rejectReason(reason string) msgOption {
	return func(b *msgBuilder) { b.m.RejectReason = reason }
}

func subject(s string) msgOption {
	return func(b *msgBuilder) { b.p.Subject = s }
}

func withPK(pk string) msgOption {
	return func(b *msgBuilder) { b.m.PK = pk }
}

// msg builds a valid add-messages item (priority medium) with a normalised payload.
func msg(tenantID, id, accountID string, opts ...msgOption) store.NewMessage {
	b := msgBuilder{
		m: store.NewMessage{TenantID: tenantID, ID: id, AccountID: accountID, Priority: store.PriorityMedium},
		p: store.Payload{
			ID:        id,
			TenantID:  tenantID,
			AccountID: accountID,
			From:      "sender@example.com",
			To:        []string{"rcpt@example.com"},
			Subject:   "subject of " + id,
			Body:      "body of " + id,
			Priority:  store.PriorityMedium,
		},
	}
	for _, o := range opts {
		o(&b)
	}
	// Marshal cannot fail: a Payload holds only strings, ints, slices and string maps.
	raw, _ := json.Marshal(b.p)
	b.m.Payload = raw
	return b.m
}

// enqueue stores items at now and returns one result per item.
func (h *harness) enqueue(now time.Time, items ...store.NewMessage) []store.EnqueueResult {
	h.t.Helper()
	res, err := h.s.EnqueueBatch(h.ctx, items, now)
	if err != nil {
		h.t.Fatalf("EnqueueBatch(%d items): %v", len(items), err)
	}
	if len(res) != len(items) {
		h.t.Fatalf("EnqueueBatch(%d items) returned %d results, want one per item", len(items), len(res))
	}
	return res
}

// enqueueQueued stores items, requires every one Queued, and returns their pks.
func (h *harness) enqueueQueued(now time.Time, items ...store.NewMessage) []string {
	h.t.Helper()
	res := h.enqueue(now, items...)
	pks := make([]string, len(res))
	for i, r := range res {
		if r.Status != store.Queued {
			h.t.Fatalf("EnqueueBatch item %d (id %q): status %s (reason %q), want Queued",
				i, items[i].ID, statusName(r.Status), r.Reason)
		}
		if r.PK == "" {
			h.t.Fatalf("EnqueueBatch item %d (id %q): Queued with empty PK", i, items[i].ID)
		}
		pks[i] = r.PK
	}
	return pks
}

// claimReq is a claim with a one-minute lease and generous limits.
func claimReq(owner string, now time.Time) store.ClaimRequest {
	return store.ClaimRequest{Owner: owner, Now: now, Lease: time.Minute, Limit: 100, PerAccount: 100}
}

// claim runs a claim request.
func (h *harness) claim(req store.ClaimRequest) []store.Claim {
	h.t.Helper()
	claims, err := h.s.Claim(h.ctx, req)
	if err != nil {
		h.t.Fatalf("Claim(owner %q, now %s): %v", req.Owner, req.Now.UTC().Format(time.RFC3339), err)
	}
	return claims
}

// claimOne claims with the default request and requires exactly one claim with the wanted id.
func (h *harness) claimOne(owner string, now time.Time, wantID string) store.Claim {
	h.t.Helper()
	claims := h.claim(claimReq(owner, now))
	if got := claimIDs(claims); !slices.Equal(got, []string{wantID}) {
		h.t.Fatalf("Claim(owner %q, now %s) = %q, want [%q]", owner, now.UTC().Format(time.RFC3339), got, wantID)
	}
	return claims[0]
}

// claimFirst claims the single best due message and requires it to be wantID.
func (h *harness) claimFirst(owner string, now time.Time, wantID string) store.Claim {
	h.t.Helper()
	req := claimReq(owner, now)
	req.Limit = 1
	claims := h.claim(req)
	if got := claimIDs(claims); !slices.Equal(got, []string{wantID}) {
		h.t.Fatalf("Claim(owner %q, now %s, limit 1) = %q, want [%q]", owner, now.UTC().Format(time.RFC3339), got, wantID)
	}
	return claims[0]
}

// claimIDs lists the claimed messages' client ids, in claim order.
func claimIDs(claims []store.Claim) []string {
	ids := make([]string, len(claims))
	for i, c := range claims {
		ids[i] = c.Message.ID
	}
	return ids
}

// finish records a final or deferral outcome for a claim at the given time.
func (h *harness) finish(c store.Claim, kind store.OutcomeKind, when time.Time, description string) {
	h.t.Helper()
	o := store.Outcome{
		MessagePK:   c.Message.PK,
		Owner:       c.Message.LeaseOwner,
		Attempt:     c.Message.Attempt,
		Kind:        kind,
		At:          when,
		Description: description,
		RetryCount:  c.Message.RetryCount, // unchanged; only used by deferred and error kinds
	}
	if err := h.s.RecordOutcome(h.ctx, o); err != nil {
		h.t.Fatalf("RecordOutcome(%s, id %q, attempt %d): %v", kindName(kind), c.Message.ID, c.Message.Attempt, err)
	}
}

// sendNow claims every due message at `when`, records message id sent and
// releases the others (their attempt count grows, nothing else changes).
func (h *harness) sendNow(id string, when time.Time) {
	h.t.Helper()
	found := false
	for _, c := range h.claim(claimReq("sender", when)) {
		if c.Message.ID == id {
			found = true
			h.finish(c, store.OutcomeSent, when, "250 OK")
		} else {
			h.finish(c, store.OutcomeRelease, when, "")
		}
	}
	if !found {
		h.t.Fatalf("sendNow: message %q not claimable at %s", id, when.UTC().Format(time.RFC3339))
	}
}

// records lists a tenant's messages ("" = all) with history.
func (h *harness) records(tenantID string) []store.MessageRecord {
	h.t.Helper()
	recs, err := h.s.ListMessages(h.ctx, store.MessageFilter{TenantID: tenantID, IncludeHistory: true}, at(0))
	if err != nil {
		h.t.Fatalf("ListMessages(tenant %q): %v", tenantID, err)
	}
	return recs
}

// record returns the listing of one message, failing if it is absent.
func (h *harness) record(tenantID, id string) store.MessageRecord {
	h.t.Helper()
	for _, r := range h.records(tenantID) {
		if r.ID == id {
			return r
		}
	}
	h.t.Fatalf("message %q of tenant %q not listed by ListMessages", id, tenantID)
	return store.MessageRecord{}
}

// recordIDs lists the client ids of records in order.
func recordIDs(recs []store.MessageRecord) []string {
	ids := make([]string, len(recs))
	for i, r := range recs {
		ids[i] = r.ID
	}
	return ids
}

// eventTypes lists the types of events in order.
func eventTypes(events []store.Event) []store.EventType {
	types := make([]store.EventType, len(events))
	for i, e := range events {
		types[i] = e.Type
	}
	return types
}

// payloadSubject decodes the subject of a stored payload.
func payloadSubject(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	p, err := store.DecodePayload(raw)
	if err != nil {
		t.Fatalf("stored payload %s does not decode: %v", raw, err)
	}
	return p.Subject
}

// jsonEqual compares two JSON documents by value; empty and null are equal.
func jsonEqual(a, b []byte) bool {
	if isNullJSON(a) || isNullJSON(b) {
		return isNullJSON(a) && isNullJSON(b)
	}
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return cmp.Equal(va, vb)
}

func isNullJSON(raw []byte) bool {
	return len(raw) == 0 || string(raw) == "null"
}

// cmpOpts compares store values the way drivers may legitimately differ:
// times by instant, JSON by value, nil and empty slices alike.
var cmpOpts = cmp.Options{
	cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) }),
	cmp.Comparer(func(a, b json.RawMessage) bool { return jsonEqual(a, b) }),
	// Empty slices and maps equal nil ones, except JSON, which the comparer above owns.
	cmp.FilterValues(func(x, _ any) bool {
		_, isJSON := x.(json.RawMessage)
		return !isJSON
	}, cmpopts.EquateEmpty()),
}

// timeEq reports whether two optional times are both nil or the same instant.
func timeEq(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

// fmtTime renders an optional time for failure messages.
func fmtTime(t *time.Time) string {
	if t == nil {
		return "nil"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func statusName(s store.EnqueueStatus) string {
	switch s {
	case store.Queued:
		return "Queued"
	case store.Rejected:
		return "Rejected"
	case store.AlreadySent:
		return "AlreadySent"
	case store.SendingInProgress:
		return "SendingInProgress"
	}
	return fmt.Sprintf("EnqueueStatus(%d)", int(s))
}

func kindName(k store.OutcomeKind) string {
	switch k {
	case store.OutcomeSent:
		return "Sent"
	case store.OutcomeDeferred:
		return "Deferred"
	case store.OutcomeError:
		return "Error"
	case store.OutcomeRelease:
		return "Release"
	case store.OutcomeSilentDefer:
		return "SilentDefer"
	}
	return fmt.Sprintf("OutcomeKind(%d)", int(k))
}
