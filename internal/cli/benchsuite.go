package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/mailproxy/mailproxy/internal/delivery"
	"github.com/mailproxy/mailproxy/internal/sink"
	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/testsmtp"
	"github.com/mailproxy/mailproxy/pkg/client"

	_ "modernc.org/sqlite" // the "sqlite" driver, to read the size of a suite's store
)

// benchSuiteCmd runs the scenarios of issue 15's performance table and
// prints one Markdown table.
//
// How a run goes:
//  1. One in-process SMTP sink and one delivery-report receiver listen on
//     loopback for the whole run. This process is the load generator.
//  2. Each scenario group starts its own `mail-proxy serve` subprocess (the
//     executable at --proxy-bin) on a fresh SQLite file in a temporary
//     directory, or on a fresh PostgreSQL database created on --postgres's
//     server and dropped afterwards, with a tenant and an account that
//     points at the sink.
//  3. The enqueue scenarios run with the scheduler off (GMP_SCHEDULER_ACTIVE
//     =false), so they measure the API and the store alone; the others run
//     the whole service.
//  4. CPU and RSS come from the proxy's own /metrics (process_cpu_seconds_total,
//     process_resident_memory_bytes); database bytes from the SQLite file
//     after the proxy stopped, or pg_database_size.
type benchSuiteCmd struct {
	Postgres       string        `help:"Run on PostgreSQL: a URL DSN of a server where the suite may create and drop databases (postgres://user@host:port/db)." placeholder:"DSN"`
	Quick          bool          `help:"Smaller sizes (about a minute)."`
	Tiny           bool          `hidden:"" help:"Minimal sizes, for tests."`
	ProxyBin       string        `name:"proxy-bin" help:"mail-proxy executable to run as the service (default: this one)." placeholder:"PATH"`
	Only           []string      `help:"Run only these groups: single, batch, growth, drain, together, rss, latency, size (comma-separated)." placeholder:"GROUP"`
	Dir            string        `help:"Directory for the SQLite files (default: a temporary one, removed afterwards)." placeholder:"DIR"`
	Timeout        time.Duration `default:"30m" help:"Give up after this long." placeholder:"D"`
	Profile        string        `help:"Write CPU profiles of the services (the first seconds of the 16-client, batch, growth and drain runs) into this directory." placeholder:"DIR"`
	ProfileSeconds int           `name:"profile-seconds" default:"5" help:"Length of each --profile CPU profile." placeholder:"S"`
}

// suiteSizes are the message counts of one mode.
type suiteSizes struct {
	single, batch, prefill, drain, together, rssQueued, sequential int
	rssWindow                                                      time.Duration // how long RSS is sampled
}

var (
	fullSizes  = suiteSizes{single: 20_000, batch: 200_000, prefill: 1_000_000, drain: 60_000, together: 20_000, rssQueued: 100_000, sequential: 300, rssWindow: 3 * time.Second}
	quickSizes = suiteSizes{single: 5_000, batch: 20_000, prefill: 100_000, drain: 10_000, together: 5_000, rssQueued: 20_000, sequential: 100, rssWindow: 3 * time.Second}
	tinySizes  = suiteSizes{single: 32, batch: 200, prefill: 500, drain: 100, together: 100, rssQueued: 100, sequential: 3, rssWindow: 100 * time.Millisecond}
)

var suiteGroups = []string{"single", "batch", "growth", "drain", "together", "rss", "latency", "size"}

// suiteBodySize is the body of every suite message (the issue's size row).
const suiteBodySize = 256

// suiteRow is one line of the printed table.
type suiteRow struct {
	order    int    // position in the issue's table
	Scenario string `json:"scenario"`
	Issue    string `json:"issue"` // the issue's figure before the work
	Goal     string `json:"goal"`
	Measured string `json:"measured"`
	Met      string `json:"met"` // yes, no, or "" when the row has no pass/fail goal
}

type suite struct {
	cmd     *benchSuiteCmd
	e       *env
	sizes   suiteSizes
	engine  string // "SQLite" or "PostgreSQL"
	bin     string
	dir     string
	sink    *localSink
	reports *reportReceiver
	log     io.Writer
	rows    []suiteRow

	// Figures shared between groups.
	single16, batch4     float64
	rssQueued, rssStored float64
	rssStoredN           int
	pgMu                 sync.Mutex
	pgDatabases          []string // created on --postgres, dropped at the end
}

func (c *benchSuiteCmd) Run(e *env) error {
	for _, g := range c.Only {
		if !contains(suiteGroups, g) {
			return usageErrorf("--only %q: groups are %s", g, strings.Join(suiteGroups, ", "))
		}
	}
	if c.Timeout <= 0 {
		return usageErrorf("--timeout must be positive, got %v", c.Timeout)
	}
	if c.Profile != "" {
		if c.ProfileSeconds < 1 {
			return usageErrorf("--profile-seconds must be 1 or more, got %d", c.ProfileSeconds)
		}
		if err := os.MkdirAll(c.Profile, 0o755); err != nil {
			return fmt.Errorf("bench suite: --profile: %w", err)
		}
	}
	s := &suite{cmd: c, e: e, sizes: fullSizes, engine: "SQLite", log: e.stderr}
	switch {
	case c.Tiny:
		s.sizes = tinySizes
	case c.Quick:
		s.sizes = quickSizes
	}
	if c.Postgres != "" {
		u, err := url.Parse(c.Postgres)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			return usageErrorf("--postgres must be a postgres:// URL, got %q", redactDSN(c.Postgres))
		}
		s.engine = "PostgreSQL"
	}
	s.bin = c.ProxyBin
	if s.bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("bench suite: find this executable: %w", err)
		}
		s.bin = exe
	}
	ctx, cancel := context.WithTimeout(e.ctx, c.Timeout)
	defer cancel()

	s.dir = c.Dir
	if s.dir == "" {
		d, err := os.MkdirTemp("", "mail-proxy-bench-")
		if err != nil {
			return fmt.Errorf("bench suite: %w", err)
		}
		defer os.RemoveAll(d)
		s.dir = d
	}
	sink, err := startLocalSink()
	if err != nil {
		return err
	}
	defer sink.close()
	s.sink = sink
	rr, err := startReportReceiver()
	if err != nil {
		return err
	}
	defer rr.close()
	s.reports = rr

	defer s.dropDatabases()
	started := time.Now()
	for _, g := range []struct {
		name string
		run  func(context.Context) error
	}{
		{"single", s.runSingle}, {"batch", s.runBatch}, {"growth", s.runGrowth}, {"drain", s.runDrain},
		{"together", s.runTogether}, {"rss", s.runRSS}, {"latency", s.runLatency}, {"size", s.runSize},
	} {
		if len(c.Only) > 0 && !contains(c.Only, g.name) {
			continue
		}
		s.progress("group %s", g.name)
		if err := g.run(ctx); err != nil {
			s.print()
			return fmt.Errorf("bench suite: %s: %w", g.name, err)
		}
	}
	s.progress("done in %s", time.Since(started).Round(time.Second))
	return s.print()
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func (s *suite) progress(format string, args ...any) {
	fmt.Fprintf(s.log, "bench suite: "+format+"\n", args...)
}

func (s *suite) add(r suiteRow) {
	s.rows = append(s.rows, r)
	s.progress("%s: %s", r.Scenario, r.Measured)
}

func (s *suite) print() error {
	slices.SortStableFunc(s.rows, func(a, b suiteRow) int { return a.order - b.order })
	if s.e.flags.JSON {
		return writeJSON(s.e.stdout, s.rows)
	}
	w := s.e.stdout
	mode := "full"
	switch {
	case s.cmd.Tiny:
		mode = "tiny"
	case s.cmd.Quick:
		mode = "quick"
	}
	fmt.Fprintf(w, "mail-proxy bench suite: %s, %s mode, %s\n\n", s.engine, mode, buildVersion())
	fmt.Fprintln(w, "| scenario | issue | goal | measured | met |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, r := range s.rows {
		if _, err := fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", r.Scenario, r.Issue, r.Goal, r.Measured, r.Met); err != nil {
			return err
		}
	}
	return nil
}

func met(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

func (s *suite) pg() bool { return s.engine == "PostgreSQL" }

// ---- scenario groups ----

func (s *suite) runSingle(ctx context.Context) error {
	n := s.sizes.single
	for _, clients := range []int{16, 64} {
		p, err := s.startService(ctx, "single"+strconv.Itoa(clients), false)
		if err != nil {
			return err
		}
		wait := func() {}
		if clients == 16 {
			wait = p.profile(ctx, "single16")
		}
		res, err := p.enqueue(ctx, n, 1, clients)
		wait()
		if err := errors.Join(err, p.stop()); err != nil {
			return err
		}
		row := suiteRow{order: clients / 16, Scenario: fmt.Sprintf("%s single-message requests, %d clients", count(n), clients)}
		row.Measured = fmt.Sprintf("%s msg/s, p99 %.1f ms", count(int(res.EnqueueRate)), res.RequestP99MS)
		switch {
		case s.pg() && clients == 16:
			row.Issue, row.Goal = "1,218 msg/s, p99 47 ms", "≥ 4,000"
			row.Met = met(res.EnqueueRate >= 4000)
		case s.pg():
			row.Issue, row.Goal = "1,150 msg/s, p99 133 ms", "≥ 5,000"
			row.Met = met(res.EnqueueRate >= 5000)
		case clients == 16:
			row.Issue, row.Goal = "5,000 msg/s, p99 7 ms", "≥ 6,000, p99 ≤ 10 ms"
			row.Met = met(res.EnqueueRate >= 6000 && res.RequestP99MS <= 10)
		default:
			row.Issue, row.Goal = "8,900 msg/s", "≥ 10,000"
			row.Met = met(res.EnqueueRate >= 10000)
		}
		if clients == 16 {
			s.single16 = res.EnqueueRate
		}
		s.add(row)
	}
	return nil
}

func (s *suite) runBatch(ctx context.Context) error {
	n := s.sizes.batch
	p, err := s.startService(ctx, "batch", false)
	if err != nil {
		return err
	}
	wait := p.profile(ctx, "batch")
	res, err := p.enqueue(ctx, n, 100, 4)
	wait()
	if err := errors.Join(err, p.stop()); err != nil {
		return err
	}
	s.batch4 = res.EnqueueRate
	row := suiteRow{order: 5, Scenario: fmt.Sprintf("%s in batches of 100, 4 clients", count(n)),
		Measured: fmt.Sprintf("%s msg/s, request p99 %.1f ms", count(int(res.EnqueueRate)), res.RequestP99MS)}
	if s.pg() {
		row.Issue, row.Goal, row.Met = "18,015 msg/s", "≥ 40,000", met(res.EnqueueRate >= 40000)
	} else {
		row.Issue, row.Goal, row.Met = "27,900 msg/s", "≥ 35,000", met(res.EnqueueRate >= 35000)
	}
	s.add(row)
	return nil
}

// runGrowth repeats the single (16 clients) and batch runs on a store that
// already holds sizes.prefill messages (queued in a suspended tenant), then
// measures the RSS of a full service (scheduler on) over that store.
func (s *suite) runGrowth(ctx context.Context) error {
	p, err := s.startService(ctx, "growth", false)
	if err != nil {
		return err
	}
	defer p.kill()
	fill, err := p.addTenant(ctx, "fill", s.sink.smtpAddr)
	if err != nil {
		return err
	}
	if _, err := fill.Suspend(ctx, "fill", ""); err != nil {
		return err
	}
	s.progress("pre-filling %s messages", count(s.sizes.prefill))
	if _, err := p.enqueueAs(ctx, fill, s.sizes.prefill, 1000, 4); err != nil {
		return fmt.Errorf("pre-fill: %w", err)
	}
	wait := p.profile(ctx, "growth-single16")
	single, err := p.enqueue(ctx, s.sizes.single, 1, 16)
	wait()
	if err != nil {
		return err
	}
	wait = p.profile(ctx, "growth-batch")
	batch, err := p.enqueue(ctx, s.sizes.batch, 100, 4)
	wait()
	if err != nil {
		return err
	}
	if _, err := p.api.Suspend(ctx, "bench", ""); err != nil {
		return err
	}
	if err := p.stop(); err != nil {
		return err
	}
	stored := s.sizes.prefill + s.sizes.single + s.sizes.batch
	row := suiteRow{order: 6, Scenario: fmt.Sprintf("the same two runs with %s messages already stored", count(s.sizes.prefill)),
		Issue: "−31 % and −22 %", Goal: "within 10 % of the empty-store figures"}
	row.Measured = fmt.Sprintf("%s msg/s (%s), %s msg/s (%s)", count(int(single.EnqueueRate)), change(single.EnqueueRate, s.single16),
		count(int(batch.EnqueueRate)), change(batch.EnqueueRate, s.batch4))
	if s.single16 > 0 && s.batch4 > 0 {
		row.Met = met(single.EnqueueRate >= 0.9*s.single16 && batch.EnqueueRate >= 0.9*s.batch4)
	}
	s.add(row)

	// The whole service over the filled store: every tenant is suspended, so
	// the loops run but nothing is sent.
	p, err = s.restartService(ctx, p, true)
	if err != nil {
		return err
	}
	defer p.kill()
	rss, err := p.sampleRSS(ctx, s.sizes.rssWindow)
	if err != nil {
		return err
	}
	s.rssStored = rss
	s.rssStoredN = stored
	s.addRSSRow()
	return p.stop()
}

// runDrain queues sizes.drain messages in a suspended tenant, sends as many
// through a plain go-smtp client over 3 connections to the sink (the
// ceiling), then activates the tenant and times the proxy's drain over its
// 3 connections. CPU per message covers enqueue, claim, send, outcome and
// the delivery reports.
func (s *suite) runDrain(ctx context.Context) error {
	n := s.sizes.drain
	p, err := s.startService(ctx, "drain", true)
	if err != nil {
		return err
	}
	defer p.kill()
	if _, err := p.api.Suspend(ctx, "bench", ""); err != nil {
		return err
	}
	cpu0, err := p.metric(ctx, "process_cpu_seconds_total")
	if err != nil {
		return err
	}
	if _, err := p.enqueue(ctx, n, 1000, 4); err != nil {
		return err
	}

	ceiling, err := s.plainClient(ctx, n, 3)
	if err != nil {
		return fmt.Errorf("plain client: %w", err)
	}

	s.sink.reset()
	s.reports.reset()
	start := time.Now()
	wait := p.profile(ctx, "drain")
	if _, err := p.api.Activate(ctx, "bench", ""); err != nil {
		return err
	}
	last, err := s.sink.waitFor(ctx, n)
	if err != nil {
		return err
	}
	wait()
	drain := rate(n, last.Sub(start))
	conns := s.sink.stats().Connections
	if err := s.reports.waitFor(ctx, n); err != nil {
		return err
	}
	cpu1, err := p.metric(ctx, "process_cpu_seconds_total")
	if err != nil {
		return err
	}
	if s.pg() {
		// Database bytes of delivered messages: measured here while the
		// database still exists.
		if err := s.measurePGSize(ctx, p, n, "delivered (sent, event reported)"); err != nil {
			return err
		}
	}
	if err := p.stop(); err != nil {
		return err
	}
	if !s.pg() {
		if err := s.measureSQLiteSize(p, n, "delivered (sent, event reported)"); err != nil {
			return err
		}
	}

	row := suiteRow{order: 7, Scenario: fmt.Sprintf("drain of %s queued messages over 3 connections to a local sink", count(n)),
		Goal: "≥ 80 % of the plain client, same run"}
	if s.pg() {
		row.Issue = "≈ 2,400 msg/s"
	} else {
		row.Issue = "≈ 4,500 msg/s (plain client ≈ 12,000)"
	}
	row.Measured = fmt.Sprintf("%s msg/s over %d connections; plain go-smtp client %s msg/s over 3 (%.0f %%)",
		count(int(drain)), conns, count(int(ceiling)), 100*drain/ceiling)
	row.Met = met(drain >= 0.8*ceiling)
	s.add(row)

	perMsg := (cpu1 - cpu0) / float64(n) * 1e6
	s.add(suiteRow{order: 9, Scenario: "proxy CPU per delivered message (enqueue + claim + send + outcome + report)",
		Issue: "≈ 260 µs", Goal: "≤ 100 µs", Measured: fmt.Sprintf("%.0f µs (%.2f s CPU for %s)", perMsg, cpu1-cpu0, count(n)),
		Met: met(perMsg <= 100)})
	return nil
}

// runTogether is the old bench: enqueue in batches of 100 with delivery
// running, timed from the first enqueue to the last arrival.
func (s *suite) runTogether(ctx context.Context) error {
	n := s.sizes.together
	p, err := s.startService(ctx, "together", true)
	if err != nil {
		return err
	}
	defer p.kill()
	s.sink.reset()
	b := s.benchCmd(n, 100, 4)
	res := benchResult{Messages: n, Complete: true}
	first, err := b.enqueue(ctx, p.tenantAPI(), &res, nil)
	if err != nil {
		return err
	}
	if err := b.waitForSink(ctx, sink.NewClient(s.sink.httpURL, &http.Client{}), first, &res, nil); err != nil {
		return err
	}
	if err := p.stop(); err != nil {
		return err
	}
	s.add(suiteRow{order: 8, Scenario: fmt.Sprintf("enqueue and delivery together, %s in batches of 100", count(n)),
		Issue: "3,800 msg/s", Goal: "≥ 8,000", Met: met(res.DeliveryRate >= 8000),
		Measured: fmt.Sprintf("%s msg/s first enqueue to last arrival (enqueue alone %s msg/s)", count(int(res.DeliveryRate)), count(int(res.EnqueueRate)))})
	return nil
}

// runRSS measures the service's resident memory with sizes.rssQueued
// messages queued in a suspended tenant.
func (s *suite) runRSS(ctx context.Context) error {
	p, err := s.startService(ctx, "rss", true)
	if err != nil {
		return err
	}
	defer p.kill()
	if _, err := p.api.Suspend(ctx, "bench", ""); err != nil {
		return err
	}
	if _, err := p.enqueue(ctx, s.sizes.rssQueued, 100, 4); err != nil {
		return err
	}
	rss, err := p.sampleRSS(ctx, s.sizes.rssWindow)
	if err != nil {
		return err
	}
	s.rssQueued = rss
	s.addRSSRow()
	return p.stop()
}

// addRSSRow adds (or completes) the RSS row once either figure is known.
func (s *suite) addRSSRow() {
	const scenario = "RSS with queued / stored messages"
	measured := func(v float64, n int) string {
		if v == 0 {
			return "not run"
		}
		return fmt.Sprintf("%.0f MiB (%s)", v/(1<<20), count(n))
	}
	row := suiteRow{order: 10, Scenario: scenario, Issue: "64–71 MiB (100,000 queued) / 99 MiB (1,000,000 stored)", Goal: "≤ 64 MiB / ≤ 96 MiB",
		Measured: measured(s.rssQueued, s.sizes.rssQueued) + " / " + measured(s.rssStored, s.rssStoredN)}
	if s.rssQueued > 0 && s.rssStored > 0 {
		row.Met = met(s.rssQueued <= 64<<20 && s.rssStored <= 96<<20)
	}
	for i := range s.rows {
		if s.rows[i].Scenario == scenario {
			s.rows[i] = row
			s.progress("%s: %s", row.Scenario, row.Measured)
			return
		}
	}
	s.add(row)
}

// runLatency sends one message at a time and waits for its arrival before
// the next: POST to the sink's reception of the message.
func (s *suite) runLatency(ctx context.Context) error {
	p, err := s.startService(ctx, "latency", true)
	if err != nil {
		return err
	}
	defer p.kill()
	s.sink.reset()
	b := s.benchCmd(1, 1, 1)
	a := p.tenantAPI()
	body := benchBody(suiteBodySize)
	n := s.sizes.sequential
	for i := range n {
		if _, _, _, err := b.sendBatch(ctx, a, "seq", i, i+1, body); err != nil {
			return err
		}
		if _, err := s.sink.waitFor(ctx, i+1); err != nil {
			return err
		}
	}
	lat := s.sink.latencies()
	if err := p.stop(); err != nil {
		return err
	}
	ds := make([]time.Duration, len(lat.LatenciesNS))
	for i, ns := range lat.LatenciesNS {
		ds[i] = time.Duration(ns)
	}
	slices.Sort(ds)
	p50 := millis(quantile(ds, 0.5))
	s.add(suiteRow{order: 12, Scenario: "one message at a time, POST to the upstream's 250", Issue: "p50 1.7 ms", Goal: "keep ≤ 2 ms",
		Measured: fmt.Sprintf("p50 %.2f ms, p99 %.2f ms (%d messages)", p50, millis(quantile(ds, 0.99)), len(ds)), Met: met(p50 <= 2)})
	return nil
}

// runSize measures database bytes per queued message (the delivered figure
// comes from the drain group).
func (s *suite) runSize(ctx context.Context) error {
	n := s.sizes.batch
	p, err := s.startService(ctx, "size", false)
	if err != nil {
		return err
	}
	defer p.kill()
	if _, err := p.enqueue(ctx, n, 100, 4); err != nil {
		return err
	}
	if s.pg() {
		if err := s.measurePGSize(ctx, p, n, "queued"); err != nil {
			return err
		}
		return p.stop()
	}
	if err := p.stop(); err != nil {
		return err
	}
	return s.measureSQLiteSize(p, n, "queued")
}

// ---- database size ----

// sizes is the bytes-per-message figures measured so far, by kind.
func (s *suite) addSizeRow(kind string, perMsg float64) {
	const scenario = "database bytes per stored message (256-byte body)"
	part := fmt.Sprintf("%s %.0f", kind, perMsg)
	for i := range s.rows {
		if s.rows[i].Scenario == scenario {
			s.rows[i].Measured += "; " + part
			if perMsg > 700 {
				s.rows[i].Met = "no"
			}
			s.progress("%s: %s", scenario, s.rows[i].Measured)
			return
		}
	}
	s.add(suiteRow{order: 11, Scenario: scenario, Issue: "≈ 1,200", Goal: "≤ 700", Measured: part, Met: met(perMsg <= 700)})
}

func (s *suite) measureSQLiteSize(p *service, n int, kind string) error {
	used, err := sqliteUsedBytes(p.db)
	if err != nil {
		return err
	}
	s.addSizeRow(kind, float64(used-p.baseBytes)/float64(n))
	return nil
}

// sqliteUsedBytes is the size of the database's pages in use (free pages
// not counted), WAL content included, read from a separate connection.
func sqliteUsedBytes(path string) (int64, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var pages, free, pageSize int64
	if err := db.QueryRow("SELECT (SELECT page_count FROM pragma_page_count), (SELECT freelist_count FROM pragma_freelist_count), (SELECT page_size FROM pragma_page_size)").Scan(&pages, &free, &pageSize); err != nil {
		return 0, fmt.Errorf("sqlite %s: %w", path, err)
	}
	return (pages - free) * pageSize, nil
}

func (s *suite) measurePGSize(ctx context.Context, p *service, n int, kind string) error {
	size, err := pgDatabaseSize(ctx, p.db)
	if err != nil {
		return err
	}
	s.addSizeRow(kind, float64(size-p.baseBytes)/float64(n))
	return nil
}

func pgDatabaseSize(ctx context.Context, dsn string) (int64, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, fmt.Errorf("postgres: %w", err)
	}
	defer conn.Close(context.Background())
	var size int64
	err = conn.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&size)
	return size, err
}

// ---- the plain-client ceiling ----

// plainClient sends n messages of the suite's shape over conns go-smtp
// connections to the sink, each kept open, and returns messages per second.
func (s *suite) plainClient(ctx context.Context, n, conns int) (float64, error) {
	msg, err := delivery.Build(store.Payload{ID: "ceiling", From: "Bench <bench@mail-proxy.localhost>",
		To: []string{"sink@mail-proxy.localhost"}, Subject: "mail-proxy bench ceiling", Body: benchBody(suiteBodySize),
		Headers: map[string]string{sink.DefaultLatencyHeader: strconv.FormatInt(time.Now().UnixNano(), 10)}}, "ceiling", nil, time.Now())
	if err != nil {
		return 0, err
	}
	var raw bytes.Buffer
	if _, err := msg.WriteTo(&raw); err != nil {
		return 0, err
	}
	s.sink.reset()
	var next atomic.Int64
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	for range conns {
		g.Go(func() error {
			c, err := smtp.Dial(s.sink.smtpAddr)
			if err != nil {
				return err
			}
			defer c.Close()
			if err := c.Hello("bench.mail-proxy.localhost"); err != nil {
				return err
			}
			for next.Add(1) <= int64(n) && gctx.Err() == nil {
				if err := c.SendMail("bench@mail-proxy.localhost", []string{"sink@mail-proxy.localhost"}, bytes.NewReader(raw.Bytes())); err != nil {
					return err
				}
			}
			return c.Quit()
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	took := time.Since(start)
	if got := s.sink.stats().Messages; got < n {
		return 0, fmt.Errorf("the sink counted %d of %d plain messages", got, n)
	}
	return rate(n, took), nil
}

// ---- the service under test ----

// service is one `mail-proxy serve` subprocess and its store.
type service struct {
	s         *suite
	name      string
	cmd       *exec.Cmd
	url       string
	token     string
	env       []string
	db        string // SQLite path or PostgreSQL DSN
	dbName    string // PostgreSQL database to drop afterwards
	baseBytes int64  // database bytes before any message
	api       *client.Client
	pprof     string // pprof base URL with --profile
	exited    chan struct{}
	waitErr   error
	stderrMu  sync.Mutex
	stderr    bytes.Buffer // the last lines, for errors
}

var suiteListenRE = regexp.MustCompile(`mail-proxy listening.*addr=([0-9.]+:[0-9]+)`)

// startService starts a service on a fresh store with tenant "bench" and
// account "sink".
func (s *suite) startService(ctx context.Context, name string, scheduler bool) (*service, error) {
	p := &service{s: s, name: name, token: "bench-suite-" + randomHex(12)}
	if s.pg() {
		dsn, dbName, err := createPGDatabase(ctx, s.cmd.Postgres, name)
		if err != nil {
			return nil, err
		}
		p.db, p.dbName = dsn, dbName
		s.pgMu.Lock()
		s.pgDatabases = append(s.pgDatabases, dbName)
		s.pgMu.Unlock()
	} else {
		p.db = filepath.Join(s.dir, name+".db")
		for _, suffix := range []string{"", "-wal", "-shm"} {
			_ = os.Remove(p.db + suffix)
		}
	}
	if err := p.start(ctx, scheduler); err != nil {
		return nil, err
	}
	if _, err := p.addTenant(ctx, "bench", s.sink.smtpAddr); err != nil {
		p.kill()
		return nil, err
	}
	size, err := p.usedBytes(ctx)
	if err != nil {
		p.kill()
		return nil, err
	}
	p.baseBytes = size
	return p, nil
}

func (p *service) usedBytes(ctx context.Context) (int64, error) {
	if p.s.pg() {
		return pgDatabaseSize(ctx, p.db)
	}
	return sqliteUsedBytes(p.db)
}

// restartService starts a new process on p's (stopped) store.
func (s *suite) restartService(ctx context.Context, p *service, scheduler bool) (*service, error) {
	np := &service{s: s, name: p.name, token: p.token, db: p.db, dbName: p.dbName}
	if err := np.start(ctx, scheduler); err != nil {
		return nil, err
	}
	return np, nil
}

func (p *service) start(ctx context.Context, scheduler bool) error {
	env := []string{
		"GMP_HOST=127.0.0.1", "GMP_PORT=0", "GMP_API_TOKEN=" + p.token, "GMP_DB_PATH=" + p.db,
		"GMP_SCHEDULER_ACTIVE=" + strconv.FormatBool(scheduler),
		"GMP_POOL_SIZE=3", "GMP_MAX_SENDS_PER_ACCOUNT=3", "GMP_LOG_LEVEL=INFO",
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GMP_") {
			env = append(env, kv)
		}
	}
	if p.s.cmd.Profile != "" {
		addr, err := freeLoopbackAddr()
		if err != nil {
			return err
		}
		p.pprof = "http://" + addr
		env = append(env, "GMP_PPROF_ADDR="+addr)
	}
	p.env = env
	cmd := exec.Command(p.s.bin, "serve")
	cmd.Env = env
	cmd.Stdout = io.Discard
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s serve: %w", p.s.bin, err)
	}
	p.cmd = cmd
	p.exited = make(chan struct{})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if m := suiteListenRE.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
			p.stderrMu.Lock()
			if p.stderr.Len() > 64<<10 {
				p.stderr.Reset()
			}
			p.stderr.WriteString(line + "\n")
			p.stderrMu.Unlock()
		}
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	select {
	case a := <-addr:
		p.url = "http://" + a
	case <-p.exited:
		return fmt.Errorf("%s serve exited before listening: %v\n%s", p.name, p.waitErr, p.lastOutput())
	case <-time.After(60 * time.Second):
		p.kill()
		return fmt.Errorf("%s serve did not listen within 60s:\n%s", p.name, p.lastOutput())
	case <-ctx.Done():
		p.kill()
		return ctx.Err()
	}
	p.api = client.New(p.url, p.token)
	return nil
}

func (p *service) lastOutput() string {
	p.stderrMu.Lock()
	defer p.stderrMu.Unlock()
	out := p.stderr.String()
	if len(out) > 4000 {
		out = out[len(out)-4000:]
	}
	return out
}

// stop ends the service with SIGTERM and waits (then SIGKILL), and drops its
// PostgreSQL database.
func (p *service) stop() error {
	var err error
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
			if p.waitErr != nil {
				err = fmt.Errorf("%s serve: %w\n%s", p.name, p.waitErr, p.lastOutput())
			}
		case <-time.After(60 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
			err = fmt.Errorf("%s serve did not stop within 60s of SIGTERM", p.name)
		}
		p.cmd = nil
	}
	return err
}

// kill stops the process if it still runs (for error paths and defers).
func (p *service) kill() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
		<-p.exited
		p.cmd = nil
	}
}

// addTenant creates a tenant reporting to the suite's receiver, with an
// account "sink" at smtpAddr, and returns a client whose default tenant it is.
func (p *service) addTenant(ctx context.Context, id, smtpAddr string) (api, error) {
	host, port, err := net.SplitHostPort(smtpAddr)
	if err != nil {
		return api{}, err
	}
	portN, _ := strconv.Atoi(port)
	if _, err := p.api.CreateTenant(ctx, client.Tenant{ID: id, Name: id, ClientBaseURL: p.s.reports.url}); err != nil {
		return api{}, fmt.Errorf("create tenant %s: %w", id, err)
	}
	noTLS := false
	if err := p.api.UpsertAccount(ctx, client.Account{ID: "sink", TenantID: id, Host: host, Port: portN, UseTLS: &noTLS}); err != nil {
		return api{}, fmt.Errorf("create account: %w", err)
	}
	return api{Client: p.api, tenant: id}, nil
}

func (p *service) tenantAPI() api { return api{Client: p.api, tenant: "bench"} }

func (s *suite) benchCmd(n, batch, clients int) *benchCmd {
	return &benchCmd{Account: "sink", N: n, Batch: batch, Concurrency: clients, Timeout: s.cmd.Timeout,
		From: "bench@mail-proxy.localhost", To: "sink@mail-proxy.localhost", BodySize: suiteBodySize}
}

func (p *service) enqueue(ctx context.Context, n, batch, clients int) (benchResult, error) {
	return p.enqueueAs(ctx, p.tenantAPI(), n, batch, clients)
}

func (p *service) enqueueAs(ctx context.Context, a api, n, batch, clients int) (benchResult, error) {
	b := p.s.benchCmd(n, batch, clients)
	res := benchResult{Messages: n, Batch: batch, Concurrency: clients}
	if _, err := b.enqueue(ctx, a, &res, nil); err != nil {
		return res, err
	}
	if res.Queued != n {
		return res, fmt.Errorf("%d of %d messages queued", res.Queued, n)
	}
	return res, nil
}

// metric reads one unlabelled series from the service's /metrics.
func (p *service) metric(ctx context.Context, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-API-Token", p.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("metrics: HTTP %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("metrics: no series %s", name)
}

// sampleRSS returns the largest resident size the service reports over d.
func (p *service) sampleRSS(ctx context.Context, d time.Duration) (float64, error) {
	var peak float64
	deadline := time.Now().Add(d)
	for {
		v, err := p.metric(ctx, "process_resident_memory_bytes")
		if err != nil {
			return 0, err
		}
		peak = max(peak, v)
		if time.Now().After(deadline) {
			return peak, nil
		}
		if err := sleepCtx(ctx, 250*time.Millisecond); err != nil {
			return 0, err
		}
	}
}

// profile starts a CPU profile of the service (with --profile) and returns
// a function that waits for it and writes it to DIR/<engine>-<name>.pprof.
func (p *service) profile(ctx context.Context, name string) func() {
	if p.pprof == "" {
		return func() {}
	}
	path := filepath.Join(p.s.cmd.Profile, strings.ToLower(p.s.engine)+"-"+name+".pprof")
	done := make(chan error, 1)
	go func() {
		done <- fetchTo(ctx, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", p.pprof, p.s.cmd.ProfileSeconds), path)
	}()
	return func() {
		if err := <-done; err != nil {
			p.s.progress("profile %s: %v", name, err)
			return
		}
		p.s.progress("profile %s written to %s", name, path)
	}
}

func fetchTo(ctx context.Context, u, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// ---- PostgreSQL databases ----

func createPGDatabase(ctx context.Context, dsn, name string) (string, string, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", "", fmt.Errorf("postgres %s: %w", redactDSN(dsn), err)
	}
	defer conn.Close(context.Background())
	dbName := "mailproxy_bench_" + name + "_" + randomHex(4)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{dbName}.Sanitize()); err != nil {
		return "", "", fmt.Errorf("postgres: create database: %w", err)
	}
	u, _ := url.Parse(dsn)
	u.Path = "/" + dbName
	return u.String(), dbName, nil
}

// dropDatabases drops every database the run created.
func (s *suite) dropDatabases() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, name := range s.pgDatabases {
		if err := dropPGDatabase(ctx, s.cmd.Postgres, name); err != nil {
			s.progress("drop database %s: %v", name, err)
		}
	}
}

func dropPGDatabase(ctx context.Context, dsn, dbName string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{dbName}.Sanitize()+" WITH (FORCE)")
	return err
}

func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable DSN)"
	}
	return u.Redacted()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ---- the in-process sink ----

// localSink is the suite's SMTP sink: the sink command's server and HTTP
// API on loopback, plus a notification per arrival.
type localSink struct {
	*sink.Sink
	smtpAddr string
	httpURL  string
	arrived  chan struct{} // gets a token after each message (buffer 1)
}

func startLocalSink() (*localSink, error) {
	ls := &localSink{arrived: make(chan struct{}, 1)}
	s, err := sink.Start(context.Background(), sink.Options{
		HTTPAddr: "127.0.0.1:0", LatencyHeader: sink.DefaultLatencyHeader,
		OnMessage: func(testsmtp.Received) {
			select {
			case ls.arrived <- struct{}{}:
			default:
			}
		},
	})
	if err != nil {
		return nil, err
	}
	ls.Sink, ls.smtpAddr, ls.httpURL = s, s.SMTPAddr(), s.HTTPURL()
	return ls, nil
}

func (ls *localSink) close()                    { ls.Close() }
func (ls *localSink) reset()                    { ls.Reset() }
func (ls *localSink) stats() sink.Stats         { return ls.Stats() }
func (ls *localSink) latencies() sink.Latencies { return ls.Latencies() }

// waitFor waits until n messages arrived since the last reset and returns
// the last arrival's time.
func (ls *localSink) waitFor(ctx context.Context, n int) (time.Time, error) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if st := ls.stats(); st.Messages >= n {
			return time.Unix(0, ls.latencies().LastArrivalNS), nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("%d of %d messages reached the sink: %w", ls.stats().Messages, n, ctx.Err())
		case <-ls.arrived:
		case <-tick.C:
		}
	}
}

// ---- the delivery-report receiver ----

// reportReceiver is the tenants' client endpoint: it counts the sent items
// of the delivery reports posted to it.
type reportReceiver struct {
	url  string
	srv  *http.Server
	sent atomic.Int64
}

func startReportReceiver() (*reportReceiver, error) {
	rr := &reportReceiver{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("report receiver: %w", err)
	}
	rr.url = "http://" + ln.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Report []struct {
				SentTS *int64 `json:"sent_ts"`
			} `json:"delivery_report"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 256<<20)).Decode(&body); err != nil {
			http.Error(w, `{"detail":"bad report"}`, http.StatusBadRequest)
			return
		}
		var n int64
		for _, it := range body.Report {
			if it.SentTS != nil {
				n++
			}
		}
		rr.sent.Add(n)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}`))
	})
	rr.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = rr.srv.Serve(ln) }()
	return rr, nil
}

func (rr *reportReceiver) close() { _ = rr.srv.Close() }
func (rr *reportReceiver) reset() { rr.sent.Store(0) }
func (rr *reportReceiver) waitFor(ctx context.Context, n int) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for rr.sent.Load() < int64(n) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d sent reports arrived: %w", rr.sent.Load(), n, ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

// ---- formatting ----

// count formats n with thousands separators.
func count(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// change is v relative to base, e.g. "−4 %".
func change(v, base float64) string {
	if base <= 0 {
		return "no empty-store figure"
	}
	d := 100 * (v - base) / base
	if d < 0 {
		return fmt.Sprintf("−%.0f %%", -d)
	}
	return fmt.Sprintf("+%.0f %%", d)
}
