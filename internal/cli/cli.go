// Package cli is the mail-proxy command line: the kong command tree behind
// cmd/mail-proxy, testable through Main with injected arguments, environment
// and output streams.
//
// How a command runs:
//  1. kong parses the arguments; a usage error prints one line and exits 2.
//  2. The configuration is loaded (config.Load: environment, then the
//     --config/GMP_CONFIG_FILE file, then defaults); global and command flags
//     go on top.
//  3. Local commands (serve, token, migrate, gen-key, encrypt-secrets,
//     rotate-key, config, version) work on
//     this process and the store; admin commands call a running instance
//     through pkg/client at --url with --token.
//  4. The error, if any, becomes one line on stderr and an exit code:
//     1 failed (with the HTTP status and detail), 2 usage, 3 unreachable.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/mailproxy/mailproxy/internal/config"
	"github.com/mailproxy/mailproxy/pkg/client"
)

// Exit codes of mail-proxy (config-metrics-cli.md §5).
const (
	ExitOK          = 0
	ExitFailed      = 1
	ExitUsage       = 2
	ExitUnreachable = 3
)

// globals are the flags every command accepts. Environment fallbacks are applied
// from the loaded configuration rather than by kong, so Main's getenv is the only
// source of environment variables.
type globals struct {
	URL    string `help:"Service URL for admin commands (env GMP_URL, default http://127.0.0.1:8000)." placeholder:"URL"`
	Token  string `help:"Admin token or tenant API key (env GMP_API_TOKEN)." placeholder:"TOKEN"`
	Tenant string `help:"Tenant id for tenant-scoped commands (env GMP_TENANT)." placeholder:"ID"`
	JSON   bool   `help:"Print machine-readable JSON."`
	Config string `help:"INI config file (env GMP_CONFIG_FILE or GMP_CONFIG)." placeholder:"FILE"`
}

type root struct {
	globals

	Serve     serveCmd   `cmd:"" help:"Run the mail proxy service."`
	Version   versionCmd `cmd:"" help:"Print the version and commit."`
	Health    healthCmd  `cmd:"" help:"Exit 0 when the instance at --url answers /health (container health checks)."`
	ConfigCmd configCmd  `cmd:"" name:"config" help:"Print every configuration variable with its value, default and meaning."`
	GenKey    genKeyCmd  `cmd:"" name:"gen-key" help:"Print a new encryption key (base64 of 32 random bytes)."`
	TokenCmd  tokenCmd   `cmd:"" name:"token" help:"Show the stored admin token (local, reads the store)."`
	Migrate   migrateCmd `cmd:"" help:"Create or upgrade the store schema."`
	secretCmds
	Status   statusCmd       `cmd:"" help:"Show whether the instance runs its dispatcher."`
	Stats    statsCmd        `cmd:"" help:"Show message counts per tenant."`
	RunNow   runNowCmd       `cmd:"" name:"run-now" help:"Wake the dispatcher and report loop now."`
	Suspend  suspendCmd      `cmd:"" help:"Suspend sending for the tenant (or one batch)."`
	Activate activateCmd     `cmd:"" help:"Resume sending for the tenant (or one batch)."`
	Tenants  tenantsCmd      `cmd:"" help:"Manage tenants."`
	Accounts accountsCmd     `cmd:"" help:"Manage SMTP accounts."`
	Messages messagesCmd     `cmd:"" help:"List, show, delete and clean up messages."`
	CmdLog   commandLogCmd   `cmd:"" name:"command-log" help:"List recorded API commands."`
	Send     sendCmd         `cmd:"" help:"Submit one message."`
	Sink     sinkCmd         `cmd:"" help:"Run a local SMTP sink for tests: counts or stores messages, injects faults, reports over HTTP."`
	Suppress suppressionsCmd `cmd:"" name:"suppressions" help:"List, add and remove suppressed addresses (no mail is sent to them)."`
	DKIM     dkimCmd         `cmd:"" name:"dkim" help:"DKIM keys: generate a key and its DNS record."`
	Bench    benchCmds       `cmd:"" help:"Load-test a running instance (bench --account ...), or run the whole performance suite (bench suite)."`
	Complete completionCmd   `cmd:"" name:"completion" help:"Print the shell completion script for bash, zsh or fish."`
	Diagnose diagnoseCmd     `cmd:"" help:"Check a running instance: queue, loops, report backlog, every account's SMTP login; exit 1 on any problem."`
	TestSend testSendCmd     `cmd:"" name:"test-send" help:"Send one message through an account now (outside the queue) and print the SMTP dialogue."`
}

// env is what every command's Run receives: the process-level inputs of Main.
type env struct {
	ctx    context.Context
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
	flags  *globals
	// terminal reports whether a writer is a terminal (progress bars); nil means isTerminal.
	terminal func(io.Writer) bool
	// stdin is what send --eml - reads; nil means os.Stdin.
	stdin io.Reader
}

// exitError carries a specific exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, args...)}
}

// Main runs mail-proxy with args (without the program name) and returns the exit code.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	var (
		cli      root
		exited   bool
		exitCode int
	)
	parser, err := kong.New(&cli,
		kong.Name("mail-proxy"),
		kong.Description("mail-proxy: an email delivery proxy with a REST API."),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { exited, exitCode = true, code }),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
	)
	if err != nil {
		fmt.Fprintf(stderr, "mail-proxy: internal error: %v\n", err)
		return ExitFailed
	}
	e := &env{ctx: ctx, getenv: getenv, stdout: stdout, stderr: stderr, flags: &cli.globals}
	if line := getenv("COMP_LINE"); line != "" { // the shell asks for completions
		return completeLine(parser, line, getenv("COMP_POINT"), e)
	}
	kctx, err := parser.Parse(args)
	if exited { // --help printed; kong asked to exit
		return exitCode
	}
	if err != nil {
		fmt.Fprintf(stderr, "mail-proxy: %v (see mail-proxy --help)\n", err)
		return ExitUsage
	}
	if err := kctx.Run(e); err != nil {
		return report(stderr, err)
	}
	return ExitOK
}

// report prints err as one line and returns its exit code.
func report(stderr io.Writer, err error) int {
	code := ExitFailed
	var ee *exitError
	var apiErr *client.APIError
	switch {
	case errors.As(err, &ee):
		code = ee.code
	case errors.Is(err, client.ErrUnreachable):
		code = ExitUnreachable
	}
	msg := err.Error()
	if errors.As(err, &apiErr) {
		msg = fmt.Sprintf("HTTP %d: %s", apiErr.Status, client.DetailText(apiErr.Detail))
		if h := hint(apiErr); h != "" {
			msg += " (hint: " + h + ")"
		}
	}
	fmt.Fprintf(stderr, "mail-proxy: %s\n", strings.ReplaceAll(msg, "\n", "; "))
	return code
}

// hint is what a user most likely has to change after an API error, or "".
func hint(e *client.APIError) string {
	text := client.DetailText(e.Detail)
	switch {
	case e.Status == 401:
		return "give the admin token or the tenant's API key with --token or GMP_API_TOKEN; `mail-proxy token` shows the stored admin token"
	case e.Status == 403:
		return "this needs the admin token (--token or GMP_API_TOKEN), not a tenant key"
	case e.Status == 422 && strings.Contains(text, "tenant_id"):
		return "name the tenant with --tenant or GMP_TENANT"
	case (e.Status == 400 || e.Status == 404) && strings.Contains(strings.ToLower(text), "tenant not found"):
		return "check --tenant or GMP_TENANT; `mail-proxy tenants list` shows the tenants"
	}
	return ""
}

// loadConfig loads the configuration with the global --config flag and returns
// it with the file's warnings. It does not validate: serve does, after its flags.
func (e *env) loadConfig() (config.Config, []string, error) {
	cfg, warnings, err := config.Load(e.getenv, e.flags.Config)
	if err != nil {
		return config.Config{}, nil, err
	}
	return cfg, warnings, nil
}

// buildVersion is the stamped version, else the module version, else the VCS revision of a development build.
func buildVersion() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := info.Main.Version
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "-dirty"
			}
		}
	}
	if (v == "" || v == "(devel)") && rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		return "devel-" + rev + modified
	}
	if v == "" {
		return "(devel)"
	}
	return v
}
