package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mailproxy/mailproxy/internal/attach"
	"github.com/mailproxy/mailproxy/internal/delivery"
	"github.com/mailproxy/mailproxy/internal/metrics"
	"github.com/mailproxy/mailproxy/internal/store"
)

// Descriptions and codes of the contract (delivery.md §3, ratelimits.md §4).
const (
	reasonRateLimit         = "rate_limit"
	reasonRateLimitExceeded = "rate_limit_exceeded"
	codeMissingAccount      = "missing_account_configuration"
)

// result is an attempt's outcome, to be recorded once the lane is free, and
// the metric to count if the store applies it.
type result struct {
	outcome store.Outcome
	count   func() // nil-safe; called only when the outcome was applied
}

// attempt runs one claimed message up to its outcome (delivery.md §3); the
// caller records the outcome.
func (d *Dispatcher) attempt(ctx context.Context, c store.Claim) (r result) {
	m := c.Message
	now := d.opts.Now()
	base := store.Outcome{MessagePK: m.PK, Owner: d.opts.Owner, Attempt: m.Attempt, At: now, RetryCount: m.RetryCount}
	labels := d.labels(ctx, m)

	// 1. The account.
	if c.Account == nil {
		o := base
		o.Kind = store.OutcomeError
		o.Description = fmt.Sprintf("Account '%s' not found for tenant '%s'", m.AccountID, m.TenantID)
		o.Metadata = jsonObject(map[string]any{"code": codeMissingAccount})
		return result{outcome: o}
	}
	acct := *c.Account
	if acct.CredentialsError != "" {
		// A password that does not decrypt is never sent (tenancy-security.md §4).
		d.log.Error("account credentials do not decrypt", "msg_id", m.ID, "tenant_id", m.TenantID,
			"account_id", m.AccountID, "err", acct.CredentialsError)
		o := base
		o.Kind = store.OutcomeError
		o.Description = "Cannot decrypt account credentials"
		return result{outcome: o}
	}
	if c.CredentialsError != "" {
		d.log.Error("attachment credentials do not decrypt", "msg_id", m.ID, "tenant_id", m.TenantID,
			"err", c.CredentialsError)
		o := base
		o.Kind = store.OutcomeError
		o.Description = "Cannot decrypt attachment credentials"
		return result{outcome: o}
	}
	p, err := store.DecodePayload(m.Payload)
	if err != nil {
		o := base
		o.Kind = store.OutcomeError
		o.Description = "invalid stored payload: " + err.Error()
		return result{outcome: o}
	}
	if len(p.Suppressed) > 0 {
		// The history names the recipients left out (suppression list).
		defer func() { r.outcome.Metadata = withSuppressed(r.outcome, p.Suppressed) }()
	}

	// 2. Rate limits: one slot in every configured window, before connecting.
	var reserved *store.RateKey
	if req, limited := rateRequest(acct, m.TenantID, now); limited {
		dec, err := d.st.ReserveRate(ctx, req)
		if err != nil {
			return d.release(m, fmt.Errorf("reserve rate slot: %w", err))
		}
		if !dec.OK {
			return d.rateLimited(ctx, m, acct, base, dec, labels)
		}
		reserved = &store.RateKey{TenantID: m.TenantID, AccountID: m.AccountID, At: now}
	}
	base.ReleaseRate = reserved // any failure gives the slot back

	// 3. Attachments.
	var parts []delivery.Part
	if len(p.Attachments) > 0 {
		tenant, err := d.st.GetTenant(ctx, m.TenantID)
		if err != nil {
			return d.release(m, fmt.Errorf("load tenant for attachments: %w", err))
		}
		contents, err := d.fetch.FetchAll(ctx, tenant, p.Attachments)
		if err != nil {
			return d.failed(m, base, attachFailure(err), labels)
		}
		parts = make([]delivery.Part, len(contents))
		for i, ct := range contents {
			parts[i] = delivery.Part{Filename: ct.Filename, ContentType: ct.MimeType, Data: ct.Data}
		}
	}

	// 4. MIME.
	if p.ReturnPath == "" && d.opts.BounceReturnPath != "" {
		p.ReturnPath = d.opts.BounceReturnPath
	}
	var msg *delivery.Message
	if p.Raw != "" {
		msg, err = delivery.BuildRaw(p, m.PK, now)
	} else {
		msg, err = d.opts.MIME.Build(p, m.PK, parts, now)
	}
	if err != nil {
		return d.failed(m, base, failure{desc: "Cannot build message: " + err.Error()}, labels)
	}

	// 5. SMTP.
	if d.opts.LogActivity {
		d.log.Debug("sending", "msg_id", m.ID, "tenant_id", m.TenantID, "account_id", m.AccountID, "attempt", m.Attempt)
	}
	started := time.Now()
	res, err := d.send.Send(ctx, acct, msg)
	d.opts.Metrics.SendDuration.WithLabelValues(labels["tenant_id"], labels["account_id"]).Observe(time.Since(started).Seconds())
	if err != nil {
		de := asDeliveryError(err)
		d.countReply(labels, de)
		desc := de.Public() // what the tenant sees: no dial error with internal addresses
		if full := de.Error(); full != desc {
			d.log.Warn("smtp connection failed", "msg_id", m.ID, "tenant_id", m.TenantID,
				"account_id", m.AccountID, "err", full)
		}
		return d.failed(m, base, failure{desc: desc, temporary: !de.Permanent, code: de.Code, smtpSide: true}, labels)
	}
	d.countReply(labels, nil)

	// 6. The outcome.
	o := base
	o.Kind = store.OutcomeSent
	o.At = d.opts.Now()
	o.ReleaseRate = nil // a sent message keeps its slot
	if len(res.Refused) > 0 {
		refused := make([]map[string]any, len(res.Refused))
		for i, r := range res.Refused {
			refused[i] = map[string]any{"rcpt": r.Rcpt, "code": r.Code, "message": r.Message}
		}
		o.Metadata = jsonObject(map[string]any{"refused": refused})
	}
	return result{outcome: o, count: d.counter(func(m *metrics.Metrics) { m.Sent.With(labels).Inc() })}
}

// counter wraps a metric update for when the outcome is applied.
func (d *Dispatcher) counter(f func(*metrics.Metrics)) func() {
	return func() { f(d.opts.Metrics) }
}

// failure is why an attempt failed, as the retry decision and the metrics
// read it.
type failure struct {
	desc      string // what the tenant sees
	temporary bool   // retried while the budget lasts
	code      int    // the SMTP reply code; 0 when there was none
	smtpSide  bool   // the SMTP server or the connection failed: gmp_errors_total counts it
}

// attachFailure: an attachment could not be fetched; temporary unless the
// fetcher says otherwise.
func attachFailure(err error) failure {
	ae, ok := errors.AsType[*attach.Error](err)
	return failure{desc: err.Error(), temporary: !ok || ae.Temporary}
}

// failed is a failed attempt's outcome: a retry while the budget lasts, else an error.
func (d *Dispatcher) failed(m store.Message, base store.Outcome, f failure, labels map[string]string) result {
	o := base
	o.At = d.opts.Now()
	n := m.RetryCount
	meta := map[string]any{}
	if f.code != 0 {
		meta["smtp_code"] = f.code
	}
	if f.temporary && !d.opts.Retry.Exhausted(n) {
		until := o.At.Add(d.opts.Retry.Delay(n))
		o.Kind = store.OutcomeDeferred
		o.Description = f.desc
		o.DeferredUntil = &until
		o.RetryCount = n + 1
		meta["deferred_ts"] = until.Unix()
		meta["retry_count"] = n + 1
		o.Metadata = jsonObject(meta)
		return result{outcome: o, count: d.counter(func(m *metrics.Metrics) { m.Deferred.With(labels).Inc() })}
	}
	o.Kind = store.OutcomeError
	o.Description = f.desc
	if f.temporary {
		o.Description = d.opts.Retry.ExhaustedDescription(f.desc)
	}
	o.RetryCount = n
	meta["retry_count"] = n
	o.Metadata = jsonObject(meta)
	if !f.smtpSide { // gmp_errors_total counts SMTP-side failures only
		return result{outcome: o}
	}
	return result{outcome: o, count: d.counter(func(m *metrics.Metrics) { m.Errors.With(labels).Inc() })}
}

// rateLimited applies limit_behavior when a window is full (ratelimits.md §4).
func (d *Dispatcher) rateLimited(ctx context.Context, m store.Message, acct store.Account, base store.Outcome, dec store.RateDecision, labels map[string]string) result {
	d.opts.Metrics.RateLimited.With(labels).Inc()
	o := base
	if acct.LimitBehavior == "reject" || acct.LimitBehavior == "error" {
		o.Kind = store.OutcomeError
		o.Description = reasonRateLimitExceeded
		return result{outcome: o}
	}
	until := dec.WindowEnd
	o.DeferredUntil = &until
	o.Kind = store.OutcomeDeferred
	o.Description = reasonRateLimit
	o.Metadata = jsonObject(map[string]any{"deferred_ts": until.Unix()})
	// A backlog waiting for capacity is re-deferred silently, so the client
	// gets one rate_limit report per message, not one per window.
	if last, err := d.st.LastEvent(ctx, m.PK); err == nil && last.Type == store.EventDeferred && last.Description == reasonRateLimit {
		o.Kind = store.OutcomeSilentDefer
	}
	return result{outcome: o, count: d.counter(func(m *metrics.Metrics) { m.Deferred.With(labels).Inc() })}
}

// release gives a claim back without an event when the attempt could not
// start for an internal reason (the store failed); it is retried later.
func (d *Dispatcher) release(m store.Message, cause error) result {
	d.log.Warn("attempt abandoned, claim released", "msg_id", m.ID, "tenant_id", m.TenantID, "err", cause)
	return result{outcome: store.Outcome{MessagePK: m.PK, Owner: d.opts.Owner, Attempt: m.Attempt,
		Kind: store.OutcomeRelease, At: d.opts.Now()}}
}

// record writes the outcome; false when it was not applied (lease lost,
// message deleted meanwhile) or the store failed.
func (d *Dispatcher) record(ctx context.Context, m store.Message, o store.Outcome) bool {
	// The outcome must be written even while shutting down.
	ctx = context.WithoutCancel(ctx)
	err := d.st.RecordOutcome(ctx, o)
	switch {
	case errors.Is(err, store.ErrLeaseLost):
		d.log.Info("outcome dropped: claim no longer held (message deleted or lease expired)", "msg_id", m.ID, "tenant_id", m.TenantID)
		return false
	case err != nil:
		d.log.Error("record outcome", "msg_id", m.ID, "tenant_id", m.TenantID, "err", err)
		return false
	}
	if d.opts.LogActivity && o.Kind != store.OutcomeRelease {
		d.log.Info("outcome", "msg_id", m.ID, "tenant_id", m.TenantID, "account_id", m.AccountID,
			"attempt", m.Attempt, "kind", outcomeName(o.Kind), "description", o.Description)
	}
	if d.opts.OnOutcome != nil && o.Kind != store.OutcomeRelease && o.Kind != store.OutcomeSilentDefer {
		d.opts.OnOutcome(m.TenantID)
	}
	return true
}

func outcomeName(k store.OutcomeKind) string {
	switch k {
	case store.OutcomeSent:
		return "sent"
	case store.OutcomeDeferred, store.OutcomeSilentDefer:
		return "deferred"
	case store.OutcomeError:
		return "error"
	default:
		return "released"
	}
}

// rateRequest builds the reservation for an account; limited is false when
// the account has no limit configured.
func rateRequest(a store.Account, tenantID string, now time.Time) (store.RateRequest, bool) {
	v := func(p *int) int {
		if p == nil || *p <= 0 {
			return 0
		}
		return *p
	}
	req := store.RateRequest{TenantID: tenantID, AccountID: a.ID, Now: now,
		PerMinute: v(a.LimitPerMinute), PerHour: v(a.LimitPerHour), PerDay: v(a.LimitPerDay)}
	_, none := req.Limits()
	return req, !none
}

func asDeliveryError(err error) *delivery.Error {
	var de *delivery.Error
	if errors.As(err, &de) {
		return de
	}
	return delivery.Classify(err)
}

func (d *Dispatcher) countReply(labels map[string]string, de *delivery.Error) {
	class := "2xx"
	if de != nil {
		class = de.ReplyClass()
	}
	d.opts.Metrics.SMTPReplies.WithLabelValues(labels["tenant_id"], labels["account_id"], class).Inc()
}

func (d *Dispatcher) labels(ctx context.Context, m store.Message) map[string]string {
	return metrics.Labels(m.TenantID, d.tenants.name(ctx, m.TenantID), m.AccountID)
}

// withSuppressed adds "suppressed": addrs to the metadata of an outcome
// that writes an event.
func withSuppressed(o store.Outcome, addrs []string) json.RawMessage {
	switch o.Kind {
	case store.OutcomeSent, store.OutcomeError, store.OutcomeDeferred:
	default:
		return o.Metadata
	}
	m := map[string]any{}
	if len(o.Metadata) > 0 {
		if err := json.Unmarshal(o.Metadata, &m); err != nil {
			return o.Metadata
		}
	}
	m["suppressed"] = addrs
	return jsonObject(m)
}
