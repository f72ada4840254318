package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/mailproxy/mailproxy/pkg/client"
)

const (
	resubmitInterval = 60 * time.Second
	shutdownTimeout  = 10 * time.Second
	proxyTimeout     = 15 * time.Second
)

// run is the whole program: it returns the exit code (0 after a clean
// shutdown, 1 on a runtime failure, 2 on bad flags or configuration).
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	fl := flag.NewFlagSet("example-client", flag.ContinueOnError)
	fl.SetOutput(stderr)
	configPath := fl.String("config", "example_config.ini", "configuration file (INI)")
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	explicit := false
	fl.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })

	cfg, err := loadConfig(*configPath, explicit, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "example-client: %v\n", err)
		return 2
	}
	if err := serve(ctx, cfg, log, stdout); err != nil {
		log.Error("example client stopped", "error", err)
		return 1
	}
	return 0
}

// serve runs the HTTP server and the resubmit loop until ctx ends, then
// stops both and closes the database last.
func serve(ctx context.Context, cfg config, log *slog.Logger, stdout io.Writer) (err error) {
	ob, err := openOutbox(ctx, cfg.DatabasePath)
	if err != nil {
		return err
	}
	defer func() {
		if closeErr := ob.Close(); closeErr != nil {
			err = errors.Join(err, fmt.Errorf("close database: %w", closeErr))
		}
	}()

	proxy := client.New(cfg.MailServiceURL, cfg.APIToken, client.WithTimeout(proxyTimeout))
	a := newApp(cfg, ob, proxy, log)

	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", net.JoinHostPort(cfg.ServerHost, strconv.Itoa(cfg.ServerPort)))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           a.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		// Open requests may finish after the signal (within shutdownTimeout).
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		ErrorLog:    slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	addr := ln.Addr().String()
	log.Info("example client listening", "addr", addr, "mail_service", cfg.MailServiceURL, "tenant_id", cfg.TenantID, "database", cfg.DatabasePath)
	fmt.Fprintf(stdout, "example-client listening on http://%s\n", addr)

	loopCtx, stopLoop := context.WithCancel(ctx)
	defer stopLoop()
	var wg sync.WaitGroup
	wg.Go(func() { a.resubmitLoop(loopCtx, resubmitInterval) })

	serveErr := make(chan error, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				log.Error("panic recovered", "where", "http server", "panic", v, "stack", string(debug.Stack()))
				serveErr <- fmt.Errorf("http server panicked: %v", v)
			}
		}()
		serveErr <- srv.Serve(ln)
	}()

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err = <-serveErr:
		err = fmt.Errorf("http server: %w", err)
	}
	// Shutdown needs its own deadline: ctx is already cancelled here.
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if shutErr := srv.Shutdown(shutdownCtx); shutErr != nil {
		err = errors.Join(err, fmt.Errorf("http shutdown: %w", shutErr))
	}
	stopLoop()
	wg.Wait()
	return err
}

// resubmitLoop hands pending rows to the proxy at once and then every
// interval until ctx ends.
func (a *app) resubmitLoop(ctx context.Context, interval time.Duration) {
	defer recoverTo(a.log, "resubmit loop")
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		sub, err := a.submit.submit(ctx, nil)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			a.log.Warn("resubmitting pending emails failed; will retry", "error", err, "retry_in", interval)
		case len(sub.IDs) > 0:
			a.log.Info("resubmitted pending emails", "count", len(sub.IDs), "queued", sub.Queued)
			a.submit.runNow(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// recoverTo keeps a panic in a goroutine from killing the process silently.
func recoverTo(log *slog.Logger, where string) {
	if v := recover(); v != nil {
		log.Error("panic recovered", "where", where, "panic", v, "stack", string(debug.Stack()))
	}
}
