package client

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// ReportItem is one delivery-report item (client-sync.md §1). Exactly one of
// the timestamps is set per item: SentTS (delivered), ErrorTS (failed, with
// Error), DeferredTS (will be retried, with DeferredReason) or BounceTS
// (bounced, with the Bounce* fields). Timestamps are Unix seconds; JSON
// floats are accepted and truncated.
type ReportItem struct {
	ID             string `json:"id"`
	SentTS         *int64 `json:"sent_ts,omitempty"`
	ErrorTS        *int64 `json:"error_ts,omitempty"`
	Error          string `json:"error,omitempty"`
	DeferredTS     *int64 `json:"deferred_ts,omitempty"`
	DeferredReason string `json:"deferred_reason,omitempty"`
	BounceTS       *int64 `json:"bounce_ts,omitempty"`
	BounceType     string `json:"bounce_type,omitempty"`
	BounceCode     string `json:"bounce_code,omitempty"`
	BounceReason   string `json:"bounce_reason,omitempty"`
}

// UnmarshalJSON decodes an item leniently: timestamps may be integers or
// floats, bounce_code a string or a number, any key may be null.
func (it *ReportItem) UnmarshalJSON(data []byte) error {
	var raw struct {
		ID             *string         `json:"id"`
		SentTS         json.RawMessage `json:"sent_ts"`
		ErrorTS        json.RawMessage `json:"error_ts"`
		Error          *string         `json:"error"`
		DeferredTS     json.RawMessage `json:"deferred_ts"`
		DeferredReason *string         `json:"deferred_reason"`
		BounceTS       json.RawMessage `json:"bounce_ts"`
		BounceType     *string         `json:"bounce_type"`
		BounceCode     json.RawMessage `json:"bounce_code"`
		BounceReason   *string         `json:"bounce_reason"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return fmt.Errorf("report item: %w", err)
	}
	var out ReportItem
	var err error
	out.ID = deref(raw.ID)
	if out.SentTS, err = unixSeconds("sent_ts", raw.SentTS); err != nil {
		return err
	}
	if out.ErrorTS, err = unixSeconds("error_ts", raw.ErrorTS); err != nil {
		return err
	}
	if out.DeferredTS, err = unixSeconds("deferred_ts", raw.DeferredTS); err != nil {
		return err
	}
	if out.BounceTS, err = unixSeconds("bounce_ts", raw.BounceTS); err != nil {
		return err
	}
	if out.BounceCode, err = stringOrNumber("bounce_code", raw.BounceCode); err != nil {
		return err
	}
	out.Error = deref(raw.Error)
	out.DeferredReason = deref(raw.DeferredReason)
	out.BounceType = deref(raw.BounceType)
	out.BounceReason = deref(raw.BounceReason)
	*it = out
	return nil
}

// unixSeconds decodes a JSON number (int or float) or null. raw is an
// already validated JSON value, so a number token parses directly.
func unixSeconds(key string, raw json.RawMessage) (*int64, error) {
	if isNull(raw) {
		return nil, nil
	}
	tok := string(bytes.TrimSpace(raw))
	if !isNumberToken(tok) {
		return nil, fmt.Errorf("report item: %s: want a number, got %s", key, tok)
	}
	if i, err := strconv.ParseInt(tok, 10, 64); err == nil {
		return &i, nil
	}
	f, err := strconv.ParseFloat(tok, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < math.MinInt64 || f >= math.MaxInt64 {
		return nil, fmt.Errorf("report item: %s: %s is not a Unix time", key, tok)
	}
	i := int64(f)
	return &i, nil
}

// isNumberToken tells a JSON number from the other value kinds by its first byte.
func isNumberToken(tok string) bool {
	return tok != "" && (tok[0] == '-' || (tok[0] >= '0' && tok[0] <= '9'))
}

func stringOrNumber(key string, raw json.RawMessage) (string, error) {
	if isNull(raw) {
		return "", nil
	}
	tok := bytes.TrimSpace(raw)
	if isNumberToken(string(tok)) {
		return string(tok), nil
	}
	var s string
	if err := json.Unmarshal(tok, &s); err != nil {
		return "", fmt.Errorf("report item: %s: want a string or number, got %s", key, tok)
	}
	return s, nil
}

func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || bytes.Equal(t, []byte("null"))
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// SyncRequest is the body the proxy POSTs to a client's sync URL. A
// heartbeat has no items.
type SyncRequest struct {
	DeliveryReport []ReportItem `json:"delivery_report"`
}

// legacyReport is the shape some of the original's documents show:
// {"reports":[{"id","status":"sent"|"error"|…,"timestamp","error"}]}.
type legacyReport struct {
	ID        string          `json:"id"`
	Status    string          `json:"status"`
	Timestamp json.RawMessage `json:"timestamp"`
	Error     string          `json:"error"`
}

// UnmarshalJSON decodes delivery_report and, when that key is absent,
// tolerates the legacy "reports" list with a status per item.
func (r *SyncRequest) UnmarshalJSON(data []byte) error {
	var raw struct {
		DeliveryReport []ReportItem   `json:"delivery_report"`
		Reports        []legacyReport `json:"reports"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return fmt.Errorf("sync request: %w", err)
	}
	if raw.DeliveryReport != nil || raw.Reports == nil {
		r.DeliveryReport = raw.DeliveryReport
		return nil
	}
	items := make([]ReportItem, 0, len(raw.Reports))
	for i, lr := range raw.Reports {
		ts, err := unixSeconds(fmt.Sprintf("reports[%d].timestamp", i), lr.Timestamp)
		if err != nil {
			return fmt.Errorf("sync request: %w", err)
		}
		if ts == nil { // a legacy item without a time still carries its outcome
			ts = new(int64)
		}
		item := ReportItem{ID: lr.ID}
		switch lr.Status {
		case "sent", "delivered":
			item.SentTS = ts
		case "error", "failed":
			item.ErrorTS, item.Error = ts, lr.Error
		case "deferred":
			item.DeferredTS, item.DeferredReason = ts, lr.Error
		case "bounce", "bounced":
			item.BounceTS, item.BounceReason = ts, lr.Error
		default:
			return fmt.Errorf("sync request: reports[%d]: unknown status %q", i, lr.Status)
		}
		items = append(items, item)
	}
	r.DeliveryReport = items
	return nil
}

// SyncResponse is the client's answer to a sync POST (client-sync.md §3).
// Queued is how many messages the client handed to the proxy during this
// call (the proxy then calls again); NextSyncAfter (Unix s) asks for quiet
// until then; Error lists ids to be sent again; NotFound ids unknown to the
// client.
type SyncResponse struct {
	OK            bool     `json:"ok"`
	Queued        int      `json:"queued"`
	NextSyncAfter *float64 `json:"next_sync_after,omitempty"`
	Error         []string `json:"error,omitempty"`
	NotFound      []string `json:"not_found"`
}
