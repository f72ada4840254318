// Package sqlite is the default store.Store driver: one SQLite file opened
// through the pure-Go modernc.org/sqlite driver.
//
// How it works:
//  1. Open takes an optional OS lock (Exclusive, for serve), opens one writer
//     connection (WAL, synchronous=FULL, BEGIN IMMEDIATE) and a read pool,
//     and applies the embedded goose migrations.
//  2. Every write goes through the group committer (commit.go): the first
//     caller that finds no leader runs everything queued in one transaction,
//     one SAVEPOINT per request, commits once, and answers each caller. No
//     call returns before its data is on stable storage.
//  3. Reads run on the read pool and see every committed write (WAL).
//  4. Messages carry an internal state (queued, leased, final) so the claim
//     index holds only queued rows; expired leases are moved back to queued
//     at the start of each claim.
//
// The per-item rules both drivers apply the same way (enqueue rejects, row
// times, listing assembly, rate windows) come from store/internal/driver.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // registers driver "sqlite"

	"github.com/mailproxy/mailproxy/internal/store"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Options tune Open.
type Options struct {
	// Logger receives driver diagnostics; nil discards them.
	Logger *slog.Logger
	// Exclusive takes an OS lock on path+".lock" for the life of the store,
	// so a second exclusive Open of the same file fails with store.ErrLocked.
	Exclusive bool
	// OverloadAfter is how long a write may wait for the writer before it
	// fails with store.ErrOverloaded (0 = 5 s).
	OverloadAfter time.Duration
	// Now is the clock for timestamps the interface does not pass in
	// (created_at/updated_at of tenants, accounts, instance); nil = time.Now.
	Now func() time.Time
}

const (
	defaultOverloadAfter = 5 * time.Second
	busyTimeoutMS        = 10000
	readPoolSize         = 4
)

// Store is the SQLite store.Store.
type Store struct {
	log    *slog.Logger
	now    func() time.Time
	writer *sql.DB
	wconn  *sql.Conn // the writer's one connection, held for the store's life
	reader *sql.DB
	lock   *os.File // exclusive lock file, nil when not Exclusive

	commit committer

	closeOnce sync.Once
	closeErr  error
	// syncRelaxed: the writer connection is in synchronous=NORMAL (it opens
	// FULL). Only the group leader reads or changes it.
	syncRelaxed bool

	stmtMu     sync.Mutex
	writeStmts map[string]*sql.Stmt
	readStmts  map[string]*sql.Stmt
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the SQLite database at path and migrates it.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlite: empty database path")
	}
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlite: database path %q must not contain '?' or '#'", path)
	}
	s := &Store{
		log:        opts.Logger,
		now:        opts.Now,
		writeStmts: map[string]*sql.Stmt{},
		readStmts:  map[string]*sql.Stmt{},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.commit.overloadAfter = opts.OverloadAfter
	if s.commit.overloadAfter <= 0 {
		s.commit.overloadAfter = defaultOverloadAfter
	}

	if err := prepareFiles(path); err != nil {
		return nil, err
	}
	if opts.Exclusive {
		f, err := lockFile(path + ".lock")
		if err != nil {
			return nil, err
		}
		s.lock = f
	}
	if err := s.openDBs(ctx, path); err != nil {
		s.closeAll()
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		s.closeAll()
		return nil, err
	}
	conn, err := s.writer.Conn(ctx)
	if err != nil {
		s.closeAll()
		return nil, fmt.Errorf("sqlite: writer connection: %w", err)
	}
	s.wconn = conn
	return s, nil
}

// prepareFiles creates the database's directory (0700) and file (0600) when
// they are missing, before SQLite does: SQLite would create the file with
// 0644, and it gives the -wal and -shm files the database file's mode, so
// all three stay readable by the owner only. Existing files keep their mode
// (an operator may have chosen it).
func prepareFiles(path string) error {
	if path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("sqlite: create database directory %s: %w", dir, err)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case errors.Is(err, fs.ErrExist):
		return nil
	case err != nil:
		return fmt.Errorf("sqlite: create database file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("sqlite: create database file %s: %w", path, err)
	}
	return nil
}

func (s *Store) openDBs(ctx context.Context, path string) error {
	// synchronous=FULL: every commit is on stable storage before it returns,
	// so an acknowledged enqueue survives power loss, not only kill -9.
	// cache_size: 16 MiB per connection keeps the hot indexes in memory.
	common := fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=cache_size(-16384)&_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)", busyTimeoutMS)
	var err error
	// temp_store=MEMORY on the writer: a group runs each request under a
	// SAVEPOINT, and SQLite copies every page a savepoint changes to a
	// sub-journal, which otherwise is a temporary file written with a
	// syscall per page (16 % of the service's CPU in batch enqueues). It
	// only serves rollback within the transaction (the WAL keeps durability)
	// and is bounded by one group's pages.
	s.writer, err = sql.Open("sqlite", path+"?"+common+"&_pragma=temp_store(MEMORY)&_txlock=immediate")
	if err != nil {
		return fmt.Errorf("sqlite: open writer: %w", err)
	}
	s.writer.SetMaxOpenConns(1)
	s.writer.SetMaxIdleConns(1)
	s.writer.SetConnMaxLifetime(0)
	s.writer.SetConnMaxIdleTime(0)
	if err := s.writer.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: open %s: %w", path, err)
	}

	s.reader, err = sql.Open("sqlite", path+"?"+common)
	if err != nil {
		return fmt.Errorf("sqlite: open reader: %w", err)
	}
	s.reader.SetMaxOpenConns(readPoolSize)
	s.reader.SetMaxIdleConns(readPoolSize)
	s.reader.SetConnMaxIdleTime(5 * time.Minute)
	if err := s.reader.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: open reader %s: %w", path, err)
	}
	return nil
}

// migrate applies the embedded migrations. Two processes opening a fresh
// file at once can race on the same migration; the loser retries once and
// then finds it applied.
func (s *Store) migrate(ctx context.Context) error {
	fsys, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return fmt.Errorf("sqlite: migrations: %w", err)
	}
	var lastErr error
	for range 2 {
		p, err := goose.NewProvider(goose.DialectSQLite3, s.writer, fsys, goose.WithDisableGlobalRegistry(true))
		if err != nil {
			return fmt.Errorf("sqlite: migrations: %w", err)
		}
		results, err := p.Up(ctx)
		if err == nil {
			for _, r := range results {
				s.log.Info("sqlite migration applied", "version", r.Source.Version, "duration", r.Duration)
			}
			return nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("sqlite: migrate: %w", lastErr)
}

// Close closes the database and releases the exclusive lock. It is safe to
// call more than once and concurrently with other methods, which then fail
// with database/sql's "database is closed" instead of racing.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.closeAll() })
	return s.closeErr
}

// closeAll releases everything once. The handles stay in place (closed), so
// a late reader sees a closed pool rather than a field being rewritten.
func (s *Store) closeAll() error {
	var errs []error
	s.stmtMu.Lock()
	for _, st := range s.writeStmts {
		errs = append(errs, st.Close())
	}
	for _, st := range s.readStmts {
		errs = append(errs, st.Close())
	}
	clear(s.writeStmts) // in place: the fields themselves never change after Open
	clear(s.readStmts)
	s.stmtMu.Unlock()
	if s.reader != nil {
		errs = append(errs, s.reader.Close())
	}
	if s.wconn != nil {
		// The exclusive owner (serve) truncates the WAL on close so the file
		// starts small next run; a CLI store does not, as it would wait for
		// a busy serve's writes.
		if s.lock != nil {
			if _, err := s.wconn.ExecContext(context.Background(), "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
				s.log.Warn("sqlite checkpoint on close", "err", err)
			}
		}
		errs = append(errs, s.wconn.Close())
	}
	if s.writer != nil {
		errs = append(errs, s.writer.Close())
	}
	if s.lock != nil {
		errs = append(errs, unlockFile(s.lock))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite: close: %w", err)
	}
	return nil
}

// preparer is a *sql.DB or *sql.Conn.
type preparer interface {
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
}

// stmt returns a statement prepared once on p and cached.
func (s *Store) stmt(ctx context.Context, cache map[string]*sql.Stmt, p preparer, query string) (*sql.Stmt, error) {
	s.stmtMu.Lock()
	defer s.stmtMu.Unlock()
	if st, ok := cache[query]; ok {
		return st, nil
	}
	st, err := p.PrepareContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	cache[query] = st
	return st, nil
}

// readStmt is a cached statement on the read pool.
func (s *Store) readStmt(ctx context.Context, query string) (*sql.Stmt, error) {
	return s.stmt(ctx, s.readStmts, s.reader, query)
}

// writeStmt is a cached statement on the writer connection.
func (s *Store) writeStmt(ctx context.Context, query string) (*sql.Stmt, error) {
	return s.stmt(ctx, s.writeStmts, s.wconn, query)
}

// query runs a read on the read pool.
func (s *Store) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := s.readStmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// queryRow runs a one-row read on the read pool.
func (s *Store) queryRow(ctx context.Context, query string, args ...any) row {
	st, err := s.readStmt(ctx, query)
	if err != nil {
		return row{err: err}
	}
	return row{r: st.QueryRowContext(ctx, args...)}
}

// readTx runs fn in one read transaction, so multi-query reads see one snapshot.
func (s *Store) readTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("begin read: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}
