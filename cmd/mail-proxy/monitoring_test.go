package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/mailproxy/mailproxy/internal/testsmtp"
)

// promtoolRequiredEnv, set by .ci/run, turns a missing promtool into a failure.
const promtoolRequiredEnv = "MAILPROXY_TEST_PROMTOOL_REQUIRED"

// monitoringQueries returns every PromQL expression of the dashboard and the alert rules.
func monitoringQueries(t *testing.T) map[string]string {
	t.Helper()
	queries := map[string]string{}
	raw, err := os.ReadFile("../../monitoring/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	for _, p := range dash.Panels {
		for i, tg := range p.Targets {
			queries["panel "+p.Title+" #"+string(rune('A'+i))] = tg.Expr
		}
	}
	raw, err = os.ReadFile("../../monitoring/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			queries["alert "+r.Alert] = r.Expr
		}
	}
	if len(queries) < 15 {
		t.Fatalf("only %d queries found in the dashboard and rules", len(queries))
	}
	return queries
}

var (
	metricNameRE = regexp.MustCompile(`\b(?:gmp|mailproxy)_[a-z_]+\b`)
	matcherRE    = regexp.MustCompile(`([a-z_]+)\s*(?:=~|!~|!=|=)\s*"`)
	byRE         = regexp.MustCompile(`\bby\s*\(([^)]*)\)`)
)

// queryNeeds is the metric families and labels one expression uses ("le" is a histogram's own).
func queryNeeds(expr string) (metrics, labels []string) {
	for _, name := range metricNameRE.FindAllString(expr, -1) {
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && strings.HasSuffix(base, "_seconds") {
				name = base
			}
		}
		if !slices.Contains(metrics, name) {
			metrics = append(metrics, name)
		}
	}
	for _, m := range matcherRE.FindAllStringSubmatch(expr, -1) {
		labels = append(labels, m[1])
	}
	for _, m := range byRE.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(m[1], ",") {
			labels = append(labels, strings.TrimSpace(l))
		}
	}
	labels = slices.DeleteFunc(labels, func(l string) bool { return l == "le" || l == "" })
	slices.Sort(labels)
	return metrics, slices.Compact(labels)
}

func scrape(t *testing.T, p *proc) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(p.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return families
}

func hasLabel(f *dto.MetricFamily, label string) bool {
	for _, m := range f.GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == label {
				return true
			}
		}
	}
	return false
}

// TestMonitoringQueriesMatchMetrics runs a real instance through a scenario that
// produces every outcome (sent, 5xx error, 4xx deferral, rate-limit hit, a held
// batch, a failing report endpoint) and checks that each metric and label the
// dashboard and the alert rules query is served on /metrics.
func TestMonitoringQueriesMatchMetrics(t *testing.T) {
	t.Parallel()
	queries := monitoringQueries(t)
	srv := newSMTP(t, testsmtp.Options{},
		testsmtp.Reply(testsmtp.StageRcpt, 550, "5.1.1", "user unknown").ForRcpt("bad@example.com"),
		testsmtp.Reply(testsmtp.StageRcpt, 451, "4.7.1", "try later").ForRcpt("later@example.com"))
	client := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "client down", http.StatusInternalServerError)
	}))
	defer client.Close()

	p := startProxy(t, map[string]string{"GMP_DB_PATH": t.TempDir() + "/mail.db"})
	if code := p.call("POST", "/tenant", map[string]any{"id": "acme", "client_base_url": client.URL}, nil); code != 200 {
		t.Fatalf("POST /tenant: %d", code)
	}
	for _, acc := range []map[string]any{
		{"id": "main", "tenant_id": "acme", "host": "127.0.0.1", "port": srv.Port(), "use_tls": false},
		{"id": "limited", "tenant_id": "acme", "host": "127.0.0.1", "port": srv.Port(), "use_tls": false, "limit_per_minute": 1},
	} {
		if code := p.call("POST", "/account", acc, nil); code != 200 {
			t.Fatalf("POST /account %v: %d", acc["id"], code)
		}
	}
	if code := p.call("POST", "/commands/suspend?tenant_id=acme&batch_code=held", nil, nil); code != 200 {
		t.Fatalf("suspend batch: %d", code)
	}
	m := func(id, account, to string) map[string]any {
		x := msg(id, account, to)
		x["tenant_id"] = "acme"
		return x
	}
	held := m("held", "main", "ok@example.com")
	held["batch_code"] = "held"
	batch := []any{m("ok1", "main", "ok@example.com"), m("ok2", "main", "ok@example.com"),
		m("bad", "main", "bad@example.com"), m("later", "main", "later@example.com"),
		m("lim1", "limited", "ok@example.com"), m("lim2", "limited", "ok@example.com"), held}
	if code := p.call("POST", "/commands/add-messages", map[string]any{"messages": batch}, nil); code != 200 {
		t.Fatalf("add-messages: %d", code)
	}

	// Wait until every family the queries use is there: the outcomes and the
	// report attempts happen asynchronously.
	var families map[string]*dto.MetricFamily
	deadline := time.Now().Add(60 * time.Second)
	for {
		families = scrape(t, p)
		var missing []string
		for _, q := range queries {
			names, _ := queryNeeds(q)
			for _, n := range names {
				if families[n] == nil && !slices.Contains(missing, n) {
					missing = append(missing, n)
				}
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the scenario /metrics still lacks %q\n%s", missing, p.logs())
		}
		time.Sleep(100 * time.Millisecond) // polling interval
	}
	for where, q := range queries {
		names, labels := queryNeeds(q)
		for _, n := range names {
			for _, l := range labels {
				if !hasLabel(families[n], l) {
					t.Errorf("%s: %s has no label %q on /metrics (query %s)", where, n, l, q)
				}
			}
		}
	}
	// Idle noise: no series for a default account nobody created.
	if f := families["gmp_sent_total"]; f != nil {
		for _, s := range f.GetMetric() {
			for _, lp := range s.GetLabel() {
				if lp.GetName() == "account_id" && lp.GetValue() == "default" {
					t.Errorf("phantom default account series: %v", s)
				}
			}
		}
	}
}

// TestIdleMetricsHaveNoRouteNoise: a fresh instance serves no zero-valued
// histogram series for the routes nobody called.
func TestIdleMetricsHaveNoRouteNoise(t *testing.T) {
	t.Parallel()
	p := startProxy(t, map[string]string{"GMP_DB_PATH": t.TempDir() + "/mail.db"})
	families := scrape(t, p)
	if f := families["gmp_http_request_duration_seconds"]; f != nil {
		for _, s := range f.GetMetric() {
			for _, lp := range s.GetLabel() {
				// startProxy waited on /health; nothing else was called.
				if lp.GetName() == "route" && lp.GetValue() != "/health" {
					t.Errorf("idle series for route %s", lp.GetValue())
				}
			}
		}
	}
	for _, name := range []string{"gmp_sent_total", "gmp_errors_total", "gmp_deferred_total", "gmp_rate_limited_total"} {
		if f := families[name]; f != nil && len(f.GetMetric()) > 0 {
			t.Errorf("%s has %d series on a store without accounts", name, len(f.GetMetric()))
		}
	}
}

// TestAlertRulesPassPromtool runs `promtool check rules` on monitoring/alerts.yml.
func TestAlertRulesPassPromtool(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv(promtoolRequiredEnv) == "1" {
			t.Fatalf("promtool not found and %s=1 (apt-get install prometheus)", promtoolRequiredEnv)
		}
		t.Skip("SKIPPED LOUDLY: promtool not found (apt-get install prometheus); alert rules not checked")
	}
	out, err := exec.Command(promtool, "check", "rules", "../../monitoring/alerts.yml").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}
