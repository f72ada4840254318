package postgres

import (
	"encoding/json"
	"time"
)

// scanner is a pgx.Row or pgx.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// ms is t as Unix milliseconds, the stored time format.
func ms(t time.Time) int64 { return t.UnixMilli() }

// fromMS is the stored time as a UTC time.Time.
func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

// msPtr binds an optional time (nil = NULL).
func msPtr(t *time.Time) *int64 {
	if t == nil {
		return nil
	}
	v := t.UnixMilli()
	return &v
}

// timePtr reads an optional stored time.
func timePtr(v *int64) *time.Time {
	if v == nil {
		return nil
	}
	t := fromMS(*v)
	return &t
}

// nullJSON binds JSON as TEXT; empty is NULL.
func nullJSON(raw json.RawMessage) *string {
	if len(raw) == 0 {
		return nil
	}
	s := string(raw)
	return &s
}

// jsonRaw reads optional JSON text.
func jsonRaw(v *string) json.RawMessage {
	if v == nil {
		return nil
	}
	return json.RawMessage(*v)
}

// sqlLimit maps "0 = no limit" to NULL, which LIMIT reads as no limit.
func sqlLimit(n int) *int64 {
	if n <= 0 {
		return nil
	}
	v := int64(n)
	return &v
}
