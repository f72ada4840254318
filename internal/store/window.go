package store

import "time"

// Rate window spans, as RateDecision.Window names them (ratelimits.md §2).
const (
	SpanMinute = "minute"
	SpanHour   = "hour"
	SpanDay    = "day"
)

// Window is one fixed, epoch-aligned rate window: [Start, End) in Unix
// milliseconds, the stored time format, so drivers bind them as they are.
type Window struct {
	Span       string // SpanMinute, SpanHour or SpanDay
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
		window(SpanMinute, time.Minute.Milliseconds()),
		window(SpanHour, time.Hour.Milliseconds()),
		window(SpanDay, 24*time.Hour.Milliseconds()),
	}
}

// Set stores n as the count of the window named span; an unknown span is
// ignored, so a driver can pass its rows through as they come.
func (u *RateUsage) Set(span string, n int) {
	switch span {
	case SpanMinute:
		u.Minute = n
	case SpanHour:
		u.Hour = n
	case SpanDay:
		u.Day = n
	}
}

// Limits are the request's minute, hour and day limits, in Windows order;
// none is true when no window is limited (<= 0 each), and the reservation
// is granted without touching the store.
func (r RateRequest) Limits() (limits [3]int, none bool) {
	limits = [3]int{r.PerMinute, r.PerHour, r.PerDay}
	return limits, limits[0] <= 0 && limits[1] <= 0 && limits[2] <= 0
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
