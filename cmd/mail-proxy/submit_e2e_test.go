package main

import (
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mailproxy/mailproxy/internal/testsmtp"
)

var submissionRE = regexp.MustCompile(`smtp submission listening.*addr=([0-9.]+:[0-9]+)`)

// submissionAddr is the SMTP submission address the process logged.
func (p *proc) submissionAddr() string {
	p.t.Helper()
	m := submissionRE.FindStringSubmatch(p.logs())
	if m == nil {
		p.t.Fatalf("no submission listener in the log:\n%s", p.logs())
	}
	return m[1]
}

// A message answered 250 over SMTP is on disk: SIGKILL in the middle of
// 8 concurrent submission streams loses none of them, and after the
// restart every one is delivered.
func TestSubmittedMessagesSurviveKill9(t *testing.T) {
	t.Parallel()
	up := newSMTP(t, testsmtp.Options{})
	db := filepath.Join(t.TempDir(), "mail.db")
	env := map[string]string{"GMP_DB_PATH": db, "GMP_TEST_MODE": "true", "GMP_SMTP_LISTEN": "127.0.0.1:0"}
	p := startProxy(t, env)
	addAccount(t, p, "acc", up)
	addr := p.submissionAddr()

	var (
		mu    sync.Mutex
		acked []string
		count atomic.Int64
		wg    sync.WaitGroup
	)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := smtp.Dial(addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			if err := c.Auth(sasl.NewPlainClient("", "default/acc", adminToken)); err != nil {
				t.Error(err)
				return
			}
			for i := range 2000 { // bounded; the kill ends it much earlier
				id := fmt.Sprintf("s%d-%d", w, i)
				if c.Mail("app@example.com", nil) != nil || c.Rcpt("rcpt@example.com", nil) != nil {
					return // the process is gone
				}
				wc, err := c.Data()
				if err != nil {
					return
				}
				_, _ = io.WriteString(wc, "From: app@example.com\r\nTo: rcpt@example.com\r\nX-Mail-Proxy-Id: "+id+
					"\r\nSubject: kill\r\n\r\nbody of "+id+"\r\n")
				resp, err := wc.CloseWithResponse()
				if err != nil {
					return
				}
				if resp.StatusText == "2.0.0 queued as "+id {
					mu.Lock()
					acked = append(acked, id)
					mu.Unlock()
					count.Add(1)
				}
			}
		}()
	}
	waitFor(t, 60*time.Second, "300 accepted submissions", func() bool { return count.Load() >= 300 })
	p.kill() // right after the latest 250s
	wg.Wait()

	p2 := startProxy(t, env)
	mu.Lock()
	defer mu.Unlock()
	assertAllStored(t, p2, acked, "accepted submissions")
	p2.call("POST", "/commands/run-now", nil, nil)
	waitFor(t, 60*time.Second, "delivery of every accepted submission", func() bool {
		got := receivedIDs(up)
		for _, id := range acked {
			if got[id] == 0 {
				return false
			}
		}
		return true
	})
	for _, m := range up.Messages() {
		id := headerValue(m.Data, "X-Genro-Mail-ID")
		if want := "body of " + id + "\r\n"; !strings.HasSuffix(string(m.Data), want) {
			t.Fatalf("%s relayed as %q", id, m.Data)
		}
	}
	t.Logf("all %d accepted submissions survived kill -9 and were delivered", len(acked))
}
