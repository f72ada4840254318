package sqlite

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/mailproxy/mailproxy/internal/store"
)

// scanner is a *sql.Row, *sql.Rows or row.
type scanner interface {
	Scan(dest ...any) error
}

// ms is t as Unix milliseconds, the stored time format.
func ms(t time.Time) int64 { return t.UnixMilli() }

// fromMS is the stored time as a UTC time.Time.
func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

// nullMS binds an optional time.
func nullMS(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMilli()
}

func timePtr(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMS(v.Int64)
	return &t
}

func nullStr(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}

func strPtr(v sql.NullString) *string {
	if !v.Valid {
		return nil
	}
	s := v.String
	return &s
}

func nullInt(p *int) any {
	if p == nil {
		return nil
	}
	return int64(*p)
}

func intPtr(v sql.NullInt64) *int {
	if !v.Valid {
		return nil
	}
	i := int(v.Int64)
	return &i
}

func nullBool(p *bool) any {
	if p == nil {
		return nil
	}
	return boolInt(*p)
}

func boolPtr(v sql.NullInt64) *bool {
	if !v.Valid {
		return nil
	}
	b := v.Int64 != 0
	return &b
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// nullJSON binds JSON as TEXT (the tables are STRICT: a []byte would be a BLOB).
func nullJSON(raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	return string(raw)
}

func jsonRaw(v sql.NullString) json.RawMessage {
	if !v.Valid {
		return nil
	}
	return json.RawMessage(v.String)
}

// jsonList encodes values for `IN (SELECT value FROM json_each(?))`.
func jsonList[T any](vals []T) (string, error) {
	if len(vals) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(vals)
	return string(b), err
}

// sqlLimit maps "0 = no limit" to SQLite's -1.
func sqlLimit(n int) int64 {
	if n <= 0 {
		return -1
	}
	return int64(n)
}

// isForeignKey reports a foreign-key violation.
func isForeignKey(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
	}
	return false
}

// duplicate wraps a unique-key violation as store.ErrDuplicate.
func duplicate(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w: %w", store.ErrDuplicate, err)
		}
	}
	return err
}
