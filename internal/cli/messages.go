package cli

import (
	"fmt"
	"strings"

	"github.com/mailproxy/mailproxy/pkg/client"
)

type messagesCmd struct {
	List    messagesListCmd    `cmd:"" help:"List the tenant's messages."`
	Show    messagesShowCmd    `cmd:"" help:"Show one message with its history as JSON."`
	Delete  messagesDeleteCmd  `cmd:"" help:"Delete messages by id."`
	Cleanup messagesCleanupCmd `cmd:"" help:"Remove reported messages older than the retention."`

	RetryDeferred messagesRetryDeferredCmd `cmd:"" name:"retry-deferred" help:"Make the messages waiting for a retry due now."`
}

type messagesRetryDeferredCmd struct {
	BatchCode string `name:"batch-code" help:"Only this batch_code." placeholder:"CODE"`
}

func (c *messagesRetryDeferredCmd) Run(e *env) error {
	a, err := e.api()
	if err != nil {
		return err
	}
	resp, err := a.RetryDeferred(e.ctx, a.tenant, c.BatchCode)
	if err != nil {
		return err
	}
	if e.flags.JSON {
		return writeJSON(e.stdout, resp)
	}
	_, err = fmt.Fprintf(e.stdout, "retried %d\n", resp.Retried)
	return err
}

type messagesListCmd struct {
	Active  bool `help:"Only unprocessed messages."`
	History bool `help:"Include each message's event history (with --json)."`
	Limit   int  `help:"At most this many." placeholder:"N"`
	Offset  int  `help:"Skip this many." placeholder:"N"`
}

func (c *messagesListCmd) Run(e *env) error {
	if c.Limit < 0 || c.Offset < 0 {
		return usageErrorf("--limit and --offset must not be negative")
	}
	a, err := e.api()
	if err != nil {
		return err
	}
	msgs, err := a.ListMessages(e.ctx, client.ListMessagesOptions{
		TenantID: a.tenant, ActiveOnly: c.Active, IncludeHistory: c.History, Limit: c.Limit, Offset: c.Offset,
	})
	if err != nil {
		return err
	}
	if e.flags.JSON {
		return writeJSON(e.stdout, msgs)
	}
	t := newTable(e.stdout, "ID", "TENANT", "ACCOUNT", "STATUS", "PRIORITY", "RETRIES", "BATCH", "SENT", "ERROR")
	for _, m := range msgs {
		t.row(m.ID, m.TenantID, m.AccountID, m.Status, itoa(m.Priority), itoa(m.RetryCount), m.BatchCode, optTS(m.SentTS), m.Error)
	}
	return t.flush()
}

type messagesShowCmd struct {
	ID string `arg:"" help:"Message id (the client's id)."`
}

// Run finds the message in the tenant's listing: the API has no single-message route.
func (c *messagesShowCmd) Run(e *env) error {
	a, err := e.api()
	if err != nil {
		return err
	}
	msgs, err := a.ListMessages(e.ctx, client.ListMessagesOptions{TenantID: a.tenant, IncludeHistory: true})
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if m.ID == c.ID {
			return writeJSON(e.stdout, m)
		}
	}
	return fmt.Errorf("message %q not found", c.ID)
}

type messagesDeleteCmd struct {
	IDs []string `arg:"" name:"id" help:"Message ids."`
}

func (c *messagesDeleteCmd) Run(e *env) error {
	a, err := e.api()
	if err != nil {
		return err
	}
	resp, err := a.DeleteMessages(e.ctx, a.tenant, c.IDs)
	if err != nil {
		return err
	}
	if e.flags.JSON {
		return writeJSON(e.stdout, resp)
	}
	line := fmt.Sprintf("removed %d", resp.Removed)
	if len(resp.NotFound) > 0 {
		line += "; not found: " + strings.Join(resp.NotFound, ",")
	}
	if len(resp.Unauthorized) > 0 {
		line += "; other tenant's: " + strings.Join(resp.Unauthorized, ",")
	}
	_, err = fmt.Fprintln(e.stdout, line)
	return err
}

type messagesCleanupCmd struct {
	OlderThan *int64 `name:"older-than" help:"Age in seconds (default GMP_DELIVERY_REPORT_RETENTION_SECONDS of the service)." placeholder:"S"`
}

func (c *messagesCleanupCmd) Run(e *env) error {
	if c.OlderThan != nil && *c.OlderThan < 0 {
		return usageErrorf("--older-than must not be negative")
	}
	a, err := e.api()
	if err != nil {
		return err
	}
	resp, err := a.CleanupMessages(e.ctx, a.tenant, c.OlderThan)
	if err != nil {
		return err
	}
	if e.flags.JSON {
		return writeJSON(e.stdout, resp)
	}
	_, err = fmt.Fprintf(e.stdout, "removed %d\n", resp.Removed)
	return err
}
