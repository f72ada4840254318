package postgres_test

import (
	"context"
	"testing"

	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/store/postgres"
	"github.com/mailproxy/mailproxy/internal/store/postgres/pgtest"
	"github.com/mailproxy/mailproxy/internal/store/storetest"
)

// TestConformance runs the shared store suite against a real PostgreSQL:
// one database for the run, a fresh schema (migrated by Open) per subtest.
func TestConformance(t *testing.T) {
	db := pgtest.DSN(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		t.Helper()
		s, err := postgres.Open(t.Context(), pgtest.Schema(t, db), postgres.Options{MaxConns: 4})
		if err != nil {
			t.Fatalf("postgres.Open: %v", err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("closing the store: %v", err)
			}
		})
		return s
	})
}

// BenchmarkStore runs the drivers' shared hot-path benchmarks on a fresh
// schema per benchmark.
func BenchmarkStore(b *testing.B) {
	db := pgtest.DSN(b)
	storetest.Bench(b, func(tb testing.TB) store.Store {
		s, err := postgres.Open(context.Background(), pgtest.Schema(tb, db), postgres.Options{MaxConns: 8})
		if err != nil {
			tb.Fatalf("postgres.Open: %v", err)
		}
		tb.Cleanup(func() {
			if err := s.Close(); err != nil {
				tb.Errorf("closing the store: %v", err)
			}
		})
		return s
	})
}
