package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func writeConfigFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "example_config.ini")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

const fullConfig = `
# comment
[server]
host = 127.0.0.2
port = 9090

[mail_service]
url = http://127.0.0.1:8000/   # trailing slash and an inline comment
api_token = secret-token
tenant_id = demo
signing_secret = whsec_AAAA

[test]
recipient_email = you@example.org
sender_email: me@example.com
sender_name = Me Myself
account_id = smtp-main

[database]
path = /tmp/x.db
`

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	full := config{
		ServerHost: "127.0.0.2", ServerPort: 9090, MailServiceURL: "http://127.0.0.1:8000", APIToken: "secret-token",
		TenantID: "demo", SigningSecret: "whsec_AAAA", RecipientEmail: "you@example.org", SenderEmail: "me@example.com",
		SenderName: "Me Myself", AccountID: "smtp-main", DatabasePath: "/tmp/x.db",
	}
	minimal := "[mail_service]\napi_token = t\n[test]\nrecipient_email = r@example.org\naccount_id = a\n"
	defaults := config{
		ServerHost: "127.0.0.1", ServerPort: 8081, MailServiceURL: "http://localhost:8000", APIToken: "t", TenantID: "default",
		RecipientEmail: "r@example.org", SenderEmail: "test@example.com", SenderName: "Example Client Test", AccountID: "a",
		DatabasePath: "example_client.db",
	}
	withEnv := full
	withEnv.MailServiceURL = "http://127.0.0.1:7000"
	withEnv.ServerPort = 0
	withEnv.RecipientEmail = "env@example.org"

	tests := []struct {
		name string
		file string
		env  map[string]string
		want config
	}{
		{"every key from the file", fullConfig, nil, full},
		{"defaults", minimal, nil, defaults},
		{"env overrides", fullConfig, map[string]string{
			"EXAMPLE_MAIL_SERVICE_URL":      "http://127.0.0.1:7000",
			"EXAMPLE_SERVER_PORT":           "0",
			"EXAMPLE_TEST_RECIPIENT_EMAIL":  "env@example.org",
			"EXAMPLE_UNRELATED_KEY":         "ignored",
			"EXAMPLE_MAIL_SERVICE_TENANT_X": "ignored",
		}, withEnv},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := loadConfig(writeConfigFile(t, tc.file), true, envMap(tc.env))
			if err != nil {
				t.Fatalf("loadConfig: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, file string
		env        map[string]string
		wantInErr  []string
	}{
		{"missing account_id", "[mail_service]\napi_token = t\n[test]\nrecipient_email = r@example.org\n", nil,
			[]string{"[test] account_id", "EXAMPLE_TEST_ACCOUNT_ID"}},
		{"all required missing", "[server]\nport = 1\n", nil,
			[]string{"[mail_service] api_token", "[test] recipient_email", "[test] account_id"}},
		{"empty value counts as missing", "[mail_service]\napi_token =\n[test]\nrecipient_email = r@x.org\naccount_id = a\n", nil,
			[]string{"[mail_service] api_token"}},
		{"bad port", fullConfig, map[string]string{"EXAMPLE_SERVER_PORT": "80000"}, []string{"[server] port", "80000"}},
		{"bad url", fullConfig, map[string]string{"EXAMPLE_MAIL_SERVICE_URL": "localhost:8000"}, []string{"[mail_service] url"}},
		{"key outside section", "api_token = t\n", nil, []string{"line 1", "outside any [section]"}},
		{"no separator", "[test]\nrecipient_email\n", nil, []string{"line 2", "key = value"}},
		{"bad section", "[test\n", nil, []string{"line 1", "unterminated"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := loadConfig(writeConfigFile(t, tc.file), true, envMap(tc.env))
			if err == nil {
				t.Fatal("loadConfig succeeded, want an error")
			}
			for _, s := range tc.wantInErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

func TestLoadConfigFileAbsence(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "nope.ini")
	if _, err := loadConfig(missing, true, envMap(nil)); err == nil || !strings.Contains(err.Error(), "nope.ini") {
		t.Errorf("explicit missing file: err = %v, want one naming the file", err)
	}
	// At the default path a missing file means: environment only.
	env := map[string]string{
		"EXAMPLE_MAIL_SERVICE_API_TOKEN": "t", "EXAMPLE_TEST_RECIPIENT_EMAIL": "r@example.org", "EXAMPLE_TEST_ACCOUNT_ID": "a",
	}
	cfg, err := loadConfig(missing, false, envMap(env))
	if err != nil || cfg.APIToken != "t" || cfg.ServerPort != 8081 {
		t.Errorf("env-only config = %+v, %v", cfg, err)
	}
	_, err = loadConfig(missing, false, envMap(nil))
	if !errors.Is(err, errMissingKey) {
		t.Errorf("env-only without required keys: %v, want errMissingKey", err)
	}
}

func TestShippedExampleConfigLoads(t *testing.T) {
	t.Parallel()
	cfg, err := loadConfig("example_config.ini", true, envMap(nil))
	if err != nil {
		t.Fatalf("example_config.ini: %v", err)
	}
	if cfg.ServerPort != 8081 || cfg.MailServiceURL != "http://localhost:8000" || cfg.SigningSecret != "" || cfg.AccountID == "" {
		t.Errorf("example_config.ini = %+v", cfg)
	}
}
