// Package postgres is the store.Store driver for PostgreSQL: several
// mail-proxy instances share one database, one queue and exact rate limits.
// It behaves like the SQLite reference driver (internal/store/sqlite) and
// passes the same conformance suite (internal/store/storetest); the rules
// both drivers apply alike come from internal/store/internal/driver.
//
// How it works:
//  1. Open builds a pgxpool and applies the embedded goose migrations under a
//     PostgreSQL session advisory lock, so instances starting together do not
//     race; the lock is keyed by the schema the DSN's search_path selects.
//  2. Each store method is one statement or one transaction; transactions
//     that hit a serialization failure or a deadlock are retried whole.
//  3. A claim is one transaction: expired leases go back to the queue (rows
//     locked with SKIP LOCKED), then one statement locks due rows in
//     (priority, created_at, seq) order with FOR UPDATE SKIP LOCKED, ranks
//     them per account with a window function to apply the per-account cap,
//     and stamps the chosen ones with owner, lease and attempt+1 in an
//     UPDATE ... RETURNING. Rows another instance holds are skipped, never
//     waited for, so two instances never hold the same row.
//  4. A rate reservation is one transaction of conditional upserts
//     (count = count + 1 WHERE count < limit), one per configured window in
//     minute, hour, day order; the first window that is full rolls the whole
//     reservation back. Row locks make the count exact across instances.
//  5. EnqueueBatch writes each batch with multi-row statements over unnest'ed
//     arrays in one transaction and sends NOTIFY mailproxy_work right after
//     its commit (Activate inside its transaction); Listen holds a dedicated
//     connection with LISTEN so every instance wakes on another's enqueue.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/mailproxy/mailproxy/internal/store"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Options tune Open.
type Options struct {
	// Logger receives driver diagnostics; nil discards them.
	Logger *slog.Logger
	// MaxConns caps the pool (0 = 10, unless the DSN sets pool_max_conns).
	MaxConns int32
	// Now is the clock for timestamps the interface does not pass in
	// (created_at/updated_at of tenants, accounts, instance); nil = time.Now.
	Now func() time.Time
}

const (
	defaultMaxConns = 10
	// txAttempts bounds the retries of a transaction that failed with a
	// serialization failure or a deadlock.
	txAttempts = 5
	// workChannel is the NOTIFY channel every instance listens on.
	workChannel = "mailproxy_work"
)

// Store is the PostgreSQL store.Store.
type Store struct {
	log  *slog.Logger
	now  func() time.Time
	pool *pgxpool.Pool
	// connConfig opens the dedicated LISTEN connection.
	connConfig *pgx.ConnConfig
}

var (
	_ store.Store = (*Store)(nil)
	_ store.Waker = (*Store)(nil)
)

// Open connects to the database named by dsn (a postgres:// or
// postgresql:// URL, or a key=value string) and migrates it.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	if strings.TrimSpace(dsn) == "" {
		return nil, errors.New("postgres: empty DSN")
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors can quote the DSN, password included.
		return nil, errors.New("postgres: invalid DSN: cannot parse it as a PostgreSQL URL or key=value string")
	}
	// JIT compilation pays off for long analytical queries, never for this
	// workload's short ones; with it a listing of a large queue spent
	// seconds compiling. A DSN that sets jit keeps its choice.
	if _, set := cfg.ConnConfig.RuntimeParams["jit"]; !set {
		cfg.ConnConfig.RuntimeParams["jit"] = "off"
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		cfg.MaxConns = defaultMaxConns
		if opts.MaxConns > 0 {
			cfg.MaxConns = opts.MaxConns
		}
	}
	s := &Store{log: opts.Logger, now: opts.Now, connConfig: cfg.ConnConfig.Copy()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.pool, err = pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect to %s: %w", describe(cfg.ConnConfig), err)
	}
	if err := s.pool.Ping(ctx); err != nil {
		s.pool.Close()
		return nil, fmt.Errorf("postgres: connect to %s: %w", describe(cfg.ConnConfig), err)
	}
	if err := s.migrate(ctx); err != nil {
		s.pool.Close()
		return nil, err
	}
	return s, nil
}

// describe names the server and database without credentials.
func describe(c *pgx.ConnConfig) string {
	return fmt.Sprintf("%s:%d/%s", c.Host, c.Port, c.Database)
}

// migrate applies the embedded migrations under goose's session advisory
// lock. Advisory locks are per database; the lock id also depends on the
// schema, so stores in different schemas of one database migrate in parallel.
func (s *Store) migrate(ctx context.Context) error {
	var schema *string
	if err := s.pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return fmt.Errorf("postgres: read current schema: %w", err)
	}
	if schema == nil {
		return errors.New("postgres: no schema of the search_path exists: create it or fix search_path")
	}
	h := fnv.New64a()
	h.Write([]byte("mailproxy migrations:" + *schema))
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(int64(h.Sum64()>>1)),
		lock.WithLockTimeout(1, 300), // retry every second, five minutes at most
	)
	if err != nil {
		return fmt.Errorf("postgres: migration lock: %w", err)
	}
	fsys, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return fmt.Errorf("postgres: migrations: %w", err)
	}
	db := stdlib.OpenDB(*s.connConfig.Copy())
	defer func() {
		if err := db.Close(); err != nil {
			s.log.Warn("postgres: close migration connection", "err", err)
		}
	}()
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys,
		goose.WithDisableGlobalRegistry(true), goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("postgres: migrations: %w", err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrate schema %q: %w", *schema, err)
	}
	for _, r := range results {
		s.log.Info("postgres migration applied", "version", r.Source.Version, "duration", r.Duration)
	}
	return nil
}

// Close closes the pool. A running Listen ends with its context.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// tx runs fn in one read-committed transaction, retrying it whole on a
// serialization failure or deadlock. fn must reset any result it fills.
func (s *Store) tx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return s.txWith(ctx, pgx.TxOptions{}, fn)
}

// readTx runs fn in one read-only repeatable-read transaction, so
// multi-query reads see one snapshot.
func (s *Store) readTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return s.txWith(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn)
}

func (s *Store) txWith(ctx context.Context, opts pgx.TxOptions, fn func(tx pgx.Tx) error) error {
	var err error
	reconnected := false
	for attempt := range txAttempts {
		err = pgx.BeginTxFunc(ctx, s.pool, opts, fn)
		if s.reconnectOnce(ctx, err, &reconnected) {
			continue
		}
		if !retryable(err) || ctx.Err() != nil {
			return err
		}
		s.log.Debug("postgres: transaction retried", "sqlstate", sqlState(err), "attempt", attempt+1)
		// A short random pause lets the competing transaction finish.
		pause := time.Duration(1+rand.IntN(5*(attempt+1))) * time.Millisecond
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	return err
}

// SQLSTATE codes the driver reacts to.
const (
	codeUniqueViolation      = "23505"
	codeForeignKeyViolation  = "23503"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
	codeAdminShutdown        = "57P01"
	codeCrashShutdown        = "57P02"
)

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func retryable(err error) bool {
	code := sqlState(err)
	return code == codeSerializationFailure || code == codeDeadlockDetected
}

// once runs a single statement (or a read), trying it again once on a
// fresh connection when the server had ended the session (reconnectOnce).
func (s *Store) once(ctx context.Context, fn func() error) error {
	reconnected := false
	for {
		err := fn()
		if !s.reconnectOnce(ctx, err, &reconnected) {
			return err
		}
	}
}

// reconnectOnce decides whether a transaction that failed with err is tried
// again: once, when the server ended the session (a restart, say). Every
// pooled connection is then likely dead, so all are dropped and the retry
// runs on a fresh one. The transaction did not commit.
func (s *Store) reconnectOnce(ctx context.Context, err error, done *bool) bool {
	if *done || !terminated(err) || ctx.Err() != nil {
		return false
	}
	*done = true
	s.log.Debug("postgres: connection terminated, retrying on a fresh one", "err", err)
	s.pool.Reset()
	return true
}

// terminated reports an error saying the session ended without the
// transaction committing: the server terminated it (administrator command,
// crash of another backend; the open transaction is aborted) or pgx found
// the connection dead before sending anything. A connection lost in the
// middle of COMMIT is neither: whether it committed is unknown.
func terminated(err error) bool {
	if err == nil {
		return false
	}
	switch sqlState(err) {
	case codeAdminShutdown, codeCrashShutdown:
		return true
	}
	return pgconn.SafeToRetry(err)
}

func isForeignKey(err error) bool { return sqlState(err) == codeForeignKeyViolation }

// duplicate turns a unique violation into store.ErrDuplicate naming the
// constraint; other errors pass unchanged.
func duplicate(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == codeUniqueViolation {
		return fmt.Errorf("%w: %s (%s)", store.ErrDuplicate, pe.ConstraintName, pe.Detail)
	}
	return err
}

func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }
