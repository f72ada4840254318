package cli

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mailproxy/mailproxy/pkg/client"
)

// api is the connection an admin command uses: --url and --token over GMP_URL and GMP_API_TOKEN.
type api struct {
	*client.Client
	tenant string // --tenant over GMP_TENANT; "" lets a tenant key imply its own tenant
}

func (e *env) api(opts ...client.Option) (api, error) {
	cfg, _, err := e.loadConfig()
	if err != nil {
		return api{}, err
	}
	base := firstSet(e.flags.URL, cfg.URL)
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return api{}, usageErrorf("--url/GMP_URL must be an http:// or https:// URL, got %q", base)
	}
	return api{
		Client: client.New(base, firstSet(e.flags.Token, cfg.APIToken), opts...),
		tenant: firstSet(e.flags.Tenant, cfg.Tenant),
	}, nil
}

func firstSet(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

// tenantTarget is the API client and the tenant a tenant command acts on:
// its optional positional id, else --tenant/GMP_TENANT.
func (e *env) tenantTarget(arg string) (api, string, error) {
	a, err := e.api()
	if err != nil {
		return api{}, "", err
	}
	id, err := a.tenantArg(arg)
	return a, id, err
}

// tenantArg is an optional positional tenant id falling back to --tenant/GMP_TENANT.
func (a api) tenantArg(arg string) (string, error) {
	if id := firstSet(arg, a.tenant); id != "" {
		return id, nil
	}
	return "", usageErrorf("a tenant id is required: give it as an argument, --tenant or GMP_TENANT")
}

type statusCmd struct{}

func (statusCmd) Run(e *env) error {
	a, err := e.api()
	if err != nil {
		return err
	}
	st, err := a.Status(e.ctx)
	if err != nil {
		return err
	}
	if e.flags.JSON {
		return writeJSON(e.stdout, st)
	}
	state := "active (dispatcher and report loop running)"
	if !st.Active {
		state = "inactive (GMP_SCHEDULER_ACTIVE=false)"
	}
	_, err = fmt.Fprintf(e.stdout, "%s: %s\n", a.BaseURL(), state)
	return err
}

type statsCmd struct{}

func (statsCmd) Run(e *env) error {
	a, err := e.api()
	if err != nil {
		return err
	}
	stats, err := a.Stats(e.ctx)
	if err != nil {
		return err
	}
	if e.flags.JSON {
		return writeJSON(e.stdout, stats)
	}
	t := newTable(e.stdout, "TENANT", "ACCOUNTS", "PENDING", "DEFERRED", "SENT", "ERROR")
	for _, s := range stats {
		t.row(s.TenantID, itoa(s.Accounts), itoa(s.Pending), itoa(s.Deferred), itoa(s.Sent), itoa(s.Error))
	}
	return t.flush()
}

type runNowCmd struct{}

func (runNowCmd) Run(e *env) error {
	a, err := e.api()
	if err != nil {
		return err
	}
	if err := a.RunNow(e.ctx, a.tenant); err != nil {
		return err
	}
	return okLine(e, "dispatcher and report loop woken")
}

// okLine prints a one-line success (or {"ok":true} with --json).
func okLine(e *env, text string) error {
	if e.flags.JSON {
		return writeJSON(e.stdout, map[string]bool{"ok": true})
	}
	_, err := fmt.Fprintf(e.stdout, "ok: %s\n", text)
	return err
}

type suspendCmd struct {
	Batch string `help:"Suspend only this batch_code." placeholder:"CODE"`
}

func (c *suspendCmd) Run(e *env) error {
	a, err := e.api()
	if err != nil {
		return err
	}
	resp, err := a.Suspend(e.ctx, a.tenant, c.Batch)
	if err != nil {
		return err
	}
	return printSuspension(e, resp)
}

type activateCmd struct {
	Batch string `help:"Activate only this batch_code." placeholder:"CODE"`
}

func (c *activateCmd) Run(e *env) error {
	a, err := e.api()
	if err != nil {
		return err
	}
	resp, err := a.Activate(e.ctx, a.tenant, c.Batch)
	if err != nil {
		return err
	}
	return printSuspension(e, resp)
}

func printSuspension(e *env, r client.SuspendResponse) error {
	if e.flags.JSON {
		return writeJSON(e.stdout, r)
	}
	batches := "none"
	if len(r.SuspendedBatches) > 0 {
		batches = strings.Join(r.SuspendedBatches, ",")
	}
	_, err := fmt.Fprintf(e.stdout, "tenant %s: suspended batches %s; %d pending messages\n", r.TenantID, batches, r.PendingMessages)
	return err
}

type commandLogCmd struct {
	Since  string `help:"Only commands at or after: Unix seconds, RFC 3339, or a duration ago (2h)." placeholder:"TIME"`
	Until  string `help:"Only commands at or before (same forms as --since)." placeholder:"TIME"`
	Filter string `help:"Substring of the command name (e.g. addMessages)." placeholder:"TEXT"`
	Limit  int    `help:"At most this many (service default 100)." placeholder:"N"`
}

func (c *commandLogCmd) Run(e *env) error {
	now := time.Now()
	since, err := parseWhen(c.Since, now)
	if err != nil {
		return usageErrorf("--since: %v", err)
	}
	until, err := parseWhen(c.Until, now)
	if err != nil {
		return usageErrorf("--until: %v", err)
	}
	if c.Limit < 0 {
		return usageErrorf("--limit must not be negative")
	}
	a, err := e.api()
	if err != nil {
		return err
	}
	log, err := a.CommandLog(e.ctx, client.CommandLogQuery{TenantID: a.tenant, SinceTS: since, UntilTS: until, EndpointFilter: c.Filter, Limit: c.Limit})
	if err != nil {
		return err
	}
	if e.flags.JSON {
		return writeJSON(e.stdout, log)
	}
	t := newTable(e.stdout, "ID", "TIME", "COMMAND", "TENANT", "STATUS", "PAYLOAD")
	for _, c := range log.Commands {
		ts := c.CommandTS
		t.row(strconv.FormatInt(c.ID, 10), optTS(&ts), c.Endpoint, c.TenantID, itoa(c.ResponseStatus), string(c.Payload))
	}
	return t.flush()
}

// parseWhen reads Unix seconds, an RFC 3339 time, or a duration before now; "" is 0 (no bound).
func parseWhen(s string, now time.Time) (int64, error) {
	if s == "" {
		return 0, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("%q is negative", s)
		}
		return n, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.Unix(), nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d).Unix(), nil
	}
	return 0, fmt.Errorf("%q is not Unix seconds, an RFC 3339 time or a duration like 2h", s)
}
