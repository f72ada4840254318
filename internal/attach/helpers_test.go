package attach

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/internal/metrics"
	"github.com/mailproxy/mailproxy/internal/store"
)

// newTestFetcher builds a Fetcher for loopback servers (AllowPrivate) with a
// memory cache, adjusted by edit.
func newTestFetcher(t *testing.T, edit func(*Options)) *Fetcher {
	t.Helper()
	opts := Options{
		AllowPrivate:   true,
		MemoryMaxBytes: 1 << 20,
		Timeout:        20 * time.Second,
		Metrics:        metrics.New(),
	}
	if edit != nil {
		edit(&opts)
	}
	f, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(f.Close)
	return f
}

func tenantWithBase(id, baseURL string) store.Tenant {
	t := store.Tenant{ID: id, Active: true}
	if baseURL != "" {
		t.ClientBaseURL = &baseURL
	}
	return t
}

// fetchError asserts that err is an *Error and returns it.
func fetchError(t *testing.T, err error) *Error {
	t.Helper()
	if err == nil {
		t.Fatal("FetchAll succeeded, want an error")
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T %v is not an *attach.Error", err, err)
	}
	return e
}

func wantError(t *testing.T, err error, reason string, temporary bool) {
	t.Helper()
	e := fetchError(t, err)
	if e.Reason != reason || e.Temporary != temporary {
		t.Fatalf("error = %q (temporary %v), want reason %q (temporary %v)", e.Error(), e.Temporary, reason, temporary)
	}
}

// contentServer serves body at every path and counts requests.
type contentServer struct {
	*httptest.Server
	requests atomic.Int64
}

func newContentServer(t *testing.T, body []byte) *contentServer {
	t.Helper()
	cs := &contentServer{}
	cs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cs.requests.Add(1)
		_, _ = w.Write(body)
	}))
	t.Cleanup(cs.Close)
	return cs
}

func fetchOneOK(t *testing.T, f *Fetcher, tenant store.Tenant, att store.Attachment) Content {
	t.Helper()
	got, err := f.FetchAll(context.Background(), tenant, []store.Attachment{att})
	if err != nil {
		t.Fatalf("FetchAll: %v", err)
	}
	if len(got) != 1 {
		t.Fatalf("FetchAll returned %d contents, want 1", len(got))
	}
	return got[0]
}

func wantData(t *testing.T, c Content, want []byte) {
	t.Helper()
	if !bytes.Equal(c.Data, want) {
		t.Fatalf("content of %s = %q, want %q", c.Filename, truncate(c.Data), truncate(want))
	}
}

func truncate(b []byte) []byte {
	if len(b) > 64 {
		return append(b[:64:64], "..."...)
	}
	return b
}

// logBuffer captures log lines for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func isCanceled(err error) bool { return errors.Is(err, context.Canceled) }
