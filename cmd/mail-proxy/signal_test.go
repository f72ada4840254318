package main

import (
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/internal/testsmtp"
)

// TestSecondSignalExitsAtOnce starts serve with a send stuck in DATA and a long drain timeout.
// The first SIGINT starts the graceful stop (the API stops listening) and the stop waits for the
// send; a second SIGINT ends the process by the signal instead of a clean exit.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	t.Parallel()
	srv := newSMTP(t, testsmtp.Options{}, testsmtp.Stall(testsmtp.StageData))
	p := startProxy(t, map[string]string{"GMP_DB_PATH": t.TempDir() + "/mail.db", "GMP_SHUTDOWN_TIMEOUT": "600"})
	addAccount(t, p, "acc", srv)
	if code := p.call("POST", "/commands/add-messages", map[string]any{"messages": []any{msg("s1", "acc", "rcpt@example.com")}}, nil); code != 200 {
		t.Fatalf("add-messages: %d", code)
	}
	waitFor(t, 60*time.Second, "the send to reach DATA", func() bool { return srv.Commands("DATA") >= 1 })

	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the API to stop listening after the first signal", func() bool {
		_, err := p.try("GET", "/health", nil, nil)
		return err != nil
	})
	select {
	case <-p.exited:
		t.Fatalf("serve exited after one signal although a send was in flight:\n%s", p.logs())
	default:
	}

	// The second signal; repeated in case one raced the restoration of the default action.
	waitFor(t, 30*time.Second, "serve to end after the second signal", func() bool {
		_ = p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.exited:
			return true
		case <-time.After(100 * time.Millisecond):
			return false
		}
	})
	ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGINT {
		t.Fatalf("serve ended with %v, want killed by SIGINT:\n%s", p.cmd.ProcessState, p.logs())
	}
}
