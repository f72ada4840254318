package cli

import (
	"context"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
)

// asMainEnv makes the test binary act as mail-proxy (see TestMain), so the
// bench suite can run it as its service subprocess.
const asMainEnv = "MAILPROXY_CLI_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMainEnv) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		context.AfterFunc(ctx, stop)
		code := Main(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// TestBenchSuiteTiny runs the whole suite at its smallest sizes against
// subprocess services (this test binary acting as mail-proxy) and checks the
// table: every scenario once, in the order, each with a figure. The
// suite fails when a message does not arrive, so exit 0 means every queued
// message reached the sink and every delivery report the receiver.
func TestBenchSuiteTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("starts eleven services")
	}
	t.Setenv(asMainEnv, "1")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"bench", "suite", "--tiny", "--proxy-bin", exe, "--timeout", "4m"}
	engines := map[string][]string{"SQLite": args}
	if dsn := os.Getenv("MAILPROXY_TEST_PG_DSN"); dsn != "" {
		engines["PostgreSQL"] = append(args, "--postgres", dsn, "--only", "drain")
	}
	for engine, args := range engines {
		t.Run(engine, func(t *testing.T) {
			r := run(t, nil, args...)
			if r.code != ExitOK {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
			}
			lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
			if !strings.Contains(lines[0], engine+", tiny mode") {
				t.Errorf("title %q does not name %s, tiny mode", lines[0], engine)
			}
			var rows []string
			for _, l := range lines[1:] {
				if strings.HasPrefix(l, "| ") && !strings.HasPrefix(l, "| scenario") {
					rows = append(rows, l)
				}
			}
			want := []string{"single-message requests, 16 clients", "single-message requests, 64 clients",
				"in batches of 100, 4 clients", "already stored", "drain of 100 queued messages",
				"enqueue and delivery together", "proxy CPU per delivered message", "RSS with queued / stored",
				"database bytes per stored message", "one message at a time"}
			if engine == "PostgreSQL" {
				want = []string{"drain of", "proxy CPU", "database bytes"}
			}
			if len(rows) != len(want) {
				t.Fatalf("%d rows, want %d:\n%s", len(rows), len(want), r.stdout)
			}
			for i, row := range rows {
				cells := strings.Split(strings.Trim(row, "| "), " | ")
				if len(cells) != 5 {
					t.Errorf("row %d has %d cells, want 5: %s", i, len(cells), row)
					continue
				}
				if !strings.Contains(cells[0], want[i]) {
					t.Errorf("row %d is %q, want %q", i, cells[0], want[i])
				}
				if strings.TrimSpace(cells[3]) == "" || strings.Contains(cells[3], "not run") {
					t.Errorf("row %q has no figure: %q", cells[0], cells[3])
				}
			}
			if engine == "SQLite" && (!strings.Contains(r.stdout, "delivered") || !strings.Contains(r.stdout, "queued")) {
				t.Errorf("size row lacks the delivered or queued figure:\n%s", r.stdout)
			}
		})
	}
}
