package driver

import "time"

// Stamp is t, or now() when t is zero: the interface passes no clock to
// some writes, so callers may set the times or leave them to the store.
// now is called only when needed (it may be a test clock).
func Stamp(t time.Time, now func() time.Time) time.Time {
	if t.IsZero() {
		return now()
	}
	return t
}

// RowTimes fills a row's created and updated times the way every upsert
// does: updated is given or now(), created is given or updated (a driver
// keeps a stored created_at on replace).
func RowTimes(created, updated time.Time, now func() time.Time) (createdAt, updatedAt time.Time) {
	updatedAt = Stamp(updated, now)
	if created.IsZero() {
		return updatedAt, updatedAt
	}
	return created, updatedAt
}
