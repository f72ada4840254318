package cli

import (
	"fmt"
	"runtime/debug"
	"time"

	"github.com/mailproxy/mailproxy/pkg/client"
)

// Stamped at build time (make build, the Dockerfile):
//
//	-ldflags "-X github.com/mailproxy/mailproxy/internal/cli.version=v1.2.3 -X github.com/mailproxy/mailproxy/internal/cli.commit=<sha>"
//
// Unstamped builds fall back to the module version and the VCS revision Go records.
var (
	version string
	commit  string
)

// buildCommit is the stamped commit, else the VCS revision of the build, else "unknown".
func buildCommit() string {
	if commit != "" {
		return commit
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

type versionCmd struct{}

func (versionCmd) Run(e *env) error {
	if e.flags.JSON {
		return writeJSON(e.stdout, map[string]string{"version": buildVersion(), "commit": buildCommit()})
	}
	_, err := fmt.Fprintf(e.stdout, "mail-proxy %s (commit %s)\n", buildVersion(), buildCommit())
	return err
}

// healthTimeout bounds the health probe (a container HEALTHCHECK runs it).
const healthTimeout = 5 * time.Second

type healthCmd struct{}

// Run asks --url's /health (no token needed): exit 0 when it answers ok, 3 when unreachable.
func (healthCmd) Run(e *env) error {
	a, err := e.api(client.WithTimeout(healthTimeout))
	if err != nil {
		return err
	}
	h, err := a.Health(e.ctx)
	if err != nil {
		return err
	}
	if e.flags.JSON {
		return writeJSON(e.stdout, h)
	}
	_, err = fmt.Fprintf(e.stdout, "%s: healthy\n", a.BaseURL())
	return err
}
