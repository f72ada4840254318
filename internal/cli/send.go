package cli

import (
	"encoding/base64"
	"fmt"
	"mime"
	"os"
	"path/filepath"

	"github.com/google/uuid"

	"github.com/mailproxy/mailproxy/internal/config"
	"github.com/mailproxy/mailproxy/pkg/client"
)

// maxAttachFileBytes keeps one --attach file within the service's default request limit.
const maxAttachFileBytes = 48 << 20

type sendCmd struct {
	Account  string   `required:"" help:"SMTP account id." placeholder:"ID"`
	From     string   `help:"From address (display name allowed); required unless --eml, where it sets only the envelope sender." placeholder:"ADDR"`
	To       []string `help:"Recipients (repeat or comma-separate); required unless --eml, where they set the envelope." placeholder:"ADDR"`
	Cc       []string `help:"Cc recipients." placeholder:"ADDR"`
	Bcc      []string `help:"Bcc recipients." placeholder:"ADDR"`
	ReplyTo  string   `name:"reply-to" help:"Reply-To address." placeholder:"ADDR"`
	Subject  string   `help:"Subject (required unless --eml)." placeholder:"TEXT"`
	Body     string   `xor:"body" help:"Plain-text body." placeholder:"TEXT"`
	HTML     string   `name:"html" xor:"body" help:"HTML body (sent as text/html)." placeholder:"HTML"`
	Attach   []string `type:"existingfile" help:"Attach a file (sent inline as base64; repeatable)." placeholder:"FILE"`
	ID       string   `help:"Message id (default: a new UUID)." placeholder:"ID"`
	Priority string   `help:"0..3 or immediate/high/medium/low (default: the service's)." placeholder:"P"`
	Batch    string   `help:"batch_code." placeholder:"CODE"`
	EML      bool     `name:"eml" help:"Send the FILE arguments, complete RFC 5322 messages, as they are (- reads stdin); X-Mail-Proxy-* headers in them set id, priority, deferral and batch."`
	Files    []string `arg:"" optional:"" name:"file" help:"Messages to send with --eml." placeholder:"FILE"`
}

func (c *sendCmd) Run(e *env) error {
	if c.EML {
		return c.sendFiles(e)
	}
	switch {
	case len(c.Files) > 0:
		return usageErrorf("FILE arguments need --eml")
	case c.From == "":
		return usageErrorf("missing flags: --from=ADDR")
	case len(c.To) == 0:
		return usageErrorf("missing flags: --to=ADDR,...")
	case c.Subject == "":
		return usageErrorf("missing flags: --subject=TEXT")
	}
	msg := client.Message{
		ID: c.ID, AccountID: c.Account, From: c.From, To: c.To, Cc: c.Cc, Bcc: c.Bcc, ReplyTo: c.ReplyTo,
		Subject: c.Subject, Body: c.Body, BatchCode: c.Batch,
	}
	if msg.ID == "" {
		msg.ID = uuid.NewString()
	}
	if c.HTML != "" {
		msg.Body, msg.ContentType = c.HTML, "html"
	}
	if c.Priority != "" {
		p, err := config.ParsePriority(c.Priority)
		if err != nil {
			return usageErrorf("--priority: %v", err)
		}
		prio := client.Priority(p)
		msg.Priority = &prio
	}
	for _, path := range c.Attach {
		att, err := fileAttachment(path)
		if err != nil {
			return err
		}
		msg.Attachments = append(msg.Attachments, att)
	}

	a, err := e.api()
	if err != nil {
		return err
	}
	msg.TenantID = a.tenant
	resp, err := a.AddMessages(e.ctx, client.AddMessagesRequest{Messages: []client.Message{msg}})
	if err != nil {
		if client.IsRejection(err) && len(resp.Rejected) > 0 {
			return fmt.Errorf("message %s rejected: %s", msg.ID, resp.Rejected[0].Reason)
		}
		return err
	}
	for _, r := range resp.Rejected {
		if r.Reason == client.ReasonAlreadySent || r.Reason == client.ReasonSendingInProgress {
			continue
		}
		return fmt.Errorf("message %s rejected: %s", msg.ID, r.Reason)
	}
	if e.flags.JSON {
		return writeJSON(e.stdout, map[string]any{"ok": true, "id": msg.ID, "queued": resp.Queued, "rejected": resp.Rejected})
	}
	if resp.Queued == 0 && len(resp.Rejected) > 0 {
		_, err = fmt.Fprintf(e.stdout, "message %s not queued again: %s\n", msg.ID, resp.Rejected[0].Reason)
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "queued %s\n", msg.ID)
	return err
}

// fileAttachment reads a local file into a base64 attachment.
func fileAttachment(path string) (client.Attachment, error) {
	info, err := os.Stat(path)
	if err != nil {
		return client.Attachment{}, fmt.Errorf("--attach: %w", err)
	}
	if info.Size() > maxAttachFileBytes {
		return client.Attachment{}, fmt.Errorf("--attach %s: %d bytes is over the %d-byte limit of one request", path, info.Size(), maxAttachFileBytes)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return client.Attachment{}, fmt.Errorf("--attach: %w", err)
	}
	return client.Attachment{
		Filename:    filepath.Base(path),
		StoragePath: "base64:" + base64.StdEncoding.EncodeToString(data),
		MimeType:    mime.TypeByExtension(filepath.Ext(path)),
		FetchMode:   "base64",
	}, nil
}
