package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// config is example_config.ini after defaults and EXAMPLE_* overrides
// (example-client.md §1).
type config struct {
	ServerHost string
	ServerPort int

	MailServiceURL string
	APIToken       string
	TenantID       string
	SigningSecret  string // optional: verify report signatures when set

	RecipientEmail string
	SenderEmail    string
	SenderName     string
	AccountID      string

	DatabasePath string
}

// configKey is one INI key: where it lives, its default, whether it must be set.
type configKey struct {
	section, key string
	def          string
	required     bool
	set          func(*config, string) error
}

func stringSetter(field func(*config) *string) func(*config, string) error {
	return func(c *config, v string) error {
		*field(c) = v
		return nil
	}
}

var errMissingKey = errors.New("missing required configuration key")

// configKeys returns the schema; a function, not a package variable, so no
// mutable state lives at package level.
func configKeys() []configKey {
	return []configKey{
		{section: "server", key: "host", def: "127.0.0.1", set: stringSetter(func(c *config) *string { return &c.ServerHost })},
		{section: "server", key: "port", def: "8081", set: func(c *config, v string) error {
			port, err := strconv.Atoi(v)
			if err != nil || port < 0 || port > 65535 {
				return fmt.Errorf("[server] port: %q is not a port number (0..65535)", v)
			}
			c.ServerPort = port
			return nil
		}},
		{section: "mail_service", key: "url", def: "http://localhost:8000", set: func(c *config, v string) error {
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("[mail_service] url: %q is not an http(s) URL", v)
			}
			c.MailServiceURL = strings.TrimRight(v, "/")
			return nil
		}},
		{section: "mail_service", key: "api_token", required: true, set: stringSetter(func(c *config) *string { return &c.APIToken })},
		{section: "mail_service", key: "tenant_id", def: "default", set: stringSetter(func(c *config) *string { return &c.TenantID })},
		{section: "mail_service", key: "signing_secret", set: stringSetter(func(c *config) *string { return &c.SigningSecret })},
		{section: "test", key: "recipient_email", required: true, set: stringSetter(func(c *config) *string { return &c.RecipientEmail })},
		{section: "test", key: "sender_email", def: "test@example.com", set: stringSetter(func(c *config) *string { return &c.SenderEmail })},
		{section: "test", key: "sender_name", def: "Example Client Test", set: stringSetter(func(c *config) *string { return &c.SenderName })},
		{section: "test", key: "account_id", required: true, set: stringSetter(func(c *config) *string { return &c.AccountID })},
		{section: "database", key: "path", def: "example_client.db", set: stringSetter(func(c *config) *string { return &c.DatabasePath })},
	}
}

// envName is the override variable of a key: EXAMPLE_<SECTION>_<KEY>.
func envName(section, key string) string {
	return "EXAMPLE_" + strings.ToUpper(section) + "_" + strings.ToUpper(key)
}

// loadConfig reads path (a missing file is an error only when mustExist),
// then applies defaults and environment overrides, and checks required keys.
func loadConfig(path string, mustExist bool, getenv func(string) string) (config, error) {
	values := map[string]map[string]string{}
	f, err := os.Open(path)
	switch {
	case err == nil:
		values, err = parseINI(f)
		closeErr := f.Close()
		if err != nil {
			return config{}, fmt.Errorf("config %s: %w", path, err)
		}
		if closeErr != nil {
			return config{}, fmt.Errorf("config %s: %w", path, closeErr)
		}
	case errors.Is(err, fs.ErrNotExist) && !mustExist:
		// No file at the default path: defaults and EXAMPLE_* variables only.
	default:
		return config{}, fmt.Errorf("config: %w", err)
	}

	var cfg config
	var missing []string
	for _, k := range configKeys() {
		v, ok := values[k.section][k.key]
		if env := getenv(envName(k.section, k.key)); env != "" {
			v, ok = env, true
		}
		if !ok || v == "" {
			if k.required {
				missing = append(missing, fmt.Sprintf("[%s] %s (or %s)", k.section, k.key, envName(k.section, k.key)))
				continue
			}
			v = k.def
		}
		if err := k.set(&cfg, v); err != nil {
			return config{}, fmt.Errorf("config: %w", err)
		}
	}
	if len(missing) > 0 {
		return config{}, fmt.Errorf("config: %w: %s", errMissingKey, strings.Join(missing, ", "))
	}
	return cfg, nil
}

// parseINI reads the configparser subset the seed's file uses: [sections],
// "key = value" or "key: value", full-line comments (# or ;) and inline
// comments after whitespace. Keys are case-insensitive.
func parseINI(r io.Reader) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	section := ""
	sc := bufio.NewScanner(r)
	for lineNo := 1; sc.Scan(); lineNo++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			end := strings.IndexByte(line, ']')
			if end < 0 {
				return nil, fmt.Errorf("line %d: unterminated section header %q", lineNo, line)
			}
			section = strings.ToLower(strings.TrimSpace(line[1:end]))
			if out[section] == nil {
				out[section] = map[string]string{}
			}
			continue
		}
		if section == "" {
			return nil, fmt.Errorf("line %d: key outside any [section]", lineNo)
		}
		sep := strings.IndexAny(line, "=:")
		if sep <= 0 {
			return nil, fmt.Errorf("line %d: want key = value, got %q", lineNo, line)
		}
		key := strings.ToLower(strings.TrimSpace(line[:sep]))
		out[section][key] = stripInlineComment(strings.TrimSpace(line[sep+1:]))
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func stripInlineComment(v string) string {
	for i := 1; i < len(v); i++ {
		if (v[i] == '#' || v[i] == ';') && (v[i-1] == ' ' || v[i-1] == '\t') {
			return strings.TrimSpace(v[:i])
		}
	}
	return v
}
