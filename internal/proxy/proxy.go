// Package proxy assembles one mail-proxy instance: it opens and migrates the
// store, builds the API, dispatcher and report loop, runs them under one
// errgroup and stops them in order.
package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"

	"github.com/mailproxy/mailproxy/internal/config"
)

// Options are the process-level inputs of Run beyond the configuration.
type Options struct {
	Logger  *slog.Logger
	Stderr  io.Writer          // where a generated admin token is printed once
	Version string             // reported in User-Agent and /openapi.json
	Ready   func(api net.Addr) // called once the API listens (tests use port 0)
}

// Run runs the instance until ctx is cancelled, then shuts down gracefully.
func Run(ctx context.Context, cfg config.Config, opts Options) error {
	return errors.New("proxy: not assembled yet")
}
