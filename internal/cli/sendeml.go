package cli

import (
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/mailproxy/mailproxy/internal/config"
	"github.com/mailproxy/mailproxy/internal/rawmsg"
	"github.com/mailproxy/mailproxy/pkg/client"
)

// Requests of send --eml stay well inside the service's request limit.
const (
	emlPerRequest   = 100
	emlRequestBytes = 8 << 20
)

// emlItem is one file of send --eml, ready to enqueue.
type emlItem struct {
	file string
	msg  client.Message
	size int
}

// sendFiles is send --eml: each file (or - for stdin) is one raw item;
// the files go in requests of at most emlPerRequest items or about
// emlRequestBytes, with a progress bar on a terminal.
func (c *sendCmd) sendFiles(e *env) error {
	switch {
	case len(c.Files) == 0:
		return usageErrorf("--eml needs at least one FILE (- reads stdin)")
	case c.Subject != "" || c.Body != "" || c.HTML != "" || len(c.Attach) > 0 || c.ReplyTo != "":
		return usageErrorf("--eml sends complete messages: --subject, --body, --html, --attach and --reply-to do not apply")
	case c.ID != "" && len(c.Files) > 1:
		return usageErrorf("--id names one message; with several files use X-Mail-Proxy-Id headers")
	}
	var prio *client.Priority
	if c.Priority != "" {
		p, err := config.ParsePriority(c.Priority)
		if err != nil {
			return usageErrorf("--priority: %v", err)
		}
		pr := client.Priority(p)
		prio = &pr
	}
	a, err := e.api()
	if err != nil {
		return err
	}
	bar := e.newProgress(len(c.Files), "sending")
	defer bar.Done()

	type outcome struct {
		ID     string `json:"id"`
		File   string `json:"file"`
		Reason string `json:"reason,omitempty"`
	}
	var queued, rejected []outcome
	var batch []emlItem
	batchBytes := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		msgs := make([]client.Message, len(batch))
		for i, it := range batch {
			msgs[i] = it.msg
		}
		resp, err := a.AddMessages(e.ctx, client.AddMessagesRequest{Messages: msgs})
		if err != nil && !(client.IsRejection(err) && len(resp.Rejected) > 0) {
			return err
		}
		reasons := map[string]string{}
		for _, r := range resp.Rejected {
			if r.Reason != client.ReasonAlreadySent && r.Reason != client.ReasonSendingInProgress {
				reasons[r.ID] = r.Reason
			}
		}
		for _, it := range batch {
			if reason, ok := reasons[it.msg.ID]; ok {
				rejected = append(rejected, outcome{it.msg.ID, it.file, reason})
			} else {
				queued = append(queued, outcome{ID: it.msg.ID, File: it.file})
			}
		}
		bar.Add(len(batch))
		batch, batchBytes = batch[:0], 0
		return nil
	}
	for _, file := range c.Files {
		it, err := c.emlItem(e, file, a.tenant, prio)
		if err != nil {
			return err
		}
		if len(batch) > 0 && (len(batch) == emlPerRequest || batchBytes+it.size > emlRequestBytes) {
			if err := flush(); err != nil {
				return err
			}
		}
		batch = append(batch, it)
		batchBytes += it.size
	}
	if err := flush(); err != nil {
		return err
	}
	bar.Done()

	if e.flags.JSON {
		if err := writeJSON(e.stdout, map[string]any{"ok": len(rejected) == 0, "queued": queued, "rejected": rejected}); err != nil {
			return err
		}
	} else {
		for _, q := range queued {
			fmt.Fprintf(e.stdout, "queued %s (%s)\n", q.ID, q.File)
		}
		for _, r := range rejected {
			fmt.Fprintf(e.stdout, "rejected %s (%s): %s\n", r.ID, r.File, r.Reason)
		}
	}
	if len(rejected) > 0 {
		return fmt.Errorf("%d of %d messages rejected", len(rejected), len(c.Files))
	}
	return nil
}

// emlItem reads one file and turns it into a raw add-messages item.
func (c *sendCmd) emlItem(e *env, file, tenant string, prio *client.Priority) (emlItem, error) {
	data, err := readEML(e, file)
	if err != nil {
		return emlItem{}, err
	}
	m, err := rawmsg.Parse(data)
	if err != nil {
		return emlItem{}, fmt.Errorf("%s: %w", file, err)
	}
	ctl := m.TakeControl()
	msg := client.Message{ID: ctl.ID, TenantID: tenant, AccountID: c.Account, From: c.From, To: c.To, Cc: c.Cc,
		Bcc: c.Bcc, BatchCode: firstSet(ctl.BatchCode, c.Batch), Priority: prio}
	if msg.ID == "" {
		msg.ID = firstSet(c.ID, uuid.NewString())
	}
	if ctl.Priority != "" {
		p, err := config.ParsePriority(ctl.Priority)
		if err != nil {
			return emlItem{}, fmt.Errorf("%s: %s: %w", file, rawmsg.HeaderPriority, err)
		}
		pr := client.Priority(p)
		msg.Priority = &pr
	}
	if ctl.DeferredTS != "" {
		ts, err := strconv.ParseInt(strings.TrimSpace(ctl.DeferredTS), 10, 64)
		if err != nil {
			return emlItem{}, fmt.Errorf("%s: %s: %q is not Unix seconds", file, rawmsg.HeaderDeferredTS, ctl.DeferredTS)
		}
		msg.DeferredTS = &ts
	}
	raw := m.Bytes()
	if utf8.Valid(raw) {
		msg.Raw = string(raw)
	} else {
		msg.Raw, msg.RawEncoding = base64.StdEncoding.EncodeToString(raw), "base64"
	}
	return emlItem{file: file, msg: msg, size: len(msg.Raw)}, nil
}

// readEML reads a message file, or stdin for "-", within the size one request carries.
func readEML(e *env, file string) ([]byte, error) {
	var r io.Reader
	if file == "-" {
		r = e.stdin
		if r == nil {
			r = os.Stdin
		}
	} else {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxAttachFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(data) > maxAttachFileBytes {
		return nil, fmt.Errorf("%s: over the %d-byte limit of one request", file, maxAttachFileBytes)
	}
	return data, nil
}
