package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailproxy/mailproxy/internal/store"
)

// Queue series are read from the store when scraped (at most once per
// queueCacheFor, so several scrapers cost one read), so they show the shared
// queue on PostgreSQL: aggregate them across instances with max, not sum.
const (
	queueCacheFor    = 5 * time.Second
	queueReadTimeout = 5 * time.Second
)

// QueueReader reads the queue overview (store.Store.Overview for all tenants).
type QueueReader func(ctx context.Context, now time.Time) (store.QueueOverview, error)

var (
	queueMessagesDesc = prometheus.NewDesc("mailproxy_queue_messages",
		"Unprocessed messages by tenant, account and state (pending: due now; deferred: waiting for deferred_ts or a retry)",
		[]string{"tenant_id", "account_id", "state"}, nil)
	oldestDueDesc = prometheus.NewDesc("gmp_oldest_due_age_seconds",
		"Seconds the longest-waiting due message has waited since it became due (0 when none is due)", nil, nil)
)

type queueCollector struct {
	read    QueueReader
	now     func() time.Time
	mu      sync.Mutex
	readAt  time.Time
	metrics []prometheus.Metric
}

// WatchQueue registers the queue series, read through read on scrape.
func (m *Metrics) WatchQueue(read QueueReader) {
	m.Registry.MustRegister(&queueCollector{read: read, now: time.Now})
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueMessagesDesc
	ch <- oldestDueDesc
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.metrics == nil || now.Sub(c.readAt) >= queueCacheFor {
		if ms, ok := c.load(now); ok {
			c.metrics, c.readAt = ms, now
		}
	}
	for _, m := range c.metrics {
		ch <- m
	}
}

// load reads the store; on error the previous values stay (none at first).
func (c *queueCollector) load(now time.Time) ([]prometheus.Metric, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), queueReadTimeout)
	defer cancel()
	ov, err := c.read(ctx, now)
	if err != nil {
		return nil, false
	}
	out := make([]prometheus.Metric, 0, 2*len(ov.Counts)+1)
	for _, a := range ov.Counts {
		if a.Pending == 0 && a.Deferred == 0 {
			continue // only finished messages: nothing queued to show
		}
		out = append(out,
			prometheus.MustNewConstMetric(queueMessagesDesc, prometheus.GaugeValue, float64(a.Pending), a.TenantID, a.AccountID, store.StatePending),
			prometheus.MustNewConstMetric(queueMessagesDesc, prometheus.GaugeValue, float64(a.Deferred), a.TenantID, a.AccountID, store.StateDeferred))
	}
	age := 0.0
	if m := ov.OldestDue; m != nil {
		due := m.CreatedAt
		if m.DeferredUntil != nil {
			due = *m.DeferredUntil
		}
		age = max(now.Sub(due).Seconds(), 0)
	}
	out = append(out, prometheus.MustNewConstMetric(oldestDueDesc, prometheus.GaugeValue, age))
	return out, true
}
