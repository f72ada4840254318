// Package sink is the local SMTP sink behind `mail-proxy sink` and the bench
// suite: an SMTP server (internal/testsmtp) that accepts mail for anyone and
// delivers none, plus an HTTP API reporting what arrived. It is for loopback
// test and load runs only: it relays nothing and checks no sender.
//
// What it keeps, all bounded:
//  1. counters since start or the last reset (GET /stats);
//  2. the envelope and headers of the last Options.Store messages
//     (GET /messages);
//  3. per message carrying Options.LatencyHeader (the sender's time in Unix
//     nanoseconds), arrival minus that time, the last maxLatencies of them
//     (GET /latencies).
//
// POST /reset clears all three. Faults (refusals, drops, a delay) are injected
// at the DATA stage with the configured probabilities.
package sink

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/mailproxy/mailproxy/internal/testsmtp"
)

// DefaultLatencyHeader is the header bench writes its enqueue time into.
const DefaultLatencyHeader = "X-Bench-Sent"

// Options configure a Sink.
type Options struct {
	Addr     string // SMTP listen address, host:port (port 0 picks a free one)
	HTTPAddr string // HTTP API listen address; "" = no HTTP API
	Store    int    // keep the envelope and headers of the last Store messages
	// Users are the accepted AUTH credentials; AUTH is then required before MAIL.
	Users    map[string]string
	FailRate float64       // probability (0..1) of refusing a message after its DATA with FailCode
	FailCode int           // reply code of those refusals
	Latency  time.Duration // wait this long before answering each DATA
	DropRate float64       // probability (0..1) of dropping the connection within DATA
	TLS      bool          // offer STARTTLS with a self-signed certificate
	// LatencyHeader carries the sender's time (Unix ns); "" = none recorded.
	LatencyHeader string
	Seed          uint64 // seed of the fault probabilities
	Logger        *slog.Logger
	// OnMessage, when set, is called after each accepted message is recorded.
	OnMessage func(testsmtp.Received)
}

// faults turns the rate options into testsmtp faults at the DATA stage. At
// most one fault fires per message, the first in this order: drop, refuse,
// delay; each carries the latency so that every answer is equally slow.
func (o Options) faults() []testsmtp.Fault {
	var fs []testsmtp.Fault
	if o.DropRate > 0 {
		fs = append(fs, testsmtp.Drop(testsmtp.StageData).AfterBody(1).WithProbability(probability(o.DropRate)).WithDelay(o.Latency))
	}
	if o.FailRate > 0 {
		text := "injected failure (mail-proxy sink --fail-rate)"
		fs = append(fs, testsmtp.Reply(testsmtp.StageData, o.FailCode, "", text).WithProbability(probability(o.FailRate)).WithDelay(o.Latency))
	}
	if o.Latency > 0 {
		fs = append(fs, testsmtp.Delay(testsmtp.StageData, o.Latency))
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

// ValidHeaderName reports whether s can name a header field.
func ValidHeaderName(s string) bool {
	for _, r := range s {
		if r <= ' ' || r >= 0x7f || r == ':' {
			return false
		}
	}
	return s != ""
}

// Sink is a running sink: its SMTP server and, if asked, its HTTP API.
type Sink struct {
	smtp     *testsmtp.Server
	state    *state
	log      *slog.Logger
	httpSrv  *http.Server
	httpURL  string
	httpDone chan error
}

// Start listens on both addresses and serves until Close. ctx is the base
// context of the HTTP API's requests.
func Start(ctx context.Context, o Options) (*Sink, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sink{state: newState(o.Store, o.LatencyHeader), log: log, httpDone: make(chan error, 1)}
	srv, err := testsmtp.New(testsmtp.Options{
		Addr:         o.Addr,
		Domain:       "sink.mail-proxy.localhost",
		Users:        o.Users,
		AuthRequired: len(o.Users) > 0,
		TLS:          o.TLS,
		// testsmtp keeps nothing: the sink's own bounded rings are all the
		// memory messages take. Bodies are read only to parse headers.
		Discard:  true,
		PassData: o.Store > 0 || s.state.header != "",
		Faults:   o.faults(),
		Seed:     o.Seed,
		Logger:   log,
		OnMessage: func(r testsmtp.Received) {
			s.state.add(r)
			if o.OnMessage != nil {
				o.OnMessage(r)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	s.smtp, s.state.srv = srv, srv
	if o.HTTPAddr == "" {
		return s, nil
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", o.HTTPAddr)
	if err != nil {
		s.closeSMTP()
		return nil, fmt.Errorf("sink: HTTP listen: %w", err)
	}
	s.httpURL = "http://" + ln.Addr().String()
	s.httpSrv = &http.Server{
		Handler:           s.state.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() {
		defer func() {
			if p := recover(); p != nil {
				log.Error("sink: HTTP server panic", "panic", p, "stack", string(debug.Stack()))
				s.httpDone <- fmt.Errorf("sink: HTTP server panic: %v", p)
			}
		}()
		s.httpDone <- s.httpSrv.Serve(ln)
	}()
	return s, nil
}

// SMTPAddr is the SMTP server's host:port.
func (s *Sink) SMTPAddr() string { return s.smtp.Addr() }

// HTTPURL is the HTTP API's base URL ("" without one).
func (s *Sink) HTTPURL() string { return s.httpURL }

// Wait blocks until ctx is done (nil) or the HTTP API fails (its error).
func (s *Sink) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-s.httpDone:
		return fmt.Errorf("sink: HTTP server: %w", err)
	}
}

// Close stops the HTTP API, letting requests in flight finish for up to 5 s,
// then the SMTP server. Failures are logged: there is no one left to tell.
func (s *Sink) Close() {
	if s.httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.httpSrv.Shutdown(ctx); err != nil {
			s.log.Warn("sink: HTTP shutdown", "err", err)
		}
	}
	s.closeSMTP()
}

func (s *Sink) closeSMTP() {
	if err := s.smtp.Close(); err != nil {
		s.log.Warn("sink: close SMTP server", "err", err)
	}
}

// Reset clears the counters, stored messages and latencies, as POST /reset.
func (s *Sink) Reset() { s.state.reset() }

// Stats is GET /stats.
func (s *Sink) Stats() Stats { return s.state.stats() }

// Latencies is GET /latencies.
func (s *Sink) Latencies() Latencies { return s.state.latencies() }

func (s *state) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.stats())
	})
	mux.HandleFunc("GET /messages", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.storedMessages())
	})
	mux.HandleFunc("GET /latencies", func(w http.ResponseWriter, r *http.Request) {
		want := r.URL.Query().Get("header")
		switch {
		case s.header == "":
			writeJSON(w, http.StatusConflict, map[string]string{"detail": "this sink records no latencies (--latency-header \"\")"})
			return
		case want != "" && !strings.EqualFold(want, s.header):
			writeJSON(w, http.StatusBadRequest, map[string]string{"detail": fmt.Sprintf("this sink records header %s (--latency-header), not %s", s.header, want)})
			return
		}
		writeJSON(w, http.StatusOK, s.latencies())
	})
	mux.HandleFunc("POST /reset", func(w http.ResponseWriter, _ *http.Request) {
		s.reset()
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// Compact: a latency list can hold a million numbers. A write error means
	// the client went away, and there is no one left to tell.
	_ = json.NewEncoder(w).Encode(v)
}
