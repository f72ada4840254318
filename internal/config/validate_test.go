package config

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

// TestValidateNamesTheVariable loads each bad value through the environment, as a user would set it.
func TestValidateNamesTheVariable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, value string }{
		{"GMP_PORT", "-1"},
		{"GMP_PORT", "65536"},
		{"GMP_LOG_LEVEL", "TRACE"},
		{"GMP_LOG_FORMAT", "xml"},
		{"GMP_SEND_LOOP_INTERVAL", "0.04"},
		{"GMP_SEND_LOOP_INTERVAL", "-1"},
		{"GMP_DEFAULT_PRIORITY", "4"},
		{"GMP_DEFAULT_PRIORITY", "urgent"},
		{"GMP_DEFAULT_PRIORITY", "-1"},
		{"GMP_BATCH_SIZE_PER_ACCOUNT", "0"},
		{"GMP_MAX_ENQUEUE_BATCH", "0"},
		{"GMP_MAX_SENDS", "0"},
		{"GMP_MAX_SENDS_PER_ACCOUNT", "-3"},
		{"GMP_POOL_SIZE", "0"},
		{"GMP_MAX_RETRIES", "-1"},
		{"GMP_RETRY_DELAYS", "60,-5"},
		{"GMP_CLAIM_LEASE_SECONDS", "0"},
		{"GMP_SHUTDOWN_TIMEOUT", "-0.5"},
		{"GMP_CLIENT_SYNC_URL", "ftp://example.invalid/x"},
		{"GMP_CLIENT_SYNC_URL", "not a url"},
		{"GMP_CLIENT_SYNC_TIMEOUT", "0"},
		{"GMP_SYNC_INTERVAL", "-300"},
		{"GMP_REPORT_BATCH_SIZE", "0"},
		{"GMP_DELIVERY_REPORT_RETENTION_SECONDS", "-1"},
		{"GMP_ATTACHMENT_TIMEOUT", "0"},
		{"GMP_MAX_ATTACHMENT_FETCHES", "0"},
		{"GMP_ATTACHMENT_MAX_MB", "0"},
		{"GMP_MESSAGE_MAX_MB", "-50"},
		{"GMP_CACHE_MEMORY_MAX_MB", "-1"},
		{"GMP_CACHE_MEMORY_TTL_SECONDS", "-1"},
		{"GMP_CACHE_DISK_MAX_MB", "-1"},
		{"GMP_CACHE_DISK_TTL_SECONDS", "-1"},
		{"GMP_CACHE_DISK_THRESHOLD_KB", "-1"},
		{"GMP_BOUNCE_IMAP_PORT", "70000"},
		{"GMP_BOUNCE_POLL_INTERVAL", "0"},
		{"GMP_PEC_ACCEPTANCE_TIMEOUT", "-1"},
		{"MAIL_PROXY_ENCRYPTION_KEY", "not-base64!"},
		{"MAIL_PROXY_ENCRYPTION_KEY", "c2hvcnQ="},
		{"GMP_MAX_REQUEST_MB", "0"},
		{"GMP_PPROF_ADDR", "6060"},
		{"GMP_PPROF_ADDR", "127.0.0.1:http"},
		{"GMP_URL", "127.0.0.1:8000"},
		{"GMP_DATABASE_URL", "mysql://db/x"},
		{"GMP_DATABASE_URL", "POSTGRES://db/x"},
		{"GMP_DB_PATH", "sqlite://x.db"},
	} {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			t.Parallel()
			cfg, _ := mustLoad(t, map[string]string{tc.name: tc.value}, "")
			err := cfg.Validate()
			if err == nil {
				t.Fatalf("%s=%q validated", tc.name, tc.value)
			}
			if !strings.HasPrefix(err.Error(), tc.name+": ") || strings.Contains(err.Error(), "\n") {
				t.Errorf("want exactly one error naming %s, got %q", tc.name, err)
			}
			if strings.HasPrefix(tc.name, "MAIL_PROXY_ENCRYPTION_KEY") && strings.Contains(err.Error(), tc.value) {
				t.Errorf("the key leaked into the error: %q", err)
			}
		})
	}
}

func TestValidateEmptyStrings(t *testing.T) {
	t.Parallel()
	cfg, _ := mustLoad(t, nil, "")
	cfg.Host, cfg.DBPath, cfg.InstanceName = " ", "", ""
	err := cfg.Validate()
	for _, name := range []string{"GMP_HOST", "GMP_DB_PATH", "GMP_INSTANCE_NAME"} {
		if err == nil || !strings.Contains(err.Error(), name+":") {
			t.Errorf("empty %s accepted: %v", name, err)
		}
	}
}

func TestValidateAcceptsEdges(t *testing.T) {
	t.Parallel()
	for _, env := range []map[string]string{
		{"GMP_PORT": "0"},
		{"GMP_PORT": "65535"},
		{"GMP_LOG_LEVEL": "warn", "GMP_LOG_FORMAT": "JSON"},
		{"GMP_LOG_LEVEL": "Warning"},
		{"GMP_DEFAULT_PRIORITY": "IMMEDIATE"},
		{"GMP_DEFAULT_PRIORITY": "0"},
		{"GMP_RETRY_DELAYS": "0"},
		{"GMP_MAX_RETRIES": "0"},
		{"GMP_SHUTDOWN_TIMEOUT": "0"},
		{"MAIL_PROXY_ENCRYPTION_KEY": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="},
		{"GMP_PPROF_ADDR": "127.0.0.1:6060"},
		{"GMP_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/x"},
		{"GMP_CLIENT_SYNC_URL": "https://127.0.0.1/sync"},
	} {
		cfg, _ := mustLoad(t, env, "")
		if err := cfg.Validate(); err != nil {
			t.Errorf("%v rejected: %v", env, err)
		}
	}
}

func TestDerivedValues(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env      map[string]string
		dsn      string
		postgres bool
	}{
		{nil, "./mail_service.db", false},
		{map[string]string{"GMP_DB_PATH": "/data/x.db"}, "/data/x.db", false},
		{map[string]string{"GMP_DB_PATH": "postgres://a/b"}, "postgres://a/b", true},
		{map[string]string{"GMP_DB_PATH": "/data/x.db", "GMP_DATABASE_URL": "postgresql://a/b"}, "postgresql://a/b", true},
		{map[string]string{"GMP_DATABASE_URL": "PostgreSQL://a/b"}, "PostgreSQL://a/b", false},
	} {
		cfg, _ := mustLoad(t, tc.env, "")
		if cfg.DatabaseDSN() != tc.dsn || cfg.IsPostgres() != tc.postgres {
			t.Errorf("%v: dsn %q postgres %v, want %q %v", tc.env, cfg.DatabaseDSN(), cfg.IsPostgres(), tc.dsn, tc.postgres)
		}
	}
	for in, want := range map[string]int{"immediate": 0, "high": 1, "Medium": 2, "LOW": 3, "0": 0, "1": 1, "2": 2, "3": 3} {
		if got := (Config{DefaultPriority: in}).DefaultPriorityValue(); got != want {
			t.Errorf("priority %q = %d, want %d", in, got, want)
		}
	}
}

func TestPrintListsEveryVariable(t *testing.T) {
	t.Parallel()
	cfg, _ := mustLoad(t, map[string]string{
		"GMP_API_TOKEN": "admin-secret-token", "GMP_CLIENT_SYNC_PASSWORD": "pw-secret", "GMP_PORT": "8123",
		"MAIL_PROXY_ENCRYPTION_KEY": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
	}, "")
	var out bytes.Buffer
	if err := Print(&out, cfg); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	lines := map[string]string{}
	for _, l := range strings.Split(text, "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			lines[f[0]] = l
		}
	}
	for _, v := range Variables() {
		if _, ok := lines[v.Name]; !ok {
			t.Errorf("%s missing from config output", v.Name)
		}
	}
	for _, secret := range []string{"admin-secret-token", "pw-secret", "AAAAAAAA"} {
		if strings.Contains(text, secret) {
			t.Errorf("secret %q printed", secret)
		}
	}
	if f := strings.Fields(lines["GMP_API_TOKEN"]); f[1] != "***" {
		t.Errorf("token line %q", lines["GMP_API_TOKEN"])
	}
	if f := strings.Fields(lines["GMP_PORT"]); f[1] != "8123" || f[2] != "8000" {
		t.Errorf("port line %q, want value 8123 default 8000", lines["GMP_PORT"])
	}
	if f := strings.Fields(lines["GMP_CLIENT_SYNC_TOKEN"]); f[1] != "-" {
		t.Errorf("unset secret line %q", lines["GMP_CLIENT_SYNC_TOKEN"])
	}
	if !strings.Contains(lines["GMP_BOUNCE_IMAP_PORT"], "143 (993 with SSL)") {
		t.Errorf("bounce port default: %q", lines["GMP_BOUNCE_IMAP_PORT"])
	}

	out.Reset()
	if err := PrintJSON(&out, cfg); err != nil {
		t.Fatal(err)
	}
	var settings []Setting
	if err := json.Unmarshal(out.Bytes(), &settings); err != nil {
		t.Fatal(err)
	}
	if len(settings) != len(Variables()) || strings.Contains(out.String(), "admin-secret-token") {
		t.Errorf("JSON: %d settings, secret shown: %v", len(settings), strings.Contains(out.String(), "admin-secret-token"))
	}
}

func TestNewLogger(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		level, format string
		wantDebug     bool
		wantWarn      bool
	}{
		{"DEBUG", "text", true, true},
		{"INFO", "json", false, true},
		{"WARNING", "text", false, true},
		{"warn", "json", false, true},
		{"ERROR", "text", false, false},
	} {
		t.Run(tc.level+"/"+tc.format, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			log, err := NewLogger(Config{LogLevel: tc.level, LogFormat: tc.format}, &buf)
			if err != nil {
				t.Fatal(err)
			}
			log.Debug("dbg-line")
			log.Warn("warn-line", slog.String("msg_id", "m1"))
			out := buf.String()
			if strings.Contains(out, "dbg-line") != tc.wantDebug || strings.Contains(out, "warn-line") != tc.wantWarn {
				t.Errorf("output %q", out)
			}
			if tc.format == "json" && tc.wantWarn {
				var rec map[string]any
				if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &rec); err != nil || rec["msg_id"] != "m1" {
					t.Errorf("not one JSON record: %q (%v)", out, err)
				}
			}
		})
	}
	if _, err := NewLogger(Config{LogLevel: "LOUD", LogFormat: "text"}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "GMP_LOG_LEVEL") {
		t.Errorf("bad level: %v", err)
	}
	if _, err := NewLogger(Config{LogLevel: "INFO", LogFormat: "yaml"}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "GMP_LOG_FORMAT") {
		t.Errorf("bad format: %v", err)
	}
}

func TestMaskDSN(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"./mail_service.db", "./mail_service.db"},
		{"/var/lib/mail-proxy/db.sqlite", "/var/lib/mail-proxy/db.sqlite"},
		{"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"},
		{"postgres://u:s3cret@db:5432/mail?sslmode=disable", "postgres://u:***@db:5432/mail?sslmode=disable"},
		{"postgresql://u:p%40ss@db/mail", "postgresql://u:***@db/mail"},
		{"postgres://u@db/mail?password=s3cret&sslmode=require", "postgres://u@db/mail?password=***&sslmode=require"},
		{"postgres://u:s3cret:x@db:bad-port/mail", "postgres://u:***@db:bad-port/mail"},
		{"host=db user=u password=s3cret dbname=mail", "host=db user=u password=*** dbname=mail"},
		{"host=db password = 's3 cret' dbname=mail", "host=db password = *** dbname=mail"},
	}
	for _, tc := range tests {
		if got := MaskDSN(tc.in); got != tc.want {
			t.Errorf("MaskDSN(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if strings.Contains(MaskDSN(tc.in), "s3") {
			t.Errorf("MaskDSN(%q) keeps the password", tc.in)
		}
	}
}
