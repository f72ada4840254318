package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ErrUnreachable matches (with errors.Is) every error returned because the
// service could not be reached at all, as opposed to an answer with an
// error status (*APIError).
var ErrUnreachable = errors.New("mailproxy unreachable")

// UnreachableError is a connection-level failure: the request got no HTTP
// answer (refused, reset, DNS, timeout). It matches ErrUnreachable and
// unwraps to the transport's error.
type UnreachableError struct {
	Method string
	URL    string // without query: tokens never travel in URLs, but keep it short
	Err    error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("mailproxy unreachable: %s %s: %v", e.Method, e.URL, e.Err)
}

// Unwrap returns the transport error, so errors.Is(err, context.DeadlineExceeded) works.
func (e *UnreachableError) Unwrap() error { return e.Err }

// Is reports whether target is ErrUnreachable.
func (e *UnreachableError) Is(target error) bool { return target == ErrUnreachable }

// APIError is an answer with a non-2xx status. Detail is the body's "detail"
// decoded as JSON (a string, a map[string]any for add-messages 400, or a
// []any of validation entries for 422); for a body that is not JSON with a
// detail, it is the body text.
type APIError struct {
	Status int
	Detail any
}

func (e *APIError) Error() string {
	return fmt.Sprintf("mailproxy: HTTP %d: %s", e.Status, DetailText(e.Detail))
}

// DetailText renders an error detail for people: a string as is, validation
// entries as "loc.path: msg" joined by "; ", anything else as compact JSON.
func DetailText(detail any) string {
	switch d := detail.(type) {
	case nil:
		return "(no detail)"
	case string:
		return d
	case []any:
		parts := make([]string, 0, len(d))
		for _, entry := range d {
			parts = append(parts, validationEntryText(entry))
		}
		return strings.Join(parts, "; ")
	case map[string]any:
		if msg, ok := d["error"].(string); ok && msg != "" {
			return msg
		}
	}
	return compactJSON(detail)
}

func validationEntryText(entry any) string {
	m, ok := entry.(map[string]any)
	if !ok {
		return compactJSON(entry)
	}
	msg, _ := m["msg"].(string)
	locs, _ := m["loc"].([]any)
	path := make([]string, 0, len(locs))
	for _, l := range locs {
		path = append(path, fmt.Sprint(l))
	}
	if len(path) == 0 {
		return msg
	}
	return strings.Join(path, ".") + ": " + msg
}

func compactJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
