// Package config holds mailproxy's configuration: every GMP_* variable of the
// contract (config-metrics-cli.md §1), with its default in the struct tag so
// that `mail-proxy config` can print them all from one place.
//
// Sources, strongest first: command-line flags (set by the CLI on the loaded
// struct), the environment, the INI config file, the tag default. Load reads
// the last three; Validate checks the result once flags are applied; Print
// lists every variable; NewLogger builds the slog logger it configures.
package config

import (
	"time"
)

// Config is the whole configuration of one mail-proxy instance.
type Config struct {
	Host         string `env:"GMP_HOST" envDefault:"0.0.0.0" ini:"host" doc:"listen address"`
	Port         int    `env:"GMP_PORT" envDefault:"8000" ini:"port" doc:"listen port (0..65535; 0 picks a free port)"`
	DBPath       string `env:"GMP_DB_PATH" envDefault:"./mail_service.db" ini:"db_path" doc:"SQLite file, or postgres:// / postgresql:// DSN (its password masked when printed)" secret:"dsn"`
	DatabaseURL  string `env:"GMP_DATABASE_URL" ini:"database_url" doc:"as GMP_DB_PATH; wins when both are set" secret:"dsn"`
	APIToken     string `env:"GMP_API_TOKEN" ini:"api_token" doc:"admin token (generated and stored when unset)" secret:"true"`
	InstanceName string `env:"GMP_INSTANCE_NAME" envDefault:"mail-proxy" ini:"instance_name" doc:"instance name (alias GMP_INSTANCE)"`
	ConfigFile   string `env:"GMP_CONFIG_FILE" ini:"-" doc:"INI config file (alias GMP_CONFIG)"`

	LogLevel            string `env:"GMP_LOG_LEVEL" envDefault:"INFO" ini:"log_level" doc:"DEBUG, INFO, WARNING/WARN, ERROR"`
	LogFormat           string `env:"GMP_LOG_FORMAT" envDefault:"text" ini:"log_format" doc:"text or json"`
	LogDeliveryActivity bool   `env:"GMP_LOG_DELIVERY_ACTIVITY" envDefault:"true" ini:"log_delivery_activity" doc:"log one info line per delivery outcome (sent, deferred, error); attempts at debug level"`

	SchedulerActive       bool    `env:"GMP_SCHEDULER_ACTIVE" envDefault:"true" ini:"scheduler_active" doc:"run dispatcher and report loop"`
	TestMode              bool    `env:"GMP_TEST_MODE" envDefault:"false" ini:"test_mode" doc:"work only on run-now"`
	SendLoopInterval      Seconds `env:"GMP_SEND_LOOP_INTERVAL" envDefault:"0.5" ini:"send_loop_interval" doc:"fallback poll, seconds (>= 0.05)"`
	DefaultPriority       string  `env:"GMP_DEFAULT_PRIORITY" envDefault:"2" ini:"default_priority" doc:"0..3 or immediate/high/medium/low"`
	BatchSizePerAccount   int     `env:"GMP_BATCH_SIZE_PER_ACCOUNT" envDefault:"50" ini:"batch_size_per_account" doc:"messages per account per claim round"`
	MaxEnqueueBatch       int     `env:"GMP_MAX_ENQUEUE_BATCH" envDefault:"1000" ini:"max_enqueue_batch" doc:"messages per add-messages request"`
	MaxSends              int     `env:"GMP_MAX_SENDS" envDefault:"10" ini:"max_sends" doc:"concurrent SMTP transactions per instance"`
	MaxSendsPerAccount    int     `env:"GMP_MAX_SENDS_PER_ACCOUNT" envDefault:"3" ini:"max_sends_per_account" doc:"concurrent SMTP transactions per account"`
	PoolSize              int     `env:"GMP_POOL_SIZE" envDefault:"5" ini:"pool_size" doc:"open SMTP connections per account"`
	SMTPResetAfterMessage bool    `env:"GMP_SMTP_RSET_AFTER_MESSAGE" envDefault:"false" ini:"smtp_rset_after_message" doc:"send RSET after every accepted message too (default: only after refusals; the server resets after DATA, RFC 5321 4.1.1.4)"`
	HTMLTextAlternative   bool    `env:"GMP_HTML_TEXT_ALTERNATIVE" envDefault:"true" ini:"html_text_alternative" doc:"send html bodies with a text/plain part generated from the HTML when the item has no body_text"`
	MaxRetries            int     `env:"GMP_MAX_RETRIES" envDefault:"5" ini:"max_retries" doc:"retry budget for temporary failures"`
	RetryDelays           []int   `env:"GMP_RETRY_DELAYS" envDefault:"60,300,900,3600,7200" envSeparator:"," ini:"retry_delays" doc:"retry delays in seconds; the last repeats"`
	ClaimLeaseSeconds     int     `env:"GMP_CLAIM_LEASE_SECONDS" envDefault:"60" ini:"claim_lease_seconds" doc:"claim lease, seconds"`
	ShutdownTimeout       Seconds `env:"GMP_SHUTDOWN_TIMEOUT" envDefault:"30" ini:"shutdown_timeout" doc:"grace for in-flight sends, seconds"`

	ClientSyncURL      string  `env:"GMP_CLIENT_SYNC_URL" ini:"client_sync_url" doc:"global sync URL"`
	ClientSyncUser     string  `env:"GMP_CLIENT_SYNC_USER" ini:"client_sync_user" doc:"global sync basic-auth user"`
	ClientSyncPassword string  `env:"GMP_CLIENT_SYNC_PASSWORD" ini:"client_sync_password" doc:"global sync basic-auth password" secret:"true"`
	ClientSyncToken    string  `env:"GMP_CLIENT_SYNC_TOKEN" ini:"client_sync_token" doc:"global sync bearer token; wins over basic" secret:"true"`
	ClientSyncSecret   string  `env:"GMP_CLIENT_SYNC_SECRET" ini:"client_sync_secret" doc:"global sync whsec_ signing secret" secret:"true"`
	ClientSyncTimeout  Seconds `env:"GMP_CLIENT_SYNC_TIMEOUT" envDefault:"30" ini:"client_sync_timeout" doc:"one sync POST, seconds"`
	SyncInterval       Seconds `env:"GMP_SYNC_INTERVAL" envDefault:"300" ini:"sync_interval" doc:"heartbeat interval, seconds"`
	ReportBatchSize    int     `env:"GMP_REPORT_BATCH_SIZE" envDefault:"1000" ini:"report_batch_size" doc:"report items per POST"`
	ReportRetention    Seconds `env:"GMP_DELIVERY_REPORT_RETENTION_SECONDS" envDefault:"604800" ini:"delivery_report_retention_seconds" doc:"retention and cleanup default, seconds"`

	AttachmentTimeout        Seconds `env:"GMP_ATTACHMENT_TIMEOUT" envDefault:"30" ini:"attachment_timeout" doc:"attachment fetch timeout, seconds"`
	MaxAttachmentFetches     int     `env:"GMP_MAX_ATTACHMENT_FETCHES" envDefault:"3" ini:"max_attachment_fetches" doc:"concurrent attachment fetches"`
	AttachmentMaxMB          float64 `env:"GMP_ATTACHMENT_MAX_MB" envDefault:"25" ini:"attachment_max_mb" doc:"per-attachment size limit, MB"`
	MessageMaxMB             float64 `env:"GMP_MESSAGE_MAX_MB" envDefault:"50" ini:"message_max_mb" doc:"per-message size limit, MB"`
	AttachmentBaseDir        string  `env:"GMP_ATTACHMENT_BASE_DIR" ini:"attachment_base_dir" doc:"filesystem attachment root (unset: mode off)"`
	AttachmentAllowPrivate   bool    `env:"GMP_ATTACHMENT_ALLOW_PRIVATE" envDefault:"false" ini:"attachment_allow_private" doc:"http_url attachments may reach loopback and private addresses (never link-local or cloud metadata)"`
	AccountTargetsPublicOnly bool    `env:"GMP_ACCOUNT_TARGETS_PUBLIC_ONLY" envDefault:"false" ini:"account_targets_public_only" doc:"accounts created or changed with a tenant key must name a public SMTP server (no loopback or private address); the admin token may still use local relays. Link-local and cloud metadata addresses are refused for every account"`
	ClientURLAllowPrivate    bool    `env:"GMP_CLIENT_URL_ALLOW_PRIVATE" envDefault:"false" ini:"client_url_allow_private" doc:"a client_base_url set with a tenant's own key may be loopback or private (one set by the admin always may; link-local and cloud metadata never)"`

	CacheMemoryMaxMB     float64 `env:"GMP_CACHE_MEMORY_MAX_MB" envDefault:"50" ini:"cache_memory_max_mb" doc:"memory cache size, MB"`
	CacheMemoryTTL       Seconds `env:"GMP_CACHE_MEMORY_TTL_SECONDS" envDefault:"300" ini:"cache_memory_ttl_seconds" doc:"memory cache TTL, seconds"`
	CacheDiskDir         string  `env:"GMP_CACHE_DISK_DIR" ini:"cache_disk_dir" doc:"disk cache directory (unset: tier off)"`
	CacheDiskMaxMB       float64 `env:"GMP_CACHE_DISK_MAX_MB" envDefault:"500" ini:"cache_disk_max_mb" doc:"disk cache size, MB"`
	CacheDiskTTL         Seconds `env:"GMP_CACHE_DISK_TTL_SECONDS" envDefault:"3600" ini:"cache_disk_ttl_seconds" doc:"disk cache TTL, seconds"`
	CacheDiskThresholdKB int     `env:"GMP_CACHE_DISK_THRESHOLD_KB" envDefault:"100" ini:"cache_disk_threshold_kb" doc:"items from this size go to disk, KB"`

	BounceEnabled        bool    `env:"GMP_BOUNCE_ENABLED" envDefault:"false" ini:"bounce_enabled" doc:"bounce processing"`
	BounceIMAPHost       string  `env:"GMP_BOUNCE_IMAP_HOST" ini:"bounce_imap_host" doc:"bounce IMAP host"`
	BounceIMAPUser       string  `env:"GMP_BOUNCE_IMAP_USER" ini:"bounce_imap_user" doc:"bounce IMAP user"`
	BounceIMAPPassword   string  `env:"GMP_BOUNCE_IMAP_PASSWORD" ini:"bounce_imap_password" doc:"bounce IMAP password" secret:"true"`
	BounceIMAPSSL        bool    `env:"GMP_BOUNCE_IMAP_SSL" envDefault:"false" ini:"bounce_imap_ssl" doc:"bounce IMAP over TLS"`
	BounceIMAPPort       int     `env:"GMP_BOUNCE_IMAP_PORT" ini:"bounce_imap_port" docDefault:"143 (993 with SSL)" doc:"bounce IMAP port (143, or 993 with SSL)"`
	BounceIMAPFolder     string  `env:"GMP_BOUNCE_IMAP_FOLDER" envDefault:"INBOX" ini:"bounce_imap_folder" doc:"bounce IMAP folder"`
	BounceReturnPath     string  `env:"GMP_BOUNCE_RETURN_PATH" ini:"bounce_return_path" doc:"envelope sender for bounces"`
	BouncePollInterval   Seconds `env:"GMP_BOUNCE_POLL_INTERVAL" envDefault:"60" ini:"bounce_poll_interval" doc:"bounce poll interval, seconds"`
	PECAcceptanceTimeout Seconds `env:"GMP_PEC_ACCEPTANCE_TIMEOUT" envDefault:"1800" ini:"pec_acceptance_timeout" doc:"parsed, no effect"`

	EncryptionKey     string `env:"MAIL_PROXY_ENCRYPTION_KEY" ini:"-" doc:"base64 of 32 bytes" secret:"true"`
	EncryptionKeyFile string `env:"GMP_ENCRYPTION_KEY_FILE" envDefault:"/run/secrets/encryption_key" ini:"encryption_key_file" doc:"encryption key file"`

	MaxRequestMB  float64 `env:"GMP_MAX_REQUEST_MB" envDefault:"64" ini:"max_request_mb" doc:"request body limit, MB (413 above)"`
	MemoryLimitMB float64 `env:"GMP_MEMORY_LIMIT_MB" envDefault:"256" ini:"memory_limit_mb" doc:"soft limit of the Go heap for serve, MB (the collector works harder near it; 0: none; GOMEMLIMIT wins when set)"`
	PprofAddr     string  `env:"GMP_PPROF_ADDR" ini:"pprof_addr" doc:"pprof listener, e.g. 127.0.0.1:6060 (unset: off)"`

	SMTPListen            string `env:"GMP_SMTP_LISTEN" ini:"smtp_listen" doc:"SMTP submission listener, e.g. 127.0.0.1:2525 (unset: off)"`
	SMTPSListen           string `env:"GMP_SMTPS_LISTEN" ini:"smtps_listen" doc:"SMTP submission over implicit TLS, e.g. 0.0.0.0:465 (unset: off; needs the certificate)"`
	SMTPTLSCert           string `env:"GMP_SMTP_TLS_CERT" ini:"smtp_tls_cert" doc:"PEM certificate for STARTTLS and GMP_SMTPS_LISTEN"`
	SMTPTLSKey            string `env:"GMP_SMTP_TLS_KEY" ini:"smtp_tls_key" doc:"PEM private key of GMP_SMTP_TLS_CERT"`
	SMTPAllowInsecureAuth bool   `env:"GMP_SMTP_ALLOW_INSECURE_AUTH" envDefault:"false" ini:"smtp_allow_insecure_auth" doc:"allow AUTH without TLS on a non-loopback submission listener"`

	URL    string `env:"GMP_URL" envDefault:"http://127.0.0.1:8000" ini:"url" doc:"service URL for CLI admin commands"`
	Tenant string `env:"GMP_TENANT" ini:"tenant" doc:"default tenant for CLI admin commands"`
}

// Seconds is a duration configured as (possibly fractional) seconds.
type Seconds time.Duration

// Duration returns s as a time.Duration.
func (s Seconds) Duration() time.Duration { return time.Duration(s) }

// DatabaseDSN is the effective store location: GMP_DATABASE_URL wins over GMP_DB_PATH.
func (c Config) DatabaseDSN() string {
	if c.DatabaseURL != "" {
		return c.DatabaseURL
	}
	return c.DBPath
}
