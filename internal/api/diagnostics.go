package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/mailproxy/mailproxy/internal/auth"
	"github.com/mailproxy/mailproxy/internal/delivery"
	"github.com/mailproxy/mailproxy/internal/store"
)

// Diagnostics (mail-proxy diagnose and test-send): admin-only reads of the
// instance's health and one-off SMTP sessions through an account.

// Thresholds above which diagnostics report a problem.
const (
	oldestDueProblem     = 15 * time.Minute
	dispatcherStalled    = 30 * time.Second
	accountCheckTimeout  = 20 * time.Second
	accountChecksAtOnce  = 4
	testSendTimeout      = 60 * time.Second
	defaultTestSendTitle = "mail-proxy test message"
)

// Prober runs a diagnostic SMTP session (delivery.Sender.Probe).
type Prober func(ctx context.Context, acct store.Account, msg *delivery.Message) (delivery.ProbeResult, error)

// DiagnosticsResponse is GET /instance/diagnostics' answer.
type DiagnosticsResponse struct {
	OK        bool             `json:"ok" doc:"true when problems is empty"`
	Problems  []string         `json:"problems" nullable:"false" doc:"one line per problem found"`
	Queue     DiagQueue        `json:"queue"`
	OldestDue *DiagOldestDue   `json:"oldest_due" doc:"the due message waiting longest; null when none is due"`
	Loops     []DiagLoop       `json:"loops" nullable:"false"`
	Reports   []DiagReport     `json:"reports" nullable:"false" doc:"tenants with unreported delivery events"`
	Accounts  []DiagAccount    `json:"accounts" nullable:"false" doc:"connect + EHLO + STARTTLS + AUTH per account (check_accounts=true); nothing is sent"`
	Scheduler DiagSchedulerCfg `json:"scheduler"`
}

// DiagQueue counts unprocessed messages (all tenants).
type DiagQueue struct {
	Pending   int                   `json:"pending" doc:"due now"`
	Deferred  int                   `json:"deferred" doc:"waiting for deferred_ts or a retry"`
	ByAccount []store.AccountCounts `json:"by_account" nullable:"false"`
}

// DiagOldestDue is the due message waiting longest.
type DiagOldestDue struct {
	TenantID       string  `json:"tenant_id"`
	ID             string  `json:"id"`
	AccountID      string  `json:"account_id"`
	DueTS          int64   `json:"due_ts"`
	WaitingSeconds float64 `json:"waiting_seconds"`
}

// DiagLoop is one background loop of this instance.
type DiagLoop struct {
	Name       string   `json:"name" doc:"dispatcher or reports"`
	Running    bool     `json:"running" doc:"the loop is configured to run on this instance"`
	LastRunTS  *float64 `json:"last_run_ts" doc:"Unix seconds of its last iteration; null if none yet"`
	SecondsAgo *float64 `json:"seconds_ago"`
}

// DiagReport is one tenant's delivery-report backlog.
type DiagReport struct {
	TenantID            string `json:"tenant_id"`
	Pending             int    `json:"pending" doc:"unreported events"`
	ConsecutiveFailures int    `json:"consecutive_failures"`
	LastError           string `json:"last_error,omitempty"`
	NextRetryTS         *int64 `json:"next_retry_ts,omitempty"`
}

// DiagAccount is the result of one account's SMTP check.
type DiagAccount struct {
	TenantID      string   `json:"tenant_id"`
	AccountID     string   `json:"account_id"`
	Server        string   `json:"server" doc:"host:port"`
	OK            bool     `json:"ok"`
	TLS           string   `json:"tls" doc:"implicit, starttls or none"`
	Authenticated bool     `json:"authenticated"`
	Error         string   `json:"error,omitempty"`
	Dialogue      []string `json:"dialogue,omitempty" doc:"the SMTP dialogue, credentials masked (only when the check failed)"`
}

// DiagSchedulerCfg says how this instance is configured to work.
type DiagSchedulerCfg struct {
	Active   bool `json:"active" doc:"GMP_SCHEDULER_ACTIVE"`
	TestMode bool `json:"test_mode" doc:"GMP_TEST_MODE"`
}

// TestSendRequest is POST /instance/test-send's body.
type TestSendRequest struct {
	TenantID  string `json:"tenant_id" minLength:"1"`
	AccountID string `json:"account_id" minLength:"1"`
	From      string `json:"from" minLength:"1"`
	To        string `json:"to" minLength:"1"`
	Subject   string `json:"subject,omitempty"`
	Body      string `json:"body,omitempty"`
}

// TestSendResponse is its answer: the session, whether the server accepted the message.
type TestSendResponse struct {
	OK       bool     `json:"ok"`
	Dialogue []string `json:"dialogue" nullable:"false" doc:"the SMTP dialogue, credentials masked"`
	Response string   `json:"response,omitempty" doc:"the server's reply to the end of DATA"`
	Error    string   `json:"error,omitempty"`
	TLS      string   `json:"tls"`
}

func (s *server) diagnosticsRoutes() []*route {
	return []*route{
		{method: http.MethodGet, path: "/instance/diagnostics", id: "instanceDiagnostics", summary: "Queue, loops, report backlog and an SMTP login check per account", tag: tagInstance,
			class: auth.Admin, params: []param{{name: "check_accounts", kind: paramBool, def: true,
				doc: "connect, EHLO, STARTTLS and AUTH on every account (nothing is sent)"}},
			respType: reflect.TypeFor[DiagnosticsResponse](), handle: s.diagnostics},
		{method: http.MethodPost, path: "/instance/test-send", id: "instanceTestSend", summary: "Send one message through an account now, outside the queue, and return the SMTP dialogue", tag: tagInstance,
			class: auth.Admin, body: bodyRequired, reqType: reflect.TypeFor[TestSendRequest](),
			respType: reflect.TypeFor[TestSendResponse](), errors: []int{404}, handle: s.testSend},
	}
}

func (s *server) diagnostics(c *call) (any, error) {
	ctx := c.ctx()
	now := s.now()
	out := DiagnosticsResponse{Problems: []string{}, Loops: []DiagLoop{}, Reports: []DiagReport{}, Accounts: []DiagAccount{},
		Scheduler: DiagSchedulerCfg{Active: s.opts.SchedulerActive, TestMode: s.opts.TestMode}}
	problem := func(format string, args ...any) { out.Problems = append(out.Problems, fmt.Sprintf(format, args...)) }

	ov, err := s.st.Overview(ctx, "", now, now)
	if err != nil {
		return nil, err
	}
	out.Queue.ByAccount = []store.AccountCounts{}
	for _, a := range ov.Counts {
		out.Queue.Pending += a.Pending
		out.Queue.Deferred += a.Deferred
		if a.Pending > 0 || a.Deferred > 0 {
			out.Queue.ByAccount = append(out.Queue.ByAccount, a)
		}
	}
	if m := ov.OldestDue; m != nil {
		due := m.CreatedAt
		if m.DeferredUntil != nil {
			due = *m.DeferredUntil
		}
		wait := max(now.Sub(due), 0)
		out.OldestDue = &DiagOldestDue{TenantID: m.TenantID, ID: m.ID, AccountID: m.AccountID, DueTS: due.Unix(), WaitingSeconds: wait.Seconds()}
		if wait > oldestDueProblem {
			problem("oldest due message %s/%s (account %s) has waited %s", m.TenantID, m.ID, m.AccountID, wait.Round(time.Second))
		}
	}

	s.diagnoseLoops(&out, now, problem)
	if err := s.diagnoseReports(ctx, &out, problem); err != nil {
		return nil, err
	}
	if _, set := c.query["check_accounts"]; !set || c.qBool("check_accounts") {
		if err := s.diagnoseAccounts(ctx, &out, problem); err != nil {
			return nil, err
		}
	}
	out.OK = len(out.Problems) == 0
	return out, nil
}

func (s *server) diagnoseLoops(out *DiagnosticsResponse, now time.Time, problem func(string, ...any)) {
	ran := s.d.Metrics.LoopsLastRun()
	reportsStalled := max(3*s.opts.SyncInterval, time.Minute)
	for _, l := range []struct {
		name    string
		running bool
		stalled time.Duration
	}{
		{"dispatcher", s.opts.SchedulerActive, dispatcherStalled},
		{"reports", s.opts.ReportLoopRuns, reportsStalled},
	} {
		d := DiagLoop{Name: l.name, Running: l.running}
		if t, ok := ran[l.name]; ok {
			ts, ago := float64(t.UnixNano())/1e9, now.Sub(t).Seconds()
			d.LastRunTS, d.SecondsAgo = &ts, &ago
			if l.running && now.Sub(t) > l.stalled {
				problem("%s loop: last ran %s ago (stalled?)", l.name, now.Sub(t).Round(time.Second))
			}
		} else if l.running && l.name == "dispatcher" {
			problem("dispatcher loop: has not run yet")
		}
		out.Loops = append(out.Loops, d)
	}
}

func (s *server) diagnoseReports(ctx context.Context, out *DiagnosticsResponse, problem func(string, ...any)) error {
	tenants, err := s.st.TenantsWithUnreported(ctx)
	if err != nil {
		return err
	}
	for _, id := range tenants {
		n, err := s.st.CountUnreported(ctx, id)
		if err != nil {
			return err
		}
		st, err := s.st.GetSyncState(ctx, id)
		if err != nil {
			return err
		}
		r := DiagReport{TenantID: id, Pending: n, ConsecutiveFailures: st.ConsecutiveFailures, LastError: st.LastError}
		if st.NextRetryAt != nil {
			ts := st.NextRetryAt.Unix()
			r.NextRetryTS = &ts
		}
		if st.ConsecutiveFailures > 0 {
			problem("delivery reports for tenant %s: %d unreported events, %d failed POSTs in a row, last error: %s",
				id, n, st.ConsecutiveFailures, orDash(st.LastError))
		}
		out.Reports = append(out.Reports, r)
	}
	return nil
}

func (s *server) diagnoseAccounts(ctx context.Context, out *DiagnosticsResponse, problem func(string, ...any)) error {
	accounts, err := s.st.ListAccounts(ctx, "")
	if err != nil {
		return err
	}
	if s.d.Probe == nil {
		return nil
	}
	results := make([]DiagAccount, len(accounts))
	var wg sync.WaitGroup
	sem := make(chan struct{}, accountChecksAtOnce)
	for i, a := range accounts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			actx, cancel := context.WithTimeout(ctx, accountCheckTimeout)
			defer cancel()
			res, err := s.d.Probe(actx, a, nil)
			d := DiagAccount{TenantID: a.TenantID, AccountID: a.ID, Server: net.JoinHostPort(a.Host, strconv.Itoa(a.Port)),
				OK: err == nil, TLS: res.TLS, Authenticated: res.Authenticated}
			if err != nil {
				d.Error, d.Dialogue = stepError(err), res.Dialogue
			}
			results[i] = d
		}()
	}
	wg.Wait()
	for _, d := range results {
		if !d.OK {
			problem("account %s/%s (%s): %s", d.TenantID, d.AccountID, d.Server, d.Error)
		}
	}
	out.Accounts = append(out.Accounts, results...)
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (s *server) testSend(c *call) (any, error) {
	var req TestSendRequest
	top, aerr := parseJSONBody(c.body, false)
	if aerr != nil {
		return nil, aerr
	}
	var is issues
	for _, f := range []struct {
		name string
		dst  *string
		req  bool
	}{{"tenant_id", &req.TenantID, true}, {"account_id", &req.AccountID, true}, {"from", &req.From, true},
		{"to", &req.To, true}, {"subject", &req.Subject, false}, {"body", &req.Body, false}} {
		raw, ok := top[f.name]
		if !ok || string(raw) == "null" {
			if f.req {
				is.missing([]any{"body", f.name}, objectInput(top))
			}
			continue
		}
		if err := json.Unmarshal(raw, f.dst); err != nil || (f.req && strings.TrimSpace(*f.dst) == "") {
			is.valueError([]any{"body", f.name}, raw, "must be a non-empty string")
		}
	}
	if !is.empty() {
		return nil, invalid(is.list)
	}
	acct, err := s.st.GetAccount(c.ctx(), req.TenantID, req.AccountID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("account " + req.AccountID + " of tenant " + req.TenantID + " not found")
	} else if err != nil {
		return nil, err
	}
	if req.Subject == "" {
		req.Subject = defaultTestSendTitle
	}
	if req.Body == "" {
		req.Body = "This message was sent by `mail-proxy test-send` through account " + req.AccountID + "."
	}
	pk := uuid.NewString()
	msg, err := delivery.Build(store.Payload{ID: "test-send-" + pk[:8], From: req.From, To: []string{req.To},
		Subject: req.Subject, Body: req.Body}, pk, nil, s.now())
	if err != nil {
		return nil, badRequest("cannot build the message: " + err.Error())
	}
	if s.d.Probe == nil {
		return nil, newError(http.StatusServiceUnavailable, "test-send is not available on this instance")
	}
	ctx, cancel := context.WithTimeout(c.ctx(), testSendTimeout)
	defer cancel()
	res, err := s.d.Probe(ctx, acct, msg)
	out := TestSendResponse{OK: err == nil, Dialogue: res.Dialogue, Response: res.Response, TLS: res.TLS}
	if out.Dialogue == nil {
		out.Dialogue = []string{}
	}
	if err != nil {
		out.Error = stepError(err)
	}
	return out, nil
}

// stepError is an SMTP failure prefixed with the step that failed (AUTH, STARTTLS, RCPT, ...).
func stepError(err error) string {
	msg := err.Error()
	var de *delivery.Error
	if errors.As(err, &de) && de.Command != "" && !strings.HasPrefix(strings.ToLower(msg), strings.ToLower(de.Command)) {
		return de.Command + ": " + msg
	}
	return msg
}
