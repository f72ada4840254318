package cli

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/mailproxy/mailproxy/internal/sink"
	"github.com/mailproxy/mailproxy/internal/testsmtp"
)

// sinkCmd is `mail-proxy sink`: its flags, checked and handed to
// internal/sink, which is the sink itself.
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
	if c.LatencyHeader != "" && !sink.ValidHeaderName(c.LatencyHeader) {
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

func (c *sinkCmd) Run(e *env) error {
	users, err := c.validate()
	if err != nil {
		return err
	}
	seed := c.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	var printMu sync.Mutex
	opts := sink.Options{
		Addr: c.Listen, HTTPAddr: c.HTTP, Store: c.Store, Users: users,
		FailRate: c.FailRate, FailCode: c.FailCode, Latency: c.Latency, DropRate: c.DropRate,
		TLS: c.TLS, LatencyHeader: c.LatencyHeader, Seed: seed,
		Logger: slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if c.Verbose {
		opts.OnMessage = func(r testsmtp.Received) {
			printMu.Lock()
			defer printMu.Unlock()
			fmt.Fprintf(e.stdout, "message conn=%d from=%q rcpts=%q auth=%q tls=%v\n", r.ConnID, r.From, r.Rcpts, r.AuthUser, r.TLS)
		}
	}
	s, err := sink.Start(e.ctx, opts)
	if err != nil {
		return err
	}
	defer s.Close()

	if e.flags.JSON {
		if err := writeJSON(e.stdout, map[string]string{"smtp": s.SMTPAddr(), "http": s.HTTPURL()}); err != nil {
			return err
		}
	} else {
		printMu.Lock()
		_, err := fmt.Fprintf(e.stdout, "sink listening smtp=%s http=%s (a test sink: accepts all mail, delivers none)\n", s.SMTPAddr(), s.HTTPURL())
		printMu.Unlock()
		if err != nil {
			return err
		}
	}
	return s.Wait(e.ctx)
}
