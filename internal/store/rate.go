package store

// Rate window spans, as RateDecision.Window names them (ratelimits.md §2).
const (
	SpanMinute = "minute"
	SpanHour   = "hour"
	SpanDay    = "day"
)

// Limits are the request's minute, hour and day limits, in that order (the
// order drivers keep windows in); none is true when no window is limited
// (<= 0 each), and the reservation is granted without touching the store.
func (r RateRequest) Limits() (limits [3]int, none bool) {
	limits = [3]int{r.PerMinute, r.PerHour, r.PerDay}
	return limits, limits[0] <= 0 && limits[1] <= 0 && limits[2] <= 0
}
