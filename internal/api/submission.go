package api

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/mailproxy/mailproxy/internal/auth"
	"github.com/mailproxy/mailproxy/internal/rawmsg"
	"github.com/mailproxy/mailproxy/internal/store"
)

// Submissions is the enqueue path of add-messages offered to front ends that
// receive whole messages (the SMTP submission listener): the same checks,
// the same store call, the same wake-up, so everything add-messages applies
// to an item applies to a submitted message too.
type Submissions struct {
	s *server

	mu        sync.Mutex
	accepting map[string]acceptingState // tenant id -> its last check
}

// acceptingTTL bounds how long a tenant's state is trusted without a read:
// a suspension on another instance takes effect within it (on this
// instance at once).
const acceptingTTL = time.Second

type acceptingState struct {
	err error // nil or ErrTenantSuspended
	at  time.Time
	gen uint64
}

// NewWithSubmissions builds the API handler (as New) and its submission path.
func NewWithSubmissions(d Deps) (http.Handler, *Submissions, error) {
	h, err := New(d)
	if err != nil {
		return nil, nil, err
	}
	return h, &Submissions{s: h.(*server), accepting: map[string]acceptingState{}}, nil
}

// Login errors. ErrLoginFailed covers every credential problem alike, so a
// client learns nothing about which tenants or accounts exist.
var (
	ErrLoginFailed     = errors.New("authentication failed")
	ErrTenantSuspended = errors.New("tenant suspended")
)

// Login is an authenticated submitter: who, for which tenant and account.
type Login struct {
	Principal auth.Principal
	TenantID  string
	AccountID string
}

// Login checks SMTP AUTH credentials: username "<tenant_id>/<account_id>",
// password the tenant's API key or the admin token; the account must exist
// in that tenant. Store failures come back as other errors (temporary).
func (m *Submissions) Login(ctx context.Context, username, password string) (Login, error) {
	tenantID, accountID, ok := strings.Cut(username, "/")
	if !ok || strings.TrimSpace(tenantID) == "" || strings.TrimSpace(accountID) == "" {
		return Login{}, ErrLoginFailed
	}
	p, err := m.s.auth.AuthenticateToken(ctx, password)
	switch {
	case errors.Is(err, auth.ErrNoToken), errors.Is(err, auth.ErrInvalidToken):
		return Login{}, ErrLoginFailed
	case err != nil:
		return Login{}, err
	}
	if p.CheckTenant(tenantID) != nil {
		return Login{}, ErrLoginFailed
	}
	if _, err := m.s.st.GetAccount(ctx, tenantID, accountID); errors.Is(err, store.ErrNotFound) {
		return Login{}, ErrLoginFailed
	} else if err != nil {
		return Login{}, fmt.Errorf("look up account: %w", err)
	}
	return Login{Principal: p, TenantID: tenantID, AccountID: accountID}, nil
}

// Accepting reports whether the tenant takes new mail now: ErrTenantSuspended
// when it is inactive or fully suspended. The answer is kept for up to
// acceptingTTL (a tenant read per message cost as much as the enqueue).
func (m *Submissions) Accepting(ctx context.Context, tenantID string) error {
	gen := m.s.tenantGen.Load()
	m.mu.Lock()
	st, ok := m.accepting[tenantID]
	m.mu.Unlock()
	if ok && st.gen == gen && time.Since(st.at) < acceptingTTL {
		return st.err
	}
	t, err := m.s.st.GetTenant(ctx, tenantID)
	if err != nil {
		return fmt.Errorf("look up tenant: %w", err)
	}
	st = acceptingState{at: time.Now(), gen: gen}
	if !t.Active || (len(t.SuspendedBatches) > 0 && t.SuspendedBatches[0] == store.SuspendAll) {
		st.err = ErrTenantSuspended
	}
	m.mu.Lock()
	m.accepting[tenantID] = st
	m.mu.Unlock()
	return st.err
}

// Submission is one message received whole.
type Submission struct {
	MailFrom   string   // envelope sender; becomes return_path ("" = none)
	Recipients []string // envelope recipients
	Raw        []byte   // the message as received, control headers removed
	Control    rawmsg.Control
}

// SubmitResult is what became of a submission. Reason is "" when it was
// queued (or already known: Duplicate), else why it was refused.
type SubmitResult struct {
	ID        string
	Reason    string
	Duplicate bool
}

// Submit enqueues one message for login's tenant and account through the
// add-messages path. An error is a failure to store (temporary); an
// invalid message is a result with a Reason.
func (m *Submissions) Submit(ctx context.Context, login Login, sub Submission) (SubmitResult, error) {
	id := strings.TrimSpace(sub.Control.ID)
	if id == "" {
		id = uuid.Must(uuid.NewV7()).String()
	}
	res := SubmitResult{ID: id}
	it, reason := submissionItem(login, sub, id)
	if reason != "" {
		res.Reason = reason
		return res, nil
	}
	c := &call{s: m.s, r: (&http.Request{}).WithContext(ctx), p: login.Principal}
	results, _, err := m.s.enqueueItems(c, []item{it}, nil)
	if err != nil {
		return res, err
	}
	res.Reason = results[0].reason
	if results[0].duplicate() {
		res.Reason, res.Duplicate = "", true
	}
	return res, nil
}

// submissionItem builds the add-messages item of a submission, or names
// why its control headers are invalid.
func submissionItem(login Login, sub Submission, id string) (item, string) {
	tenant := login.TenantID
	it := item{id: id, tenantID: &tenant, explicitTenant: true}
	p := &it.payload
	p.ID, p.AccountID = id, login.AccountID
	if utf8.RuneCountInString(id) > maxIDLen {
		return it, fmt.Sprintf("invalid %s: longer than %d characters", rawmsg.HeaderID, maxIDLen)
	}
	ctl := sub.Control
	if v := strings.TrimSpace(ctl.Priority); v != "" {
		n, ok := priorityFromText(strings.ToLower(v))
		if !ok {
			return it, fmt.Sprintf("invalid %s: %q is not 0..3 or immediate/high/medium/low", rawmsg.HeaderPriority, v)
		}
		it.priority = &n
	}
	if v := strings.TrimSpace(ctl.DeferredTS); v != "" {
		ts, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return it, fmt.Sprintf("invalid %s: %q is not Unix seconds", rawmsg.HeaderDeferredTS, v)
		}
		p.DeferredTS = &ts
		t := time.Unix(ts, 0)
		it.deferredUntil = &t
	}
	if v := strings.TrimSpace(ctl.BatchCode); v != "" {
		if utf8.RuneCountInString(v) > maxBatchCodeLen {
			return it, fmt.Sprintf("invalid %s: longer than %d characters", rawmsg.HeaderBatchCode, maxBatchCodeLen)
		}
		p.BatchCode = v
	}
	if len(sub.Recipients) > maxRecipients {
		return it, fmt.Sprintf("a message may have at most %d recipients, not %d", maxRecipients, len(sub.Recipients))
	}
	p.ReturnPath = sub.MailFrom
	p.To = sub.Recipients
	if utf8.Valid(sub.Raw) {
		p.Raw = string(sub.Raw)
	} else {
		p.Raw, p.RawEncoding = base64.StdEncoding.EncodeToString(sub.Raw), "base64"
	}
	// From: the header's first mailbox (for Message-ID), else MAIL FROM.
	it.rawReason = rawEnvelope(p, sub.Raw, true, false)
	if p.From == "" {
		p.From = sub.MailFrom
	}
	return it, ""
}
