package store

// Reject reasons EnqueueBatch gives by itself (api.md §3.3).
const (
	ReasonNoID      = "missing id"                   // never stored: there is no key to store it under
	ReasonNoAccount = "account not found for tenant" // stored as an errored message when its tenant exists
)

// EnqueueRejectReason is why EnqueueBatch rejects the item, "" if it is to
// be queued. The rules apply in order: the caller's RejectReason, a missing
// id, then a missing account; accountExists is asked only when it decides,
// so a driver may look the account up lazily.
func EnqueueRejectReason(it NewMessage, accountExists func() (bool, error)) (string, error) {
	switch {
	case it.RejectReason != "":
		return it.RejectReason, nil
	case it.ID == "":
		return ReasonNoID, nil
	}
	ok, err := accountExists()
	if err != nil {
		return "", err
	}
	if !ok {
		return ReasonNoAccount, nil
	}
	return "", nil
}

// UnchangedStatus is the answer for a queued item whose stored message the
// upsert had to leave alone: processed by delivery, or under a live claim.
func UnchangedStatus(processed bool) EnqueueStatus {
	if processed {
		return AlreadySent
	}
	return SendingInProgress
}
