package cli

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mailproxy/mailproxy/pkg/client"
)

// Diagnostics calls log in to SMTP servers: give them more than a plain request.
const diagnosticsTimeout = 90 * time.Second

type diagnoseCmd struct {
	NoAccounts bool `name:"no-accounts" help:"Skip the SMTP login check of every account."`
}

// Run prints the instance's state and one line per problem; any problem fails.
func (c *diagnoseCmd) Run(e *env) error {
	a, err := e.api(client.WithTimeout(diagnosticsTimeout))
	if err != nil {
		return err
	}
	d, err := a.Diagnostics(e.ctx, !c.NoAccounts)
	if err != nil {
		return err
	}
	if e.flags.JSON {
		if err := writeJSON(e.stdout, d); err != nil {
			return err
		}
	} else {
		printDiagnostics(e, d)
	}
	if len(d.Problems) > 0 {
		for _, p := range d.Problems {
			fmt.Fprintf(e.stderr, "problem: %s\n", p)
		}
		return &exitError{code: ExitFailed, err: fmt.Errorf("diagnose: %d problem(s) found", len(d.Problems))}
	}
	return nil
}

func printDiagnostics(e *env, d client.Diagnostics) {
	w := e.stdout
	mode := "active"
	switch {
	case !d.Scheduler.Active:
		mode = "inactive (GMP_SCHEDULER_ACTIVE=false: API only)"
	case d.Scheduler.TestMode:
		mode = "test mode (sends only on run-now)"
	}
	fmt.Fprintf(w, "scheduler: %s\n", mode)
	fmt.Fprintf(w, "queue: %d pending, %d deferred\n", d.Queue.Pending, d.Queue.Deferred)
	for _, q := range d.Queue.ByAccount {
		fmt.Fprintf(w, "  %s/%s: %d pending, %d deferred\n", q.TenantID, q.AccountID, q.Pending, q.Deferred)
	}
	if o := d.OldestDue; o != nil {
		fmt.Fprintf(w, "oldest due: %s/%s (account %s), waiting %s\n", o.TenantID, o.ID, o.AccountID,
			(time.Duration(o.WaitingSeconds) * time.Second).Round(time.Second))
	} else {
		fmt.Fprintln(w, "oldest due: none")
	}
	for _, l := range d.Loops {
		state := "not running on this instance"
		if l.Running {
			state = "running"
		}
		last := "never"
		if l.SecondsAgo != nil {
			last = (time.Duration(*l.SecondsAgo*1e9) * time.Nanosecond).Round(time.Millisecond).String() + " ago"
		}
		fmt.Fprintf(w, "loop %s: %s, last run %s\n", l.Name, state, last)
	}
	if len(d.Reports) == 0 {
		fmt.Fprintln(w, "delivery reports: nothing pending")
	}
	for _, r := range d.Reports {
		line := fmt.Sprintf("delivery reports %s: %d pending", r.TenantID, r.Pending)
		if r.ConsecutiveFailures > 0 {
			line += fmt.Sprintf(", %d failures in a row (%s)", r.ConsecutiveFailures, r.LastError)
		}
		fmt.Fprintln(w, line)
	}
	for _, ac := range d.Accounts {
		if ac.OK {
			auth := "no AUTH configured"
			if ac.Authenticated {
				auth = "AUTH ok"
			}
			fmt.Fprintf(w, "account %s/%s (%s): ok, TLS %s, %s\n", ac.TenantID, ac.AccountID, ac.Server, ac.TLS, auth)
		} else {
			fmt.Fprintf(w, "account %s/%s (%s): FAILED: %s\n", ac.TenantID, ac.AccountID, ac.Server, ac.Error)
			for _, l := range ac.Dialogue {
				fmt.Fprintf(w, "    %s\n", l)
			}
		}
	}
	if len(d.Problems) == 0 {
		fmt.Fprintln(w, "no problems found")
	}
}

type testSendCmd struct {
	Account string `required:"" help:"SMTP account id (of --tenant)." placeholder:"ID"`
	From    string `required:"" help:"From address." placeholder:"ADDR"`
	To      string `required:"" help:"Recipient." placeholder:"ADDR"`
	Subject string `help:"Subject (default: mail-proxy test message)." placeholder:"TEXT"`
	Body    string `help:"Plain-text body." placeholder:"TEXT"`
}

// Run sends one message through the account now, prints the SMTP dialogue and the outcome.
func (c *testSendCmd) Run(e *env) error {
	a, err := e.api(client.WithTimeout(diagnosticsTimeout))
	if err != nil {
		return err
	}
	tenant, err := a.tenantArg("")
	if err != nil {
		return err
	}
	res, err := a.TestSend(e.ctx, client.TestSendRequest{TenantID: tenant, AccountID: c.Account, From: c.From, To: c.To,
		Subject: c.Subject, Body: c.Body})
	if err != nil {
		return err
	}
	if e.flags.JSON {
		if err := writeJSON(e.stdout, res); err != nil {
			return err
		}
	} else {
		for _, l := range res.Dialogue {
			fmt.Fprintln(e.stdout, l)
		}
		if res.OK {
			fmt.Fprintf(e.stdout, "sent: %s\n", strings.TrimSpace(res.Response))
		}
	}
	if !res.OK {
		return errors.New("test-send failed: " + res.Error)
	}
	return nil
}
