package sqlite

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
)

func TestOpenExclusiveLock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "serve.db")
	first, err := Open(ctx, path, Options{Exclusive: true})
	if err != nil {
		t.Fatalf("first exclusive Open: %v", err)
	}
	if _, err := Open(ctx, path, Options{Exclusive: true}); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second exclusive Open = %v, want ErrLocked", err)
	}

	// A local CLI command opens alongside and can write.
	cli, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatalf("non-exclusive Open beside serve: %v", err)
	}
	if _, err := cli.UpsertTenant(ctx, store.Tenant{ID: "from-cli", Active: true}); err != nil {
		t.Fatalf("UpsertTenant from the CLI store: %v", err)
	}
	if err := cli.Close(); err != nil {
		t.Fatalf("close CLI store: %v", err)
	}
	if _, err := first.GetTenant(ctx, "from-cli"); err != nil {
		t.Fatalf("serve store does not see the CLI's tenant: %v", err)
	}

	if err := first.Close(); err != nil {
		t.Fatalf("close first: %v", err)
	}
	again, err := Open(ctx, path, Options{Exclusive: true})
	if err != nil {
		t.Fatalf("exclusive Open after the holder closed: %v", err)
	}
	if err := again.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

func TestOpenConfiguresDurableWAL(t *testing.T) {
	t.Parallel()
	s, _ := openTest(t, Options{})
	ctx := context.Background()
	for _, c := range []struct{ pragma, want string }{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"foreign_keys", "1"},
		{"busy_timeout", fmt.Sprint(busyTimeoutMS)},
	} {
		var got string
		if err := s.wconn.QueryRowContext(ctx, "PRAGMA "+c.pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", c.pragma, err)
		}
		if !strings.EqualFold(got, c.want) {
			t.Errorf("writer PRAGMA %s = %q, want %q", c.pragma, got, c.want)
		}
	}
}

func TestReopenKeepsDataAndSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "reopen.db")
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	seed(t, s)
	now := time.UnixMilli(1_700_000_000_000)
	res, err := s.EnqueueBatch(ctx, []store.NewMessage{msg("kept")}, now)
	if err != nil {
		t.Fatalf("EnqueueBatch: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	for i := range 2 { // migrations must be a no-op on every reopen
		s, err = Open(ctx, path, Options{})
		if err != nil {
			t.Fatalf("reopen %d: %v", i, err)
		}
		recs, err := s.ListMessages(ctx, store.MessageFilter{TenantID: "t1"}, now)
		if err != nil {
			t.Fatalf("ListMessages after reopen: %v", err)
		}
		if len(recs) != 1 || recs[0].PK != res[0].PK {
			t.Fatalf("after reopen %d: messages %+v, want the one enqueued (pk %s)", i, recs, res[0].PK)
		}
		var versions int
		if err := s.reader.QueryRowContext(ctx, "SELECT count(*) FROM goose_db_version WHERE version_id > 0").Scan(&versions); err != nil {
			t.Fatalf("read goose versions: %v", err)
		}
		files, _ := fs.Glob(migrationFiles, "migrations/*.sql")
		if versions != len(files) {
			t.Errorf("goose_db_version holds %d applied migrations, want %d (each once)", versions, len(files))
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
}

func TestOpenRejectsBadPath(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"", "a?b.db"} {
		if _, err := Open(context.Background(), path, Options{}); err == nil {
			t.Errorf("Open(%q) succeeded, want an error", path)
		}
	}
}

// childEnv names the database a re-executed test binary enqueues into.
const childEnv = "MAILPROXY_SQLITE_KILL_CHILD_DB"

// TestKillNineKeepsAcknowledged runs a child process that enqueues and
// prints each acknowledged id, kills it with SIGKILL mid-stream, and checks
// every acknowledged message is in the file.
func TestKillNineKeepsAcknowledged(t *testing.T) {
	if path := os.Getenv(childEnv); path != "" {
		killChild(path)
		return
	}
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kill.db")
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	seed(t, s)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestKillNineKeepsAcknowledged$")
	cmd.Env = append(os.Environ(), childEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	var acked []string
	sc := bufio.NewScanner(out)
	for sc.Scan() && len(acked) < 300 {
		if id, ok := strings.CutPrefix(sc.Text(), "acked "); ok {
			acked = append(acked, id)
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatalf("kill child: %v", err)
	}
	_ = cmd.Wait()
	if len(acked) < 300 {
		t.Fatalf("child acknowledged only %d messages before exiting", len(acked))
	}

	s, err = Open(ctx, path, Options{})
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer s.Close()
	recs, err := s.ListMessages(ctx, store.MessageFilter{TenantID: "t1"}, time.Now())
	if err != nil {
		t.Fatalf("ListMessages: %v", err)
	}
	have := map[string]bool{}
	for _, r := range recs {
		have[r.ID] = true
	}
	for _, id := range acked {
		if !have[id] {
			t.Errorf("acknowledged message %s is missing after kill -9", id)
		}
	}
}

// killChild enqueues from several goroutines until killed (bounded).
func killChild(path string) {
	ctx := context.Background()
	s, err := Open(ctx, path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}
	lines := make(chan string, 64)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			defer func() {
				if p := recover(); p != nil {
					fmt.Fprintln(os.Stderr, "child panic:", p)
					os.Exit(2)
				}
			}()
			for i := range 100_000 {
				id := fmt.Sprintf("g%d-%d", g, i)
				if _, err := s.EnqueueBatch(ctx, []store.NewMessage{msg(id)}, time.Now()); err != nil {
					fmt.Fprintln(os.Stderr, "child enqueue:", err)
					os.Exit(2)
				}
				lines <- "acked " + id
			}
		})
	}
	go func() { wg.Wait(); close(lines) }()
	w := bufio.NewWriter(os.Stdout)
	for line := range lines {
		fmt.Fprintln(w, line)
		if len(lines) == 0 {
			_ = w.Flush()
		}
	}
	_ = w.Flush()
}
