package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestFaultOf(t *testing.T) {
	t.Parallel()
	// A real refused dial: a port that was just free.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, refused := net.Dial("tcp", addr)
	if refused == nil {
		t.Skip("the closed port accepted a connection")
	}
	cases := []struct {
		name string
		err  error
		want Fault
	}{
		{"nil", nil, FaultNone},
		{"plain", errors.New("boom"), FaultNone},
		{"not found", fmt.Errorf("get: %w", ErrNotFound), FaultNone},
		{"caller gave up", fmt.Errorf("q: %w", context.Canceled), FaultNone},
		{"refused dial", fmt.Errorf("connect: %w", refused), FaultUnavailable},
		{"admin shutdown", fmt.Errorf("tx: %w", &pgconn.PgError{Code: "57P01"}), FaultUnavailable},
		{"starting up", &pgconn.PgError{Code: "57P03"}, FaultUnavailable},
		{"connection exception", &pgconn.PgError{Code: "08006"}, FaultUnavailable},
		{"disk full", &pgconn.PgError{Code: "53100"}, FaultFull},
		{"unique violation", &pgconn.PgError{Code: "23505"}, FaultNone},
		{"no space", &fs.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}, FaultFull},
	}
	for _, tc := range cases {
		if got := FaultOf(tc.err); got != tc.want {
			t.Errorf("%s: FaultOf(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

func TestFaultLogOneLinePerChange(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	var l FaultLog
	down := fmt.Errorf("claim: %w", syscall.ECONNREFUSED)
	for range 5 {
		l.Failed(log, "claim failed", down)
	}
	l.Succeeded(log, "claims")
	l.Succeeded(log, "claims")
	l.Failed(log, "claim failed", errors.New("a bug"))
	l.Failed(log, "claim failed", errors.New("a bug"))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 || !strings.Contains(lines[0], "store fault") || !strings.Contains(lines[1], "store recovered") {
		t.Errorf("log:\n%s\nwant: one fault line, one recovery line, two lines for the two other errors", buf.String())
	}
}
