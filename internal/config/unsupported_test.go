package config

import (
	"strings"
	"testing"
)

// TestUnsupportedSettingsAreRefused checks that a setting whose feature is missing fails
// validation with one error naming it and saying why, while its default passes.
func TestUnsupportedSettingsAreRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env     map[string]string
		refused string // "" when the configuration must validate
		why     string
	}{
		// Bounce processing is implemented: enabling it needs only a mailbox.
		{map[string]string{"GMP_BOUNCE_ENABLED": "true"}, "GMP_BOUNCE_IMAP_HOST", "required when GMP_BOUNCE_ENABLED"},
		{map[string]string{"GMP_BOUNCE_ENABLED": "yes", "GMP_BOUNCE_IMAP_HOST": "127.0.0.1"}, "", ""},
		{map[string]string{"GMP_BOUNCE_ENABLED": "false"}, "", ""},
		{map[string]string{"GMP_BOUNCE_IMAP_HOST": "127.0.0.1"}, "", ""},
		{map[string]string{"GMP_PEC_ACCEPTANCE_TIMEOUT": "600"}, "GMP_PEC_ACCEPTANCE_TIMEOUT", "no effect"},
		{map[string]string{"GMP_PEC_ACCEPTANCE_TIMEOUT": "1800"}, "", ""},
	} {
		t.Run(strings.ReplaceAll(mapString(tc.env), "/", "_"), func(t *testing.T) {
			t.Parallel()
			cfg, _ := mustLoad(t, tc.env, "")
			err := cfg.Validate()
			if tc.refused == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("%v validated", tc.env)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, tc.refused+": ") || !strings.Contains(msg, tc.why) || strings.Contains(msg, "\n") {
				t.Errorf("want one error naming %s (%q), got %q", tc.refused, tc.why, msg)
			}
		})
	}
}

func mapString(m map[string]string) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ",")
}
