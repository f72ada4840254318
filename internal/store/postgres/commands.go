package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/store/internal/driver"
)

// AppendCommand records one mutating call.
func (s *Store) AppendCommand(ctx context.Context, e store.CommandLogEntry) error {
	at := driver.Stamp(e.At, s.now)
	err := s.once(ctx, func() error {
		_, err := s.pool.Exec(ctx, qAppendCommand, ms(at), e.Endpoint, e.TenantID, nullJSON(e.Payload),
			e.ResponseStatus, nullJSON(e.ResponseBody), e.Caller)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: append command: %w", err)
	}
	return nil
}

// ListCommands returns command-log entries, newest first unless OldestFirst.
func (s *Store) ListCommands(ctx context.Context, f store.CommandLogFilter) ([]store.CommandLogEntry, error) {
	query := qListCommandsNewest
	if f.OldestFirst {
		query = qListCommandsOldest
	}
	rows, err := s.pool.Query(ctx, query, f.TenantID, msPtr(f.Since), msPtr(f.Until), f.EndpointFilter, sqlLimit(f.Limit))
	if err != nil {
		return nil, fmt.Errorf("postgres: list commands: %w", err)
	}
	out := []store.CommandLogEntry{}
	var (
		e             store.CommandLogEntry
		at            int64
		payload, body *string
	)
	_, err = pgx.ForEachRow(rows, []any{&e.ID, &at, &e.Endpoint, &e.TenantID, &payload, &e.ResponseStatus, &body, &e.Caller},
		func() error {
			entry := e
			entry.At = fromMS(at)
			entry.Payload = jsonRaw(payload)
			entry.ResponseBody = jsonRaw(body)
			out = append(out, entry)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("postgres: list commands: %w", err)
	}
	return out, nil
}

func scanIdempotency(sc scanner) (store.IdempotencyRecord, error) {
	var (
		r        store.IdempotencyRecord
		response *string
		created  int64
	)
	if err := sc.Scan(&r.Scope, &r.Key, &r.BodyHash, &r.Status, &response, &created); err != nil {
		return store.IdempotencyRecord{}, err
	}
	r.Response = jsonRaw(response)
	r.CreatedAt = fromMS(created)
	return r, nil
}

// BeginIdempotent inserts a running record, or returns the existing one.
func (s *Store) BeginIdempotent(ctx context.Context, rec store.IdempotencyRecord) (store.IdempotencyRecord, bool, error) {
	rec.CreatedAt = fromMS(ms(driver.Stamp(rec.CreatedAt, s.now)))
	rec.Status = 0
	rec.Response = nil
	var (
		existing store.IdempotencyRecord
		found    bool
	)
	err := s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, qBeginIdempotent, rec.Scope, rec.Key, rec.BodyHash, ms(rec.CreatedAt))
		if err != nil {
			return err
		}
		if tag.RowsAffected() > 0 {
			existing, found = rec, false
			return nil
		}
		existing, err = scanIdempotency(tx.QueryRow(ctx, qGetIdempotent, rec.Scope, rec.Key))
		found = err == nil
		return err
	})
	if err != nil {
		return store.IdempotencyRecord{}, false, fmt.Errorf("postgres: begin idempotent: %w", err)
	}
	return existing, found, nil
}

// FinishIdempotent stores the answer of a running record.
func (s *Store) FinishIdempotent(ctx context.Context, scope, key string, status int, response json.RawMessage) error {
	tag, err := s.pool.Exec(ctx, qFinishIdempotent, status, nullJSON(response), scope, key)
	if err != nil {
		return fmt.Errorf("postgres: finish idempotent: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: finish idempotent: key %q: %w", key, store.ErrNotFound)
	}
	return nil
}

// AbortIdempotent deletes a still-running record.
func (s *Store) AbortIdempotent(ctx context.Context, scope, key string) error {
	if _, err := s.pool.Exec(ctx, qAbortIdempotent, scope, key); err != nil {
		return fmt.Errorf("postgres: abort idempotent: %w", err)
	}
	return nil
}

// PurgeExpired drops idempotency records created, and rate windows ended, before cutoff.
func (s *Store) PurgeExpired(ctx context.Context, cutoff time.Time) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, qPurgeIdempotency, ms(cutoff)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, qPurgeRates, ms(cutoff))
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: purge expired: %w", err)
	}
	return nil
}
