package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"strings"
	"time"

	"github.com/mailproxy/mailproxy/pkg/client"

	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver
)

// Row states (example-client.md §2).
const (
	statusPending   = "pending"
	statusSubmitted = "submitted"
	statusDelivered = "delivered"
	statusFailed    = "failed"
)

const schema = `
CREATE TABLE IF NOT EXISTS outbound_emails (
    id TEXT PRIMARY KEY,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    submitted_at INTEGER,
    delivered_at INTEGER,
    error TEXT,
    status TEXT DEFAULT 'pending'
);
CREATE INDEX IF NOT EXISTS idx_status ON outbound_emails(status);
`

// outbox is the application's own table of outgoing emails: every email is
// committed here before any network call. Times are Unix seconds.
type outbox struct {
	db  *sql.DB
	now func() time.Time
}

// email is one row of outbound_emails.
type email struct {
	ID          string
	Recipient   string
	Subject     string
	Body        string
	CreatedAt   int64
	SubmittedAt *int64
	DeliveredAt *int64
	Error       *string
	Status      string
}

func openOutbox(ctx context.Context, path string) (*outbox, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	// One connection: a small app, and SQLite has one writer anyway; this
	// rules out "database is locked" between our own connections.
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, schema); err != nil {
		closeErr := db.Close()
		return nil, errors.Join(fmt.Errorf("create schema in %s: %w", path, err), closeErr)
	}
	return &outbox{db: db, now: time.Now}, nil
}

func (o *outbox) Close() error { return o.db.Close() }

// newEmail is what the caller wants sent; insertPending fills in id and times.
type newEmail struct {
	Recipient, Subject string
	Body               func(id string) string
}

// insertPending commits count rows as pending with fresh ids
// test_<unix ms>_<4 digits> and returns them in order.
func (o *outbox) insertPending(ctx context.Context, count int, e newEmail) ([]email, error) {
	tx, err := o.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("insert emails: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	now := o.now()
	rows := make([]email, 0, count)
	for len(rows) < count {
		id, err := newEmailID(now)
		if err != nil {
			return nil, err
		}
		row := email{ID: id, Recipient: e.Recipient, Subject: e.Subject, Body: e.Body(id), CreatedAt: now.Unix(), Status: statusPending}
		res, err := tx.ExecContext(ctx,
			`INSERT OR IGNORE INTO outbound_emails (id, recipient, subject, body, created_at, status) VALUES (?, ?, ?, ?, ?, ?)`,
			row.ID, row.Recipient, row.Subject, row.Body, row.CreatedAt, statusPending)
		if err != nil {
			return nil, fmt.Errorf("insert email: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return nil, fmt.Errorf("insert email: %w", err)
		} else if n == 0 {
			continue // the 4 random digits collided within this millisecond: draw again
		}
		rows = append(rows, row)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit emails: %w", err)
	}
	return rows, nil
}

func newEmailID(now time.Time) (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(10000))
	if err != nil {
		return "", fmt.Errorf("draw email id: %w", err)
	}
	return fmt.Sprintf("test_%d_%04d", now.UnixMilli(), n.Int64()), nil
}

// pending returns up to limit pending rows, restricted to ids when given, oldest (then first inserted) first.
func (o *outbox) pending(ctx context.Context, ids []string, limit int) ([]email, error) {
	query := `SELECT id, recipient, subject, body, created_at FROM outbound_emails WHERE status = 'pending'`
	args := make([]any, 0, len(ids)+1)
	if len(ids) > 0 {
		query += ` AND id IN (?` + strings.Repeat(`, ?`, len(ids)-1) + `)`
		for _, id := range ids {
			args = append(args, id)
		}
	}
	query += ` ORDER BY created_at, rowid LIMIT ?`
	args = append(args, limit)
	rows, err := o.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("select pending emails: %w", err)
	}
	defer rows.Close()
	var out []email
	for rows.Next() {
		e := email{Status: statusPending}
		if err := rows.Scan(&e.ID, &e.Recipient, &e.Subject, &e.Body, &e.CreatedAt); err != nil {
			return nil, fmt.Errorf("scan pending email: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("select pending emails: %w", err)
	}
	return out, nil
}

// markSubmission records the proxy's answer: accepted ids become submitted,
// failed ones failed with their reason. Only pending rows move, so a report
// that arrived first is never overwritten.
func (o *outbox) markSubmission(ctx context.Context, submitted []string, failed map[string]string) error {
	tx, err := o.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("mark submission: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	now := o.now().Unix()
	for _, id := range submitted {
		if _, err := tx.ExecContext(ctx,
			`UPDATE outbound_emails SET status = 'submitted', submitted_at = ? WHERE id = ? AND status = 'pending'`,
			now, id); err != nil {
			return fmt.Errorf("mark %s submitted: %w", id, err)
		}
	}
	for id, reason := range failed {
		if _, err := tx.ExecContext(ctx,
			`UPDATE outbound_emails SET status = 'failed', error = ? WHERE id = ? AND status = 'pending'`,
			reason, id); err != nil {
			return fmt.Errorf("mark %s failed: %w", id, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit submission: %w", err)
	}
	return nil
}

// applyReports applies delivery-report items in order, in one transaction,
// and returns the ids it does not know (each once, in first-seen order).
//
// Rules, all idempotent:
//   - sent: pending/submitted → delivered, delivered_at = sent_ts;
//   - error: pending/submitted → failed with the error;
//   - deferred: pending/submitted → submitted, the reason kept in error as a
//     note; final rows are never downgraded;
//   - bounce: → failed with the bounce reason, also from delivered, since a
//     bounce is news that arrives after the sent report.
func (o *outbox) applyReports(ctx context.Context, items []client.ReportItem) ([]string, error) {
	tx, err := o.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("apply reports: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	notFound := []string{}
	seen := map[string]bool{}
	for _, it := range items {
		if it.ID == "" {
			continue
		}
		var exists int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM outbound_emails WHERE id = ?`, it.ID).Scan(&exists)
		if errors.Is(err, sql.ErrNoRows) {
			if !seen[it.ID] {
				seen[it.ID] = true
				notFound = append(notFound, it.ID)
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("look up %s: %w", it.ID, err)
		}
		stmt, args := reportUpdate(it)
		if stmt == "" {
			continue // an item without any outcome timestamp carries nothing to apply
		}
		if _, err := tx.ExecContext(ctx, stmt, args...); err != nil {
			return nil, fmt.Errorf("apply report for %s: %w", it.ID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit reports: %w", err)
	}
	return notFound, nil
}

// reportUpdate is the conditional UPDATE for one item; the WHERE clauses
// hold the no-downgrade rules.
func reportUpdate(it client.ReportItem) (string, []any) {
	switch {
	case it.BounceTS != nil:
		reason := firstNonEmpty(it.BounceReason, strings.TrimSpace(it.BounceType+" bounce "+it.BounceCode))
		return `UPDATE outbound_emails SET status = 'failed', error = ? WHERE id = ?`, []any{reason, it.ID}
	case it.ErrorTS != nil:
		return `UPDATE outbound_emails SET status = 'failed', error = ? WHERE id = ? AND status IN ('pending', 'submitted')`,
			[]any{firstNonEmpty(it.Error, "delivery failed"), it.ID}
	case it.SentTS != nil:
		return `UPDATE outbound_emails SET status = 'delivered', delivered_at = ?, error = NULL WHERE id = ? AND status IN ('pending', 'submitted')`,
			[]any{*it.SentTS, it.ID}
	case it.DeferredTS != nil:
		return `UPDATE outbound_emails SET status = 'submitted', error = ?, submitted_at = COALESCE(submitted_at, ?) WHERE id = ? AND status IN ('pending', 'submitted')`,
			[]any{firstNonEmpty(it.DeferredReason, "deferred"), *it.DeferredTS, it.ID}
	}
	return "", nil
}

func firstNonEmpty(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

// inFlight returns pending and submitted rows, oldest (then first inserted) first.
func (o *outbox) inFlight(ctx context.Context) ([]email, error) {
	rows, err := o.db.QueryContext(ctx,
		`SELECT id, recipient, subject, status, created_at, submitted_at FROM outbound_emails
		 WHERE status IN ('pending', 'submitted') ORDER BY created_at, rowid`)
	if err != nil {
		return nil, fmt.Errorf("select messages: %w", err)
	}
	defer rows.Close()
	out := []email{}
	for rows.Next() {
		var e email
		if err := rows.Scan(&e.ID, &e.Recipient, &e.Subject, &e.Status, &e.CreatedAt, &e.SubmittedAt); err != nil {
			return nil, fmt.Errorf("scan message: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("select messages: %w", err)
	}
	return out, nil
}

// get returns one row (tests and diagnostics).
func (o *outbox) get(ctx context.Context, id string) (email, error) {
	var e email
	err := o.db.QueryRowContext(ctx,
		`SELECT id, recipient, subject, body, created_at, submitted_at, delivered_at, error, status FROM outbound_emails WHERE id = ?`, id).
		Scan(&e.ID, &e.Recipient, &e.Subject, &e.Body, &e.CreatedAt, &e.SubmittedAt, &e.DeliveredAt, &e.Error, &e.Status)
	if err != nil {
		return email{}, fmt.Errorf("get %s: %w", id, err)
	}
	return e, nil
}

// statistics counts rows per state.
type statistics struct {
	Total     int `json:"total"`
	Pending   int `json:"pending"`
	Submitted int `json:"submitted"`
	Delivered int `json:"delivered"`
	Failed    int `json:"failed"`
}

func (o *outbox) stats(ctx context.Context) (statistics, error) {
	rows, err := o.db.QueryContext(ctx, `SELECT COALESCE(status, 'pending'), COUNT(*) FROM outbound_emails GROUP BY 1`)
	if err != nil {
		return statistics{}, fmt.Errorf("count emails: %w", err)
	}
	defer rows.Close()
	var s statistics
	for rows.Next() {
		var status string
		var n int
		if err := rows.Scan(&status, &n); err != nil {
			return statistics{}, fmt.Errorf("count emails: %w", err)
		}
		s.Total += n
		switch status {
		case statusPending:
			s.Pending = n
		case statusSubmitted:
			s.Submitted = n
		case statusDelivered:
			s.Delivered = n
		case statusFailed:
			s.Failed = n
		}
	}
	if err := rows.Err(); err != nil {
		return statistics{}, fmt.Errorf("count emails: %w", err)
	}
	return s, nil
}
