package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/store/internal/driver"
)

// AddSuppressions stores new suppressed addresses; existing ones are kept.
func (s *Store) AddSuppressions(ctx context.Context, entries []store.Suppression) (int, error) {
	added := 0
	err := s.write(ctx, func(w *wtx) error {
		added = 0
		for _, e := range entries {
			created := driver.Stamp(e.CreatedAt, s.now)
			res, err := w.exec(qAddSuppression, e.TenantID, strings.ToLower(e.Address), e.Reason, e.Source, ms(created))
			if isForeignKey(err) {
				return fmt.Errorf("tenant %q: %w", e.TenantID, store.ErrTenantNotFound)
			}
			if err != nil {
				return err
			}
			n, _ := res.RowsAffected()
			added += int(n)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: add suppressions: %w", err)
	}
	return added, nil
}

// ListSuppressions lists a tenant's suppressed addresses in address order.
func (s *Store) ListSuppressions(ctx context.Context, tenantID string) ([]store.Suppression, error) {
	rows, err := s.query(ctx, qListSuppressions, tenantID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list suppressions: %w", err)
	}
	defer rows.Close()
	out := []store.Suppression{}
	for rows.Next() {
		var (
			e       store.Suppression
			created int64
		)
		if err := rows.Scan(&e.TenantID, &e.Address, &e.Reason, &e.Source, &created); err != nil {
			return nil, fmt.Errorf("sqlite: list suppressions: %w", err)
		}
		e.CreatedAt = fromMS(created)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list suppressions: %w", err)
	}
	return out, nil
}

// RemoveSuppression deletes one suppressed address.
func (s *Store) RemoveSuppression(ctx context.Context, tenantID, address string) (int, error) {
	removed := 0
	err := s.write(ctx, func(w *wtx) error {
		res, err := w.exec(qRemoveSuppression, tenantID, strings.ToLower(address))
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		removed = int(n)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: remove suppression: %w", err)
	}
	return removed, nil
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
	list, err := json.Marshal(lower)
	if err != nil {
		return nil, err
	}
	rows, err := s.query(ctx, qSuppressedAmong, tenantID, string(list))
	if err != nil {
		return nil, fmt.Errorf("sqlite: suppressed among: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, fmt.Errorf("sqlite: suppressed among: %w", err)
		}
		out[a] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: suppressed among: %w", err)
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
		rows, err := s.query(ctx, q.query, q.arg)
		if err != nil {
			return nil, fmt.Errorf("sqlite: find messages: %w", err)
		}
		for rows.Next() {
			m, err := scanMessage(rows)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("sqlite: find messages: %w", err)
			}
			if !seen[m.PK] {
				seen[m.PK] = true
				out = append(out, m)
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("sqlite: find messages: %w", err)
		}
	}
	return out, nil
}

// AddBounce appends a bounce event unless an identical one exists.
func (s *Store) AddBounce(ctx context.Context, ev store.Event) (bool, error) {
	at := driver.Stamp(ev.At, s.now)
	added := false
	err := s.write(ctx, func(w *wtx) error {
		var tenant string
		err := w.queryRow(qMessageTenant, ev.MessagePK).Scan(&tenant)
		if isNoRows(err) {
			return fmt.Errorf("message %s: %w", ev.MessagePK, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		res, err := w.exec(qAddBounce, ev.MessagePK, tenant, ms(at), ev.Description, nullJSON(ev.Metadata))
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		added = n == 1
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("sqlite: add bounce: %w", err)
	}
	return added, nil
}

// AcquireLease takes or renews the named lease.
func (s *Store) AcquireLease(ctx context.Context, name, owner string, now, until time.Time) (bool, error) {
	if owner == "" {
		return false, fmt.Errorf("sqlite: acquire lease %q: empty owner", name)
	}
	ok := false
	err := s.writeRelaxed(ctx, func(w *wtx) error {
		var one int
		err := w.queryRow(qAcquireLease, name, owner, ms(now), ms(until)).Scan(&one)
		switch {
		case err == nil:
			ok = true
		case isNoRows(err):
			ok = false
		default:
			return err
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("sqlite: acquire lease %q: %w", name, err)
	}
	return ok, nil
}
