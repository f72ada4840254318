package report

import (
	"context"
	"log/slog"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mailproxy/mailproxy/internal/store"
)

// markReported marks the unreported events of msgID as reported at `at`.
func (e *env) markReported(tenantID, msgID string, at time.Time) {
	e.t.Helper()
	evs, err := e.st.UnreportedEvents(e.ctx, tenantID, 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	var ids []int64
	for _, ev := range evs {
		if ev.MessageID == msgID {
			ids = append(ids, ev.ID)
		}
	}
	if len(ids) == 0 {
		e.t.Fatalf("no unreported event for %s", msgID)
	}
	if err := e.st.MarkReported(e.ctx, ids, at); err != nil {
		e.t.Fatal(err)
	}
}

func TestRetentionDeletesOnlyReportedFinishedOldMessages(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	e.tenant("t1", "", nil)
	longAgo := time.Now().Add(-2 * time.Hour)

	for _, id := range []string{"old1", "old2"} {
		e.sent("t1", id)
		e.markReported("t1", id, longAgo)
	}
	e.sent("t1", "recent")
	e.markReported("t1", "recent", time.Now().Add(-time.Minute))
	e.sent("t1", "unreported")
	// A deferral reported long ago, then a sent event not yet reported.
	e.enqueue("t1", "mixed")
	e.attempt("t1", "mixed", store.OutcomeDeferred, "4.7.1 later (SMTP 451)", e.now())
	e.markReported("t1", "mixed", longAgo)
	e.attempt("t1", "mixed", store.OutcomeSent, "", e.now())
	// Unprocessed, its only event reported long ago.
	e.enqueue("t1", "waiting")
	e.attempt("t1", "waiting", store.OutcomeDeferred, "4.7.1 later (SMTP 451)", e.now())
	e.markReported("t1", "waiting", longAgo)
	e.enqueue("t1", "pending")

	var logs logBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- RunRetention(ctx, e.st, 20*time.Millisecond, time.Hour, 1, logger) }()
	waitFor(t, "a retention run deleting both old messages", func() bool {
		return strings.Contains(logs.String(), "deleted=2")
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("RunRetention: %v", err)
	}

	recs, err := e.st.ListMessages(e.ctx, store.MessageFilter{TenantID: "t1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, r := range recs {
		left = append(left, r.ID)
	}
	sort.Strings(left)
	want := []string{"mixed", "pending", "recent", "unreported", "waiting"}
	if diff := cmp.Diff(want, left); diff != "" {
		t.Errorf("messages left (-want +got):\n%s", diff)
	}
}

func TestRetentionRejectsBadArguments(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	for _, tt := range []struct {
		name             string
		every, retention time.Duration
		batch            int
	}{
		{"zero interval", 0, time.Hour, 10},
		{"negative retention", time.Hour, -time.Second, 10},
		{"zero batch", time.Hour, time.Hour, 0},
	} {
		if err := RunRetention(e.ctx, e.st, tt.every, tt.retention, tt.batch, nil); err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
}
