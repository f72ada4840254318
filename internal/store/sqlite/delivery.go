package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/store/internal/driver"
)

// maxClaimScans bounds the candidate pages one claim reads.
const maxClaimScans = 1000

// candidate is one claimable row as seen by the claim scan.
type candidate struct {
	seq       int64
	tenantID  string
	accountID string
	priority  int64
	createdAt int64
	batchSize sql.NullInt64
}

// Claim leases up to req.Limit due messages in priority, age order, at most
// a per-account cap each (the account's batch_size, else req.PerAccount).
func (s *Store) Claim(ctx context.Context, req store.ClaimRequest) ([]store.Claim, error) {
	if req.Owner == "" {
		return nil, errors.New("sqlite: claim: empty owner")
	}
	if req.Limit <= 0 {
		return []store.Claim{}, nil
	}
	if req.Lease <= 0 {
		return nil, fmt.Errorf("sqlite: claim: lease %s must be positive", req.Lease)
	}
	var claims []store.Claim
	err := s.writeRelaxed(ctx, func(w *wtx) error {
		var err error
		claims, err = claim(w, req)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim: %w", err)
	}
	return claims, nil
}

func claim(w *wtx, req store.ClaimRequest) ([]store.Claim, error) {
	now := ms(req.Now)
	if _, err := w.exec(qRescueExpired, now); err != nil {
		return nil, err
	}
	chosen, err := chooseCandidates(w, req, now)
	if err != nil || len(chosen) == 0 {
		return []store.Claim{}, err
	}

	seqs := make([]int64, len(chosen))
	order := make(map[int64]int, len(chosen))
	for i, c := range chosen {
		seqs[i] = c.seq
		order[c.seq] = i
	}
	list, err := jsonList(seqs)
	if err != nil {
		return nil, err
	}
	rows, err := w.query(qClaimRows, req.Owner, now+req.Lease.Milliseconds(), now, list)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	claims := make([]store.Claim, len(chosen))
	for rows.Next() {
		var seq int64
		m, err := scanMessage(rows, &seq)
		if err != nil {
			return nil, err
		}
		claims[order[seq]].Message = m
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()

	accounts := map[string]*store.Account{}
	for i := range claims {
		m := &claims[i].Message
		key := store.AccountKey(m.TenantID, m.AccountID)
		a, seen := accounts[key]
		if !seen {
			acc, err := scanAccount(w.queryRow(qGetAccount, m.TenantID, m.AccountID))
			switch {
			case err == nil:
				a = &acc
			case !isNoRows(err):
				return nil, err
			}
			accounts[key] = a
		}
		if a != nil {
			cp := *a
			claims[i].Account = &cp
		}
	}
	return claims, nil
}

// chooseCandidates pages through the claim index, applying the skip set
// and per-account caps; accounts that fill up are excluded from later pages
// in SQL so the scan does not wade through their backlog.
func chooseCandidates(w *wtx, req store.ClaimRequest, now int64) ([]candidate, error) {
	type pair = [2]string
	var excluded []pair
	for key := range req.SkipAccounts {
		tenantID, accountID, ok := driver.SplitAccountKey(key)
		if ok {
			excluded = append(excluded, pair{tenantID, accountID})
		}
	}
	taken := map[string]int{}
	var chosen []candidate
	// Keyset position: before every row (priorities and times are >= 0 in
	// practice; the minimum int64 covers the rest).
	lastPri, lastCreated, lastSeq := int64(-1<<63), int64(-1<<63), int64(-1<<63)
	page := int64(max(2*req.Limit, 64))
	for range maxClaimScans {
		if len(excluded) > 0 {
			// With the filled and skipped accounts excluded, the next page
			// would scan their whole backlog; stop when no other account
			// has a queued message.
			other, err := otherQueuedAccount(w, excluded)
			if err != nil || !other {
				return chosen, err
			}
		}
		exList, err := jsonList(excluded)
		if err != nil {
			return nil, err
		}
		rows, err := w.query(qClaimCandidates, now, req.TenantID, lastPri, lastCreated, lastSeq, exList, page)
		if err != nil {
			return nil, err
		}
		var n int64
		for rows.Next() {
			var c candidate
			if err := rows.Scan(&c.seq, &c.tenantID, &c.accountID, &c.priority, &c.createdAt, &c.batchSize); err != nil {
				rows.Close()
				return nil, err
			}
			n++
			lastPri, lastCreated, lastSeq = c.priority, c.createdAt, c.seq
			key := store.AccountKey(c.tenantID, c.accountID)
			limit := driver.ClaimCap(req.PerAccount, intPtr(c.batchSize))
			if req.SkipAccounts[key] || (limit > 0 && taken[key] >= limit) {
				continue
			}
			chosen = append(chosen, c)
			taken[key]++
			if limit > 0 && taken[key] >= limit {
				excluded = append(excluded, pair{c.tenantID, c.accountID})
			}
			if len(chosen) >= req.Limit {
				break
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, err
		}
		if len(chosen) >= req.Limit || n < page {
			break
		}
	}
	return chosen, nil
}

// otherQueuedAccount reports whether an account outside excluded has a
// queued message, walking the accounts with queued messages in key order
// (at most len(excluded)+1 index seeks).
func otherQueuedAccount(w *wtx, excluded [][2]string) (bool, error) {
	skip := make(map[[2]string]bool, len(excluded))
	for _, p := range excluded {
		skip[p] = true
	}
	var tenantID, accountID string // "" sorts before every stored key
	for range len(excluded) + 1 {
		err := w.queryRow(qNextQueuedAccount, tenantID, accountID).Scan(&tenantID, &accountID)
		if isNoRows(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if !skip[[2]string{tenantID, accountID}] {
			return true, nil
		}
	}
	return false, nil
}

// RenewLease extends the leases owner still holds and returns their pks, in
// request order.
func (s *Store) RenewLease(ctx context.Context, owner string, pks []string, until time.Time) ([]string, error) {
	if owner == "" || len(pks) == 0 {
		return []string{}, nil
	}
	pks = driver.UniqueIDs(pks)
	list, err := jsonList(pks)
	if err != nil {
		return nil, fmt.Errorf("sqlite: renew lease: %w", err)
	}
	renewed := map[string]bool{}
	err = s.writeRelaxed(ctx, func(w *wtx) error {
		clear(renewed)
		rows, err := w.query(qRenewLease, ms(until), list, owner)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var pk string
			if err := rows.Scan(&pk); err != nil {
				return err
			}
			renewed[pk] = true
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: renew lease: %w", err)
	}
	return driver.IDsIn(pks, renewed), nil
}

// RecordOutcome ends an attempt if owner still holds it (same attempt).
func (s *Store) RecordOutcome(ctx context.Context, o store.Outcome) error {
	at := driver.Stamp(o.At, s.now)
	err := s.writeRelaxed(ctx, func(w *wtx) error {
		return recordOutcome(w, o, at)
	})
	if err != nil {
		return fmt.Errorf("sqlite: record outcome %s: %w", o.MessagePK, err)
	}
	return nil
}

func recordOutcome(w *wtx, o store.Outcome, at time.Time) error {
	if o.Owner == "" {
		return store.ErrLeaseLost
	}
	var (
		tenantID string
		err      error
		event    store.EventType
	)
	retry := any(int64(o.RetryCount))
	switch o.Kind {
	case store.OutcomeSent:
		event = store.EventSent
		err = w.queryRow(qOutcomeFinal, ms(at), nil, o.MessagePK, o.Owner, o.Attempt, string(event)).Scan(&tenantID)
	case store.OutcomeError:
		event = store.EventError
		err = w.queryRow(qOutcomeFinal, ms(at), retry, o.MessagePK, o.Owner, o.Attempt, string(event)).Scan(&tenantID)
	case store.OutcomeDeferred, store.OutcomeSilentDefer:
		if o.Kind == store.OutcomeDeferred {
			event = store.EventDeferred
		}
		err = w.queryRow(qOutcomeRequeue, nullMS(o.DeferredUntil), retry, ms(at), o.MessagePK, o.Owner, o.Attempt).Scan(&tenantID)
	case store.OutcomeRelease:
		err = w.queryRow(qOutcomeRequeue, nil, nil, ms(at), o.MessagePK, o.Owner, o.Attempt).Scan(&tenantID)
	default:
		return fmt.Errorf("unknown outcome kind %d", o.Kind)
	}
	if isNoRows(err) {
		return store.ErrLeaseLost
	}
	if err != nil {
		return err
	}
	if event != "" {
		if _, err := w.exec(qInsertEvent, o.MessagePK, tenantID, string(event), ms(at), o.Description,
			nullJSON(o.Metadata)); err != nil {
			return fmt.Errorf("event: %w", err)
		}
	}
	if r := o.ReleaseRate; r != nil {
		win := driver.Windows(r.At)
		if _, err := w.exec(qRateRelease, r.TenantID, r.AccountID, win[0].Start, win[1].Start, win[2].Start); err != nil {
			return fmt.Errorf("release rate: %w", err)
		}
	}
	return nil
}

// ReleaseClaims returns owner's claims ("" = every claim) to pending.
func (s *Store) ReleaseClaims(ctx context.Context, owner string) (int, error) {
	var n int64
	now := s.now()
	err := s.writeRelaxed(ctx, func(w *wtx) error {
		var err error
		n, err = affected(w.exec(qReleaseClaims, owner, ms(now)))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: release claims: %w", err)
	}
	return int(n), nil
}

// NextDue is the earliest future deferral or lease expiry.
func (s *Store) NextDue(ctx context.Context, now time.Time) (time.Time, bool, error) {
	var deferred, lease sql.NullInt64
	if err := s.queryRow(ctx, qNextDue, ms(now)).Scan(&deferred, &lease); err != nil {
		return time.Time{}, false, fmt.Errorf("sqlite: next due: %w", err)
	}
	due, ok := driver.Earliest(timePtr(deferred), timePtr(lease))
	return due, ok, nil
}

// LastEvent returns the message's latest event.
func (s *Store) LastEvent(ctx context.Context, messagePK string) (store.Event, error) {
	e, err := scanEvent(s.queryRow(ctx, qLastEvent, messagePK))
	if isNoRows(err) {
		return store.Event{}, fmt.Errorf("sqlite: last event of %s: %w", messagePK, store.ErrNotFound)
	}
	if err != nil {
		return store.Event{}, fmt.Errorf("sqlite: last event: %w", err)
	}
	return e, nil
}
