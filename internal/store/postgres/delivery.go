package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/store/internal/driver"
)

// maxClaimPages bounds the pages one claim reads.
const maxClaimPages = 1000

// Claim leases up to req.Limit due messages in priority, age order, at most
// a per-account cap each (the account's batch_size, else req.PerAccount).
//
// One transaction: expired leases go back to the queue, then qClaim pages
// through the claim index. A page locks its rows with SKIP LOCKED, so rows
// another instance is claiming are passed over, never waited for; accounts
// that fill their cap are left out of later pages so a long backlog of one
// account does not hide the others.
func (s *Store) Claim(ctx context.Context, req store.ClaimRequest) ([]store.Claim, error) {
	if req.Owner == "" {
		return nil, errors.New("postgres: claim: empty owner")
	}
	if req.Limit <= 0 {
		return []store.Claim{}, nil
	}
	if req.Lease <= 0 {
		return nil, fmt.Errorf("postgres: claim: lease %s must be positive", req.Lease)
	}
	var claims []store.Claim
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var err error
		claims, err = claim(ctx, tx, req)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: claim: %w", err)
	}
	return claims, nil
}

// claimPage is what one qClaim page tells the next.
type claimPage struct {
	scanned                       int64
	lastPri, lastCreated, lastSeq int64
}

func claim(ctx context.Context, tx pgx.Tx, req store.ClaimRequest) ([]store.Claim, error) {
	now := ms(req.Now)
	leaseUntil := now + req.Lease.Milliseconds()

	var exTenants, exAccounts []string
	for key := range req.SkipAccounts {
		if tenantID, accountID, ok := driver.SplitAccountKey(key); ok {
			exTenants = append(exTenants, tenantID)
			exAccounts = append(exAccounts, accountID)
		}
	}
	taken := map[msgKey]int{}
	caps := map[msgKey]int{}
	claims := []store.Claim{}
	pos := claimPage{lastPri: math.MinInt64, lastCreated: math.MinInt64, lastSeq: math.MinInt64}
	for page := range maxClaimPages {
		// A page locks as many rows as the claim still wants, no more:
		// locked rows that the per-account caps then leave unclaimed are
		// skipped by other instances until this transaction ends, so a
		// larger page would starve them (one instance's page of 64 once
		// hid a whole 20-message queue from a second instance).
		pageSize := int64(req.Limit - len(claims))
		var takenT, takenA []string
		var takenN []int32
		for k, n := range taken {
			takenT, takenA, takenN = append(takenT, k.tenantID), append(takenA, k.id), append(takenN, int32(n))
		}
		b := &pgx.Batch{}
		if page == 0 {
			b.Queue(qClaimPlan)
			b.Queue(qRescueExpired, now)
		}
		var got claimPage
		b.Queue(qClaim, now, req.TenantID, pos.lastPri, pos.lastCreated, pos.lastSeq, exTenants, exAccounts,
			pageSize, req.PerAccount, takenT, takenA, takenN, pageSize, req.Owner, leaseUntil,
		).Query(func(rows pgx.Rows) error {
			var (
				d                  messageDest
				a                  store.Account
				aCreated, aUpdated int64
				hasAccount         bool
			)
			dest := append(d.targets(), &hasAccount)
			dest = append(dest, accountDest(&a, &aCreated, &aUpdated)...)
			dest = append(dest, &got.scanned, &got.lastPri, &got.lastCreated, &got.lastSeq)
			_, err := pgx.ForEachRow(rows, dest, func() error {
				c := store.Claim{Message: d.message()}
				k := msgKey{c.Message.TenantID, c.Message.AccountID}
				var batchSize *int
				if hasAccount {
					acc := a
					acc.CreatedAt, acc.UpdatedAt = fromMS(aCreated), fromMS(aUpdated)
					c.Account = &acc
					batchSize = acc.BatchSize
				}
				caps[k] = driver.ClaimCap(req.PerAccount, batchSize)
				taken[k]++
				claims = append(claims, c)
				return nil
			})
			return err
		})
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return nil, err
		}
		if len(claims) >= req.Limit || got.scanned < pageSize {
			break
		}
		// The page was full and the claim is not: read on past it, without
		// the accounts that reached their cap.
		pos = got
		for k, n := range taken {
			if limit := caps[k]; limit > 0 && n >= limit {
				exTenants, exAccounts = append(exTenants, k.tenantID), append(exAccounts, k.id)
				delete(taken, k)
			}
		}
	}
	return claims, nil
}

// RenewLease extends the leases owner still holds and returns their pks, in
// request order.
func (s *Store) RenewLease(ctx context.Context, owner string, pks []string, until time.Time) ([]string, error) {
	if owner == "" || len(pks) == 0 {
		return []string{}, nil
	}
	pks = driver.UniqueIDs(pks)
	rows, err := s.pool.Query(ctx, qRenewLease, ms(until), pks, owner)
	if err != nil {
		return nil, fmt.Errorf("postgres: renew lease: %w", err)
	}
	renewed, err := collectSet(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: renew lease: %w", err)
	}
	return driver.IDsIn(pks, renewed), nil
}

// RecordOutcome ends an attempt if owner still holds it (same attempt): the
// message columns and the event in one statement, plus the released rate
// slots in the same transaction when asked.
func (s *Store) RecordOutcome(ctx context.Context, o store.Outcome) error {
	if o.Owner == "" {
		return fmt.Errorf("postgres: record outcome %s: %w", o.MessagePK, store.ErrLeaseLost)
	}
	at := ms(driver.Stamp(o.At, s.now))
	retry := int64(o.RetryCount)
	var (
		query string
		args  []any
	)
	switch o.Kind {
	case store.OutcomeSent:
		query, args = qOutcomeFinal, []any{at, nil, o.MessagePK, o.Owner, o.Attempt, string(store.EventSent),
			o.Description, nullJSON(o.Metadata)}
	case store.OutcomeError:
		query, args = qOutcomeFinal, []any{at, retry, o.MessagePK, o.Owner, o.Attempt, string(store.EventError),
			o.Description, nullJSON(o.Metadata)}
	case store.OutcomeDeferred:
		query, args = qOutcomeRequeue, []any{msPtr(o.DeferredUntil), retry, at, o.MessagePK, o.Owner, o.Attempt,
			string(store.EventDeferred), o.Description, nullJSON(o.Metadata)}
	case store.OutcomeSilentDefer:
		query, args = qOutcomeRequeue, []any{msPtr(o.DeferredUntil), retry, at, o.MessagePK, o.Owner, o.Attempt,
			nil, o.Description, nullJSON(o.Metadata)}
	case store.OutcomeRelease:
		query, args = qOutcomeRequeue, []any{nil, nil, at, o.MessagePK, o.Owner, o.Attempt, nil, "", nil}
	default:
		return fmt.Errorf("postgres: record outcome %s: unknown outcome kind %d", o.MessagePK, o.Kind)
	}

	apply := func(q interface {
		QueryRow(context.Context, string, ...any) pgx.Row
	}) error {
		var tenantID string
		err := q.QueryRow(ctx, query, args...).Scan(&tenantID)
		if isNoRows(err) {
			return store.ErrLeaseLost
		}
		return err
	}
	var err error
	if r := o.ReleaseRate; r == nil {
		err = apply(s.pool)
	} else {
		err = s.tx(ctx, func(tx pgx.Tx) error {
			if err := apply(tx); err != nil {
				return err
			}
			// Minute, hour, day: the order ReserveRate locks them in.
			for _, w := range driver.Windows(r.At) {
				if _, err := tx.Exec(ctx, qRateRelease, r.TenantID, r.AccountID, w.Span, w.Start); err != nil {
					return fmt.Errorf("release rate: %w", err)
				}
			}
			return nil
		})
	}
	if err != nil {
		return fmt.Errorf("postgres: record outcome %s: %w", o.MessagePK, err)
	}
	return nil
}

// ReleaseClaims returns owner's claims ("" = every claim) to pending.
func (s *Store) ReleaseClaims(ctx context.Context, owner string) (int, error) {
	tag, err := s.pool.Exec(ctx, qReleaseClaims, owner, ms(s.now()))
	if err != nil {
		return 0, fmt.Errorf("postgres: release claims: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// NextDue is the earliest future deferral or lease expiry.
func (s *Store) NextDue(ctx context.Context, now time.Time) (time.Time, bool, error) {
	var deferred, lease *int64
	if err := s.pool.QueryRow(ctx, qNextDue, ms(now)).Scan(&deferred, &lease); err != nil {
		return time.Time{}, false, fmt.Errorf("postgres: next due: %w", err)
	}
	due, ok := driver.Earliest(timePtr(deferred), timePtr(lease))
	return due, ok, nil
}

// LastEvent returns the message's latest event.
func (s *Store) LastEvent(ctx context.Context, messagePK string) (store.Event, error) {
	e, err := scanEvent(s.pool.QueryRow(ctx, qLastEvent, messagePK))
	if isNoRows(err) {
		return store.Event{}, fmt.Errorf("postgres: last event of %s: %w", messagePK, store.ErrNotFound)
	}
	if err != nil {
		return store.Event{}, fmt.Errorf("postgres: last event: %w", err)
	}
	return e, nil
}
