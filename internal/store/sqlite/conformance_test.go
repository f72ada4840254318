package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/store/sqlite"
	"github.com/mailproxy/mailproxy/internal/store/storetest"
)

// TestConformance runs the shared store suite against a real SQLite file per subtest.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		t.Helper()
		s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "store.db"), sqlite.Options{})
		if err != nil {
			t.Fatalf("sqlite.Open: %v", err)
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
// SQLite file per benchmark.
func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(tb testing.TB) store.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "store.db"), sqlite.Options{})
		if err != nil {
			tb.Fatalf("sqlite.Open: %v", err)
		}
		tb.Cleanup(func() {
			if err := s.Close(); err != nil {
				tb.Errorf("closing the store: %v", err)
			}
		})
		return s
	})
}
