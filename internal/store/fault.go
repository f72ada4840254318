package store

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Fault is a store failure that is a condition of the store, not of the
// request: the database cannot be reached, or it has no room to write.
// Callers answer it like backpressure (503, retry later) instead of as a bug.
type Fault int

// Faults.
const (
	FaultNone        Fault = iota // not a store condition (or no error)
	FaultUnavailable              // the database is unreachable, shutting down or starting up
	FaultFull                     // the disk (or the database's quota) is full
)

// String names the fault as answers and logs show it.
func (f Fault) String() string {
	switch f {
	case FaultUnavailable:
		return "database unavailable"
	case FaultFull:
		return "storage full"
	}
	return "none"
}

// SQLite result codes (primary codes, the low byte of an extended code).
const (
	sqliteIOErr    = 10
	sqliteFull     = 13
	sqliteCantOpen = 14
)

// FaultOf classifies err by what the drivers' errors expose (a PostgreSQL
// SQLSTATE, an SQLite result code, a network or file-system errno), so this
// package needs neither driver.
func FaultOf(err error) Fault {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return FaultNone // the caller gave up; says nothing about the store
	}
	var pg interface{ SQLState() string }
	if errors.As(err, &pg) {
		return sqlStateFault(pg.SQLState())
	}
	var lite interface{ Code() int }
	if errors.As(err, &lite) {
		switch lite.Code() & 0xff {
		case sqliteFull:
			return FaultFull
		case sqliteIOErr, sqliteCantOpen:
			if errors.Is(err, syscall.ENOSPC) || strings.Contains(err.Error(), "disk is full") {
				return FaultFull
			}
			return FaultUnavailable
		}
		return FaultNone
	}
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return FaultFull
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, io.ErrUnexpectedEOF):
		return FaultUnavailable
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return FaultUnavailable
	}
	// pgx marks errors that happened before anything reached the server
	// (a dead pooled connection, a failed dial) as safe to retry.
	var retry interface{ SafeToRetry() bool }
	if errors.As(err, &retry) && retry.SafeToRetry() {
		return FaultUnavailable
	}
	return FaultNone
}

// sqlStateFault maps PostgreSQL error codes: class 08 (connection
// exception), 57P01..57P03 (shutting down, crashed, starting up), 53300 (too
// many connections) and 25006 (read-only: a standby) are unavailability;
// 53100 is a full disk.
func sqlStateFault(code string) Fault {
	switch {
	case code == "53100":
		return FaultFull
	case strings.HasPrefix(code, "08"), code == "57P01", code == "57P02", code == "57P03",
		code == "53300", code == "25006":
		return FaultUnavailable
	}
	return FaultNone
}

// FaultLog logs the store errors of a long-running loop: a store fault
// once when it begins and once when it ends (not on every retry while the
// database is away), any other error every time. Safe for concurrent use.
type FaultLog struct {
	mu    sync.Mutex
	fault Fault
	since time.Time
}

// Failed logs err (msg names the operation) unless it continues the
// current store fault.
func (l *FaultLog) Failed(log *slog.Logger, msg string, err error) {
	f := FaultOf(err)
	if f == FaultNone {
		log.Error(msg, "err", err)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fault == f {
		return
	}
	l.fault, l.since = f, time.Now()
	log.Error(msg+": store fault, retrying quietly until it ends", "fault", f.String(), "err", err)
}

// Succeeded ends a store fault, logging that it did.
func (l *FaultLog) Succeeded(log *slog.Logger, msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fault == FaultNone {
		return
	}
	log.Info(msg+": store recovered", "fault", l.fault.String(), "lasted", time.Since(l.since).Round(time.Millisecond).String())
	l.fault = FaultNone
}
