package driver

import "github.com/mailproxy/mailproxy/internal/store"

// EnqueueRejectReason is why EnqueueBatch rejects the item, "" if it is to
// be queued. The rules apply in order: the caller's RejectReason, a missing
// id, then a missing account; accountExists is asked only when it decides,
// so a driver may look the account up lazily.
func EnqueueRejectReason(it store.NewMessage, accountExists func() (bool, error)) (string, error) {
	switch {
	case it.RejectReason != "":
		return it.RejectReason, nil
	case it.ID == "":
		return store.ReasonNoID, nil
	}
	ok, err := accountExists()
	if err != nil {
		return "", err
	}
	if !ok {
		return store.ReasonNoAccount, nil
	}
	return "", nil
}

// UnchangedStatus is the answer for a queued item whose stored message the
// upsert had to leave alone: processed by delivery, or under a live claim.
func UnchangedStatus(processed bool) store.EnqueueStatus {
	if processed {
		return store.AlreadySent
	}
	return store.SendingInProgress
}
