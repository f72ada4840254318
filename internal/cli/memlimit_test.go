package cli

import (
	"io"
	"log/slog"
	"runtime/debug"
	"testing"

	"github.com/mailproxy/mailproxy/internal/config"
)

// Not parallel: the memory limit is the process's.
func TestApplyMemoryLimit(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		name      string
		limitMB   float64
		gomemlim  string
		wantBytes int64 // 0: left as it was
	}{
		{"default applies", 256, "", 256 << 20},
		{"zero turns it off", 0, "", 0},
		{"GOMEMLIMIT wins", 256, "1GiB", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := debug.SetMemoryLimit(-1)
			getenv := func(k string) string {
				if k == "GOMEMLIMIT" {
					return tc.gomemlim
				}
				return ""
			}
			restore := applyMemoryLimit(config.Config{MemoryLimitMB: tc.limitMB}, getenv, log)
			want := before
			if tc.wantBytes != 0 {
				want = tc.wantBytes
			}
			if got := debug.SetMemoryLimit(-1); got != want {
				t.Errorf("limit while serving %d, want %d", got, want)
			}
			restore()
			if got := debug.SetMemoryLimit(-1); got != before {
				t.Errorf("limit after serve %d, want the previous %d", got, before)
			}
		})
	}
}
