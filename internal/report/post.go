package report

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mailproxy/mailproxy/internal/netguard"
	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/webhook"
)

// DefaultSyncPath is the sync path of a tenant without client_sync_path.
const DefaultSyncPath = "/mail-proxy/sync"

// maxAnswerBytes bounds how much of a client's answer is read.
const maxAnswerBytes = 1 << 20

// Results of one POST, the gmp_report_posts_total result label values.
const (
	resultOK           = "ok"
	resultRejected     = "rejected"
	resultHTTPError    = "http_error"
	resultNetworkError = "network_error"
	resultTimeout      = "timeout"
)

// target is where and how a tenant's reports are posted.
type target struct {
	URL     string
	Global  bool     // the global URL: no heartbeats go there
	Secrets []string // signing secrets, new first; empty = unsigned
	Auth    func(h http.Header)
	// ByTenant: the URL was set with the tenant's own key (stricter policy).
	ByTenant bool
}

// targetFor resolves a tenant's sync endpoint (client-sync.md §1, §7); ok is
// false when the tenant has none, so its events wait.
func (l *Loop) targetFor(t store.Tenant, now time.Time) (target, bool) {
	if t.ClientBaseURL != nil && strings.TrimSpace(*t.ClientBaseURL) != "" {
		path := DefaultSyncPath
		if t.ClientSyncPath != nil && *t.ClientSyncPath != "" {
			path = *t.ClientSyncPath
		}
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		tg := target{URL: strings.TrimRight(strings.TrimSpace(*t.ClientBaseURL), "/") + path, ByTenant: t.ClientURLByTenant}
		if t.SigningSecret != "" {
			tg.Secrets = append(tg.Secrets, t.SigningSecret)
			if t.PrevSigningSecret != "" && t.PrevSigningSecretUntil != nil && t.PrevSigningSecretUntil.After(now) {
				tg.Secrets = append(tg.Secrets, t.PrevSigningSecret)
			}
		}
		tg.Auth = tenantAuth(t.ClientAuth)
		return tg, true
	}
	if l.opts.GlobalURL == "" {
		return target{}, false
	}
	tg := target{URL: l.opts.GlobalURL, Global: true}
	if l.opts.GlobalSecret != "" {
		tg.Secrets = []string{l.opts.GlobalSecret}
	}
	switch {
	case l.opts.GlobalToken != "":
		tg.Auth = bearer(l.opts.GlobalToken)
	case l.opts.GlobalUser != "" || l.opts.GlobalPassword != "":
		tg.Auth = basic(l.opts.GlobalUser, l.opts.GlobalPassword)
	}
	return tg, true
}

func tenantAuth(a *store.ClientAuth) func(http.Header) {
	if a == nil {
		return nil
	}
	switch strings.ToLower(a.Method) {
	case "bearer":
		if a.Token != "" {
			return bearer(a.Token)
		}
	case "basic":
		return basic(a.User, a.Password)
	}
	return nil
}

func bearer(token string) func(http.Header) {
	return func(h http.Header) { h.Set("Authorization", "Bearer "+token) }
}

func basic(user, password string) func(http.Header) {
	cred := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	return func(h http.Header) { h.Set("Authorization", "Basic "+cred) }
}

// answer is the client's reply to a sync POST (client-sync.md §3).
type answer struct {
	Queued        int
	NextSyncAfter *time.Time
	Error         map[string]bool // ids to send again
	NotFound      []string
}

// postError is a failed POST: its metric result and a description safe to
// store and log (no URL, so no credentials).
type postError struct {
	Result string
	Msg    string
}

func (e *postError) Error() string { return e.Msg }

// post sends one body to the target and classifies the outcome. A nil error
// is a success; a *postError a failure of the client; any other error means
// ctx ended (shutdown) and nothing should be recorded.
func (l *Loop) post(ctx context.Context, tenantID string, tg target, body []byte) (answer, error) {
	ctx, cancel := context.WithTimeout(ctx, l.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tg.URL, bytes.NewReader(body))
	if err != nil {
		return answer{}, &postError{Result: resultNetworkError, Msg: "invalid sync URL: " + urlErrorText(err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", l.opts.UserAgent)
	req.Header.Set("X-Mail-Proxy-Tenant", tenantID)
	if tg.Auth != nil {
		tg.Auth(req.Header)
	}
	if len(tg.Secrets) > 0 {
		sig, err := webhook.Headers(tg.Secrets, body, l.opts.Now())
		if err != nil {
			return answer{}, &postError{Result: resultNetworkError, Msg: fmt.Sprintf("signing report: %v", err)}
		}
		for k, vs := range sig {
			for _, v := range vs {
				req.Header.Add(k, v)
			}
		}
	}
	client := l.client
	if tg.ByTenant {
		client = l.tenantClient
	}
	resp, err := client.Do(req)
	if err != nil {
		if parent := context.Cause(ctx); parent != nil && !errors.Is(parent, context.DeadlineExceeded) {
			return answer{}, fmt.Errorf("sync POST interrupted: %w", parent)
		}
		if redirect, ok := netguard.RedirectRefused(err); ok {
			// The client answered, with a redirect: never followed for a POST.
			return answer{}, &postError{Result: resultHTTPError, Msg: redirect.Error()}
		}
		if isTimeout(err) {
			return answer{}, &postError{Result: resultTimeout,
				Msg: fmt.Sprintf("timeout after %s", l.opts.Timeout)}
		}
		return answer{}, &postError{Result: resultNetworkError, Msg: urlErrorText(err)}
	}
	defer func() { _ = resp.Body.Close() }()
	raw, readErr := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return answer{}, &postError{Result: resultHTTPError, Msg: fmt.Sprintf("HTTP %d", resp.StatusCode)}
	}
	if readErr != nil {
		// A 2xx whose body broke off: the client took the POST, but we
		// cannot see which ids it refused. Treat as a failure and resend.
		if isTimeout(readErr) {
			return answer{}, &postError{Result: resultTimeout, Msg: "timeout reading the answer"}
		}
		return answer{}, &postError{Result: resultNetworkError, Msg: "reading the answer: " + readErr.Error()}
	}
	a, rejected := parseAnswer(raw)
	if rejected {
		return answer{}, &postError{Result: resultRejected, Msg: `client answered "ok": false`}
	}
	return a, nil
}

// parseAnswer reads an answer leniently: a 2xx body that is not a JSON
// object is a plain success, and a malformed field is ignored. rejected is
// true only for a JSON object whose "ok" is false.
func parseAnswer(raw []byte) (a answer, rejected bool) {
	var fields map[string]json.RawMessage
	if json.Unmarshal(raw, &fields) != nil {
		return answer{}, false
	}
	var ok bool
	if v, present := fields["ok"]; present && json.Unmarshal(v, &ok) == nil && !ok {
		return answer{}, true
	}
	if v, present := fields["queued"]; present {
		var q float64
		if json.Unmarshal(v, &q) == nil && q > 0 && q < math.MaxInt32 {
			a.Queued = int(q)
		}
	}
	if v, present := fields["next_sync_after"]; present {
		var s float64
		if json.Unmarshal(v, &s) == nil && s > 0 && s < 1e11 {
			sec, frac := math.Modf(s)
			t := time.Unix(int64(sec), int64(frac*1e9))
			a.NextSyncAfter = &t
		}
	}
	if v, present := fields["error"]; present {
		var ids []string
		if json.Unmarshal(v, &ids) == nil && len(ids) > 0 {
			a.Error = make(map[string]bool, len(ids))
			for _, id := range ids {
				a.Error[id] = true
			}
		}
	}
	if v, present := fields["not_found"]; present {
		_ = json.Unmarshal(v, &a.NotFound)
	}
	return a, false
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// urlErrorText describes a client error without the URL it carries.
func urlErrorText(err error) string {
	if refused, ok := netguard.Refused(err); ok {
		return refused.Error()
	}
	if redirect, ok := netguard.RedirectRefused(err); ok {
		return redirect.Error()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + ": " + ue.Err.Error()
	}
	return err.Error()
}
