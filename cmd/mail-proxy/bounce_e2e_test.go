package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/internal/testimap"
	"github.com/mailproxy/mailproxy/internal/testsmtp"
)

// counterValue reads one unlabelled counter from /metrics (0 if absent).
func counterValue(t *testing.T, p *proc, name string) float64 {
	t.Helper()
	f := scrape(t, p)[name]
	if f == nil || len(f.Metric) == 0 || f.Metric[0].Counter == nil {
		return 0
	}
	return f.Metric[0].Counter.GetValue()
}

// TestBounceProcessingEndToEnd: a real instance delivers to a real SMTP
// server; DSNs for its messages land in a real IMAP mailbox; the poller
// records bounce events (listed and reported to the client's HTTP
// endpoint), suppresses the hard-bounced recipient only, flags what it
// processed, and a restart reprocesses nothing.
func TestBounceProcessingEndToEnd(t *testing.T) {
	t.Parallel()
	imapSrv := testimap.Start(t)
	smtpSrv := newSMTP(t, testsmtp.Options{})
	var (
		mu      sync.Mutex
		bounces []map[string]any
	)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			DeliveryReport []map[string]any `json:"delivery_report"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		for _, it := range body.DeliveryReport {
			if _, ok := it["bounce_ts"]; ok {
				bounces = append(bounces, it)
			}
		}
		mu.Unlock()
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(receiver.Close)
	reported := func(id string) map[string]any {
		mu.Lock()
		defer mu.Unlock()
		for _, b := range bounces {
			if b["id"] == id {
				return b
			}
		}
		return nil
	}

	env := map[string]string{
		"GMP_DB_PATH":              filepath.Join(t.TempDir(), "mail.db"),
		"GMP_BOUNCE_ENABLED":       "true",
		"GMP_BOUNCE_IMAP_HOST":     imapSrv.Host(),
		"GMP_BOUNCE_IMAP_PORT":     strconv.Itoa(imapSrv.Port()),
		"GMP_BOUNCE_IMAP_USER":     testimap.User,
		"GMP_BOUNCE_IMAP_PASSWORD": testimap.Password,
		"GMP_BOUNCE_POLL_INTERVAL": "0.2",
		"GMP_BOUNCE_RETURN_PATH":   "Bounces <bounces@example.com>",
	}
	p := startProxy(t, env)
	if code := p.call("POST", "/tenant", map[string]any{"id": "shop", "client_base_url": receiver.URL}, nil); code != 200 {
		t.Fatalf("POST /tenant: %d", code)
	}
	if code := p.call("POST", "/account", map[string]any{"id": "acc", "tenant_id": "shop", "host": "127.0.0.1",
		"port": smtpSrv.Port(), "use_tls": false}, nil); code != 200 {
		t.Fatalf("POST /account: %d", code)
	}
	hard, soft := msg("hard-1", "acc", "bob@example.net"), msg("soft-1", "acc", "full@example.net")
	hard["tenant_id"], soft["tenant_id"] = "shop", "shop"
	if code := p.call("POST", "/commands/add-messages", map[string]any{"messages": []any{hard, soft}}, nil); code != 200 {
		t.Fatalf("add-messages: %d", code)
	}
	waitFor(t, 30*time.Second, "both messages delivered", func() bool { return smtpSrv.Count() == 2 })
	msgID := map[string]string{}
	for _, m := range smtpSrv.Messages() {
		msgID[headerValue(m.Data, "X-Genro-Mail-ID")] = headerValue(m.Data, "Message-ID")
		if m.From != "bounces@example.com" {
			t.Errorf("MAIL FROM %q, want the bounce return path", m.From)
		}
	}

	// The hard bounce matches by both ids, the soft one by Message-ID alone.
	imapSrv.Append(testimap.DSN{Recipient: "bob@example.net", Status: "5.1.1", Diagnostic: "550 5.1.1 <bob@example.net>: user unknown",
		MessageID: msgID["hard-1"], MailID: "hard-1"}.Bytes())
	imapSrv.Append(testimap.DSN{Recipient: "full@example.net", Status: "4.2.2", Action: "delayed", Diagnostic: "452 4.2.2 mailbox full",
		MessageID: msgID["soft-1"], FullMessage: true}.Bytes())

	waitFor(t, 30*time.Second, "both bounces reported to the client", func() bool { return reported("hard-1") != nil && reported("soft-1") != nil })
	if b := reported("hard-1"); b["bounce_type"] != "hard" || b["bounce_code"] != "5.1.1" || b["bounce_reason"] != "550 5.1.1 <bob@example.net>: user unknown" {
		t.Errorf("hard bounce item %v", b)
	}
	if b := reported("soft-1"); b["bounce_type"] != "soft" || b["bounce_code"] != "4.2.2" {
		t.Errorf("soft bounce item %v", b)
	}

	var listing struct {
		Messages []struct {
			ID         string `json:"id"`
			BounceType string `json:"bounce_type"`
			BounceCode string `json:"bounce_code"`
			BounceTS   *int64 `json:"bounce_ts"`
			History    []struct {
				EventType string `json:"event_type"`
			} `json:"history"`
		} `json:"messages"`
	}
	p.call("GET", "/messages?tenant_id=shop&include_history=true", nil, &listing)
	bounceEvents := func() map[string]int {
		out := map[string]int{}
		for _, m := range listing.Messages {
			for _, h := range m.History {
				if h.EventType == "bounce" {
					out[m.ID]++
				}
			}
		}
		return out
	}
	for _, m := range listing.Messages {
		want := map[string]string{"hard-1": "hard", "soft-1": "soft"}[m.ID]
		if m.BounceType != want || m.BounceTS == nil {
			t.Errorf("GET /messages %s: bounce_type %q ts %v, want %q", m.ID, m.BounceType, m.BounceTS, want)
		}
	}
	if got := bounceEvents(); got["hard-1"] != 1 || got["soft-1"] != 1 {
		t.Errorf("bounce events %v, want one each", got)
	}

	// Only the hard bounce suppresses.
	var sup struct {
		Suppressions []struct{ Address, Source, Reason string } `json:"suppressions"`
	}
	p.call("GET", "/suppressions?tenant_id=shop", nil, &sup)
	if len(sup.Suppressions) != 1 || sup.Suppressions[0].Address != "bob@example.net" || sup.Suppressions[0].Source != "bounce" {
		t.Errorf("suppressions %+v, want bob@example.net from the hard bounce", sup.Suppressions)
	}
	again := msg("hard-2", "acc", "bob@example.net")
	again["tenant_id"] = "shop"
	var rej struct {
		Detail struct {
			Rejected []struct{ Reason string } `json:"rejected"`
		} `json:"detail"`
	}
	if code := p.call("POST", "/commands/add-messages", map[string]any{"messages": []any{again}}, &rej); code != 400 ||
		len(rej.Detail.Rejected) != 1 || rej.Detail.Rejected[0].Reason != "suppressed: bob@example.net" {
		t.Errorf("add-messages to a suppressed address: %d %+v", code, rej)
	}

	// Processed notifications are flagged; the mailbox's other message is
	// left alone and counted unmatched.
	flagged := 0
	for _, flags := range imapSrv.Flags() {
		if slices.ContainsFunc(flags, func(f string) bool { return strings.EqualFold(f, "$MailProxyProcessed") }) {
			flagged++
		}
	}
	if flagged != 2 {
		t.Errorf("%d notifications flagged processed, want 2: %v", flagged, imapSrv.Flags())
	}
	if v := counterValue(t, p, "mailproxy_bounce_processed_total"); v != 2 {
		t.Errorf("processed %v, want 2", v)
	}
	if v := counterValue(t, p, "mailproxy_bounce_matched_total"); v != 2 {
		t.Errorf("matched %v, want 2", v)
	}
	if v := counterValue(t, p, "mailproxy_bounce_unmatched_total"); v != 1 {
		t.Errorf("unmatched %v, want 1 (the mailbox's own message, counted once)", v)
	}

	// After a restart nothing is processed again: a new unmatched DSN shows
	// the poller ran, and the processed count stays 0.
	p.stop()
	p2 := startProxy(t, env)
	imapSrv.Append(testimap.DSN{Recipient: "x@example.net", Status: "5.1.1", Diagnostic: "550 no", MessageID: "<unknown@example.com>"}.Bytes())
	waitFor(t, 30*time.Second, "a poll after the restart", func() bool {
		return counterValue(t, p2, "mailproxy_bounce_unmatched_total") == 2
	})
	if v := counterValue(t, p2, "mailproxy_bounce_processed_total"); v != 0 {
		t.Errorf("processed %v after the restart, want 0", v)
	}
	p2.call("GET", "/messages?tenant_id=shop&include_history=true", nil, &listing)
	if got := bounceEvents(); got["hard-1"] != 1 || got["soft-1"] != 1 {
		t.Errorf("bounce events after the restart %v, want one each", got)
	}
}
