package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/mailproxy/mailproxy/internal/store"
)

// outcomeCases cover RecordOutcome and the events it writes (lifecycle.md §5).
func outcomeCases() []testCase {
	return []testCase{
		{"SentSetsFinalAndEvent", testOutcomeSent},
		{"ErrorSetsFinalAndRetryCount", testOutcomeError},
		{"DeferredSetsRetryAndDeferredUntil", testOutcomeDeferred},
		{"SilentDeferAddsNoEvent", testOutcomeSilentDefer},
		{"ReleaseBackToPendingWithoutEvent", testOutcomeRelease},
		{"WrongOwnerOrAttemptIsLeaseLost", testOutcomeWrongOwnerOrAttempt},
		{"SecondOutcomeIsLeaseLost", testOutcomeTwice},
		{"DeletedMessageIsLeaseLost", testOutcomeDeletedMessage},
		{"HistoryOrderAndLatestEvents", testOutcomeHistory},
		{"LastEvent", testOutcomeLastEvent},
		{"ConcurrentOutcomesAllApplied", testOutcomeConcurrent},
	}
}

func testOutcomeSent(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.enqueueQueued(at(0), msg("t1", "m1", "acc"))
	c := h.claimOne("o", at(1), "m1")
	meta := json.RawMessage(`{"smtp_code":250,"queue_id":"ABC"}`)
	if err := h.s.RecordOutcome(h.ctx, store.Outcome{
		MessagePK: c.Message.PK, Owner: "o", Attempt: c.Message.Attempt, Kind: store.OutcomeSent,
		At: at(2), Description: "250 2.0.0 queued as ABC", Metadata: meta,
	}); err != nil {
		t.Fatalf("RecordOutcome(sent): %v", err)
	}
	r := h.record("t1", "m1")
	if !timeEq(r.FinalAt, ptr(at(2))) || r.LeaseOwner != "" || r.LeaseUntil != nil {
		t.Errorf("sent message: final %s owner %q lease %s, want final %s and the lease cleared",
			fmtTime(r.FinalAt), r.LeaseOwner, fmtTime(r.LeaseUntil), fmtTime(ptr(at(2))))
	}
	if len(r.History) != 1 {
		t.Fatalf("sent message history %v, want one sent event", eventTypes(r.History))
	}
	ev := r.History[0]
	if ev.Type != store.EventSent || !ev.At.Equal(at(2)) || ev.Description != "250 2.0.0 queued as ABC" ||
		!jsonEqual(ev.Metadata, meta) || ev.ReportedAt != nil || ev.MessagePK != c.Message.PK || ev.MessageID != "m1" || ev.TenantID != "t1" {
		t.Errorf("sent event = %+v, want sent at %s with the description, metadata %s, unreported, naming t1/m1", ev, fmtTime(ptr(at(2))), meta)
	}
	if r.Final == nil || r.Final.ID != ev.ID || r.LatestEvent == nil || r.LatestEvent.ID != ev.ID || r.LatestError != nil {
		t.Errorf("sent message: Final %v LatestEvent %v LatestError %v, want the sent event, the sent event, nil", r.Final, r.LatestEvent, r.LatestError)
	}
	if got := h.claim(claimReq("o", at(200))); len(got) != 0 {
		t.Errorf("Claim after sent = %q, want none", claimIDs(got))
	}
	if n, err := h.s.CountUnprocessed(h.ctx); err != nil || n != 0 {
		t.Errorf("CountUnprocessed after sent = %d, %v; want 0", n, err)
	}
}

func testOutcomeError(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.enqueueQueued(at(0), msg("t1", "m1", "acc"))
	c := h.claimOne("o", at(1), "m1")
	if err := h.s.RecordOutcome(h.ctx, store.Outcome{
		MessagePK: c.Message.PK, Owner: "o", Attempt: c.Message.Attempt, Kind: store.OutcomeError,
		At: at(3), Description: "550 5.1.1 no such user", RetryCount: 4,
	}); err != nil {
		t.Fatalf("RecordOutcome(error): %v", err)
	}
	r := h.record("t1", "m1")
	if !timeEq(r.FinalAt, ptr(at(3))) || r.RetryCount != 4 || r.RejectedAtEnqueue || r.LeaseOwner != "" {
		t.Errorf("errored message: final %s retry_count %d rejected_at_enqueue %v owner %q; want %s, 4, false, \"\"",
			fmtTime(r.FinalAt), r.RetryCount, r.RejectedAtEnqueue, r.LeaseOwner, fmtTime(ptr(at(3))))
	}
	if got := eventTypes(r.History); !slices.Equal(got, []store.EventType{store.EventError}) {
		t.Fatalf("errored message history %v, want [error]", got)
	}
	if r.LatestError == nil || r.LatestError.Description != "550 5.1.1 no such user" || r.Final == nil || r.Final.Type != store.EventError {
		t.Errorf("errored message: LatestError %v Final %v, want the error event", r.LatestError, r.Final)
	}
	if got := h.claim(claimReq("o", at(200))); len(got) != 0 {
		t.Errorf("Claim after error = %q, want none", claimIDs(got))
	}
}

func testOutcomeDeferred(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.enqueueQueued(at(0), msg("t1", "m1", "acc"))
	c := h.claimOne("o", at(1), "m1")
	meta := json.RawMessage(`{"deferred_ts":1767225900}`)
	if err := h.s.RecordOutcome(h.ctx, store.Outcome{
		MessagePK: c.Message.PK, Owner: "o", Attempt: c.Message.Attempt, Kind: store.OutcomeDeferred,
		At: at(2), Description: "451 4.7.1 try later", Metadata: meta, DeferredUntil: ptr(at(300)), RetryCount: 1,
	}); err != nil {
		t.Fatalf("RecordOutcome(deferred): %v", err)
	}
	r := h.record("t1", "m1")
	if r.FinalAt != nil || !timeEq(r.DeferredUntil, ptr(at(300))) || r.RetryCount != 1 || r.LeaseOwner != "" {
		t.Errorf("deferred message: final %s deferred_until %s retry_count %d owner %q; want nil, %s, 1, \"\"",
			fmtTime(r.FinalAt), fmtTime(r.DeferredUntil), r.RetryCount, r.LeaseOwner, fmtTime(ptr(at(300))))
	}
	if len(r.History) != 1 || r.History[0].Type != store.EventDeferred || r.History[0].Description != "451 4.7.1 try later" ||
		!r.History[0].At.Equal(at(2)) || !jsonEqual(r.History[0].Metadata, meta) {
		t.Errorf("deferred message history %+v, want one deferred event at %s with description and metadata", r.History, fmtTime(ptr(at(2))))
	}
	if r.Final != nil {
		t.Errorf("deferred message Final = %+v, want nil (unprocessed)", r.Final)
	}
	if got := h.claim(claimReq("o", at(299))); len(got) != 0 {
		t.Errorf("Claim before the retry time = %q, want none", claimIDs(got))
	}
	again := h.claimOne("o", at(300), "m1")
	if again.Message.Attempt != c.Message.Attempt+1 || again.Message.RetryCount != 1 {
		t.Errorf("retry claim attempt %d retry_count %d, want %d and 1", again.Message.Attempt, again.Message.RetryCount, c.Message.Attempt+1)
	}
}

func testOutcomeSilentDefer(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.enqueueQueued(at(0), msg("t1", "m1", "acc"))
	c := h.claimOne("o", at(1), "m1")
	if err := h.s.RecordOutcome(h.ctx, store.Outcome{
		MessagePK: c.Message.PK, Owner: "o", Attempt: c.Message.Attempt, Kind: store.OutcomeDeferred,
		At: at(1), Description: "rate_limit", DeferredUntil: ptr(at(60)),
	}); err != nil {
		t.Fatalf("RecordOutcome(deferred): %v", err)
	}
	c = h.claimOne("o", at(60), "m1")
	if err := h.s.RecordOutcome(h.ctx, store.Outcome{
		MessagePK: c.Message.PK, Owner: "o", Attempt: c.Message.Attempt, Kind: store.OutcomeSilentDefer,
		At: at(60), Description: "rate_limit", DeferredUntil: ptr(at(120)), RetryCount: 2,
	}); err != nil {
		t.Fatalf("RecordOutcome(silent defer): %v", err)
	}
	r := h.record("t1", "m1")
	if !timeEq(r.DeferredUntil, ptr(at(120))) || r.RetryCount != 2 || r.LeaseOwner != "" || r.FinalAt != nil {
		t.Errorf("silently deferred: deferred_until %s retry_count %d owner %q final %s; want %s, 2, \"\", nil",
			fmtTime(r.DeferredUntil), r.RetryCount, r.LeaseOwner, fmtTime(r.FinalAt), fmtTime(ptr(at(120))))
	}
	if got := eventTypes(r.History); !slices.Equal(got, []store.EventType{store.EventDeferred}) {
		t.Errorf("history after a silent re-deferral %v, want only the first deferred event", got)
	}
	if n, err := h.s.CountUnreported(h.ctx, "t1"); err != nil || n != 1 {
		t.Errorf("CountUnreported = %d, %v; want 1 (no report for the silent deferral)", n, err)
	}
}

func testOutcomeRelease(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.enqueueQueued(at(0), msg("t1", "m1", "acc", deferredUntil(at(5))))
	c := h.claimOne("o", at(5), "m1")
	if err := h.s.RecordOutcome(h.ctx, store.Outcome{
		MessagePK: c.Message.PK, Owner: "o", Attempt: c.Message.Attempt, Kind: store.OutcomeRelease, At: at(6),
	}); err != nil {
		t.Fatalf("RecordOutcome(release): %v", err)
	}
	r := h.record("t1", "m1")
	if r.LeaseOwner != "" || r.LeaseUntil != nil || r.FinalAt != nil || len(r.History) != 0 {
		t.Errorf("released message: owner %q lease %s final %s history %v; want unclaimed, unprocessed, no event",
			r.LeaseOwner, fmtTime(r.LeaseUntil), fmtTime(r.FinalAt), eventTypes(r.History))
	}
	again := h.claimOne("p", at(6), "m1")
	if again.Message.Attempt != c.Message.Attempt+1 {
		t.Errorf("claim after release: attempt %d, want %d", again.Message.Attempt, c.Message.Attempt+1)
	}
}

func testOutcomeWrongOwnerOrAttempt(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.enqueueQueued(at(0), msg("t1", "m1", "acc"))
	c := h.claimOne("o", at(1), "m1")
	for _, tc := range []struct {
		name    string
		owner   string
		attempt int
	}{
		{"other owner", "intruder", c.Message.Attempt},
		{"empty owner", "", c.Message.Attempt},
		{"earlier attempt", "o", c.Message.Attempt - 1},
		{"later attempt", "o", c.Message.Attempt + 1},
	} {
		for _, kind := range []store.OutcomeKind{store.OutcomeSent, store.OutcomeRelease} {
			err := h.s.RecordOutcome(h.ctx, store.Outcome{
				MessagePK: c.Message.PK, Owner: tc.owner, Attempt: tc.attempt, Kind: kind, At: at(2),
			})
			if !errors.Is(err, store.ErrLeaseLost) {
				t.Errorf("%s (owner %q, attempt %d), %s: err %v, want ErrLeaseLost", tc.name, tc.owner, tc.attempt, kindName(kind), err)
			}
		}
	}
	r := h.record("t1", "m1")
	if r.LeaseOwner != "o" || r.FinalAt != nil || len(r.History) != 0 {
		t.Errorf("after rejected outcomes: owner %q final %s history %v; want o's claim intact", r.LeaseOwner, fmtTime(r.FinalAt), eventTypes(r.History))
	}
	h.finish(c, store.OutcomeSent, at(3), "250 OK")
}

func testOutcomeTwice(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.enqueueQueued(at(0), msg("t1", "m1", "acc"))
	c := h.claimOne("o", at(1), "m1")
	h.finish(c, store.OutcomeSent, at(2), "250 OK")
	err := h.s.RecordOutcome(h.ctx, store.Outcome{
		MessagePK: c.Message.PK, Owner: "o", Attempt: c.Message.Attempt, Kind: store.OutcomeError, At: at(3), Description: "late",
	})
	if !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("second outcome for one claim: err %v, want ErrLeaseLost", err)
	}
	if got := eventTypes(h.record("t1", "m1").History); !slices.Equal(got, []store.EventType{store.EventSent}) {
		t.Errorf("history %v, want only the first outcome's event", got)
	}
}

func testOutcomeDeletedMessage(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.enqueueQueued(at(0), msg("t1", "m1", "acc"))
	c := h.claimOne("o", at(1), "m1")
	if _, err := h.s.DeleteMessages(h.ctx, "t1", []string{"m1"}); err != nil {
		t.Fatalf("DeleteMessages: %v", err)
	}
	err := h.s.RecordOutcome(h.ctx, store.Outcome{
		MessagePK: c.Message.PK, Owner: "o", Attempt: c.Message.Attempt, Kind: store.OutcomeSent, At: at(2),
	})
	if !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("outcome for a message deleted during its attempt: err %v, want ErrLeaseLost (dropped)", err)
	}
	if n, err := h.s.CountUnreported(h.ctx, "t1"); err != nil || n != 0 {
		t.Errorf("CountUnreported = %d, %v; want 0: nothing recorded for a deleted message", n, err)
	}
}

func testOutcomeHistory(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.enqueueQueued(at(0), msg("t1", "ok", "acc"), msg("t1", "bad", "acc"))
	deferBoth := func(now, until int) {
		for _, c := range h.claim(claimReq("o", at(now))) {
			if err := h.s.RecordOutcome(h.ctx, store.Outcome{
				MessagePK: c.Message.PK, Owner: "o", Attempt: c.Message.Attempt, Kind: store.OutcomeDeferred,
				At: at(now), Description: "451 later", DeferredUntil: ptr(at(until)), RetryCount: c.Message.RetryCount + 1,
			}); err != nil {
				t.Fatalf("RecordOutcome(deferred) for %s: %v", c.Message.ID, err)
			}
		}
	}
	deferBoth(10, 20)
	deferBoth(20, 30)
	for _, c := range h.claim(claimReq("o", at(30))) {
		kind, desc := store.OutcomeSent, "250 OK"
		if c.Message.ID == "bad" {
			kind, desc = store.OutcomeError, "550 rejected"
		}
		h.finish(c, kind, at(31), desc)
	}

	for _, tc := range []struct {
		id        string
		want      []store.EventType
		final     store.EventType
		latestErr bool
	}{
		{"ok", []store.EventType{store.EventDeferred, store.EventDeferred, store.EventSent}, store.EventSent, false},
		{"bad", []store.EventType{store.EventDeferred, store.EventDeferred, store.EventError}, store.EventError, true},
	} {
		r := h.record("t1", tc.id)
		if got := eventTypes(r.History); !slices.Equal(got, tc.want) {
			t.Errorf("%s history %v, want %v", tc.id, got, tc.want)
			continue
		}
		for i := 1; i < len(r.History); i++ {
			prev, cur := r.History[i-1], r.History[i]
			if cur.At.Before(prev.At) || cur.ID <= prev.ID {
				t.Errorf("%s history not in (event_ts, id) order: %+v before %+v", tc.id, prev, cur)
			}
		}
		last := r.History[len(r.History)-1]
		if r.LatestEvent == nil || r.LatestEvent.ID != last.ID || r.Final == nil || r.Final.ID != last.ID || r.Final.Type != tc.final {
			t.Errorf("%s: LatestEvent %v Final %v, want the final %s event", tc.id, r.LatestEvent, r.Final, tc.final)
		}
		if (r.LatestError != nil) != tc.latestErr || (tc.latestErr && r.LatestError.ID != last.ID) {
			t.Errorf("%s: LatestError %v, want set=%v", tc.id, r.LatestError, tc.latestErr)
		}
		if r.RetryCount != 2 {
			t.Errorf("%s retry_count %d, want 2 after two deferrals", tc.id, r.RetryCount)
		}
	}

	// Without IncludeHistory the history is left out, the latest events are not.
	recs, err := h.s.ListMessages(h.ctx, store.MessageFilter{TenantID: "t1"}, at(40))
	if err != nil {
		t.Fatalf("ListMessages: %v", err)
	}
	for _, r := range recs {
		if len(r.History) != 0 {
			t.Errorf("%s listed without IncludeHistory has history %v", r.ID, eventTypes(r.History))
		}
		if r.LatestEvent == nil || r.Final == nil {
			t.Errorf("%s listed without IncludeHistory: LatestEvent %v Final %v, want both set", r.ID, r.LatestEvent, r.Final)
		}
	}
}

func testOutcomeLastEvent(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	pk := h.enqueueQueued(at(0), msg("t1", "m1", "acc"))[0]
	if _, err := h.s.LastEvent(h.ctx, pk); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LastEvent of a message without events: err %v, want ErrNotFound", err)
	}
	c := h.claimOne("o", at(1), "m1")
	if err := h.s.RecordOutcome(h.ctx, store.Outcome{
		MessagePK: pk, Owner: "o", Attempt: c.Message.Attempt, Kind: store.OutcomeDeferred,
		At: at(2), Description: "rate_limit", DeferredUntil: ptr(at(60)),
	}); err != nil {
		t.Fatalf("RecordOutcome(deferred): %v", err)
	}
	ev, err := h.s.LastEvent(h.ctx, pk)
	if err != nil || ev.Type != store.EventDeferred || ev.Description != "rate_limit" || ev.MessagePK != pk {
		t.Errorf("LastEvent = %+v, %v; want the rate_limit deferral", ev, err)
	}
	c = h.claimOne("o", at(60), "m1")
	h.finish(c, store.OutcomeSent, at(61), "250 OK")
	if ev, err := h.s.LastEvent(h.ctx, pk); err != nil || ev.Type != store.EventSent {
		t.Errorf("LastEvent after sent = %+v, %v; want the sent event", ev, err)
	}
}

func testOutcomeConcurrent(t *testing.T, h *harness) {
	const messages = 40
	h.tenantWithAccount("t1")
	items := make([]store.NewMessage, messages)
	for i := range items {
		items[i] = msg("t1", fmt.Sprintf("m%02d", i), "acc")
	}
	h.enqueueQueued(at(0), items...)
	claims := h.claim(claimReq("o", at(1)))
	if len(claims) != messages {
		t.Fatalf("Claim = %d messages, want %d", len(claims), messages)
	}
	var wg sync.WaitGroup
	for i, c := range claims {
		wg.Go(func() {
			defer recoverTo(t)
			kind := store.OutcomeSent
			if i%2 == 1 {
				kind = store.OutcomeError
			}
			if err := h.s.RecordOutcome(h.ctx, store.Outcome{
				MessagePK: c.Message.PK, Owner: "o", Attempt: c.Message.Attempt, Kind: kind, At: at(2), Description: "done",
			}); err != nil {
				t.Errorf("RecordOutcome(%s): %v", c.Message.ID, err)
			}
		})
	}
	wg.Wait()
	if n, err := h.s.CountUnprocessed(h.ctx); err != nil || n != 0 {
		t.Errorf("CountUnprocessed after concurrent outcomes = %d, %v; want 0", n, err)
	}
	if n, err := h.s.CountUnreported(h.ctx, "t1"); err != nil || n != messages {
		t.Errorf("CountUnreported after concurrent outcomes = %d, %v; want %d (one event each)", n, err, messages)
	}
	stats, err := h.s.Stats(h.ctx, "t1", at(3))
	if err != nil || len(stats) != 1 || stats[0].Sent != messages/2 || stats[0].Error != messages/2 {
		t.Errorf("Stats after concurrent outcomes = %+v, %v; want %d sent and %d error", stats, err, messages/2, messages/2)
	}
}
