package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/mailproxy/mailproxy/pkg/client"
)

const (
	defaultSubject = "Test Email from Example Client"
	maxCount       = 100
	maxSyncBody    = 32 << 20 // 1000 report items are far below this
)

// app is the example client's HTTP side: it writes emails to its outbox,
// hands them to the proxy and applies the proxy's delivery reports.
type app struct {
	cfg    config
	outbox *outbox
	submit *submitter
	log    *slog.Logger
	now    func() time.Time
}

func newApp(cfg config, ob *outbox, proxy *client.Client, log *slog.Logger) *app {
	return &app{
		cfg:    cfg,
		outbox: ob,
		submit: &submitter{outbox: ob, proxy: proxy, cfg: cfg, log: log},
		log:    log,
		now:    time.Now,
	}
}

func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.handleIndex)
	mux.HandleFunc("POST /send-test-email", a.handleSendTestEmail)
	mux.HandleFunc("GET /messages", a.handleMessages)
	mux.HandleFunc("GET /stats", a.handleStats)
	mux.HandleFunc("POST /email/mailproxy/mp_endpoint/proxy_sync", a.handleSync)
	mux.HandleFunc("POST /mail-proxy/sync", a.handleSync)
	return mux
}

func (a *app) handleIndex(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"service":      "mailproxy example client",
		"description":  "Local-first integration: emails are committed to this app's SQLite outbox, handed to the mail service, and their outcome learnt from delivery reports.",
		"mail_service": a.cfg.MailServiceURL,
		"tenant_id":    a.cfg.TenantID,
		"endpoints": map[string]string{
			"POST /send-test-email?count=1..100&subject=...": "write test emails locally, then submit them",
			"GET /messages": "pending and submitted emails",
			"GET /stats":    "counts per state",
			"POST /email/mailproxy/mp_endpoint/proxy_sync": "delivery reports from the mail service",
			"POST /mail-proxy/sync":                        "delivery reports (the proxy's default sync path)",
		},
	})
}

// validationError answers 422 in the FastAPI shape the original used.
func validationError(w http.ResponseWriter, typ, msg, input string) {
	writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
		"status": "error",
		"detail": []map[string]any{{"type": typ, "loc": []string{"query", "count"}, "msg": msg, "input": input}},
	})
}

func (a *app) handleSendTestEmail(w http.ResponseWriter, r *http.Request) {
	count := 1
	if raw := r.URL.Query().Get("count"); raw != "" {
		n, err := strconv.Atoi(raw)
		switch {
		case err != nil:
			validationError(w, "int_parsing", "Input should be a valid integer, unable to parse string as an integer", raw)
			return
		case n < 1:
			validationError(w, "greater_than_equal", "Input should be greater than or equal to 1", raw)
			return
		case n > maxCount:
			validationError(w, "less_than_equal", fmt.Sprintf("Input should be less than or equal to %d", maxCount), raw)
			return
		}
		count = n
	}
	subject := r.URL.Query().Get("subject")
	if subject == "" {
		subject = defaultSubject
	}

	ctx := r.Context()
	rows, err := a.outbox.insertPending(ctx, count, newEmail{
		Recipient: a.cfg.RecipientEmail,
		Subject:   subject,
		Body:      func(id string) string { return testBody(id, subject, a.now()) },
	})
	if err != nil {
		a.log.Error("storing test emails failed", "error", err)
		writeJSON(w, http.StatusInternalServerError, map[string]any{"status": "error", "detail": "Local database error"})
		return
	}
	ids := make([]string, len(rows))
	for i, row := range rows {
		ids[i] = row.ID
	}

	// The rows are committed: whatever happens next, the resubmit loop and
	// sync calls will hand them over eventually.
	sub, err := a.submit.submit(ctx, ids)
	var apiErr *client.APIError
	switch {
	case errors.Is(err, client.ErrUnreachable):
		a.log.Warn("mail service unreachable; emails stay pending", "count", len(ids), "error", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "error", "detail": "Mail service unavailable: " + err.Error()})
		return
	case errors.As(err, &apiErr):
		writeJSON(w, http.StatusBadGateway, map[string]any{
			"status": "error",
			"detail": fmt.Sprintf("Mail service error: %d %s", apiErr.Status, client.DetailText(apiErr.Detail)),
		})
		return
	case err != nil:
		a.log.Error("submitting test emails failed", "error", err)
		writeJSON(w, http.StatusInternalServerError, map[string]any{"status": "error", "detail": "Local database error"})
		return
	}
	a.submit.runNow(ctx)
	writeJSON(w, http.StatusOK, map[string]any{
		"status":                "success",
		"message":               fmt.Sprintf("Successfully queued %d test email(s)", sub.Queued),
		"messages":              ids,
		"mail_service_response": sub.Answer,
		"note":                  "Check /stats endpoint to monitor delivery status",
	})
}

func testBody(id, subject string, now time.Time) string {
	return fmt.Sprintf(`<html><body><h1>%s</h1><p>This is a test email from the mailproxy example client.</p>`+
		`<p>Message id: <code>%s</code><br>Created: %s</p></body></html>`,
		html.EscapeString(subject), html.EscapeString(id), now.UTC().Format(time.RFC3339))
}

func (a *app) handleMessages(w http.ResponseWriter, r *http.Request) {
	rows, err := a.outbox.inFlight(r.Context())
	if err != nil {
		a.log.Error("listing emails failed", "error", err)
		writeJSON(w, http.StatusInternalServerError, map[string]any{"status": "error", "detail": "Local database error"})
		return
	}
	type item struct {
		ID          string  `json:"id"`
		Recipient   string  `json:"recipient"`
		Subject     string  `json:"subject"`
		Status      string  `json:"status"`
		CreatedAt   string  `json:"created_at"`
		SubmittedAt *string `json:"submitted_at"`
	}
	items := make([]item, 0, len(rows))
	for _, row := range rows {
		it := item{ID: row.ID, Recipient: row.Recipient, Subject: row.Subject, Status: row.Status, CreatedAt: rfc3339(row.CreatedAt)}
		if row.SubmittedAt != nil {
			s := rfc3339(*row.SubmittedAt)
			it.SubmittedAt = &s
		}
		items = append(items, it)
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "success", "count": len(items), "messages": items})
}

func rfc3339(unix int64) string { return time.Unix(unix, 0).UTC().Format(time.RFC3339) }

func (a *app) handleStats(w http.ResponseWriter, r *http.Request) {
	s, err := a.outbox.stats(r.Context())
	if err != nil {
		a.log.Error("counting emails failed", "error", err)
		writeJSON(w, http.StatusInternalServerError, map[string]any{"status": "error", "detail": "Local database error"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "success", "statistics": s})
}

// handleSync receives a delivery-report POST (example-client.md §3):
// verify, apply, hand over pending rows, answer.
func (a *app) handleSync(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSyncBody))
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]any{"ok": false, "detail": "Request body too large"})
		return
	}
	if a.cfg.SigningSecret != "" {
		if err := client.VerifyWebhook(a.cfg.SigningSecret, r.Header, body, a.now(), client.DefaultWebhookTolerance); err != nil {
			a.log.Warn("delivery report refused: bad signature", "error", err)
			writeJSON(w, http.StatusUnauthorized, map[string]any{"ok": false, "detail": "Invalid webhook signature"})
			return
		}
	}
	var req client.SyncRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"ok": false, "detail": "Invalid delivery report: " + err.Error()})
		return
	}
	ctx := r.Context()
	notFound, err := a.outbox.applyReports(ctx, req.DeliveryReport)
	if err != nil {
		// ok:false makes the proxy keep the items and retry later.
		a.log.Error("applying delivery reports failed", "error", err)
		writeJSON(w, http.StatusInternalServerError, map[string]any{"ok": false, "detail": "Local database error"})
		return
	}
	if len(notFound) > 0 {
		a.log.Warn("delivery report for unknown emails", "count", len(notFound))
	}
	// The sync call doubles as a heartbeat: hand over what is still pending.
	// A failure here does not fail the report, which is already applied.
	sub, err := a.submit.submit(ctx, nil)
	if err != nil {
		a.log.Warn("handing pending emails over during sync failed", "error", err)
	}
	a.log.Info("delivery report applied", "items", len(req.DeliveryReport), "not_found", len(notFound), "queued", sub.Queued)
	writeJSON(w, http.StatusOK, client.SyncResponse{OK: true, Queued: sub.Queued, NotFound: notFound})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// The status is out; an encoding or write error can only be dropped.
	_ = json.NewEncoder(w).Encode(v)
}
