package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// Priority is a message priority, 0 (most urgent) to 3.
type Priority int

// The contract's priority labels.
const (
	PriorityImmediate Priority = 0
	PriorityHigh      Priority = 1
	PriorityMedium    Priority = 2
	PriorityLow       Priority = 3
)

// Message is one item of add-messages (api.md §3.1).
type Message struct {
	ID          string            `json:"id"`
	TenantID    string            `json:"tenant_id,omitempty"`
	AccountID   string            `json:"account_id"`
	From        string            `json:"from"`
	To          []string          `json:"to"`
	Cc          []string          `json:"cc,omitempty"`
	Bcc         []string          `json:"bcc,omitempty"`
	ReplyTo     string            `json:"reply_to,omitempty"`
	ReturnPath  string            `json:"return_path,omitempty"`
	Subject     string            `json:"subject"`
	Body        string            `json:"body,omitempty"`
	ContentType string            `json:"content_type,omitempty"` // "html" or "plain" (default)
	Headers     map[string]string `json:"headers,omitempty"`
	MessageID   string            `json:"message_id,omitempty"`
	Attachments []Attachment      `json:"attachments,omitempty"`
	Priority    *Priority         `json:"priority,omitempty"`
	DeferredTS  *int64            `json:"deferred_ts,omitempty"` // Unix seconds
	BatchCode   string            `json:"batch_code,omitempty"`
	// Raw is a complete RFC 5322 message sent as it is, instead of Subject,
	// Body and Attachments (RawEncoding "base64" for bytes that are not UTF-8).
	Raw         string `json:"raw,omitempty"`
	RawEncoding string `json:"raw_encoding,omitempty"`
}

// Attachment references content the proxy fetches at send time (attachments.md).
type Attachment struct {
	Filename    string      `json:"filename"`
	StoragePath string      `json:"storage_path"`
	MimeType    string      `json:"mime_type,omitempty"`
	FetchMode   string      `json:"fetch_mode,omitempty"` // endpoint, http_url, base64, filesystem
	ContentMD5  string      `json:"content_md5,omitempty"`
	Auth        *ClientAuth `json:"auth,omitempty"`
}

// AddMessagesRequest is the body of POST /commands/add-messages.
type AddMessagesRequest struct {
	Messages        []Message `json:"messages"`
	DefaultPriority *Priority `json:"default_priority,omitempty"`
}

// Rejection is one refused item: ID is "" when the item had none.
type Rejection struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// Reasons the proxy gives for items it already holds: not failures of the item.
const (
	ReasonAlreadySent       = "already sent"
	ReasonSendingInProgress = "sending in progress"
)

// AddMessagesResponse is the answer of add-messages. For a 400 answer OK is
// false, Queued 0, and Error/Rejected come from its detail object.
type AddMessagesResponse struct {
	OK       bool        `json:"ok"`
	Queued   int         `json:"queued"`
	Rejected []Rejection `json:"rejected"`
	Error    string      `json:"error,omitempty"` // 400 only: detail.error
}

// AddMessages submits messages. On 200 it returns the answer. On a 400 whose
// detail is the contract's {"error","rejected"} object it returns the parsed
// rejections in the response AND an *APIError, so callers that only check err
// still see the failure while others can act per item.
func (c *Client) AddMessages(ctx context.Context, req AddMessagesRequest) (AddMessagesResponse, error) {
	if req.Messages == nil {
		req.Messages = []Message{} // the schema requires the array
	}
	status, body, err := c.send(ctx, http.MethodPost, "/commands/add-messages", nil, req)
	if err != nil {
		return AddMessagesResponse{}, err
	}
	switch {
	case status >= 200 && status <= 299:
		var resp AddMessagesResponse
		if err := json.Unmarshal(body, &resp); err != nil {
			return AddMessagesResponse{}, fmt.Errorf("mailproxy: add-messages: decode answer: %w", err)
		}
		return resp, nil
	case status == http.StatusBadRequest:
		apiErr := newAPIError(status, body)
		var eb struct {
			Detail struct {
				Error    *string     `json:"error"`
				Rejected []Rejection `json:"rejected"`
			} `json:"detail"`
		}
		if json.Unmarshal(body, &eb) == nil {
			resp := AddMessagesResponse{Rejected: eb.Detail.Rejected}
			if eb.Detail.Error != nil {
				resp.Error = *eb.Detail.Error
			}
			if resp.Rejected == nil {
				resp.Rejected = []Rejection{}
			}
			return resp, apiErr
		}
		return AddMessagesResponse{}, apiErr
	default:
		return AddMessagesResponse{}, newAPIError(status, body)
	}
}

// IsRejection reports whether err is the 400 answer of AddMessages, in which
// case the accompanying response lists the rejected items.
func IsRejection(err error) bool {
	var apiErr *APIError
	return errors.As(err, &apiErr) && apiErr.Status == http.StatusBadRequest
}

// DeleteMessagesResponse is the answer of delete-messages.
type DeleteMessagesResponse struct {
	OK           bool     `json:"ok"`
	Removed      int      `json:"removed"`
	NotFound     []string `json:"not_found"`
	Unauthorized []string `json:"unauthorized"`
}

// DeleteMessages deletes the tenant's messages with these client ids.
func (c *Client) DeleteMessages(ctx context.Context, tenantID string, ids []string) (DeleteMessagesResponse, error) {
	if ids == nil {
		ids = []string{}
	}
	var resp DeleteMessagesResponse
	err := c.do(ctx, http.MethodPost, "/commands/delete-messages", tenantQuery(tenantID), map[string][]string{"ids": ids}, &resp)
	return resp, err
}

// CleanupResponse is the answer of cleanup-messages.
type CleanupResponse struct {
	OK      bool `json:"ok"`
	Removed int  `json:"removed"`
}

// CleanupMessages removes the tenant's reported messages older than
// olderThanSeconds (nil: the service's retention default).
func (c *Client) CleanupMessages(ctx context.Context, tenantID string, olderThanSeconds *int64) (CleanupResponse, error) {
	var resp CleanupResponse
	body := struct {
		OlderThanSeconds *int64 `json:"older_than_seconds"`
	}{olderThanSeconds}
	err := c.do(ctx, http.MethodPost, "/commands/cleanup-messages", tenantQuery(tenantID), body, &resp)
	return resp, err
}

// ListMessagesOptions selects messages for ListMessages.
type ListMessagesOptions struct {
	TenantID       string
	ActiveOnly     bool // only unprocessed messages
	IncludeHistory bool // fill MessageRecord.History
	Limit, Offset  int  // 0: not sent
}

// MessageRecord is one message as listed (api.md §4.4).
type MessageRecord struct {
	PK           string          `json:"pk"`
	ID           string          `json:"id"`
	TenantID     string          `json:"tenant_id"`
	TenantName   string          `json:"tenant_name,omitempty"`
	AccountID    string          `json:"account_id,omitempty"`
	Priority     int             `json:"priority"`
	BatchCode    string          `json:"batch_code,omitempty"`
	DeferredTS   *int64          `json:"deferred_ts,omitempty"`
	SentTS       *int64          `json:"sent_ts,omitempty"`
	ErrorTS      *int64          `json:"error_ts,omitempty"`
	Error        string          `json:"error,omitempty"`
	ReportedTS   *int64          `json:"reported_ts,omitempty"`
	BounceType   string          `json:"bounce_type,omitempty"`
	BounceCode   string          `json:"bounce_code,omitempty"`
	BounceReason string          `json:"bounce_reason,omitempty"`
	BounceTS     *int64          `json:"bounce_ts,omitempty"`
	CreatedAt    string          `json:"created_at,omitempty"`
	UpdatedAt    string          `json:"updated_at,omitempty"`
	Message      json.RawMessage `json:"message,omitempty"`
	IsPEC        bool            `json:"is_pec"`
	Status       string          `json:"status,omitempty"` // pending, deferred, sent, error
	RetryCount   int             `json:"retry_count"`
	History      []MessageEvent  `json:"history,omitempty"`
}

// MessageEvent is one entry of a message's history.
type MessageEvent struct {
	EventID     int64           `json:"event_id"`
	EventType   string          `json:"event_type"` // sent, error, deferred, bounce
	EventTS     int64           `json:"event_ts"`
	Description string          `json:"description,omitempty"`
	Metadata    json.RawMessage `json:"metadata,omitempty"`
	ReportedTS  *int64          `json:"reported_ts,omitempty"`
}

// ListMessages lists the tenant's messages by priority, creation time, id.
func (c *Client) ListMessages(ctx context.Context, opts ListMessagesOptions) ([]MessageRecord, error) {
	q := tenantQuery(opts.TenantID)
	if opts.ActiveOnly {
		q.Set("active_only", "true")
	}
	if opts.IncludeHistory {
		q.Set("include_history", "true")
	}
	setPositive(q, "limit", opts.Limit)
	setPositive(q, "offset", opts.Offset)
	var resp struct {
		Messages []MessageRecord `json:"messages"`
	}
	err := c.do(ctx, http.MethodGet, "/messages", q, nil, &resp)
	return resp.Messages, err
}

func setPositive(q url.Values, key string, v int) {
	if v > 0 {
		q.Set(key, strconv.Itoa(v))
	}
}
