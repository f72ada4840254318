package driver

import (
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
)

// Window is one fixed, epoch-aligned rate window: [Start, End) in Unix
// milliseconds, the stored time format, so drivers bind them as they are.
type Window struct {
	Span       string // store.SpanMinute, SpanHour or SpanDay
	Start, End int64
}

// Windows returns the minute, hour and day windows containing now, in that
// order (the order drivers lock counter rows in).
func Windows(now time.Time) [3]Window {
	at := now.UnixMilli()
	window := func(span string, length int64) Window {
		start := floorDiv(at, length) * length
		return Window{Span: span, Start: start, End: start + length}
	}
	return [3]Window{
		window(store.SpanMinute, time.Minute.Milliseconds()),
		window(store.SpanHour, time.Hour.Milliseconds()),
		window(store.SpanDay, 24*time.Hour.Milliseconds()),
	}
}

// SetUsage stores n in u as the count of the window named span; an unknown span is
// ignored, so a driver can pass its rows through as they come.
func SetUsage(u *store.RateUsage, span string, n int) {
	switch span {
	case store.SpanMinute:
		u.Minute = n
	case store.SpanHour:
		u.Hour = n
	case store.SpanDay:
		u.Day = n
	}
}

// floorDiv is integer division rounding toward negative infinity, so times
// before the epoch still fall in the window that contains them.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
