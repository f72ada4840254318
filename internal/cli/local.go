package cli

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/mailproxy/mailproxy/internal/config"
	"github.com/mailproxy/mailproxy/internal/proxy"
	"github.com/mailproxy/mailproxy/internal/store"
)

type serveCmd struct {
	Host string `help:"Listen address (env GMP_HOST)." placeholder:"ADDR"`
	Port *int   `help:"Listen port; 0 picks a free one (env GMP_PORT)." placeholder:"PORT"`
	DB   string `name:"db" help:"SQLite file or postgres:// DSN (env GMP_DB_PATH, GMP_DATABASE_URL)." placeholder:"PATH|DSN"`
}

func (c *serveCmd) Run(e *env) error {
	cfg, warnings, err := e.loadConfig()
	if err != nil {
		return err
	}
	if c.Host != "" {
		cfg.Host = c.Host
	}
	if c.Port != nil {
		cfg.Port = *c.Port
	}
	applyDB(&cfg, c.DB)
	if e.flags.Token != "" {
		cfg.APIToken = e.flags.Token
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	log, err := config.NewLogger(cfg, e.stderr)
	if err != nil {
		return err
	}
	for _, w := range warnings {
		log.Warn("config file", slog.String("warning", w))
	}
	defer applyMemoryLimit(cfg, e.getenv, log)()
	if err := proxy.Run(e.ctx, cfg, proxy.Options{Logger: log, Stderr: e.stderr, Version: buildVersion()}); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// applyMemoryLimit sets GMP_MEMORY_LIMIT_MB as the Go runtime's soft memory
// limit, unless GOMEMLIMIT (read by the runtime itself) is set. Without a
// limit the collector lets the heap reach twice its live size, and a large
// add-messages briefly holds its body several times over while it is
// decoded. The returned func restores the previous limit.
func applyMemoryLimit(cfg config.Config, getenv func(string) string, log *slog.Logger) (restore func()) {
	if getenv("GOMEMLIMIT") != "" || cfg.MemoryLimitMB <= 0 {
		return func() {}
	}
	limit := int64(cfg.MemoryLimitMB * (1 << 20))
	prev := debug.SetMemoryLimit(limit)
	log.Debug("memory limit", slog.Int64("bytes", limit))
	return func() {
		// Only undo our own limit: in-process serves (tests) may overlap.
		if debug.SetMemoryLimit(-1) == limit {
			debug.SetMemoryLimit(prev)
		}
	}
}

// applyDB makes a --db flag win over both GMP_DB_PATH and GMP_DATABASE_URL.
func applyDB(cfg *config.Config, db string) {
	if db != "" {
		cfg.DBPath = db
		cfg.DatabaseURL = ""
	}
}

type configCmd struct {
	Markdown bool `help:"Print the configuration reference (docs/configuration.md) instead: every variable, default and meaning."`
}

// Run prints every variable, then fails if the configuration would not start serve.
func (c configCmd) Run(e *env) error {
	if c.Markdown {
		return config.Markdown(e.stdout)
	}
	cfg, warnings, err := e.loadConfig()
	if err != nil {
		return err
	}
	if e.flags.URL != "" {
		cfg.URL = e.flags.URL
	}
	if e.flags.Token != "" {
		cfg.APIToken = e.flags.Token
	}
	if e.flags.Tenant != "" {
		cfg.Tenant = e.flags.Tenant
	}
	for _, w := range warnings {
		fmt.Fprintf(e.stderr, "mail-proxy: warning: %s\n", w)
	}
	if e.flags.JSON {
		err = config.PrintJSON(e.stdout, cfg)
	} else {
		err = config.Print(e.stdout, cfg)
	}
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	return nil
}

type genKeyCmd struct {
	Out string `name:"out" help:"Write the key to this file (created 0600, never overwritten) instead of printing it; GMP_ENCRYPTION_KEY_FILE reads it." placeholder:"FILE" type:"path"`
}

func (c genKeyCmd) Run(e *env) error {
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		return fmt.Errorf("gen-key: %w", err)
	}
	s := base64.StdEncoding.EncodeToString(key[:])
	if c.Out != "" {
		if err := writeSecretFile(c.Out, []byte(s+"\n")); err != nil {
			return fmt.Errorf("gen-key: %w", err)
		}
		if e.flags.JSON {
			return writeJSON(e.stdout, map[string]string{"key_file": c.Out})
		}
		_, err := fmt.Fprintf(e.stdout, "key written to %s (mode 0600)\n", c.Out)
		return err
	}
	if e.flags.JSON {
		return writeJSON(e.stdout, map[string]string{"key": s})
	}
	_, err := fmt.Fprintln(e.stdout, s)
	return err
}

// writeSecretFile creates path readable by the owner only (0600, whatever
// the umask) and fails if it exists: a key or token is never overwritten.
func writeSecretFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

type tokenCmd struct {
	Regenerate bool   `help:"Replace the stored admin token with a new one and print it."`
	DB         string `name:"db" help:"SQLite file or postgres:// DSN (env GMP_DB_PATH, GMP_DATABASE_URL)." placeholder:"PATH|DSN"`
}

func (c *tokenCmd) Run(e *env) error {
	cfg, _, err := e.loadConfig()
	if err != nil {
		return err
	}
	applyDB(&cfg, c.DB)
	opened, err := openStore(e.ctx, cfg)
	if err != nil {
		return err
	}
	defer closeStore(e.stderr, opened)
	st := opened.Store

	inst, err := st.GetInstance(e.ctx)
	found := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("token: read instance settings: %w", err)
	}
	if cfg.APIToken != "" || e.flags.Token != "" {
		fmt.Fprintln(e.stderr, "mail-proxy: note: GMP_API_TOKEN is set; serve uses it instead of the stored token")
	}
	var tok string
	if c.Regenerate {
		if tok, err = proxy.NewToken(); err != nil {
			return fmt.Errorf("token: %w", err)
		}
		switch {
		case !found:
			inst = newInstance(cfg)
		case inst.CreatedAt.IsZero(): // the store's defaults, no row yet
			inst.Name = cfg.InstanceName
		}
		inst.APIToken = tok
		if err := st.PutInstance(e.ctx, inst); err != nil {
			return fmt.Errorf("token: store the new token: %w", err)
		}
	} else {
		if !found || inst.APIToken == "" {
			return errors.New("no admin token stored yet: serve generates one at first start, or run mail-proxy token --regenerate")
		}
		tok = inst.APIToken
	}
	if e.flags.JSON {
		return writeJSON(e.stdout, map[string]string{"api_token": tok})
	}
	_, err = fmt.Fprintln(e.stdout, tok)
	return err
}

// newInstance is the settings row for a store that has none yet (api.md §4.3 defaults).
func newInstance(cfg config.Config) store.Instance {
	return store.Instance{
		Name:               cfg.InstanceName,
		Edition:            "ee",
		BounceIMAPPort:     993,
		BounceIMAPFolder:   "INBOX",
		BouncePollInterval: 60,
	}
}

type migrateCmd struct {
	DB string `name:"db" help:"SQLite file or postgres:// DSN (env GMP_DB_PATH, GMP_DATABASE_URL)." placeholder:"PATH|DSN"`
}

func (c *migrateCmd) Run(e *env) error {
	cfg, _, err := e.loadConfig()
	if err != nil {
		return err
	}
	applyDB(&cfg, c.DB)
	st, err := openStore(e.ctx, cfg) // opening applies every pending migration
	if err != nil {
		return err
	}
	closeStore(e.stderr, st)
	if e.flags.JSON {
		return writeJSON(e.stdout, map[string]any{"ok": true, "store": displayDSN(cfg)})
	}
	_, err = fmt.Fprintf(e.stdout, "store %s is up to date\n", displayDSN(cfg))
	return err
}
