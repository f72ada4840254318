package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/store/internal/driver"
)

// AddSuppressions stores new suppressed addresses; existing ones are kept.
func (s *Store) AddSuppressions(ctx context.Context, entries []store.Suppression) (int, error) {
	added := 0
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		added = 0
		for _, e := range entries {
			created := driver.Stamp(e.CreatedAt, s.now)
			tag, err := tx.Exec(ctx, qAddSuppression, e.TenantID, strings.ToLower(e.Address), e.Reason, e.Source, ms(created))
			if isForeignKey(err) {
				return fmt.Errorf("tenant %q: %w", e.TenantID, store.ErrTenantNotFound)
			}
			if err != nil {
				return err
			}
			added += int(tag.RowsAffected())
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: add suppressions: %w", err)
	}
	return added, nil
}

// ListSuppressions lists a tenant's suppressed addresses in address order.
func (s *Store) ListSuppressions(ctx context.Context, tenantID string) ([]store.Suppression, error) {
	rows, err := s.pool.Query(ctx, qListSuppressions, tenantID)
	if err != nil {
		return nil, fmt.Errorf("postgres: list suppressions: %w", err)
	}
	out := []store.Suppression{}
	var (
		e       store.Suppression
		created int64
	)
	_, err = pgx.ForEachRow(rows, []any{&e.TenantID, &e.Address, &e.Reason, &e.Source, &created}, func() error {
		entry := e
		entry.CreatedAt = fromMS(created)
		out = append(out, entry)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list suppressions: %w", err)
	}
	return out, nil
}

// RemoveSuppression deletes one suppressed address.
func (s *Store) RemoveSuppression(ctx context.Context, tenantID, address string) (int, error) {
	tag, err := s.pool.Exec(ctx, qRemoveSuppression, tenantID, strings.ToLower(address))
	if err != nil {
		return 0, fmt.Errorf("postgres: remove suppression: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// SuppressedAmong returns the suppressed ones of addresses, lower-cased.
func (s *Store) SuppressedAmong(ctx context.Context, tenantID string, addresses []string) (map[string]bool, error) {
	out := map[string]bool{}
	if len(addresses) == 0 {
		return out, nil
	}
	lower := make([]string, len(addresses))
	for i, a := range addresses {
		lower[i] = strings.ToLower(a)
	}
	err := s.once(ctx, func() error {
		rows, err := s.pool.Query(ctx, qSuppressedAmong, tenantID, lower)
		if err != nil {
			return err
		}
		var a string
		_, err = pgx.ForEachRow(rows, []any{&a}, func() error { out[a] = true; return nil })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: suppressed among: %w", err)
	}
	return out, nil
}

// FindMessages returns the messages with the pk or client id, newest first.
func (s *Store) FindMessages(ctx context.Context, l store.MessageLookup) ([]store.Message, error) {
	out := []store.Message{}
	seen := map[string]bool{}
	for _, q := range []struct{ query, arg string }{{qFindByPK, l.PK}, {qFindByClientID, l.ClientID}} {
		if q.arg == "" {
			continue
		}
		rows, err := s.pool.Query(ctx, q.query, q.arg)
		if err != nil {
			return nil, fmt.Errorf("postgres: find messages: %w", err)
		}
		var d messageDest
		_, err = pgx.ForEachRow(rows, d.targets(), func() error {
			m := d.message()
			if !seen[m.PK] {
				seen[m.PK] = true
				out = append(out, m)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("postgres: find messages: %w", err)
		}
	}
	return out, nil
}

// AddBounce appends a bounce event unless an identical one exists.
func (s *Store) AddBounce(ctx context.Context, ev store.Event) (bool, error) {
	at := driver.Stamp(ev.At, s.now)
	added := false
	// Serialised per message so two pollers cannot both insert.
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var one int
		err := tx.QueryRow(ctx, qMessageExists+" FOR UPDATE", ev.MessagePK).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("message %s: %w", ev.MessagePK, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, qAddBounce, ev.MessagePK, ms(at), ev.Description, nullJSON(ev.Metadata))
		if err != nil {
			return err
		}
		added = tag.RowsAffected() == 1
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("postgres: add bounce: %w", err)
	}
	return added, nil
}

// AcquireLease takes or renews the named lease.
func (s *Store) AcquireLease(ctx context.Context, name, owner string, now, until time.Time) (bool, error) {
	if owner == "" {
		return false, fmt.Errorf("postgres: acquire lease %q: empty owner", name)
	}
	var one int
	err := s.pool.QueryRow(ctx, qAcquireLease, name, owner, ms(now), ms(until)).Scan(&one)
	switch {
	case err == nil:
		return true, nil
	case isNoRows(err):
		return false, nil
	default:
		return false, fmt.Errorf("postgres: acquire lease %q: %w", name, err)
	}
}
