// Package metrics owns mailproxy's Prometheus registry: the gmp_* series of
// the wire contract (config-metrics-cli.md §3) and our additive ones. One
// Metrics is made at startup and passed to the parts that count; the series
// read from the store have one owner each (WatchQueue's collector, the
// PendingCounter of gmp_pending_messages).
package metrics

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Default is the label value for a missing tenant or account (contract).
const Default = "default"

var accountLabels = []string{"tenant_id", "tenant_name", "account_id", "account_name"}

// Metrics is the registry and every series mailproxy updates.
type Metrics struct {
	Registry *prometheus.Registry

	Sent        *prometheus.CounterVec
	Errors      *prometheus.CounterVec
	Deferred    *prometheus.CounterVec
	RateLimited *prometheus.CounterVec
	Pending     prometheus.Gauge

	SMTPReplies       *prometheus.CounterVec   // tenant_id, account_id, class
	SendDuration      *prometheus.HistogramVec // tenant_id, account_id
	ReportPosts       *prometheus.CounterVec   // tenant_id, result
	ReportsPending    *prometheus.GaugeVec     // tenant_id
	AttachmentFetches *prometheus.CounterVec   // mode, result
	HTTPDuration      *prometheus.HistogramVec // route, method, code
	Panics            prometheus.Counter
	LoopLastRun       *prometheus.GaugeVec // loop

	loopsMu  sync.Mutex
	loopsRan map[string]time.Time
}

// New builds the registry with the contract's zero series.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gmp_sent_total", Help: "Total emails sent"}, accountLabels),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gmp_errors_total", Help: "Total emails failed"}, accountLabels),
		Deferred: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gmp_deferred_total", Help: "Total emails deferred"}, accountLabels),
		RateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gmp_rate_limited_total", Help: "Rate limit hits"}, accountLabels),
		Pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gmp_pending_messages", Help: "Current queue size"}),
		SMTPReplies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gmp_smtp_replies_total", Help: "SMTP attempt outcomes by class"},
			[]string{"tenant_id", "account_id", "class"}),
		SendDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gmp_send_duration_seconds", Help: "Duration of one SMTP transaction",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12)}, []string{"tenant_id", "account_id"}),
		ReportPosts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gmp_report_posts_total", Help: "Delivery report POSTs by result"},
			[]string{"tenant_id", "result"}),
		ReportsPending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gmp_reports_pending", Help: "Unreported delivery events"}, []string{"tenant_id"}),
		AttachmentFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gmp_attachment_fetches_total", Help: "Attachment fetches by mode and result"},
			[]string{"mode", "result"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gmp_http_request_duration_seconds", Help: "API request duration",
			Buckets: prometheus.ExponentialBuckets(0.0005, 3, 10)}, []string{"route", "method", "code"}),
		Panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mailproxy_panics_total", Help: "Recovered panics in mailproxy goroutines"}),
		LoopLastRun: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mailproxy_loop_last_run_timestamp_seconds",
			Help: "Unix time of the last iteration of each background loop (dispatcher, reports)"}, []string{"loop"}),
		loopsRan: map[string]time.Time{},
	}
	m.Registry.MustRegister(m.Sent, m.Errors, m.Deferred, m.RateLimited, m.Pending,
		m.SMTPReplies, m.SendDuration, m.ReportPosts, m.ReportsPending, m.AttachmentFetches,
		m.HTTPDuration, m.Panics, m.LoopLastRun,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// No series for the contract's "default" account: no account has that id,
	// and a zero series for it only adds a phantom row to every dashboard.
	return m
}

// Labels returns the contract's label values for an account: null → "default",
// tenant_name falls back to tenant_id, account_name = account_id.
func Labels(tenantID, tenantName, accountID string) prometheus.Labels {
	if tenantID == "" {
		tenantID = Default
	}
	if tenantName == "" {
		tenantName = tenantID
	}
	if accountID == "" {
		accountID = Default
	}
	return prometheus.Labels{"tenant_id": tenantID, "tenant_name": tenantName,
		"account_id": accountID, "account_name": accountID}
}

// AccountSeen creates the zero series of an account (at startup and on creation).
func (m *Metrics) AccountSeen(tenantID, tenantName, accountID string) {
	l := Labels(tenantID, tenantName, accountID)
	m.Sent.With(l)
	m.Errors.With(l)
	m.Deferred.With(l)
	m.RateLimited.With(l)
}

// LoopRan records that the named background loop has just run an iteration.
func (m *Metrics) LoopRan(name string) {
	now := time.Now()
	m.loopsMu.Lock()
	m.loopsRan[name] = now
	m.loopsMu.Unlock()
	m.LoopLastRun.WithLabelValues(name).Set(float64(now.UnixNano()) / 1e9)
}

// LoopsLastRun returns when each loop last ran (loops that never ran are absent).
func (m *Metrics) LoopsLastRun() map[string]time.Time {
	m.loopsMu.Lock()
	defer m.loopsMu.Unlock()
	out := make(map[string]time.Time, len(m.loopsRan))
	for k, v := range m.loopsRan {
		out[k] = v
	}
	return out
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}
