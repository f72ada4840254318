package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/textproto"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailproxy/mailproxy/internal/testsmtp"
)

// maxSinkLatencies bounds the enqueue→arrival durations a sink keeps (8 MiB):
// past it the oldest are overwritten, and /latencies says how many were lost.
const maxSinkLatencies = 1 << 20

// defaultLatencyHeader is the header bench writes its enqueue time into.
const defaultLatencyHeader = "X-Bench-Sent"

// sinkCmd is a local SMTP sink for tests and load runs. It relays nothing and
// checks no sender: it is meant for loopback use by tests only.
type sinkCmd struct {
	Listen        string        `default:"127.0.0.1:2525" help:"SMTP listen address, host:port (port 0 picks a free one). For tests only: it accepts mail for anyone and delivers none." placeholder:"ADDR"`
	HTTP          string        `name:"http" default:"127.0.0.1:2580" help:"Listen address of the HTTP API: GET /stats, GET /messages, GET /latencies, POST /reset (\"\" = none)." placeholder:"ADDR"`
	Store         int           `help:"Keep the envelope and headers of the last N messages for GET /messages (0: only count)." placeholder:"N"`
	Users         []string      `help:"Accepted AUTH credentials as user:pass (comma-separated); AUTH is then required before MAIL." placeholder:"USER:PASS"`
	FailRate      float64       `name:"fail-rate" help:"Probability (0..1) that a message is refused after its DATA with --fail-code." placeholder:"P"`
	FailCode      int           `name:"fail-code" default:"451" help:"SMTP reply code (400..599) of the refusals --fail-rate injects." placeholder:"CODE"`
	Latency       time.Duration `help:"Wait this long before answering each message's DATA (e.g. 5ms)." placeholder:"D"`
	DropRate      float64       `name:"drop-rate" help:"Probability (0..1) that the connection is dropped in the middle of a message's DATA." placeholder:"P"`
	TLS           bool          `name:"tls" help:"Offer STARTTLS with a self-signed certificate (clients must not verify it)."`
	LatencyHeader string        `name:"latency-header" default:"X-Bench-Sent" help:"Header carrying the sender's time (Unix nanoseconds); GET /latencies returns arrival minus it (\"\" = none)." placeholder:"NAME"`
	Seed          uint64        `help:"Seed of the fault probabilities (0: random); the same seed gives the same fault sequence." placeholder:"N"`
	Verbose       bool          `short:"v" help:"Print one line per accepted message."`
}

func (c *sinkCmd) validate() (map[string]string, error) {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return nil, usageErrorf("--listen %q: want host:port: %v", c.Listen, err)
	}
	if c.HTTP != "" {
		if _, _, err := net.SplitHostPort(c.HTTP); err != nil {
			return nil, usageErrorf("--http %q: want host:port: %v", c.HTTP, err)
		}
	}
	if c.Store < 0 {
		return nil, usageErrorf("--store must be 0 or more, got %d", c.Store)
	}
	if c.FailRate < 0 || c.FailRate > 1 {
		return nil, usageErrorf("--fail-rate must be within 0..1, got %v", c.FailRate)
	}
	if c.DropRate < 0 || c.DropRate > 1 {
		return nil, usageErrorf("--drop-rate must be within 0..1, got %v", c.DropRate)
	}
	if c.FailCode < 400 || c.FailCode > 599 {
		return nil, usageErrorf("--fail-code must be a 4xx or 5xx reply code, got %d", c.FailCode)
	}
	if c.Latency < 0 {
		return nil, usageErrorf("--latency must not be negative, got %v", c.Latency)
	}
	if c.LatencyHeader != "" && !validHeaderName(c.LatencyHeader) {
		return nil, usageErrorf("--latency-header %q is not a header name", c.LatencyHeader)
	}
	users := make(map[string]string, len(c.Users))
	for i, u := range c.Users {
		name, pass, ok := strings.Cut(u, ":")
		if !ok || name == "" || pass == "" {
			// The entry may hold a password: name only its position.
			return nil, usageErrorf("--users entry %d is not user:pass", i+1)
		}
		users[name] = pass
	}
	return users, nil
}

// faults turns the rate flags into testsmtp faults at the DATA stage. At most
// one fault fires per message, the first in this order: drop, refuse, delay;
// each carries the latency so that every answer is equally slow.
func (c *sinkCmd) faults() []testsmtp.Fault {
	var fs []testsmtp.Fault
	if c.DropRate > 0 {
		fs = append(fs, testsmtp.Drop(testsmtp.StageData).AfterBody(1).WithProbability(probability(c.DropRate)).WithDelay(c.Latency))
	}
	if c.FailRate > 0 {
		text := "injected failure (mail-proxy sink --fail-rate)"
		fs = append(fs, testsmtp.Reply(testsmtp.StageData, c.FailCode, "", text).WithProbability(probability(c.FailRate)).WithDelay(c.Latency))
	}
	if c.Latency > 0 {
		fs = append(fs, testsmtp.Delay(testsmtp.StageData, c.Latency))
	}
	return fs
}

// probability maps a rate to testsmtp's Probability, where 0 means "always".
func probability(rate float64) float64 {
	if rate >= 1 {
		return 0
	}
	return rate
}

func validHeaderName(s string) bool {
	for _, r := range s {
		if r <= ' ' || r >= 0x7f || r == ':' {
			return false
		}
	}
	return s != ""
}

func (c *sinkCmd) Run(e *env) error {
	users, err := c.validate()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	seed := c.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	state := newSinkState(c.Store, c.LatencyHeader)
	var printMu sync.Mutex
	opts := testsmtp.Options{
		Addr:         c.Listen,
		Domain:       "sink.mail-proxy.localhost",
		Users:        users,
		AuthRequired: len(users) > 0,
		TLS:          c.TLS,
		// testsmtp keeps nothing: the sink's own bounded rings are all the
		// memory messages take. Bodies are read only to parse headers.
		Discard:  true,
		PassData: c.Store > 0 || state.header != "",
		Faults:   c.faults(),
		Seed:     seed,
		Logger:   log,
		OnMessage: func(r testsmtp.Received) {
			state.add(r)
			if c.Verbose {
				printMu.Lock()
				defer printMu.Unlock()
				fmt.Fprintf(e.stdout, "message conn=%d from=%q rcpts=%q auth=%q tls=%v\n", r.ConnID, r.From, r.Rcpts, r.AuthUser, r.TLS)
			}
		},
	}
	srv, err := testsmtp.New(opts)
	if err != nil {
		return fmt.Errorf("sink: %w", err)
	}
	if err := srv.Start(); err != nil {
		return fmt.Errorf("sink: %w", err)
	}
	defer func() {
		if err := srv.Close(); err != nil {
			log.Warn("sink: close SMTP server", "err", err)
		}
	}()
	state.srv = srv

	var (
		httpSrv  *http.Server
		httpURL  string
		httpDone = make(chan error, 1)
	)
	if c.HTTP != "" {
		ln, err := (&net.ListenConfig{}).Listen(e.ctx, "tcp", c.HTTP)
		if err != nil {
			return fmt.Errorf("sink: HTTP listen: %w", err)
		}
		httpURL = "http://" + ln.Addr().String()
		httpSrv = &http.Server{
			Handler:           state.handler(),
			ReadHeaderTimeout: 10 * time.Second,
			BaseContext:       func(net.Listener) context.Context { return e.ctx },
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
		go func() {
			defer func() {
				if p := recover(); p != nil {
					log.Error("sink: HTTP server panic", "panic", p, "stack", string(debug.Stack()))
					httpDone <- fmt.Errorf("sink: HTTP server panic: %v", p)
				}
			}()
			httpDone <- httpSrv.Serve(ln)
		}()
	}

	if e.flags.JSON {
		if err := writeJSON(e.stdout, map[string]string{"smtp": srv.Addr(), "http": httpURL}); err != nil {
			return err
		}
	} else {
		printMu.Lock()
		_, err := fmt.Fprintf(e.stdout, "sink listening smtp=%s http=%s (a test sink: accepts all mail, delivers none)\n", srv.Addr(), httpURL)
		printMu.Unlock()
		if err != nil {
			return err
		}
	}

	select {
	case <-e.ctx.Done():
	case err := <-httpDone:
		return fmt.Errorf("sink: HTTP server: %w", err)
	}
	if httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := httpSrv.Shutdown(ctx); err != nil {
			log.Warn("sink: HTTP shutdown", "err", err)
		}
	}
	return nil
}

// sinkStats is the answer of GET /stats, counted since start or the last reset.
type sinkStats struct {
	Messages    int   `json:"messages"`
	Bytes       int64 `json:"bytes"`
	Connections int64 `json:"connections"`
	Open        int   `json:"open"`
}

// sinkMessage is one stored message of GET /messages: envelope and headers.
type sinkMessage struct {
	ConnID   int64               `json:"conn_id"`
	AuthUser string              `json:"auth_user,omitempty"`
	TLS      bool                `json:"tls"`
	From     string              `json:"from"`
	Rcpts    []string            `json:"rcpts"`
	Size     int                 `json:"size"`
	At       time.Time           `json:"at"`
	Headers  map[string][]string `json:"headers"`
}

// sinkLatencies is the answer of GET /latencies.
type sinkLatencies struct {
	Header string `json:"header"`
	// Count is every message that carried the header since the last reset;
	// LatenciesNS holds the last (at most maxSinkLatencies) of them.
	Count       int64   `json:"count"`
	Invalid     int64   `json:"invalid"` // header present but not Unix nanoseconds
	LatenciesNS []int64 `json:"latencies_ns"`
	// FirstArrivalNS and LastArrivalNS bound the arrivals counted, Unix ns (0: none).
	FirstArrivalNS int64 `json:"first_arrival_ns"`
	LastArrivalNS  int64 `json:"last_arrival_ns"`
}

// sinkState is what the sink keeps beyond testsmtp's counters, all bounded:
// a ring of stored messages and a ring of latencies.
type sinkState struct {
	srv    *testsmtp.Server
	header string // canonical latency header; "" = none recorded

	mu        sync.Mutex
	base      testsmtp.Stats // testsmtp's counters at the last reset
	messages  int            // counted here, after the latency is recorded
	stored    []sinkMessage  // ring of cap storeCap
	storeCap  int
	storeNext int
	lat       []int64 // ring of cap maxSinkLatencies
	latNext   int
	latCount  int64
	invalid   int64
	firstAt   int64
	lastAt    int64
}

func newSinkState(store int, header string) *sinkState {
	if header != "" {
		header = textproto.CanonicalMIMEHeaderKey(header)
	}
	return &sinkState{header: header, storeCap: store}
}

// add records one accepted message.
func (s *sinkState) add(r testsmtp.Received) {
	var hdr textproto.MIMEHeader
	if r.Data != nil {
		// A malformed header block still yields the fields read before the fault.
		hdr, _ = textproto.NewReader(bufio.NewReader(bytes.NewReader(r.Data))).ReadMIMEHeader()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.messages++
	if s.header != "" {
		if v := hdr.Get(s.header); v != "" {
			s.addLatencyLocked(v, r.At)
		}
	}
	if s.storeCap > 0 {
		m := sinkMessage{
			ConnID: r.ConnID, AuthUser: r.AuthUser, TLS: r.TLS, From: r.From, Rcpts: r.Rcpts,
			Size: len(r.Data), At: r.At, Headers: hdr,
		}
		if m.Headers == nil {
			m.Headers = map[string][]string{}
		}
		if len(s.stored) < s.storeCap {
			s.stored = append(s.stored, m)
		} else {
			s.stored[s.storeNext] = m
		}
		s.storeNext = (s.storeNext + 1) % s.storeCap
	}
}

func (s *sinkState) addLatencyLocked(value string, at time.Time) {
	sent, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64)
	if err != nil {
		s.invalid++
		return
	}
	arrival := at.UnixNano()
	d := arrival - sent
	if len(s.lat) < maxSinkLatencies {
		s.lat = append(s.lat, d)
	} else {
		s.lat[s.latNext] = d
	}
	s.latNext = (s.latNext + 1) % maxSinkLatencies
	s.latCount++
	if s.firstAt == 0 || arrival < s.firstAt {
		s.firstAt = arrival
	}
	s.lastAt = max(s.lastAt, arrival)
}

func (s *sinkState) stats() sinkStats {
	st := s.srv.Stats()
	s.mu.Lock()
	defer s.mu.Unlock()
	return sinkStats{
		Messages:    s.messages,
		Bytes:       st.Bytes - s.base.Bytes,
		Connections: st.Connections - s.base.Connections,
		Open:        st.Open,
	}
}

// storedMessages returns the stored messages, oldest first.
func (s *sinkState) storedMessages() []sinkMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]sinkMessage, 0, len(s.stored))
	if len(s.stored) == s.storeCap {
		out = append(out, s.stored[s.storeNext:]...)
		out = append(out, s.stored[:s.storeNext]...)
	} else {
		out = append(out, s.stored...)
	}
	return out
}

func (s *sinkState) latencies() sinkLatencies {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sinkLatencies{
		Header: s.header, Count: s.latCount, Invalid: s.invalid,
		LatenciesNS:    append([]int64{}, s.lat...),
		FirstArrivalNS: s.firstAt, LastArrivalNS: s.lastAt,
	}
}

func (s *sinkState) reset() {
	st := s.srv.Stats()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.base = st
	s.messages = 0
	s.stored, s.storeNext = nil, 0
	s.lat, s.latNext, s.latCount, s.invalid, s.firstAt, s.lastAt = nil, 0, 0, 0, 0, 0
}

func (s *sinkState) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		sinkJSON(w, http.StatusOK, s.stats())
	})
	mux.HandleFunc("GET /messages", func(w http.ResponseWriter, _ *http.Request) {
		sinkJSON(w, http.StatusOK, s.storedMessages())
	})
	mux.HandleFunc("GET /latencies", func(w http.ResponseWriter, r *http.Request) {
		want := r.URL.Query().Get("header")
		switch {
		case s.header == "":
			sinkJSON(w, http.StatusConflict, map[string]string{"detail": "this sink records no latencies (--latency-header \"\")"})
			return
		case want != "" && !strings.EqualFold(want, s.header):
			sinkJSON(w, http.StatusBadRequest, map[string]string{"detail": fmt.Sprintf("this sink records header %s (--latency-header), not %s", s.header, want)})
			return
		}
		sinkJSON(w, http.StatusOK, s.latencies())
	})
	mux.HandleFunc("POST /reset", func(w http.ResponseWriter, _ *http.Request) {
		s.reset()
		sinkJSON(w, http.StatusOK, map[string]bool{"ok": true})
	})
	return mux
}

func sinkJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// Compact: a latency list can hold a million numbers. A write error means
	// the client went away, and there is no one left to tell.
	_ = json.NewEncoder(w).Encode(v)
}
