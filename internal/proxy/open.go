package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/mailproxy/mailproxy/internal/config"
	"github.com/mailproxy/mailproxy/internal/secret"
	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/store/postgres"
	"github.com/mailproxy/mailproxy/internal/store/sqlite"
)

// isPostgres reports whether a GMP_DB_PATH/GMP_DATABASE_URL value names PostgreSQL.
func isPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// openStore opens the configured driver, then applies encryption at rest
// (secret.Setup), so every user of the store sees plaintext secrets.
func openStore(ctx context.Context, cfg config.Config, log *slog.Logger, exclusive bool) (store.Store, error) {
	st, err := openDriver(ctx, cfg, log, exclusive)
	if err != nil {
		return nil, err
	}
	wrapped, err := secret.Setup(ctx, cfg, st, log.With("component", "secret"), nil)
	if err != nil {
		if cerr := st.Close(); cerr != nil {
			log.Error("close store", "err", cerr)
		}
		return nil, fmt.Errorf("encryption at rest: %w", err)
	}
	return wrapped, nil
}

func openDriver(ctx context.Context, cfg config.Config, log *slog.Logger, exclusive bool) (store.Store, error) {
	dsn := cfg.DatabaseDSN()
	if isPostgres(dsn) {
		st, err := postgres.Open(ctx, dsn, postgres.Options{Logger: log.With("component", "store")})
		if err != nil {
			return nil, fmt.Errorf("open PostgreSQL store (GMP_DB_PATH/GMP_DATABASE_URL): %w", err)
		}
		return st, nil
	}
	st, err := sqlite.Open(ctx, dsn, sqlite.Options{Logger: log.With("component", "store"), Exclusive: exclusive})
	if err != nil {
		return nil, fmt.Errorf("open SQLite store %s (GMP_DB_PATH): %w", dsn, err)
	}
	return st, nil
}
