package proxy

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/mailproxy/mailproxy/internal/config"
	"github.com/mailproxy/mailproxy/internal/secret"
	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/store/postgres"
	"github.com/mailproxy/mailproxy/internal/store/sqlite"
)

// Store is an opened store in the views its consumers need, so that none of
// them has to unwrap the encryption or assert a capability.
type Store struct {
	// Store encrypts secrets at rest when a key is configured: the view of
	// every part of the service and of the local commands.
	Store store.Store
	// Raw is the driver itself, where secrets read as stored: the view of
	// encrypt-secrets and rotate-key, which rewrite them.
	Raw store.Store
	// Waker wakes the other instances sharing the store (PostgreSQL
	// LISTEN/NOTIFY); nil on SQLite, where one process owns the file.
	Waker store.Waker
}

// Close closes the driver (the encrypted view holds nothing of its own).
func (s *Store) Close() error { return s.Raw.Close() }

// KeySource is where cfg says the encryption key is.
func KeySource(cfg config.Config) secret.KeySource {
	return secret.KeySource{Key: cfg.EncryptionKey, File: cfg.EncryptionKeyFile}
}

// OpenStore opens (and thereby migrates) the configured driver, then applies
// encryption at rest (secret.Setup). exclusive is for `serve`: one process
// per SQLite file.
func OpenStore(ctx context.Context, cfg config.Config, log *slog.Logger, exclusive bool) (*Store, error) {
	s := &Store{}
	if cfg.IsPostgres() {
		pg, err := postgres.Open(ctx, cfg.DatabaseDSN(), postgres.Options{Logger: log.With("component", "store")})
		if err != nil {
			return nil, fmt.Errorf("open PostgreSQL store (GMP_DB_PATH/GMP_DATABASE_URL): %w", err)
		}
		s.Raw, s.Waker = pg, pg
	} else {
		lite, err := sqlite.Open(ctx, cfg.DatabaseDSN(), sqlite.Options{Logger: log.With("component", "store"), Exclusive: exclusive})
		if err != nil {
			return nil, fmt.Errorf("open SQLite store %s (GMP_DB_PATH): %w", cfg.DatabaseDSN(), err)
		}
		s.Raw = lite
	}
	encrypted, err := secret.Setup(ctx, KeySource(cfg), s.Raw, log.With("component", "secret"), nil)
	if err != nil {
		if cerr := s.Raw.Close(); cerr != nil {
			log.Error("close store", "err", cerr)
		}
		return nil, fmt.Errorf("encryption at rest: %w", err)
	}
	s.Store = encrypted
	return s, nil
}
