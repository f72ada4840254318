package driver

import (
	"encoding/json"
	"fmt"

	"github.com/mailproxy/mailproxy/internal/store"
)

// NormalizeSuspended is how every driver reports a tenant's suspended
// batches: a full suspension as exactly [SuspendAll] whatever else is
// stored, no suspension as an empty, non-nil list, else the codes as given.
func NormalizeSuspended(codes []string) []string {
	for _, c := range codes {
		if c == store.SuspendAll {
			return []string{store.SuspendAll}
		}
	}
	if codes == nil {
		return []string{}
	}
	return codes
}

// SuspensionBatch is the batch a Suspend or Activate call is about: nil for
// the whole tenant, which a nil, empty or SuspendAll code all mean.
func SuspensionBatch(batchCode *string) *string {
	if batchCode == nil || *batchCode == "" || *batchCode == store.SuspendAll {
		return nil
	}
	return batchCode
}

// EncodeClientAuth is the stored JSON text of a tenant's client credentials
// (nil for none).
func EncodeClientAuth(auth *store.ClientAuth) (*string, error) {
	if auth == nil {
		return nil, nil
	}
	b, err := json.Marshal(auth)
	if err != nil {
		return nil, fmt.Errorf("encode client_auth: %w", err)
	}
	text := string(b)
	return &text, nil
}

// DecodeClientAuth reads stored client credentials (nil text: none).
func DecodeClientAuth(text *string) (*store.ClientAuth, error) {
	if text == nil {
		return nil, nil
	}
	var auth store.ClientAuth
	if err := json.Unmarshal([]byte(*text), &auth); err != nil {
		return nil, fmt.Errorf("decode client_auth: %w", err)
	}
	return &auth, nil
}
