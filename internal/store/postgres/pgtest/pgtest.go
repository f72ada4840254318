// Package pgtest gives tests their own PostgreSQL databases and schemas on
// the server named by MAILPROXY_TEST_PG_DSN (default
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable).
//
// How it is used:
//  1. DSN creates a uniquely named database (mp_test_<hex>) and returns its
//     DSN; a cleanup drops it WITH (FORCE), so connections a test left open
//     (a killed process's, say) do not keep it alive.
//  2. Schema creates a uniquely named schema in such a database and returns
//     a DSN whose search_path selects it: many stores in one database, each
//     isolated, without paying for a database per test.
//  3. When the server is unreachable the test is skipped with a loud
//     message, or fails when MAILPROXY_TEST_PG_REQUIRED=1 (CI).
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultDSN is the server used when MAILPROXY_TEST_PG_DSN is unset.
const DefaultDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// adminDSN is the maintenance connection's DSN.
func adminDSN() string {
	if v := os.Getenv("MAILPROXY_TEST_PG_DSN"); v != "" {
		return v
	}
	return DefaultDSN
}

// connect opens a connection for setup or cleanup.
func connect(ctx context.Context, dsn string) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return pgx.Connect(ctx, dsn)
}

// unreachable skips or fails the test for a server that cannot be reached.
func unreachable(t testing.TB, err error) {
	t.Helper()
	where := redacted(adminDSN())
	if os.Getenv("MAILPROXY_TEST_PG_REQUIRED") == "1" {
		t.Fatalf("PostgreSQL not reachable at %s (MAILPROXY_TEST_PG_REQUIRED=1): %v", where, err)
	}
	t.Skipf("*** PostgreSQL not reachable at %s: PostgreSQL tests SKIPPED (%v); set MAILPROXY_TEST_PG_DSN, "+
		"or MAILPROXY_TEST_PG_REQUIRED=1 to fail instead ***", where, err)
}

// redacted is dsn without its password, for messages.
func redacted(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		return "(MAILPROXY_TEST_PG_DSN)"
	}
	return u.Redacted()
}

func randomName(prefix string) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return prefix + hex.EncodeToString(b)
}

// withParam returns dsn (a URL) with a query parameter set.
func withParam(t testing.TB, dsn, key, value string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("pgtest: MAILPROXY_TEST_PG_DSN must be a postgres:// URL, got %s", redacted(dsn))
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

// DSN creates a fresh, empty database and returns its DSN. The database is
// dropped when the test ends.
func DSN(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	admin := adminDSN()
	conn, err := connect(ctx, admin)
	if err != nil {
		unreachable(t, err)
	}
	defer conn.Close(ctx)
	name := randomName("mp_test_")
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		c, err := connect(ctx, admin)
		if err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("pgtest: MAILPROXY_TEST_PG_DSN is not a URL: %s", redacted(admin))
	}
	u.Path = "/" + name
	return u.String()
}

// Schema creates a fresh schema in the database dsn names and returns a DSN
// whose search_path is that schema. The schema is dropped when the test ends.
func Schema(t testing.TB, dsn string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := connect(ctx, dsn)
	if err != nil {
		unreachable(t, err)
	}
	defer conn.Close(ctx)
	name := randomName("s_")
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+ident); err != nil {
		t.Fatalf("pgtest: create schema %s: %v", name, err)
	}
	t.Cleanup(func() {
		c, err := connect(ctx, dsn)
		if err != nil {
			t.Errorf("pgtest: drop schema %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP SCHEMA IF EXISTS "+ident+" CASCADE"); err != nil {
			t.Errorf("pgtest: drop schema %s: %v", name, err)
		}
	})
	return withParam(t, dsn, "options", fmt.Sprintf("-csearch_path=%s", name))
}
