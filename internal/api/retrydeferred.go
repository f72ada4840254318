package api

import (
	"errors"

	"github.com/mailproxy/mailproxy/internal/store"
)

// RetryDeferredResponse is POST /commands/retry-deferred's answer.
type RetryDeferredResponse struct {
	OK      bool `json:"ok"`
	Retried int  `json:"retried" doc:"messages waiting for a retry that are now due"`
}

// retryDeferred makes the tenant's messages waiting for a retry due now
// (issue 12.7) and wakes the dispatcher. Messages the client scheduled with
// deferred_ts keep their time: that is the client's decision, not a
// failure to get over.
func (s *server) retryDeferred(c *call) (any, error) {
	n, err := s.st.RetryDeferred(c.ctx(), c.tenantID, batchArg(c), s.now())
	if errors.Is(err, store.ErrNotFound) {
		return nil, errTenantMissing
	}
	if err != nil {
		return nil, err
	}
	if n > 0 {
		s.wake()
	}
	return RetryDeferredResponse{OK: true, Retried: n}, nil
}
