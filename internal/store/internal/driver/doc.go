// Package driver is the toolkit the store drivers (store/sqlite and
// store/postgres) share: the parts of the contract that are Go, not SQL, so
// that both drivers apply them alike and package store reads as the
// contract alone. Go's internal rule keeps it inside the store tree.
//
// What it holds: enqueue's per-item rules (EnqueueRejectReason,
// UnchangedStatus), row times (Stamp, RowTimes), request id lists
// (UniqueIDs, IDsIn, AddMissing), the listing's assembly (RecordList),
// suspension and client-auth encodings, the instance defaults, rate windows
// (Windows, SetUsage), claim caps and NextDue's earliest time, message pks
// and the dashboard search's LIKE pattern.
package driver
