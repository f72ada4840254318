package cli

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBenchThroughRunningInstance runs bench against a real instance (proxy.Run on SQLite) whose
// account points at a sink started through Main, and checks that every message arrived.
func TestBenchThroughRunningInstance(t *testing.T) {
	env := startInstance(t)
	s := startSink(t)
	_, port, _ := strings.Cut(s.smtp, ":")
	mustRun(t, env, "tenants", "add", "bench", "--name", "Bench")
	tenantEnv := map[string]string{"GMP_URL": env["GMP_URL"], "GMP_API_TOKEN": env["GMP_API_TOKEN"], "GMP_TENANT": "bench"}
	mustRun(t, tenantEnv, "accounts", "add", "sink", "--host", "127.0.0.1", "--port", port)

	const n = 200
	out := mustRun(t, tenantEnv, "--json", "bench", "--account", "sink", "-n", strconv.Itoa(n), "--batch", "20",
		"--concurrency", "4", "--sink-http", s.http, "--timeout", "2m")
	t.Logf("bench --json: %s", out)
	res := decode[benchResult](t, out)
	if res.Messages != n || res.Queued != n || res.Arrived < n || !res.Complete || res.Requests != n/20 {
		t.Errorf("counts: %+v", res)
	}
	if st := s.stats(t); st.Messages < n {
		t.Errorf("the sink counted %d messages, want %d", st.Messages, n)
	}
	if res.LatencySamples != res.Arrived {
		t.Errorf("%d latency samples for %d arrivals", res.LatencySamples, res.Arrived)
	}
	for name, v := range map[string]float64{
		"enqueue_rate": res.EnqueueRate, "delivery_rate": res.DeliveryRate, "enqueue_seconds": res.EnqueueSeconds,
		"delivery_seconds": res.DeliverySeconds, "request_p50_ms": res.RequestP50MS, "latency_p50_ms": res.LatencyP50MS,
	} {
		if !(v > 0) {
			t.Errorf("%s = %v, want > 0", name, v)
		}
	}
	if res.RequestP99MS < res.RequestP50MS || res.LatencyP99MS < res.LatencyP50MS {
		t.Errorf("p99 below p50: request %v/%v, latency %v/%v", res.RequestP50MS, res.RequestP99MS, res.LatencyP50MS, res.LatencyP99MS)
	}
	// Delivery cannot end before the last enqueue did.
	if res.DeliverySeconds < res.EnqueueSeconds {
		t.Errorf("delivery took %vs, less than the enqueue phase's %vs", res.DeliverySeconds, res.EnqueueSeconds)
	}

	// The text form, on a second run: the sink was reset, so it waits for this run's messages only.
	out = mustRun(t, tenantEnv, "bench", "--account", "sink", "-n", "30", "--batch", "7", "--sink-http", s.http, "--timeout", "2m")
	for _, want := range []string{"30 messages, 5 requests of 7", "30 queued", "30 of 30 arrived", "enqueue→arrival p50"} {
		if !strings.Contains(out, want) {
			t.Errorf("bench output lacks %q:\n%s", want, out)
		}
	}

	t.Run("errors", func(t *testing.T) {
		mustFail(t, tenantEnv, ExitFailed, "rejected", "bench", "--account", "no-such-account", "-n", "3", "--sink-http", s.http)
		mustFail(t, tenantEnv, ExitUnreachable, "sink unreachable", "bench", "--account", "sink", "-n", "3", "--sink-http", "http://"+closedPort(t))
		mustFail(t, map[string]string{"GMP_URL": "http://" + closedPort(t), "GMP_TENANT": "bench"}, ExitUnreachable, "unreachable",
			"bench", "--account", "sink", "-n", "3", "--sink-http", "")
		// Nothing delivers to a sink that refuses everything: the run ends at --timeout, exit 1, partial result printed.
		refusing := startSink(t, "--fail-rate", "1", "--fail-code", "550")
		_, rport, _ := strings.Cut(refusing.smtp, ":")
		mustRun(t, tenantEnv, "accounts", "add", "refusing", "--host", "127.0.0.1", "--port", rport)
		start := time.Now()
		r := run(t, tenantEnv, "--json", "bench", "--account", "refusing", "-n", "5", "--sink-http", refusing.http, "--timeout", "1s")
		if r.code != ExitFailed || !strings.Contains(r.stderr, "0 of 5 queued messages reached the sink") {
			t.Errorf("refusing sink: exit %d stderr %q", r.code, r.stderr)
		}
		if res := decode[benchResult](t, r.stdout); res.Complete || res.Queued != 5 || res.Arrived != 0 {
			t.Errorf("partial result %+v", res)
		}
		if took := time.Since(start); took < time.Second {
			t.Errorf("returned after %v, before its 1s timeout", took)
		}
	})
}

func TestBenchUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"-n", "5"}, // no --account
		{"--account", "a", "-n", "0"},
		{"--account", "a", "--batch", "0"},
		{"--account", "a", "--concurrency", "0"},
		{"--account", "a", "--timeout", "0s"},
		{"--account", "a", "--sink-http", "127.0.0.1:2580"},
		{"--account", "a", "--body-size", "-1"},
		{"--account", "a", "--from", "nobody"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			r := run(t, map[string]string{"GMP_URL": "http://127.0.0.1:1"}, append([]string{"bench"}, args...)...)
			if r.code != ExitUsage {
				t.Errorf("exit %d, want 2; stdout %q stderr %q", r.code, r.stdout, r.stderr)
			}
			oneLine(t, "stderr", r.stderr)
		})
	}
}

func TestQuantile(t *testing.T) {
	t.Parallel()
	ms := func(ns ...int) []time.Duration {
		out := make([]time.Duration, len(ns))
		for i, n := range ns {
			out[i] = time.Duration(n) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		q      float64
		want   time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one", ms(7), 0.99, 7 * time.Millisecond},
		{"median of four is the second", ms(1, 2, 3, 4), 0.5, 2 * time.Millisecond},
		{"p99 of 100", ms(hundred...), 0.99, 99 * time.Millisecond},
		{"p50 of 100", ms(hundred...), 0.50, 50 * time.Millisecond},
		{"p100", ms(1, 2, 3), 1, 3 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := quantile(tc.sorted, tc.q); got != tc.want {
				t.Errorf("quantile(%v, %v) = %v, want %v", tc.sorted, tc.q, got, tc.want)
			}
		})
	}
}
