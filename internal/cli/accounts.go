package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/mailproxy/mailproxy/pkg/client"
)

type accountsCmd struct {
	List   accountsListCmd   `cmd:"" help:"List the tenant's SMTP accounts."`
	Add    accountsAddCmd    `cmd:"" help:"Create or replace an SMTP account (with --host/--port), or change the given fields of an existing one."`
	Delete accountsDeleteCmd `cmd:"" help:"Delete an SMTP account."`
}

type accountsListCmd struct{}

func (accountsListCmd) Run(e *env) error {
	a, err := e.api()
	if err != nil {
		return err
	}
	accounts, err := a.ListAccounts(e.ctx, a.tenant)
	if err != nil {
		return err
	}
	if e.flags.JSON {
		return writeJSON(e.stdout, accounts)
	}
	t := newTable(e.stdout, "ID", "TENANT", "HOST", "PORT", "USER", "PER_MIN", "PER_HOUR", "PER_DAY", "BEHAVIOR")
	for _, ac := range accounts {
		t.row(ac.ID, ac.TenantID, ac.Host, itoa(ac.Port), ac.User,
			optInt(ac.LimitPerMinute), optInt(ac.LimitPerHour), optInt(ac.LimitPerDay), ac.LimitBehavior)
	}
	return t.flush()
}

type accountsAddCmd struct {
	ID             string `arg:"" help:"Account id."`
	Host           string `help:"SMTP host." placeholder:"HOST"`
	Port           int    `help:"SMTP port (1..65535)." placeholder:"PORT"`
	User           string `help:"SMTP user." placeholder:"USER"`
	Password       string `help:"SMTP password (visible to other local users; prefer --password-file)." placeholder:"PASSWORD"`
	PasswordFile   string `name:"password-file" help:"Read the SMTP password from this file (trailing newline removed)." type:"existingfile" placeholder:"FILE"`
	TTL            *int   `name:"ttl" placeholder:"N" help:"Maximum connection age, seconds (service default 300)."`
	LimitPerMinute *int   `name:"limit-per-minute" placeholder:"N" help:"Sends per minute (0 = none)."`
	LimitPerHour   *int   `name:"limit-per-hour" placeholder:"N" help:"Sends per hour (0 = none)."`
	LimitPerDay    *int   `name:"limit-per-day" placeholder:"N" help:"Sends per day (0 = none)."`
	LimitBehavior  string `name:"limit-behavior" enum:"defer,reject," default:"" placeholder:"defer|reject" help:"At a limit: defer (default) or reject."`
	UseTLS         *bool  `name:"use-tls" negatable:"" help:"Implicit TLS (--use-tls) or plain/STARTTLS (--no-use-tls); unset: STARTTLS when offered."`
	TLSVerify      *bool  `name:"tls-verify" negatable:"" help:"Verify the server certificate (--no-tls-verify to skip)."`
	BatchSize      *int   `name:"batch-size" placeholder:"N" help:"Messages per connection round."`
	DKIMDomain     string `name:"dkim-domain" placeholder:"DOMAIN" help:"DKIM signing domain (with --dkim-selector and --dkim-key-file)."`
	DKIMSelector   string `name:"dkim-selector" placeholder:"SELECTOR" help:"DKIM selector."`
	DKIMKeyFile    string `name:"dkim-key-file" type:"existingfile" placeholder:"FILE" help:"PEM DKIM private key (mail-proxy dkim keygen makes one)."`
}

func (c *accountsAddCmd) Run(e *env) error {
	if c.Port < 0 || c.Port > 65535 {
		return usageErrorf("--port must be in 1..65535, got %d", c.Port)
	}
	if c.Password != "" && c.PasswordFile != "" {
		return usageErrorf("give --password or --password-file, not both")
	}
	password := c.Password
	if c.PasswordFile != "" {
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return fmt.Errorf("--password-file: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	var dkimKey string
	if c.DKIMKeyFile != "" {
		b, err := os.ReadFile(c.DKIMKeyFile)
		if err != nil {
			return fmt.Errorf("--dkim-key-file: %w", err)
		}
		dkimKey = string(b)
	}
	a, err := e.api()
	if err != nil {
		return err
	}
	err = a.UpsertAccount(e.ctx, client.Account{
		DKIMDomain: c.DKIMDomain, DKIMSelector: c.DKIMSelector, DKIMPrivateKey: dkimKey,
		ID: c.ID, TenantID: a.tenant, Host: c.Host, Port: c.Port, User: c.User, Password: password, TTL: c.TTL,
		LimitPerMinute: c.LimitPerMinute, LimitPerHour: c.LimitPerHour, LimitPerDay: c.LimitPerDay,
		LimitBehavior: c.LimitBehavior, UseTLS: c.UseTLS, TLSVerify: c.TLSVerify, BatchSize: c.BatchSize,
	})
	if err != nil {
		return err
	}
	return okLine(e, "account "+c.ID+" saved")
}

type accountsDeleteCmd struct {
	ID string `arg:"" help:"Account id."`
}

func (c *accountsDeleteCmd) Run(e *env) error {
	a, err := e.api()
	if err != nil {
		return err
	}
	if err := a.DeleteAccount(e.ctx, a.tenant, c.ID); err != nil {
		return err
	}
	return okLine(e, "account "+c.ID+" deleted")
}
