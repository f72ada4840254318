package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// envOf is a getenv reading a fixed map, so tests never touch the process environment.
func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func sec(f float64) Seconds { return Seconds(f * float64(time.Second)) }

func writeFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mail-proxy.ini")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustLoad(t *testing.T, env map[string]string, file string) (Config, []string) {
	t.Helper()
	cfg, warnings, err := Load(envOf(env), file)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return cfg, warnings
}

// TestDefaults checks every default against the table of config-metrics-cli.md §1.
func TestDefaults(t *testing.T) {
	t.Parallel()
	cfg, warnings := mustLoad(t, nil, "")
	want := Config{
		Host: "0.0.0.0", Port: 8000, DBPath: "./mail_service.db", InstanceName: "mail-proxy",
		LogLevel: "INFO", LogFormat: "text", LogDeliveryActivity: true,
		SchedulerActive: true, SendLoopInterval: sec(0.5), DefaultPriority: "2",
		BatchSizePerAccount: 50, MaxEnqueueBatch: 1000, MaxSends: 10, MaxSendsPerAccount: 3, PoolSize: 5, HTMLTextAlternative: true,
		MaxRetries: 5, RetryDelays: []int{60, 300, 900, 3600, 7200}, ClaimLeaseSeconds: 60, ShutdownTimeout: sec(30),
		ClientSyncTimeout: sec(30), SyncInterval: sec(300), ReportBatchSize: 1000, ReportRetention: sec(604800),
		AttachmentTimeout: sec(30), MaxAttachmentFetches: 3, AttachmentMaxMB: 25, MessageMaxMB: 50,
		CacheMemoryMaxMB: 50, CacheMemoryTTL: sec(300), CacheDiskMaxMB: 500, CacheDiskTTL: sec(3600), CacheDiskThresholdKB: 100,
		BounceIMAPPort: 143, BounceIMAPFolder: "INBOX", BouncePollInterval: sec(60), PECAcceptanceTimeout: sec(1800),
		EncryptionKeyFile: "/run/secrets/encryption_key", MaxRequestMB: 64, MemoryLimitMB: 256,
		URL: "http://127.0.0.1:8000",
	}
	if diff := cmp.Diff(want, cfg); diff != "" {
		t.Errorf("defaults differ from the spec (-want +got):\n%s", diff)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings without a file: %q", warnings)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
	if cfg.DefaultPriorityValue() != 2 || cfg.IsPostgres() || cfg.DatabaseDSN() != "./mail_service.db" {
		t.Errorf("derived values: priority %d, postgres %v, dsn %q", cfg.DefaultPriorityValue(), cfg.IsPostgres(), cfg.DatabaseDSN())
	}
}

// otherValue returns a valid, non-default value for a variable, and how Variable.Value prints it.
func otherValue(t *testing.T, v Variable, def Config) (set, printed string) {
	t.Helper()
	fv := reflect.ValueOf(def).FieldByName(v.Field)
	switch fv.Interface().(type) {
	case Seconds:
		return "1234.5", "1234.5"
	case bool:
		if fv.Bool() {
			return "no", "false"
		}
		return "YES", "true"
	case int:
		return "4321", "4321"
	case float64:
		return "12.5", "12.5"
	case []int:
		return "[1, 2, 3]", "1,2,3"
	case string:
		switch v.Name {
		case "GMP_LOG_LEVEL":
			return "DEBUG", "DEBUG"
		case "GMP_LOG_FORMAT":
			return "json", "json"
		case "GMP_DEFAULT_PRIORITY":
			return "high", "high"
		case "GMP_CONFIG_FILE":
			p := writeFile(t, "[mail_proxy]\n")
			return p, p
		}
		return "value-of-" + v.Name, "value-of-" + v.Name
	}
	t.Fatalf("%s: no test value for type %s", v.Name, fv.Type())
	return "", ""
}

// TestEveryVariableIsRead sets each variable alone to a non-default value and checks the field took it.
func TestEveryVariableIsRead(t *testing.T) {
	t.Parallel()
	def, _ := mustLoad(t, nil, "")
	vars := Variables()
	if len(vars) < 60 {
		t.Fatalf("only %d variables found in the Config tags", len(vars))
	}
	for _, v := range vars {
		t.Run(v.Name, func(t *testing.T) {
			t.Parallel()
			set, printed := otherValue(t, v, def)
			cfg, _ := mustLoad(t, map[string]string{v.Name: set}, "")
			if got := v.Value(cfg); got != printed {
				t.Errorf("%s=%q: field %s is %q, want %q", v.Name, set, v.Field, got, printed)
			}
			if v.Value(cfg) == v.Value(def) {
				t.Errorf("%s=%q did not change %s from its default", v.Name, set, v.Field)
			}
		})
	}
}

func TestBooleans(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"true", true}, {"TRUE", true}, {"True", true}, {"1", true}, {"yes", true}, {"YES", true}, {"Yes", true},
		{"false", false}, {"FALSE", false}, {"0", false}, {"no", false}, {"NO", false}, {"No", false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			cfg, _ := mustLoad(t, map[string]string{"GMP_TEST_MODE": tc.in, "GMP_SCHEDULER_ACTIVE": tc.in}, "")
			if cfg.TestMode != tc.want || cfg.SchedulerActive != tc.want {
				t.Errorf("%q: TestMode %v, SchedulerActive %v, want %v", tc.in, cfg.TestMode, cfg.SchedulerActive, tc.want)
			}
		})
	}
}

func TestSecondsDecimals(t *testing.T) {
	t.Parallel()
	cfg, _ := mustLoad(t, map[string]string{"GMP_SEND_LOOP_INTERVAL": "0.05", "GMP_SHUTDOWN_TIMEOUT": "2.25"}, "")
	if cfg.SendLoopInterval.Duration() != 50*time.Millisecond {
		t.Errorf("SendLoopInterval = %v", cfg.SendLoopInterval.Duration())
	}
	if cfg.ShutdownTimeout.Duration() != 2250*time.Millisecond {
		t.Errorf("ShutdownTimeout = %v", cfg.ShutdownTimeout.Duration())
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("0.05 s must be accepted: %v", err)
	}
}

// TestParseErrorsNameTheVariable covers values that cannot be parsed at all.
func TestParseErrorsNameTheVariable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, value string }{
		{"GMP_PORT", "abc"},
		{"GMP_PORT", "80.5"},
		{"GMP_PORT", "99999999999"},
		{"GMP_TEST_MODE", "maybe"},
		{"GMP_SCHEDULER_ACTIVE", "on"},
		{"GMP_SEND_LOOP_INTERVAL", "fast"},
		{"GMP_SHUTDOWN_TIMEOUT", "NaN"},
		{"GMP_SYNC_INTERVAL", "5m"},
		{"GMP_RETRY_DELAYS", "60,x"},
		{"GMP_RETRY_DELAYS", "[]"},
		{"GMP_RETRY_DELAYS", "[ ]"},
		{"GMP_ATTACHMENT_MAX_MB", "big"},
		{"GMP_MAX_RETRIES", "Inf"},
	} {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			t.Parallel()
			_, _, err := Load(envOf(map[string]string{tc.name: tc.value}), "")
			if err == nil {
				t.Fatalf("%s=%q loaded without error", tc.name, tc.value)
			}
			if !strings.HasPrefix(err.Error(), tc.name+":") || !strings.Contains(err.Error(), "environment") {
				t.Errorf("error does not name %s and its source: %v", tc.name, err)
			}
		})
	}
}

func TestSeveralParseErrorsAreAllReported(t *testing.T) {
	t.Parallel()
	_, _, err := Load(envOf(map[string]string{"GMP_PORT": "abc", "GMP_TEST_MODE": "maybe"}), "")
	if err == nil || !strings.Contains(err.Error(), "GMP_PORT") || !strings.Contains(err.Error(), "GMP_TEST_MODE") {
		t.Fatalf("want both variables named, got %v", err)
	}
}

func TestFileParseErrorNamesKeyAndLine(t *testing.T) {
	t.Parallel()
	p := writeFile(t, "[mail_proxy]\nport = eighty\n")
	_, _, err := Load(envOf(nil), p)
	if err == nil || !strings.HasPrefix(err.Error(), "GMP_PORT:") || !strings.Contains(err.Error(), "[mail_proxy] port, line 2") {
		t.Fatalf("file parse error must name the variable, key and line: %v", err)
	}
}

func TestAliases(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "[mail_proxy]\nhost = 127.0.0.9\n")
	other := writeFile(t, "[mail_proxy]\nhost = 127.0.0.8\n")
	for _, tc := range []struct {
		name     string
		env      map[string]string
		instance string
		host     string
	}{
		{"alias alone", map[string]string{"GMP_INSTANCE": "alias-name", "GMP_CONFIG": file}, "alias-name", "127.0.0.9"},
		{"primary wins", map[string]string{"GMP_INSTANCE": "alias-name", "GMP_INSTANCE_NAME": "primary", "GMP_CONFIG": other, "GMP_CONFIG_FILE": file}, "primary", "127.0.0.9"},
		{"empty primary falls back", map[string]string{"GMP_INSTANCE_NAME": "", "GMP_INSTANCE": "alias-name"}, "alias-name", "0.0.0.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, _ := mustLoad(t, tc.env, "")
			if cfg.InstanceName != tc.instance || cfg.Host != tc.host {
				t.Errorf("InstanceName %q host %q, want %q %q", cfg.InstanceName, cfg.Host, tc.instance, tc.host)
			}
		})
	}
}

func TestConfigFileArgumentWinsOverVariable(t *testing.T) {
	t.Parallel()
	fromEnv := writeFile(t, "[mail_proxy]\nport = 1111\n")
	fromFlag := writeFile(t, "[mail_proxy]\nport = 2222\n")
	cfg, _ := mustLoad(t, map[string]string{"GMP_CONFIG_FILE": fromEnv}, fromFlag)
	if cfg.Port != 2222 || cfg.ConfigFile != fromFlag {
		t.Errorf("port %d file %q, want 2222 from %q", cfg.Port, cfg.ConfigFile, fromFlag)
	}
}

func TestMissingConfigFileIsAnError(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "nope.ini")
	_, _, err := Load(envOf(map[string]string{"GMP_CONFIG": missing}), "")
	if err == nil || !strings.Contains(err.Error(), "nope.ini") {
		t.Fatalf("want an error naming the file, got %v", err)
	}
}

const legacyINI = `; the original's layout
# both comment styles
[server]
name = legacy-name
host = 127.0.0.5
port = 9100
api_token = "tok-from-file"
db_path = /srv/server.db

[storage]
db_path = /srv/storage.db

[scheduler]
start_active = no
send_loop_interval = 0.25
batch_size_per_account = 7

[delivery]
test_mode = yes
default_priority = low
delivery_report_retention_seconds = 3600

[client]
client_sync_url = http://127.0.0.1:9999/sync
client_sync_user = u
client_sync_password = p#ss;word
client_sync_token = t

[retry]
max_retries = 9
retry_delays = [10, 20, 30]

[cache]
memory_max_mb = 11
memory_ttl_seconds = 12
disk_dir = /var/cache/gmp
disk_max_mb = 13
disk_ttl_seconds = 14
disk_threshold_kb = 15

[logging]
level = warning
delivery_activity = 1
`

func TestConfigFileLegacyKeys(t *testing.T) {
	t.Parallel()
	p := writeFile(t, legacyINI)
	cfg, warnings := mustLoad(t, nil, p)
	got := map[string]any{
		"InstanceName": cfg.InstanceName, "Host": cfg.Host, "Port": cfg.Port, "APIToken": cfg.APIToken,
		"DBPath": cfg.DBPath, "SchedulerActive": cfg.SchedulerActive, "SendLoopInterval": cfg.SendLoopInterval,
		"BatchSizePerAccount": cfg.BatchSizePerAccount, "TestMode": cfg.TestMode, "DefaultPriority": cfg.DefaultPriority,
		"ReportRetention": cfg.ReportRetention, "ClientSyncURL": cfg.ClientSyncURL, "ClientSyncUser": cfg.ClientSyncUser,
		"ClientSyncPassword": cfg.ClientSyncPassword, "ClientSyncToken": cfg.ClientSyncToken,
		"MaxRetries": cfg.MaxRetries, "RetryDelays": cfg.RetryDelays,
		"CacheMemoryMaxMB": cfg.CacheMemoryMaxMB, "CacheMemoryTTL": cfg.CacheMemoryTTL, "CacheDiskDir": cfg.CacheDiskDir,
		"CacheDiskMaxMB": cfg.CacheDiskMaxMB, "CacheDiskTTL": cfg.CacheDiskTTL, "CacheDiskThresholdKB": cfg.CacheDiskThresholdKB,
		"LogLevel": cfg.LogLevel, "LogDeliveryActivity": cfg.LogDeliveryActivity,
	}
	want := map[string]any{
		"InstanceName": "legacy-name", "Host": "127.0.0.5", "Port": 9100, "APIToken": "tok-from-file",
		"DBPath": "/srv/storage.db", "SchedulerActive": false, "SendLoopInterval": sec(0.25),
		"BatchSizePerAccount": 7, "TestMode": true, "DefaultPriority": "low",
		"ReportRetention": sec(3600), "ClientSyncURL": "http://127.0.0.1:9999/sync", "ClientSyncUser": "u",
		"ClientSyncPassword": "p#ss;word", "ClientSyncToken": "t",
		"MaxRetries": 9, "RetryDelays": []int{10, 20, 30},
		"CacheMemoryMaxMB": 11.0, "CacheMemoryTTL": sec(12), "CacheDiskDir": "/var/cache/gmp",
		"CacheDiskMaxMB": 13.0, "CacheDiskTTL": sec(14), "CacheDiskThresholdKB": 15,
		"LogLevel": "warning", "LogDeliveryActivity": true,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("legacy keys (-want +got):\n%s", diff)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("legacy file does not validate: %v", err)
	}
	if cfg.DefaultPriorityValue() != 3 {
		t.Errorf("priority low = %d, want 3", cfg.DefaultPriorityValue())
	}
	// [storage] db_path after [server] db_path: the later line wins, with a warning.
	if len(warnings) != 1 || !strings.Contains(warnings[0], "[storage] db_path") {
		t.Errorf("warnings = %q, want one about db_path set twice", warnings)
	}
}

func TestConfigFileMainSectionAndPrecedence(t *testing.T) {
	t.Parallel()
	p := writeFile(t, `
[mail_proxy]
port = 9200
max_sends = 4
log_format = json
retry_delays = 5,10
bounce_imap_ssl = true
unknown_thing = 1
encryption_key = not-from-files

[server]
port = 9300
host = 10.0.0.1

[nonsense]
a = 1
b = 2
`)
	env := map[string]string{"GMP_MAX_SENDS": "6", "GMP_LOG_FORMAT": "", "GMP_HOST": "127.0.0.7"}
	cfg, warnings := mustLoad(t, env, p)
	if cfg.Port != 9200 {
		t.Errorf("port %d: [mail_proxy] must win over [server]", cfg.Port)
	}
	if cfg.MaxSends != 6 {
		t.Errorf("max sends %d: the environment must win over the file", cfg.MaxSends)
	}
	if cfg.LogFormat != "json" {
		t.Errorf("log format %q: an empty variable must not hide the file's value", cfg.LogFormat)
	}
	if cfg.Host != "127.0.0.7" {
		t.Errorf("host %q: the environment must win over a legacy key", cfg.Host)
	}
	if !reflect.DeepEqual(cfg.RetryDelays, []int{5, 10}) {
		t.Errorf("retry delays %v", cfg.RetryDelays)
	}
	if cfg.BounceIMAPPort != 993 {
		t.Errorf("bounce IMAP port %d, want 993 with SSL", cfg.BounceIMAPPort)
	}
	if cfg.EncryptionKey != "" {
		t.Errorf("the encryption key must not be read from the file")
	}
	joined := strings.Join(warnings, "\n")
	for _, want := range []string{"unknown key [mail_proxy] unknown_thing, line 8", "[mail_proxy] encryption_key", "[server] port, line 12 ignored", "unknown section [nonsense]"} {
		if !strings.Contains(joined, want) {
			t.Errorf("warnings lack %q:\n%s", want, joined)
		}
	}
	if strings.Count(joined, "nonsense") != 1 {
		t.Errorf("an unknown section must warn once:\n%s", joined)
	}
}

func TestBounceIMAPPortExplicit(t *testing.T) {
	t.Parallel()
	cfg, _ := mustLoad(t, map[string]string{"GMP_BOUNCE_IMAP_SSL": "yes", "GMP_BOUNCE_IMAP_PORT": "1993"}, "")
	if cfg.BounceIMAPPort != 1993 {
		t.Errorf("explicit port overridden: %d", cfg.BounceIMAPPort)
	}
}

func TestINISyntaxErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, text, want string }{
		{"key before section", "port = 1\n", "line 1: key before any [section]"},
		{"no separator", "[mail_proxy]\njust words\n", "line 2: expected"},
		{"unclosed header", "[mail_proxy\n", "line 1: section header"},
		{"empty header", "[ ]\n", "line 1: empty section"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := Load(envOf(nil), writeFile(t, tc.text))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("want error containing %q, got %v", tc.want, err)
			}
		})
	}
}

func TestINIDialect(t *testing.T) {
	t.Parallel()
	entries, err := parseINI(strings.NewReader("\ufeff[Mail_Proxy]\n  Host : 'h' \n\tport=1\n# c\n; c\nx = \"a = b\"\ny =\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []iniEntry{
		{"mail_proxy", "host", "h", 2}, {"mail_proxy", "port", "1", 3}, {"mail_proxy", "x", "a = b", 6}, {"mail_proxy", "y", "", 7},
	}
	if diff := cmp.Diff(want, entries, cmp.AllowUnexported(iniEntry{})); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
}

func FuzzParseINI(f *testing.F) {
	f.Add(legacyINI)
	f.Add("[a]\nb=c\n")
	f.Add("[\n=\n")
	f.Fuzz(func(t *testing.T, text string) {
		entries, err := parseINI(strings.NewReader(text))
		if err != nil {
			return
		}
		for _, e := range entries {
			if e.section == "" || e.key == "" || e.line < 1 {
				t.Fatalf("bad entry %+v", e)
			}
		}
		values, _ := fileValues(entries, Variables())
		for name := range values {
			if !strings.HasPrefix(name, "GMP_") {
				t.Fatalf("file set %s", name)
			}
		}
	})
}
