package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/store/internal/driver"
)

// AppendCommand records one mutating call.
func (s *Store) AppendCommand(ctx context.Context, e store.CommandLogEntry) error {
	at := driver.Stamp(e.At, s.now)
	err := s.writeRelaxed(ctx, func(w *wtx) error {
		_, err := w.exec(qAppendCommand, ms(at), e.Endpoint, nullStr(e.TenantID), nullJSON(e.Payload),
			e.ResponseStatus, nullJSON(e.ResponseBody), e.Caller)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: append command: %w", err)
	}
	return nil
}

// ListCommands returns command-log entries, newest first unless OldestFirst.
func (s *Store) ListCommands(ctx context.Context, f store.CommandLogFilter) ([]store.CommandLogEntry, error) {
	query := qListCommandsNewest
	if f.OldestFirst {
		query = qListCommandsOldest
	}
	rows, err := s.query(ctx, query, f.TenantID, nullMS(f.Since), nullMS(f.Until), f.EndpointFilter, sqlLimit(f.Limit))
	if err != nil {
		return nil, fmt.Errorf("sqlite: list commands: %w", err)
	}
	defer rows.Close()
	out := []store.CommandLogEntry{}
	for rows.Next() {
		var (
			e             store.CommandLogEntry
			at            int64
			tenant        sql.NullString
			payload, body sql.NullString
		)
		if err := rows.Scan(&e.ID, &at, &e.Endpoint, &tenant, &payload, &e.ResponseStatus, &body, &e.Caller); err != nil {
			return nil, fmt.Errorf("sqlite: list commands: %w", err)
		}
		e.At = fromMS(at)
		e.TenantID = strPtr(tenant)
		e.Payload = jsonRaw(payload)
		e.ResponseBody = jsonRaw(body)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list commands: %w", err)
	}
	return out, nil
}

func scanIdempotency(sc scanner) (store.IdempotencyRecord, error) {
	var (
		r        store.IdempotencyRecord
		response sql.NullString
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
	rec.CreatedAt = driver.Stamp(rec.CreatedAt, s.now)
	rec.Status = 0
	rec.Response = nil
	var (
		existing store.IdempotencyRecord
		found    bool
	)
	err := s.write(ctx, func(w *wtx) error {
		n, err := affected(w.exec(qBeginIdempotent, rec.Scope, rec.Key, rec.BodyHash, ms(rec.CreatedAt)))
		if err != nil {
			return err
		}
		if n > 0 {
			existing, found = rec, false
			return nil
		}
		existing, err = scanIdempotency(w.queryRow(qGetIdempotent, rec.Scope, rec.Key))
		found = err == nil
		return err
	})
	if err != nil {
		return store.IdempotencyRecord{}, false, fmt.Errorf("sqlite: begin idempotent: %w", err)
	}
	if !found {
		existing.CreatedAt = fromMS(ms(existing.CreatedAt))
	}
	return existing, found, nil
}

// FinishIdempotent stores the answer of a running record.
func (s *Store) FinishIdempotent(ctx context.Context, scope, key string, status int, response json.RawMessage) error {
	err := s.write(ctx, func(w *wtx) error {
		return w.execOne(fmt.Errorf("idempotency key %q: %w", key, store.ErrNotFound), qFinishIdempotent, status, nullJSON(response), scope, key)
	})
	if err != nil {
		return fmt.Errorf("sqlite: finish idempotent: %w", err)
	}
	return nil
}

// AbortIdempotent deletes a still-running record.
func (s *Store) AbortIdempotent(ctx context.Context, scope, key string) error {
	err := s.write(ctx, func(w *wtx) error {
		_, err := w.exec(qAbortIdempotent, scope, key)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: abort idempotent: %w", err)
	}
	return nil
}

// PurgeExpired drops idempotency records created, and rate windows ended, before cutoff.
func (s *Store) PurgeExpired(ctx context.Context, cutoff time.Time) error {
	err := s.writeRelaxed(ctx, func(w *wtx) error {
		if _, err := w.exec(qPurgeIdempotency, ms(cutoff)); err != nil {
			return err
		}
		_, err := w.exec(qPurgeRates, ms(cutoff))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: purge expired: %w", err)
	}
	return nil
}
