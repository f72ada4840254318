package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"

	"github.com/mailproxy/mailproxy/internal/config"
	"github.com/mailproxy/mailproxy/internal/proxy"
)

// openStore opens (and thereby migrates) the store for a local command. It is not
// exclusive, so it works beside a running serve on the same SQLite file.
func openStore(ctx context.Context, cfg config.Config) (*proxy.Store, error) {
	st, err := proxy.OpenStore(ctx, cfg, slog.New(slog.DiscardHandler), false)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", displayDSN(cfg), err)
	}
	return st, nil
}

// closeStore closes st, reporting (not returning) a failure: the command's work is done.
func closeStore(stderr io.Writer, st io.Closer) {
	if err := st.Close(); err != nil {
		fmt.Fprintf(stderr, "mail-proxy: warning: close store: %v\n", err)
	}
}

// displayDSN is the store location without a password.
func displayDSN(cfg config.Config) string {
	dsn := cfg.DatabaseDSN()
	if !cfg.IsPostgres() {
		return dsn
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "(PostgreSQL DSN)"
	}
	return u.Redacted()
}
