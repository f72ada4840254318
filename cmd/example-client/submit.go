package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/mailproxy/mailproxy/pkg/client"
)

// submitBatch bounds one add-messages call; the proxy accepts up to 1000.
const submitBatch = 500

// submitter hands pending rows to the proxy. One submission runs at a time,
// and it re-reads which rows are still pending under that lock, so two
// callers (a request, the resubmit loop, a sync call) never hand over the
// same row twice from this process.
type submitter struct {
	mu     sync.Mutex
	outbox *outbox
	proxy  *client.Client
	cfg    config
	log    *slog.Logger
}

// submission is what one add-messages exchange achieved.
type submission struct {
	IDs      []string                   // the rows handed over
	Response client.AddMessagesResponse // the proxy's answer (400: its rejections)
	Answer   any                        // the proxy's body, for mail_service_response
	Queued   int
}

// submit hands over the given rows if still pending (ids nil: every pending
// row, in batches). An unreachable proxy or an unexpected status leaves the
// rows pending and returns the error (client.ErrUnreachable or *client.APIError).
func (s *submitter) submit(ctx context.Context, ids []string) (submission, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var total submission
	tried := map[string]bool{} // a row the proxy left unanswered is not sent twice in one call
	for {
		limit := submitBatch
		if ids != nil {
			limit = len(ids)
		}
		rows, err := s.outbox.pending(ctx, ids, limit+len(tried))
		if err != nil {
			return total, err
		}
		rows = slices.DeleteFunc(rows, func(r email) bool { return tried[r.ID] })
		if len(rows) > limit {
			rows = rows[:limit]
		}
		if len(rows) == 0 {
			return total, nil
		}
		for _, r := range rows {
			tried[r.ID] = true
		}
		one, err := s.submitRows(ctx, rows)
		total.IDs = append(total.IDs, one.IDs...)
		total.Queued += one.Queued
		total.Response, total.Answer = one.Response, one.Answer
		if err != nil || ids != nil {
			return total, err
		}
	}
}

func (s *submitter) submitRows(ctx context.Context, rows []email) (submission, error) {
	req := client.AddMessagesRequest{Messages: make([]client.Message, 0, len(rows))}
	ids := make([]string, 0, len(rows))
	for _, r := range rows {
		ids = append(ids, r.ID)
		req.Messages = append(req.Messages, client.Message{
			ID:          r.ID,
			TenantID:    s.cfg.TenantID,
			AccountID:   s.cfg.AccountID,
			From:        fmt.Sprintf("%s <%s>", s.cfg.SenderName, s.cfg.SenderEmail),
			To:          []string{r.Recipient},
			Subject:     r.Subject,
			Body:        r.Body,
			ContentType: "html",
		})
	}
	resp, err := s.proxy.AddMessages(ctx, req)
	sub := submission{IDs: ids, Response: resp, Answer: resp}
	var apiErr *client.APIError
	switch {
	case err == nil:
		// 200: everything not rejected is accepted.
	case client.IsRejection(err) && errors.As(err, &apiErr):
		sub.Answer = map[string]any{"detail": apiErr.Detail}
		if len(resp.Rejected) == 0 {
			return sub, err // a 400 without per-item reasons: nothing to record
		}
	default:
		return sub, err
	}

	failed := map[string]string{}
	held := map[string]bool{} // ids the proxy already has: not our failure
	for _, rj := range resp.Rejected {
		if rj.ID == "" {
			continue
		}
		if rj.Reason == client.ReasonAlreadySent || rj.Reason == client.ReasonSendingInProgress {
			held[rj.ID] = true
			continue
		}
		failed[rj.ID] = rj.Reason
	}
	var submitted []string
	for _, id := range ids {
		_, isFailed := failed[id]
		// On 400 nothing was queued: only the listed ids have news.
		if !isFailed && (err == nil || held[id]) {
			submitted = append(submitted, id)
		}
	}
	if markErr := s.outbox.markSubmission(ctx, submitted, failed); markErr != nil {
		return sub, markErr
	}
	sub.Queued = resp.Queued
	s.log.Info("emails handed to the mail service",
		"tenant_id", s.cfg.TenantID, "sent", len(ids), "queued", resp.Queued, "rejected", len(resp.Rejected))
	return sub, nil
}

// runNow asks the proxy to dispatch at once; best effort, only logged.
func (s *submitter) runNow(ctx context.Context) {
	if err := s.proxy.RunNow(ctx, s.cfg.TenantID); err != nil {
		s.log.Warn("run-now trigger failed (the proxy's own loop will send)", "error", err)
	}
}
