package report

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

const (
	// retentionFirstRun is the longest wait before the first retention run,
	// so startup is not slowed by it but a restart does not postpone it.
	retentionFirstRun = 10 * time.Second
	// retentionPause separates batches so deletes never hold the store's
	// writer for long while messages are being sent.
	retentionPause = 20 * time.Millisecond
	// retentionMaxBatches bounds one run; the rest waits for the next one.
	retentionMaxBatches = 10000
)

// RunRetention deletes processed messages with no unreported event whose
// latest report is older than retention (lifecycle.md §7), in batches of at
// most batch rows, first soon after start, then every `every`, until ctx
// ends. A message with an unreported event is never deleted (the store's
// CleanupMessages rule). Store failures are logged and retried next run.
func RunRetention(ctx context.Context, st Cleaner, every, retention time.Duration, batch int, logger *slog.Logger) error {
	switch {
	case st == nil:
		return errors.New("retention: no store")
	case every <= 0:
		return fmt.Errorf("retention: interval must be positive, got %s", every)
	case retention < 0:
		return fmt.Errorf("retention: retention must not be negative, got %s", retention)
	case batch <= 0:
		return fmt.Errorf("retention: batch size must be positive, got %d", batch)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "retention")
	timer := time.NewTimer(min(every, retentionFirstRun))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		n, err := retentionRun(ctx, st, time.Now().Add(-retention), batch)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			logger.Warn("retention run failed", "deleted", n, "err", err)
		case n > 0:
			logger.Info("retention deleted reported messages", "deleted", n)
		}
		timer.Reset(every)
	}
}

// retentionRun deletes batches until one comes back short.
func retentionRun(ctx context.Context, st Cleaner, cutoff time.Time, batch int) (int, error) {
	total := 0
	pause := time.NewTimer(retentionPause)
	pause.Stop() // since Go 1.23 a stopped timer delivers no stale value
	defer pause.Stop()
	for range retentionMaxBatches {
		n, err := st.CleanupMessages(ctx, "", cutoff, batch)
		total += n
		if err != nil {
			return total, fmt.Errorf("cleanup batch: %w", err)
		}
		if n < batch {
			return total, nil
		}
		pause.Reset(retentionPause)
		select {
		case <-ctx.Done():
			return total, ctx.Err()
		case <-pause.C:
		}
	}
	return total, nil
}
