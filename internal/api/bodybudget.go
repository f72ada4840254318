package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"golang.org/x/sync/semaphore"
)

// defaultBodyWait bounds how long a request waits for room in the body
// budget before it is answered 503 (issue 11.4).
const defaultBodyWait = 20 * time.Second

// bodyBudget bounds the bytes of request bodies being read and decoded at
// once to GMP_MAX_REQUEST_MB in total: a decoded add-messages holds a few
// copies of its body, so four concurrent 40 MB requests would otherwise
// take gigabytes. A body holds its bytes from the first read until its
// handler returns; a request that finds no room within the wait is
// answered like a saturated store (503, Retry-After: 1).
type bodyBudget struct {
	sem  *semaphore.Weighted
	wait time.Duration
}

func newBodyBudget(size int64, wait time.Duration) *bodyBudget {
	if wait <= 0 {
		wait = defaultBodyWait
	}
	return &bodyBudget{sem: semaphore.NewWeighted(size), wait: wait}
}

var errBodyBudget = errors.New("request bodies being decoded exceed GMP_MAX_REQUEST_MB")

// overloaded is the answer when the budget has no room.
func overloaded(cause error) *apiError {
	return &apiError{status: http.StatusServiceUnavailable, detail: detailOverloaded,
		header: http.Header{"Retry-After": {"1"}}, cause: cause}
}

// take reserves n bytes (at most the whole budget), waiting up to b.wait.
func (b *bodyBudget) take(ctx context.Context, n int64) error {
	if n <= 0 {
		return nil
	}
	if b.sem.TryAcquire(n) {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, b.wait)
	defer cancel()
	if err := b.sem.Acquire(wctx, n); err != nil {
		if ctx.Err() != nil {
			return newError(http.StatusBadRequest, "Request body incomplete")
		}
		return overloaded(errBodyBudget)
	}
	return nil
}

// budgetReader reserves budget for each chunk read from a body of unknown
// length.
type budgetReader struct {
	ctx  context.Context
	r    io.Reader
	b    *bodyBudget
	held int64
	err  error // the budget's refusal, once
}

func (br *budgetReader) Read(p []byte) (int, error) {
	const chunk = 256 << 10
	if len(p) > chunk {
		p = p[:chunk]
	}
	if err := br.b.take(br.ctx, int64(len(p))); err != nil {
		br.err = err
		return 0, err
	}
	n, err := br.r.Read(p)
	br.held += int64(len(p))
	if unused := int64(len(p) - n); unused > 0 {
		br.b.sem.Release(unused)
		br.held -= unused
	}
	return n, err
}
