package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mailproxy/mailproxy/internal/sink"
)

// syncBuffer is an output stream a test can read while Main still writes it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var sinkListeningRE = regexp.MustCompile(`sink listening smtp=(\S+) http=(\S*)`)

// runningSink is a `mail-proxy sink` started through Main.
type runningSink struct {
	smtp string // host:port
	http string // http://host:port
}

// startSink runs `mail-proxy sink` on free loopback ports with the extra
// args, waits for its listening line, and at cleanup stops it and checks it
// exited 0.
func startSink(t *testing.T, args ...string) runningSink {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	args = append([]string{"sink", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"}, args...)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				fmt.Fprintf(&stderr, "panic: %v", p)
				done <- -1
			}
		}()
		done <- Main(ctx, args, func(string) string { return "" }, &stdout, &stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("sink exit %d after cancel; stderr %q", code, stderr.String())
			}
		case <-time.After(30 * time.Second):
			t.Error("sink did not stop within 30 s of cancel")
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := sinkListeningRE.FindStringSubmatch(stdout.String()); m != nil {
			return runningSink{smtp: m[1], http: m[2]}
		}
		select {
		case code := <-done:
			t.Fatalf("sink exited %d before listening; stderr %q", code, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("sink printed no listening line within 30 s; stdout %q stderr %q", stdout.String(), stderr.String())
		}
	}
}

// sinkCall does one request on the sink's HTTP API and decodes a JSON answer into out.
func sinkCall(t *testing.T, method, url string, out any) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, url, ct)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("%s %s: decode: %v", method, url, err)
	}
	return resp.StatusCode
}

func (s runningSink) stats(t *testing.T) sink.Stats {
	t.Helper()
	var st sink.Stats
	if code := sinkCall(t, http.MethodGet, s.http+"/stats", &st); code != http.StatusOK {
		t.Fatalf("GET /stats: HTTP %d", code)
	}
	return st
}

// testMail is one message a test sends to the sink.
type testMail struct {
	auth     sasl.Client
	startTLS bool
	from     string
	to       []string
	header   string // extra header lines, each ending in \r\n
	subject  string
}

// send delivers m with go-smtp's client over one connection.
func (m testMail) send(addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var (
		c   *smtp.Client
		err error
	)
	if m.startTLS {
		// The sink's certificate is self-signed by design: tests of the sink skip verification.
		c, err = smtp.DialStartTLS(addr, &tls.Config{InsecureSkipVerify: true})
	} else {
		c, err = smtp.Dial(addr)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	if m.auth != nil {
		if err := c.Auth(m.auth); err != nil {
			return err
		}
	}
	body := "From: " + m.from + "\r\nTo: " + strings.Join(m.to, ", ") + "\r\nSubject: " + m.subject + "\r\n" + m.header +
		"\r\nHello from the sink test.\r\n"
	if err := c.SendMail(m.from, m.to, strings.NewReader(body)); err != nil {
		return err
	}
	return c.Quit()
}

func TestSinkCountsStoresAndResets(t *testing.T) {
	t.Parallel()
	s := startSink(t, "--store", "2")
	if st := s.stats(t); st != (sink.Stats{}) {
		t.Errorf("fresh sink stats = %+v, want zeros", st)
	}
	before := time.Now().UnixNano()
	for i := 1; i <= 3; i++ {
		m := testMail{
			from: "alice@example.com", to: []string{"bob@example.com", "carol@example.com"}, subject: "s" + strconv.Itoa(i),
			header: "X-Bench-Sent: " + strconv.FormatInt(time.Now().UnixNano(), 10) + "\r\n",
		}
		if err := m.send(s.smtp); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	st := s.stats(t)
	if st.Messages != 3 || st.Connections != 3 || st.Bytes < 3*50 {
		t.Errorf("stats after 3 messages = %+v", st)
	}

	var stored []sink.Message
	sinkCall(t, http.MethodGet, s.http+"/messages", &stored)
	if len(stored) != 2 {
		t.Fatalf("GET /messages with --store 2 after 3 messages: %d stored", len(stored))
	}
	for i, m := range stored {
		if got, want := m.Headers["Subject"], []string{"s" + strconv.Itoa(i+2)}; len(got) != 1 || got[0] != want[0] {
			t.Errorf("stored[%d] Subject = %q, want %q (the last two, oldest first)", i, got, want)
		}
		if m.From != "alice@example.com" || len(m.Rcpts) != 2 || m.Rcpts[1] != "carol@example.com" || m.Size == 0 || m.TLS {
			t.Errorf("stored[%d] envelope = %+v", i, m)
		}
	}

	var lat sink.Latencies
	if code := sinkCall(t, http.MethodGet, s.http+"/latencies?header=x-bench-sent", &lat); code != http.StatusOK {
		t.Fatalf("GET /latencies: HTTP %d", code)
	}
	if lat.Count != 3 || len(lat.LatenciesNS) != 3 || lat.Header != "X-Bench-Sent" || lat.Invalid != 0 {
		t.Errorf("latencies = %+v", lat)
	}
	for _, d := range lat.LatenciesNS {
		if d < 0 || time.Duration(d) > time.Since(time.Unix(0, before)) {
			t.Errorf("latency %v outside [0, time since the first send]", time.Duration(d))
		}
	}
	if lat.FirstArrivalNS < before || lat.LastArrivalNS < lat.FirstArrivalNS {
		t.Errorf("arrival bounds %d..%d, sends started at %d", lat.FirstArrivalNS, lat.LastArrivalNS, before)
	}
	var detail map[string]string
	if code := sinkCall(t, http.MethodGet, s.http+"/latencies?header=X-Other", &detail); code != http.StatusBadRequest || !strings.Contains(detail["detail"], "X-Bench-Sent") {
		t.Errorf("GET /latencies for another header: HTTP %d %v", code, detail)
	}

	var ok map[string]bool
	if code := sinkCall(t, http.MethodPost, s.http+"/reset", &ok); code != http.StatusOK || !ok["ok"] {
		t.Fatalf("POST /reset: HTTP %d %v", code, ok)
	}
	if st := s.stats(t); st.Messages != 0 || st.Bytes != 0 || st.Connections != 0 {
		t.Errorf("stats after reset = %+v", st)
	}
	sinkCall(t, http.MethodGet, s.http+"/messages", &stored)
	sinkCall(t, http.MethodGet, s.http+"/latencies", &lat)
	if len(stored) != 0 || lat.Count != 0 || len(lat.LatenciesNS) != 0 {
		t.Errorf("after reset: %d stored, latencies %+v", len(stored), lat)
	}
	if err := (testMail{from: "a@example.com", to: []string{"b@example.com"}, subject: "after"}).send(s.smtp); err != nil {
		t.Fatal(err)
	}
	if st := s.stats(t); st.Messages != 1 || st.Connections != 1 {
		t.Errorf("stats after reset and one message = %+v", st)
	}
}

func TestSinkFaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		code int // SMTP reply code wanted; 0 = the connection drops
	}{
		{"refuse 554", []string{"--fail-rate", "1", "--fail-code", "554"}, 554},
		{"refuse 451 slowly", []string{"--fail-rate", "1.0", "--latency", "5ms"}, 451},
		{"drop", []string{"--drop-rate", "1"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startSink(t, tc.args...)
			for i := range 3 {
				err := testMail{from: "a@example.com", to: []string{"b@example.com"}, subject: "x"}.send(s.smtp)
				var se *smtp.SMTPError
				switch {
				case err == nil:
					t.Fatalf("message %d accepted despite %v", i, tc.args)
				case tc.code != 0 && (!errors.As(err, &se) || se.Code != tc.code):
					t.Fatalf("message %d: %v, want reply %d", i, err, tc.code)
				case tc.code == 0 && errors.As(err, &se):
					t.Fatalf("message %d: reply %v, want a dropped connection", i, err)
				}
			}
			if st := s.stats(t); st.Messages != 0 || st.Connections != 3 {
				t.Errorf("stats = %+v, want 0 messages over 3 connections", st)
			}
		})
	}
}

func TestSinkPartialFailRate(t *testing.T) {
	t.Parallel()
	s := startSink(t, "--fail-rate", "0.5", "--seed", "7")
	const n = 40
	refused := 0
	for range n {
		err := testMail{from: "a@example.com", to: []string{"b@example.com"}, subject: "x"}.send(s.smtp)
		var se *smtp.SMTPError
		switch {
		case err == nil:
		case errors.As(err, &se) && se.Code == 451:
			refused++
		default:
			t.Fatal(err)
		}
	}
	// With p = 0.5 over 40 tries, all or none refused has odds of 2^-39.
	if refused == 0 || refused == n {
		t.Errorf("%d of %d refused with --fail-rate 0.5", refused, n)
	}
	if st := s.stats(t); st.Messages != n-refused {
		t.Errorf("stats messages = %d, want %d accepted", st.Messages, n-refused)
	}
}

func TestSinkLatency(t *testing.T) {
	t.Parallel()
	s := startSink(t, "--latency", "50ms")
	start := time.Now()
	if err := (testMail{from: "a@example.com", to: []string{"b@example.com"}, subject: "x"}).send(s.smtp); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 50*time.Millisecond {
		t.Errorf("a message took %v with --latency 50ms", took)
	}
}

func TestSinkAuthAndTLS(t *testing.T) {
	t.Parallel()
	s := startSink(t, "--users", "alice:s3cret,bob:pw", "--tls", "--store", "10")
	base := testMail{from: "a@example.com", to: []string{"b@example.com"}, subject: "x", startTLS: true}

	var se *smtp.SMTPError
	if err := base.send(s.smtp); !errors.As(err, &se) || se.Code != 530 {
		t.Errorf("without AUTH: %v, want 530", err)
	}
	wrong := base
	wrong.auth = sasl.NewPlainClient("", "alice", "nope")
	if err := wrong.send(s.smtp); !errors.As(err, &se) || se.Code != 535 {
		t.Errorf("wrong password: %v, want 535", err)
	}
	good := base
	good.auth = sasl.NewPlainClient("", "bob", "pw")
	if err := good.send(s.smtp); err != nil {
		t.Fatalf("bob over STARTTLS: %v", err)
	}
	var stored []sink.Message
	sinkCall(t, http.MethodGet, s.http+"/messages", &stored)
	if len(stored) != 1 || stored[0].AuthUser != "bob" || !stored[0].TLS {
		t.Errorf("stored = %+v, want one message from bob over TLS", stored)
	}
}

func TestSinkJSONAndVerbose(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"--json", "sink", "--listen", "127.0.0.1:0", "--http", "", "-v"},
			func(string) string { return "" }, &stdout, &stderr)
	}()
	var addrs map[string]string
	deadline := time.Now().Add(30 * time.Second)
	for json.Unmarshal([]byte(stdout.String()), &addrs) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("no JSON listening line: stdout %q stderr %q", stdout.String(), stderr.String())
		}
		select {
		case code := <-done:
			t.Fatalf("sink exited %d; stderr %q", code, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if addrs["smtp"] == "" || addrs["http"] != "" {
		t.Errorf("--json listening line %v: want smtp set and no http", addrs)
	}
	if err := (testMail{from: "a@example.com", to: []string{"b@example.com"}, subject: "x"}).send(addrs["smtp"]); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(stdout.String(), `message conn=1 from="a@example.com"`) {
		if time.Now().After(deadline) {
			t.Fatalf("-v printed no message line: %q", stdout.String())
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit %d after cancel; stderr %q", code, stderr.String())
	}
}

func TestSinkUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--fail-rate", "1.5"},
		{"--drop-rate", "-0.1"},
		{"--fail-code", "250", "--fail-rate", "0.1"},
		{"--store", "-1"},
		{"--users", "alice"},
		{"--users", "alice:"},
		{"--listen", "nowhere"},
		{"--http", "2580"},
		{"--latency", "-5ms"},
		{"--latency-header", "Bad Header"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			r := run(t, nil, append([]string{"sink"}, args...)...)
			if r.code != ExitUsage {
				t.Errorf("exit %d, want 2; stdout %q stderr %q", r.code, r.stdout, r.stderr)
			}
			oneLine(t, "stderr", r.stderr)
		})
	}
	// A password never appears in the error.
	if r := run(t, nil, "sink", "--users", "alice:pw,carol-secret"); strings.Contains(r.stderr, "carol-secret") || !strings.Contains(r.stderr, "entry 2") {
		t.Errorf("stderr for a bad second entry: %q", r.stderr)
	}
	if r := run(t, nil, "--help"); !strings.Contains(r.stdout, "sink") || !strings.Contains(r.stdout, "bench") {
		t.Errorf("--help lists neither sink nor bench: %q", r.stdout)
	}
}

// Without --store the sink still reads each header block for the latency
// header, and keeps nothing.
func TestSinkLatencyWithoutStore(t *testing.T) {
	t.Parallel()
	s := startSink(t)
	sent := time.Now().UnixNano()
	msg := func(header string) testMail {
		return testMail{from: "bench@example.com", to: []string{"b@example.com"}, subject: "x", header: header}
	}
	for _, m := range []testMail{
		msg("X-Bench-Sent: " + strconv.FormatInt(sent, 10) + "\r\n"),
		msg(""),
		msg("X-Bench-Sent: soon\r\n"),
	} {
		if err := m.send(s.smtp); err != nil {
			t.Fatal(err)
		}
	}
	var lat sink.Latencies
	sinkCall(t, http.MethodGet, s.http+"/latencies", &lat)
	if lat.Count != 1 || len(lat.LatenciesNS) != 1 || lat.Invalid != 1 {
		t.Fatalf("latencies = %+v, want one valid and one invalid", lat)
	}
	if d := lat.LatenciesNS[0]; d < 0 || lat.FirstArrivalNS-sent != d {
		t.Errorf("latency %d ns, first arrival %d, sent %d", d, lat.FirstArrivalNS, sent)
	}
	var stored []sink.Message
	sinkCall(t, http.MethodGet, s.http+"/messages", &stored)
	if st := s.stats(t); st.Messages != 3 || len(stored) != 0 {
		t.Errorf("stats %+v with %d stored, want 3 counted and none stored", st, len(stored))
	}
}

// With --latency-header "" and no --store the sink only counts.
func TestSinkCountOnly(t *testing.T) {
	t.Parallel()
	s := startSink(t, "--latency-header", "")
	m := testMail{from: "a@example.com", to: []string{"b@example.com"}, subject: "x", header: "X-Bench-Sent: 1\r\n"}
	if err := m.send(s.smtp); err != nil {
		t.Fatal(err)
	}
	if st := s.stats(t); st.Messages != 1 || st.Bytes == 0 {
		t.Errorf("stats %+v, want 1 message with its bytes", st)
	}
	var detail map[string]string
	if code := sinkCall(t, http.MethodGet, s.http+"/latencies", &detail); code != http.StatusConflict {
		t.Errorf("GET /latencies with no latency header: HTTP %d %v", code, detail)
	}
}
