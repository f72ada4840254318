package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// minSendLoopInterval is the shortest fallback poll the dispatcher accepts.
const minSendLoopInterval = 50 * time.Millisecond

// Validate checks every value and returns all problems at once (errors.Join), each naming its variable.
// Call it after flags have been applied on top of Load's result.
func (c Config) Validate() error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{name}, args...)...))
	}
	atLeast := func(name string, v, lowest int) {
		if v < lowest {
			bad(name, "must be at least %d, got %d", lowest, v)
		}
	}
	positive := func(name string, s Seconds) {
		if s <= 0 {
			bad(name, "must be a positive number of seconds, got %s", s)
		}
	}
	notNegative := func(name string, s Seconds) {
		if s < 0 {
			bad(name, "must not be negative, got %s", s)
		}
	}
	positiveMB := func(name string, f float64) {
		if !(f > 0) || math.IsInf(f, 0) {
			bad(name, "must be a positive size in MB, got %v", f)
		}
	}
	notNegativeMB := func(name string, f float64) {
		if !(f >= 0) || math.IsInf(f, 0) {
			bad(name, "must not be negative, got %v", f)
		}
	}
	port := func(name string, p, lowest int) {
		if p < lowest || p > 65535 {
			bad(name, "port must be in %d..65535, got %d", lowest, p)
		}
	}
	httpURL := func(name, raw string) {
		if raw == "" {
			return
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad(name, "must be an http:// or https:// URL")
		}
	}

	if strings.TrimSpace(c.Host) == "" {
		bad("GMP_HOST", "must not be empty")
	}
	port("GMP_PORT", c.Port, 0)
	dbVar := "GMP_DB_PATH"
	if c.DatabaseURL != "" {
		dbVar = "GMP_DATABASE_URL"
	}
	if strings.TrimSpace(c.DatabaseDSN()) == "" {
		bad(dbVar, "must not be empty")
	} else if strings.Contains(c.DatabaseDSN(), "://") && !c.IsPostgres() {
		bad(dbVar, "must be a SQLite file path or a postgres:// or postgresql:// URL (lower case)")
	}
	if strings.TrimSpace(c.InstanceName) == "" {
		bad("GMP_INSTANCE_NAME", "must not be empty")
	}
	if _, err := ParseLogLevel(c.LogLevel); err != nil {
		bad("GMP_LOG_LEVEL", "%v", err)
	}
	if f := strings.ToLower(c.LogFormat); f != "text" && f != "json" {
		bad("GMP_LOG_FORMAT", "must be text or json, got %q", c.LogFormat)
	}
	if c.SendLoopInterval.Duration() < minSendLoopInterval {
		bad("GMP_SEND_LOOP_INTERVAL", "must be at least 0.05 seconds, got %s", c.SendLoopInterval)
	}
	if _, err := ParsePriority(c.DefaultPriority); err != nil {
		bad("GMP_DEFAULT_PRIORITY", "%v", err)
	}
	atLeast("GMP_BATCH_SIZE_PER_ACCOUNT", c.BatchSizePerAccount, 1)
	atLeast("GMP_MAX_ENQUEUE_BATCH", c.MaxEnqueueBatch, 1)
	atLeast("GMP_MAX_SENDS", c.MaxSends, 1)
	atLeast("GMP_MAX_SENDS_PER_ACCOUNT", c.MaxSendsPerAccount, 1)
	atLeast("GMP_POOL_SIZE", c.PoolSize, 1)
	atLeast("GMP_MAX_RETRIES", c.MaxRetries, 0)
	if len(c.RetryDelays) == 0 {
		bad("GMP_RETRY_DELAYS", "must list at least one delay in seconds")
	}
	for _, d := range c.RetryDelays {
		if d < 0 {
			bad("GMP_RETRY_DELAYS", "delays must not be negative, got %d", d)
			break
		}
	}
	atLeast("GMP_CLAIM_LEASE_SECONDS", c.ClaimLeaseSeconds, 1)
	notNegative("GMP_SHUTDOWN_TIMEOUT", c.ShutdownTimeout)

	httpURL("GMP_CLIENT_SYNC_URL", c.ClientSyncURL)
	positive("GMP_CLIENT_SYNC_TIMEOUT", c.ClientSyncTimeout)
	positive("GMP_SYNC_INTERVAL", c.SyncInterval)
	atLeast("GMP_REPORT_BATCH_SIZE", c.ReportBatchSize, 1)
	notNegative("GMP_DELIVERY_REPORT_RETENTION_SECONDS", c.ReportRetention)

	positive("GMP_ATTACHMENT_TIMEOUT", c.AttachmentTimeout)
	atLeast("GMP_MAX_ATTACHMENT_FETCHES", c.MaxAttachmentFetches, 1)
	positiveMB("GMP_ATTACHMENT_MAX_MB", c.AttachmentMaxMB)
	positiveMB("GMP_MESSAGE_MAX_MB", c.MessageMaxMB)

	notNegativeMB("GMP_CACHE_MEMORY_MAX_MB", c.CacheMemoryMaxMB)
	notNegativeMB("GMP_MEMORY_LIMIT_MB", c.MemoryLimitMB)
	notNegative("GMP_CACHE_MEMORY_TTL_SECONDS", c.CacheMemoryTTL)
	notNegativeMB("GMP_CACHE_DISK_MAX_MB", c.CacheDiskMaxMB)
	notNegative("GMP_CACHE_DISK_TTL_SECONDS", c.CacheDiskTTL)
	atLeast("GMP_CACHE_DISK_THRESHOLD_KB", c.CacheDiskThresholdKB, 0)

	port("GMP_BOUNCE_IMAP_PORT", c.BounceIMAPPort, 1)
	positive("GMP_BOUNCE_POLL_INTERVAL", c.BouncePollInterval)
	if c.BounceEnabled && strings.TrimSpace(c.BounceIMAPHost) == "" {
		bad("GMP_BOUNCE_IMAP_HOST", "required when GMP_BOUNCE_ENABLED is set (the mailbox to poll for bounces)")
	}
	notNegative("GMP_PEC_ACCEPTANCE_TIMEOUT", c.PECAcceptanceTimeout)

	if c.EncryptionKey != "" {
		if _, err := DecodeEncryptionKey(c.EncryptionKey); err != nil {
			bad("MAIL_PROXY_ENCRYPTION_KEY", "%v", err)
		}
	}
	positiveMB("GMP_MAX_REQUEST_MB", c.MaxRequestMB)
	if c.PprofAddr != "" {
		if _, p, err := net.SplitHostPort(c.PprofAddr); err != nil {
			bad("GMP_PPROF_ADDR", "must be host:port, e.g. 127.0.0.1:6060")
		} else if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 65535 {
			bad("GMP_PPROF_ADDR", "port must be in 0..65535")
		}
	}
	hostPort := func(name, addr string) {
		if addr == "" {
			return
		}
		if _, p, err := net.SplitHostPort(addr); err != nil {
			bad(name, "must be host:port, e.g. 127.0.0.1:2525")
		} else if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 65535 {
			bad(name, "port must be in 0..65535")
		}
	}
	hostPort("GMP_SMTP_LISTEN", c.SMTPListen)
	hostPort("GMP_SMTPS_LISTEN", c.SMTPSListen)
	if (c.SMTPTLSCert == "") != (c.SMTPTLSKey == "") {
		bad("GMP_SMTP_TLS_CERT", "GMP_SMTP_TLS_CERT and GMP_SMTP_TLS_KEY must be set together")
	}
	if c.SMTPSListen != "" && c.SMTPTLSCert == "" {
		bad("GMP_SMTPS_LISTEN", "needs GMP_SMTP_TLS_CERT and GMP_SMTP_TLS_KEY")
	}
	httpURL("GMP_URL", c.URL)
	errs = append(errs, c.refuseUnsupported()...)
	return errors.Join(errs...)
}

// DecodeEncryptionKey decodes MAIL_PROXY_ENCRYPTION_KEY: standard base64 of exactly 32 bytes.
// The error never contains the key.
func DecodeEncryptionKey(s string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, errors.New("not valid base64")
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("must decode to 32 bytes, got %d", len(key))
	}
	return key, nil
}

// IsPostgres reports whether the store is PostgreSQL (a postgres:// or postgresql:// DSN);
// anything else is a SQLite file path.
func (c Config) IsPostgres() bool {
	// Case-sensitive, as the PostgreSQL driver's own DSN detection.
	dsn := c.DatabaseDSN()
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// DefaultBounceIMAPPort is the IMAP port implied by GMP_BOUNCE_IMAP_SSL: 993 with TLS, else 143.
func (c Config) DefaultBounceIMAPPort() int {
	if c.BounceIMAPSSL {
		return 993
	}
	return 143
}

// ParsePriority reads a priority: 0..3 or a label (immediate, high, medium, low; any case).
func ParsePriority(s string) (int, error) {
	switch t := strings.ToLower(strings.TrimSpace(s)); t {
	case "immediate", "0":
		return 0, nil
	case "high", "1":
		return 1, nil
	case "medium", "2":
		return 2, nil
	case "low", "3":
		return 3, nil
	}
	return 0, fmt.Errorf("must be 0..3 or immediate/high/medium/low, got %q", s)
}

// DefaultPriorityValue is GMP_DEFAULT_PRIORITY as a number 0..3 (2, medium, when invalid; Validate rejects that).
func (c Config) DefaultPriorityValue() int {
	n, err := ParsePriority(c.DefaultPriority)
	if err != nil {
		return 2
	}
	return n
}

// ParseLogLevel maps DEBUG, INFO, WARNING/WARN and ERROR (any case) to a slog level.
func ParseLogLevel(s string) (slog.Level, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "DEBUG":
		return slog.LevelDebug, nil
	case "INFO":
		return slog.LevelInfo, nil
	case "WARNING", "WARN":
		return slog.LevelWarn, nil
	case "ERROR":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("must be DEBUG, INFO, WARNING, WARN or ERROR, got %q", s)
}
