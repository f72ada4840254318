package report

import (
	"encoding/json"
	"fmt"

	"github.com/mailproxy/mailproxy/internal/store"
)

// The report items of client-sync.md §1. Each event type has exactly its own
// keys, in this order; struct fields keep encoding/json's output stable.
type (
	sentItem struct {
		ID     string `json:"id"`
		SentTS int64  `json:"sent_ts"`
	}
	errorItem struct {
		ID      string `json:"id"`
		ErrorTS int64  `json:"error_ts"`
		Error   string `json:"error"`
	}
	deferredItem struct {
		ID             string `json:"id"`
		DeferredTS     int64  `json:"deferred_ts"`
		DeferredReason string `json:"deferred_reason"`
	}
	bounceItem struct {
		ID           string          `json:"id"`
		BounceTS     int64           `json:"bounce_ts"`
		BounceType   json.RawMessage `json:"bounce_type"`
		BounceCode   json.RawMessage `json:"bounce_code"`
		BounceReason json.RawMessage `json:"bounce_reason"`
	}
)

// reportBody is the POST body; Items is never nil so a heartbeat is `[]`.
type reportBody struct {
	Items []any `json:"delivery_report"`
}

var jsonNull = json.RawMessage("null")

// item converts one event into its report item. Timestamps are the event's
// time in Unix seconds: deferred_ts is when the deferral happened, not the
// retry time. An unknown event type is an error (the caller skips it).
func item(ev store.Event) (any, error) {
	ts := ev.At.Unix()
	switch ev.Type {
	case store.EventSent:
		return sentItem{ID: ev.MessageID, SentTS: ts}, nil
	case store.EventError:
		return errorItem{ID: ev.MessageID, ErrorTS: ts, Error: ev.Description}, nil
	case store.EventDeferred:
		return deferredItem{ID: ev.MessageID, DeferredTS: ts, DeferredReason: ev.Description}, nil
	case store.EventBounce:
		return bounce(ev), nil
	default:
		return nil, fmt.Errorf("event %d: unknown event type %q", ev.ID, ev.Type)
	}
}

// bounce takes bounce_type, bounce_code and bounce_reason from the event
// metadata as they were stored (null when absent); the reason falls back to
// the event description.
func bounce(ev store.Event) bounceItem {
	it := bounceItem{ID: ev.MessageID, BounceTS: ev.At.Unix(),
		BounceType: jsonNull, BounceCode: jsonNull, BounceReason: jsonNull}
	var meta map[string]json.RawMessage
	if len(ev.Metadata) > 0 && json.Unmarshal(ev.Metadata, &meta) == nil {
		if v, ok := meta["bounce_type"]; ok {
			it.BounceType = v
		}
		if v, ok := meta["bounce_code"]; ok {
			it.BounceCode = v
		}
		if v, ok := meta["bounce_reason"]; ok {
			it.BounceReason = v
		}
	}
	if string(it.BounceReason) == "null" && ev.Description != "" {
		if b, err := json.Marshal(ev.Description); err == nil {
			it.BounceReason = b
		}
	}
	return it
}
