// Command example-client shows the local-first way to integrate an
// application with mailproxy (example-client.md):
//
//  1. write each email to the application's own SQLite table, status pending;
//  2. hand it to the proxy with POST /commands/add-messages (→ submitted),
//     then trigger POST /commands/run-now, best effort;
//  3. learn the outcome from the proxy's delivery reports on the sync
//     endpoint (→ delivered or failed), applied idempotently;
//  4. at startup, every 60 s and on every sync call, hand over rows still
//     pending, so an unreachable proxy delays mail but never loses it.
//
// It uses only the public pkg/client, net/http, database/sql with the
// pure-Go SQLite driver and the standard library.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}
