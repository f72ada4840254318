package driver

import (
	"strings"
	"time"
)

// SplitAccountKey inverts AccountKey; ok is false for a key AccountKey
// cannot have made.
func SplitAccountKey(key string) (tenantID, accountID string, ok bool) {
	tenantID, accountID, ok = strings.Cut(key, "\x00")
	if !ok {
		return "", "", false
	}
	return tenantID, accountID, true
}

// ClaimCap is how many messages of one account a claim may take: the
// account's batch_size when set and positive, else the request's
// PerAccount (<= 0: no cap).
func ClaimCap(perAccount int, batchSize *int) int {
	if batchSize != nil && *batchSize > 0 {
		return *batchSize
	}
	return perAccount
}

// Earliest is the earlier of two optional times (NextDue's deferral and
// lease expiry); ok is false when both are nil.
func Earliest(a, b *time.Time) (t time.Time, ok bool) {
	switch {
	case a != nil && b != nil:
		if b.Before(*a) {
			return *b, true
		}
		return *a, true
	case a != nil:
		return *a, true
	case b != nil:
		return *b, true
	}
	return time.Time{}, false
}
