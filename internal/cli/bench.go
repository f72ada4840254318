package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"net/url"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"

	"github.com/mailproxy/mailproxy/internal/sink"
	"github.com/mailproxy/mailproxy/pkg/client"
)

// benchCmds is `mail-proxy bench`: a load run against a running instance
// (the default, `bench --account ...`) or the suite (`bench suite`).
type benchCmds struct {
	Run   benchCmd      `cmd:"" default:"withargs" hidden:"" help:"Enqueue N messages into a running instance and wait for them at a sink."`
	Suite benchSuiteCmd `cmd:"" help:"Start services and a sink on loopback, run every scenario of the performance table, print it in Markdown."`
}

// benchCmd is the load tool: it enqueues N messages through add-messages and
// waits until a `mail-proxy sink` has received them.
//
// How a run goes:
//  1. POST /reset on the sink, so its counters and latencies are this run's.
//  2. C workers take batch numbers in turn and send each batch of B messages
//     in one add-messages request; every message carries the request's start
//     time in the X-Bench-Sent header (Unix ns). A 503 (overloaded) answer is
//     retried after a short pause; any other failure or rejection ends the run.
//  3. Poll the sink's /stats until every queued message arrived, then read
//     /latencies: arrival minus X-Bench-Sent per message, and the last arrival.
//  4. Print the enqueue rate and request p50/p99, the delivery rate (first
//     enqueue to last arrival) and the enqueue→arrival p50/p99.
//
// --timeout bounds all of it.
type benchCmd struct {
	Account     string        `required:"" help:"SMTP account id the messages go out through (point it at the sink)." placeholder:"ID"`
	N           int           `name:"n" short:"n" default:"10000" help:"Messages to send." placeholder:"N"`
	Batch       int           `default:"100" help:"Messages per add-messages request." placeholder:"B"`
	Concurrency int           `default:"4" help:"Requests in flight at once." placeholder:"C"`
	SinkHTTP    string        `name:"sink-http" default:"http://127.0.0.1:2580" help:"HTTP API of the mail-proxy sink to wait on (\"\": only enqueue)." placeholder:"URL"`
	Timeout     time.Duration `default:"5m" help:"Give up after this long, enqueueing and waiting included." placeholder:"D"`
	From        string        `default:"bench@mail-proxy.localhost" help:"From address of the messages." placeholder:"ADDR"`
	To          string        `default:"sink@mail-proxy.localhost" help:"Recipient of the messages." placeholder:"ADDR"`
	BodySize    int           `name:"body-size" default:"512" help:"Plain-text body bytes per message." placeholder:"BYTES"`
}

// benchResult is what bench prints; durations are in milliseconds, rates in
// messages per second.
type benchResult struct {
	Messages    int `json:"messages"`
	Batch       int `json:"batch"`
	Concurrency int `json:"concurrency"`
	Requests    int `json:"requests"`
	Retries     int `json:"retries"` // 503 answers that were retried

	Queued         int     `json:"queued"`
	EnqueueSeconds float64 `json:"enqueue_seconds"`
	EnqueueRate    float64 `json:"enqueue_rate"`
	RequestP50MS   float64 `json:"request_p50_ms"`
	RequestP99MS   float64 `json:"request_p99_ms"`

	Sink            string  `json:"sink,omitempty"`
	Arrived         int     `json:"arrived"`
	DeliverySeconds float64 `json:"delivery_seconds"`
	DeliveryRate    float64 `json:"delivery_rate"`
	LatencySamples  int     `json:"latency_samples"`
	LatencyP50MS    float64 `json:"latency_p50_ms"`
	LatencyP99MS    float64 `json:"latency_p99_ms"`
	Complete        bool    `json:"complete"` // every queued message arrived (or no sink was given)
}

// maxBenchMessages keeps a typo from queueing more than anyone meant.
const maxBenchMessages = 10_000_000

func (c *benchCmd) validate() (*url.URL, error) {
	switch {
	case c.N < 1 || c.N > maxBenchMessages:
		return nil, usageErrorf("-n must be within 1..%d, got %d", maxBenchMessages, c.N)
	case c.Batch < 1:
		return nil, usageErrorf("--batch must be 1 or more, got %d", c.Batch)
	case c.Concurrency < 1 || c.Concurrency > 1000:
		return nil, usageErrorf("--concurrency must be within 1..1000, got %d", c.Concurrency)
	case c.Timeout <= 0:
		return nil, usageErrorf("--timeout must be positive, got %v", c.Timeout)
	case c.BodySize < 0:
		return nil, usageErrorf("--body-size must not be negative, got %d", c.BodySize)
	}
	if from, err := mail.ParseAddress(c.From); err != nil || !strings.Contains(from.Address, "@") {
		return nil, usageErrorf("--from %q is not an email address", c.From)
	}
	if c.SinkHTTP == "" {
		return nil, nil
	}
	u, err := url.Parse(c.SinkHTTP)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usageErrorf("--sink-http must be an http:// URL, got %q", c.SinkHTTP)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return u, nil
}

func (c *benchCmd) Run(e *env) error {
	sinkURL, err := c.validate()
	if err != nil {
		return err
	}
	a, err := e.api()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(e.ctx, c.Timeout)
	defer cancel()

	var sinkc *sink.Client
	if sinkURL != nil {
		sinkc = sink.NewClient(sinkURL.String(), &http.Client{})
		if err := sinkc.Reset(ctx); err != nil {
			return err
		}
	}

	res := benchResult{Messages: c.N, Batch: c.Batch, Concurrency: c.Concurrency, Complete: true}
	bar := e.newProgress(c.N, "enqueued")
	first, err := c.enqueue(ctx, a, &res, bar)
	bar.Done()
	if err != nil {
		return err
	}
	if sinkc != nil {
		res.Sink = sinkURL.String()
		bar := e.newProgress(res.Queued, "delivered")
		err := c.waitForSink(ctx, sinkc, first, &res, bar)
		bar.Done()
		if err != nil {
			if printErr := c.print(e, res); printErr != nil {
				return errors.Join(err, printErr)
			}
			return err
		}
	}
	return c.print(e, res)
}

// enqueue sends every batch and fills the enqueue part of res; it returns the
// time the first request started.
func (c *benchCmd) enqueue(ctx context.Context, a api, res *benchResult, bar *progress) (time.Time, error) {
	runID := uuid.NewString()[:8]
	body := benchBody(c.BodySize)
	batches := (c.N + c.Batch - 1) / c.Batch
	latencies := make([]time.Duration, batches) // each worker writes only its batches' slots
	var next, queued, retries atomic.Int64
	start := time.Now()

	g, gctx := errgroup.WithContext(ctx)
	for range min(c.Concurrency, batches) {
		g.Go(func() (err error) {
			defer func() {
				if p := recover(); p != nil {
					err = fmt.Errorf("bench: worker panic: %v\n%s", p, debug.Stack())
				}
			}()
			for {
				b := int(next.Add(1) - 1)
				if b >= batches || gctx.Err() != nil {
					return nil
				}
				lo, hi := b*c.Batch, min((b+1)*c.Batch, c.N)
				n, took, tries, err := c.sendBatch(gctx, a, runID, lo, hi, body)
				retries.Add(int64(tries))
				if err != nil {
					return fmt.Errorf("bench: batch %d (messages %d..%d): %w", b+1, lo, hi-1, err)
				}
				latencies[b] = took
				queued.Add(int64(n))
				bar.Add(n)
			}
		})
	}
	if err := g.Wait(); err != nil {
		if ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
			return start, fmt.Errorf("bench: --timeout %v passed while enqueueing (%d of %d queued): %w", c.Timeout, queued.Load(), c.N, err)
		}
		return start, err
	}
	elapsed := time.Since(start)
	res.Requests = batches
	res.Retries = int(retries.Load())
	res.Queued = int(queued.Load())
	res.EnqueueSeconds = elapsed.Seconds()
	res.EnqueueRate = rate(res.Queued, elapsed)
	slices.Sort(latencies)
	res.RequestP50MS = millis(quantile(latencies, 0.50))
	res.RequestP99MS = millis(quantile(latencies, 0.99))
	return start, nil
}

// sendBatch submits messages lo..hi-1 and returns how many were queued, how
// long the successful request took and how many overloaded answers it retried.
func (c *benchCmd) sendBatch(ctx context.Context, a api, runID string, lo, hi int, body string) (int, time.Duration, int, error) {
	msgs := make([]client.Message, 0, hi-lo)
	for i := lo; i < hi; i++ {
		msgs = append(msgs, client.Message{
			ID:        "bench-" + runID + "-" + strconv.Itoa(i),
			TenantID:  a.tenant,
			AccountID: c.Account,
			From:      c.From,
			To:        []string{c.To},
			Subject:   "mail-proxy bench " + strconv.Itoa(i),
			Body:      body,
		})
	}
	pause := 100 * time.Millisecond
	for tries := 0; ; tries++ {
		sent := time.Now()
		stamp := strconv.FormatInt(sent.UnixNano(), 10)
		for i := range msgs {
			msgs[i].Headers = map[string]string{sink.DefaultLatencyHeader: stamp}
		}
		resp, err := a.AddMessages(ctx, client.AddMessagesRequest{Messages: msgs})
		took := time.Since(sent)
		var apiErr *client.APIError
		if errors.As(err, &apiErr) && apiErr.Status == http.StatusServiceUnavailable {
			// Overloaded: the service asks to come back shortly.
			if err := sleepCtx(ctx, pause); err != nil {
				return 0, 0, tries, err
			}
			pause = min(2*pause, time.Second)
			continue
		}
		if err != nil {
			if len(resp.Rejected) > 0 {
				return 0, 0, tries, fmt.Errorf("message %s rejected: %s: %w", resp.Rejected[0].ID, resp.Rejected[0].Reason, err)
			}
			return 0, 0, tries, err
		}
		if len(resp.Rejected) > 0 {
			return 0, 0, tries, fmt.Errorf("message %s rejected: %s", resp.Rejected[0].ID, resp.Rejected[0].Reason)
		}
		return resp.Queued, took, tries, nil
	}
}

// waitForSink polls the sink until every queued message arrived, then fills
// the delivery part of res from its latencies.
func (c *benchCmd) waitForSink(ctx context.Context, sinkc *sink.Client, first time.Time, res *benchResult, bar *progress) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := sinkc.Stats(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			return err
		case err == nil:
			res.Arrived = st.Messages
			bar.Set(min(st.Messages, res.Queued))
		}
		if err == nil && st.Messages >= res.Queued {
			break
		}
		select {
		case <-ctx.Done():
			res.Complete = false
			return fmt.Errorf("bench: --timeout %v passed: %d of %d queued messages reached the sink", c.Timeout, res.Arrived, res.Queued)
		case <-tick.C:
		}
	}
	lat, err := sinkc.Latencies(ctx)
	if err != nil {
		return err
	}
	last := time.Now()
	if lat.LastArrivalNS > 0 {
		last = time.Unix(0, lat.LastArrivalNS)
	}
	span := last.Sub(first)
	res.DeliverySeconds = span.Seconds()
	res.DeliveryRate = rate(res.Arrived, span)
	ds := make([]time.Duration, len(lat.LatenciesNS))
	for i, ns := range lat.LatenciesNS {
		ds[i] = time.Duration(ns)
	}
	slices.Sort(ds)
	res.LatencySamples = len(ds)
	res.LatencyP50MS = millis(quantile(ds, 0.50))
	res.LatencyP99MS = millis(quantile(ds, 0.99))
	return nil
}

func (c *benchCmd) print(e *env, r benchResult) error {
	if e.flags.JSON {
		return writeJSON(e.stdout, r)
	}
	w := e.stdout
	fmt.Fprintf(w, "bench: %d messages, %d requests of %d, concurrency %d, account %s (%d overloaded answers retried)\n",
		r.Messages, r.Requests, r.Batch, r.Concurrency, c.Account, r.Retries)
	fmt.Fprintf(w, "enqueue:  %d queued in %.2fs = %.0f msgs/s; request p50 %.1fms p99 %.1fms\n",
		r.Queued, r.EnqueueSeconds, r.EnqueueRate, r.RequestP50MS, r.RequestP99MS)
	if r.Sink == "" {
		_, err := fmt.Fprintln(w, "delivery: not measured (no --sink-http)")
		return err
	}
	_, err := fmt.Fprintf(w, "delivery: %d of %d arrived in %.2fs = %.0f msgs/s (first enqueue to last arrival); enqueue→arrival p50 %.1fms p99 %.1fms (%d samples)\n",
		r.Arrived, r.Queued, r.DeliverySeconds, r.DeliveryRate, r.LatencyP50MS, r.LatencyP99MS, r.LatencySamples)
	return err
}

// benchBody is n bytes of printable text in CRLF-ended lines.
func benchBody(n int) string {
	const line = "The quick brown fox jumps over the lazy dog, mail-proxy bench body text....\r\n"
	var b strings.Builder
	b.Grow(n)
	for b.Len() < n {
		b.WriteString(line[:min(len(line), n-b.Len())])
	}
	return b.String()
}

// quantile is the nearest-rank q-quantile of sorted durations (0 when empty).
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1 // ceil(q*n) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
