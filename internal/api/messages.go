package api

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
)

const detailActivateFailed = "tenant not found or cannot activate single batch from full suspension"

// SuspendResponse is the answer of suspend and activate (api.md §5).
type SuspendResponse struct {
	OK               bool     `json:"ok"`
	TenantID         string   `json:"tenant_id"`
	BatchCode        *string  `json:"batch_code,omitempty"`
	SuspendedBatches []string `json:"suspended_batches" nullable:"false" doc:"[\"*\"] for a full suspension, else the sorted codes"`
	PendingMessages  int      `json:"pending_messages" doc:"unprocessed messages, of the batch if given"`
}

// DeleteMessagesRequest is delete-messages' body.
type DeleteMessagesRequest struct {
	_   struct{} `additionalProperties:"true"`
	IDs []string `json:"ids,omitempty" nullable:"false" doc:"client ids (default [])"`
}

// DeleteMessagesResponse is delete-messages' answer.
type DeleteMessagesResponse struct {
	OK           bool     `json:"ok"`
	Removed      int      `json:"removed"`
	NotFound     []string `json:"not_found" nullable:"false"`
	Unauthorized []string `json:"unauthorized" nullable:"false" doc:"ids found only under another tenant"`
}

// CleanupRequest is cleanup-messages' body; an empty body is {}.
type CleanupRequest struct {
	_                struct{} `additionalProperties:"true"`
	OlderThanSeconds *int64   `json:"older_than_seconds,omitempty" nullable:"true" minimum:"0" doc:"default GMP_DELIVERY_REPORT_RETENTION_SECONDS"`
}

// CleanupResponse is cleanup-messages' answer.
type CleanupResponse struct {
	OK      bool `json:"ok"`
	Removed int  `json:"removed"`
}

// MessageRecord is one message as listed by GET /messages (api.md §4.4).
type MessageRecord struct {
	PK           string          `json:"pk"`
	ID           string          `json:"id"`
	TenantID     string          `json:"tenant_id"`
	TenantName   *string         `json:"tenant_name,omitempty"`
	AccountID    string          `json:"account_id,omitempty"`
	Priority     int             `json:"priority"`
	BatchCode    *string         `json:"batch_code,omitempty"`
	DeferredTS   *int64          `json:"deferred_ts,omitempty"`
	SentTS       *int64          `json:"sent_ts,omitempty" doc:"time of the final outcome (also for errors)"`
	ErrorTS      *int64          `json:"error_ts,omitempty"`
	Error        *string         `json:"error,omitempty"`
	ReportedTS   *int64          `json:"reported_ts,omitempty"`
	BounceType   json.RawMessage `json:"bounce_type,omitempty"`
	BounceCode   json.RawMessage `json:"bounce_code,omitempty"`
	BounceReason json.RawMessage `json:"bounce_reason,omitempty"`
	BounceTS     *int64          `json:"bounce_ts,omitempty"`
	CreatedAt    string          `json:"created_at,omitempty"`
	UpdatedAt    string          `json:"updated_at,omitempty"`
	Message      json.RawMessage `json:"message,omitempty" doc:"the stored, normalised payload"`
	IsPEC        bool            `json:"is_pec"`
	Status       string          `json:"status" enum:"pending,deferred,sent,error"`
	RetryCount   int             `json:"retry_count"`
	History      []HistoryEvent  `json:"history,omitempty" nullable:"false"`
}

// HistoryEvent is one event of a message.
type HistoryEvent struct {
	EventID     int64           `json:"event_id"`
	EventType   string          `json:"event_type" enum:"sent,error,deferred,bounce"`
	EventTS     int64           `json:"event_ts"`
	Description string          `json:"description,omitempty"`
	Metadata    json.RawMessage `json:"metadata,omitempty"`
	ReportedTS  *int64          `json:"reported_ts,omitempty"`
}

// MessagesResponse is GET /messages' answer.
type MessagesResponse struct {
	OK       bool            `json:"ok"`
	Messages []MessageRecord `json:"messages" nullable:"false"`
}

// batchArg is the optional batch_code query of suspend, activate and
// retry-deferred.
func batchArg(c *call) *string {
	if bc, ok := c.qString("batch_code"); ok {
		return &bc
	}
	return nil
}

func suspendAnswer(tenant string, bc *string, r store.SuspendResult) SuspendResponse {
	out := SuspendResponse{OK: true, TenantID: tenant, BatchCode: bc,
		SuspendedBatches: r.SuspendedBatches, PendingMessages: r.PendingMessages}
	if out.SuspendedBatches == nil {
		out.SuspendedBatches = []string{}
	}
	return out
}

// suspendTenant suspends a tenant, or one batch of it. Unknown tenant:
// errTenantMissing.
func (s *server) suspendTenant(ctx context.Context, tenant string, batch *string) (SuspendResponse, error) {
	r, err := s.st.Suspend(ctx, tenant, batch)
	s.tenantsChanged()
	if errors.Is(err, store.ErrNotFound) {
		return SuspendResponse{}, errTenantMissing
	}
	if err != nil {
		return SuspendResponse{}, err
	}
	return suspendAnswer(tenant, batch, r), nil
}

// activateTenant resumes a tenant, or one batch of it. Unknown tenant:
// errTenantMissing; one batch under a full suspension: store.ErrFullySuspended.
func (s *server) activateTenant(ctx context.Context, tenant string, batch *string) (SuspendResponse, error) {
	r, err := s.st.Activate(ctx, tenant, batch)
	s.tenantsChanged()
	if errors.Is(err, store.ErrNotFound) {
		return SuspendResponse{}, errTenantMissing
	}
	if err != nil {
		return SuspendResponse{}, err
	}
	s.wake()
	return suspendAnswer(tenant, batch, r), nil
}

func (s *server) suspend(c *call) (any, error) {
	return s.suspendTenant(c.ctx(), c.tenantID, batchArg(c))
}

// activate is the legacy route, which answers one 400 for an unknown tenant
// and for a refused activation (its v0.7 alias tells them apart).
func (s *server) activate(c *call) (any, error) {
	out, err := s.activateTenant(c.ctx(), c.tenantID, batchArg(c))
	if errors.Is(err, errTenantMissing) {
		return nil, errActivateRefused
	}
	return out, err
}

func (s *server) deleteMessages(c *call) (any, error) {
	top, aerr := parseJSONBody(c.body, true)
	if aerr != nil {
		return nil, aerr
	}
	var is issues
	var ids []string
	if raw, ok := top["ids"]; ok && kindOf(raw) != kindNull {
		var list []json.RawMessage
		if kindOf(raw) != kindArray || json.Unmarshal(raw, &list) != nil {
			is.add("list_type", msgListType, []any{"body", "ids"}, raw, nil)
		}
		seen := make(map[string]bool, len(list))
		for i, e := range list {
			if kindOf(e) != kindString {
				is.add("string_type", msgStringType, []any{"body", "ids", i}, e, nil)
				continue
			}
			id, _ := decodeJSONString(e)
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	if !is.empty() {
		return nil, invalid(is.list)
	}
	out := DeleteMessagesResponse{OK: true, NotFound: []string{}, Unauthorized: []string{}}
	if len(ids) == 0 {
		return out, nil
	}
	r, err := s.st.DeleteMessages(c.ctx(), c.tenantID, ids)
	if err != nil {
		return nil, err
	}
	s.refreshPending()
	out.Removed = r.Removed
	if r.NotFound != nil {
		out.NotFound = r.NotFound
	}
	if r.Unauthorized != nil {
		out.Unauthorized = r.Unauthorized
	}
	return out, nil
}

func (s *server) cleanupMessages(c *call) (any, error) {
	top, aerr := parseJSONBody(c.body, true)
	if aerr != nil {
		return nil, aerr
	}
	var is issues
	f := newFields(top, []any{"body"}, &is)
	older := s.opts.ReportRetention
	if n, ok := f.intRange("older_than_seconds", &zero, nil); ok {
		older = time.Duration(n) * time.Second
	}
	if !is.empty() {
		return nil, invalid(is.list)
	}
	n, err := s.st.CleanupMessages(c.ctx(), c.tenantID, s.now().Add(-older), 0)
	if err != nil {
		return nil, err
	}
	s.refreshPending()
	return CleanupResponse{OK: true, Removed: n}, nil
}

// listMessagesLimited is the listing with limit and offset honoured, as the
// v0.7 /messages/list alias keeps them.
func (s *server) listMessagesLimited(c *call) (MessagesResponse, error) {
	f := s.listFilter(c)
	if n, ok := c.qInt("limit"); ok {
		f.Limit = int(n)
		if n == 0 {
			return MessagesResponse{OK: true, Messages: []MessageRecord{}}, nil
		}
	}
	if n, ok := c.qInt("offset"); ok {
		f.Offset = int(n)
	}
	now := s.now()
	recs, err := s.st.ListMessages(c.ctx(), f, now)
	if err != nil {
		return MessagesResponse{}, err
	}
	out := MessagesResponse{OK: true, Messages: make([]MessageRecord, 0, len(recs))}
	for i := range recs {
		out.Messages = append(out.Messages, messageRecord(&recs[i], f.IncludeHistory, now))
	}
	return out, nil
}

// messageRecord converts a stored record to the wire shape.
func messageRecord(r *store.MessageRecord, history bool, now time.Time) MessageRecord {
	m := MessageRecord{
		PK: r.PK, ID: r.ID, TenantID: r.TenantID, TenantName: r.TenantName, AccountID: r.AccountID,
		Priority: r.Priority, BatchCode: r.BatchCode, DeferredTS: unixPtr(r.DeferredUntil),
		SentTS: unixPtr(r.FinalAt), CreatedAt: rfc3339(r.CreatedAt), UpdatedAt: rfc3339(r.UpdatedAt),
		Message: nonNullJSON(publicPayload(r.Payload)), Status: messageStatus(r, now), RetryCount: r.RetryCount,
	}
	if e := r.LatestError; e != nil {
		m.ErrorTS = ptr(unixSeconds(e.At))
		m.Error = ptr(e.Description)
	}
	if e := r.LatestEvent; e != nil {
		m.ReportedTS = unixPtr(e.ReportedAt)
	}
	if e := r.Bounce; e != nil {
		m.BounceTS = ptr(unixSeconds(e.At))
		var meta map[string]json.RawMessage
		if json.Unmarshal(e.Metadata, &meta) == nil {
			m.BounceType = nonNullJSON(meta["bounce_type"])
			m.BounceCode = nonNullJSON(meta["bounce_code"])
			m.BounceReason = nonNullJSON(meta["bounce_reason"])
		}
		if m.BounceReason == nil && e.Description != "" {
			m.BounceReason = jsonInput(e.Description)
		}
	}
	if history {
		m.History = make([]HistoryEvent, 0, len(r.History))
		for _, e := range r.History {
			m.History = append(m.History, HistoryEvent{EventID: e.ID, EventType: string(e.Type),
				EventTS: unixSeconds(e.At), Description: e.Description, Metadata: nonNullJSON(e.Metadata),
				ReportedTS: unixPtr(e.ReportedAt)})
		}
	}
	return m
}

// messageStatus derives the status (lifecycle.md §5).
func messageStatus(r *store.MessageRecord, now time.Time) string {
	if r.FinalAt != nil {
		switch {
		case r.Final != nil && r.Final.Type == store.EventSent:
			return "sent"
		case r.Final != nil, r.RejectedAtEnqueue, r.LatestError != nil:
			return "error"
		}
		return "sent"
	}
	if r.DeferredUntil != nil && r.DeferredUntil.After(now) {
		return "deferred"
	}
	return "pending"
}

// publicPayload is a stored payload as the API shows it: attachments' auth
// keep their method (and a basic user name, which is not a secret, like an
// account's user) but never their token or password.
func publicPayload(raw json.RawMessage) json.RawMessage {
	out, _, err := store.RewriteAttachmentAuth(raw, func(a *store.ClientAuth) error {
		a.Token, a.Password = "", ""
		return nil
	})
	if err != nil {
		return nil // unreadable: show nothing rather than risk a secret
	}
	return out
}
