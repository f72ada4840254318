package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
)

// idempotencyTTL is how long an Idempotency-Key answer is kept (api.md §3.5).
const idempotencyTTL = 24 * time.Hour

// idempotencyAbandoned is the age at which a record still marked running
// belongs to a request that died (the store failed under it and the record
// could not be freed, or the process was killed): longer than any request
// runs (the server's write timeout is 60 s). The key is then free again, so
// a client retrying after a 503 is not refused with 409 for a day.
const idempotencyAbandoned = 2 * time.Minute

// idempotentCall is an add-messages request holding a running record.
type idempotentCall struct {
	scope, key string
}

// beginIdempotent claims the key for this request, or returns the stored
// answer to replay, or a 409.
func (s *server) beginIdempotent(c *call, key string) (*idempotentCall, *reply, error) {
	sum := c.bodySum
	if sum == nil {
		d := sha256.Sum256(c.body)
		sum = d[:]
	}
	rec := store.IdempotencyRecord{Scope: c.p.Scope(), Key: key, BodyHash: hex.EncodeToString(sum), CreatedAt: s.now()}
	ctx := context.WithoutCancel(c.ctx())
	existing, found, err := s.st.BeginIdempotent(ctx, rec)
	if err != nil {
		return nil, nil, err
	}
	age := s.now().Sub(existing.CreatedAt)
	if found && !existing.CreatedAt.IsZero() && (age >= idempotencyTTL || (existing.Status == 0 && age >= idempotencyAbandoned)) {
		// Expired but not yet purged, or abandoned: the key is free again.
		if err := s.st.AbortIdempotent(ctx, rec.Scope, key); err != nil {
			return nil, nil, err
		}
		if existing, found, err = s.st.BeginIdempotent(ctx, rec); err != nil {
			return nil, nil, err
		}
	}
	if !found {
		return &idempotentCall{scope: rec.Scope, key: key}, nil, nil
	}
	switch {
	case existing.BodyHash != rec.BodyHash:
		return nil, nil, newError(http.StatusConflict, detailIdempotencyBody)
	case existing.Status == 0:
		return nil, nil, newError(http.StatusConflict, detailIdempotencyStill)
	}
	return nil, &reply{status: existing.Status, raw: existing.Response,
		header: http.Header{idempotencyReplayed: {"true"}}}, nil
}

// finish stores a 200 or 400 answer under the key; any other outcome frees
// the key (401/413/422/503 answers are not stored).
func (ic *idempotentCall) finish(c *call, out any, err error) (any, error) {
	s := c.s
	ctx := context.WithoutCancel(c.ctx())
	status, body := http.StatusOK, []byte(nil)
	if err != nil {
		ae := toAPIError(err, c.rt)
		if ae.status != http.StatusBadRequest {
			if aerr := s.st.AbortIdempotent(ctx, ic.scope, ic.key); aerr != nil {
				s.log.Warn("abort idempotency record", "error", aerr)
			}
			return nil, err
		}
		status, body = ae.status, ae.body()
	} else {
		var merr error
		if body, merr = json.Marshal(out); merr != nil {
			_ = s.st.AbortIdempotent(ctx, ic.scope, ic.key)
			return nil, merr
		}
	}
	if ferr := s.st.FinishIdempotent(ctx, ic.scope, ic.key, status, body); ferr != nil {
		s.log.Warn("store idempotency answer", "error", ferr)
	}
	if err != nil {
		return nil, err
	}
	return &reply{raw: body}, nil
}
