package attach

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/mailproxy/mailproxy/internal/metrics"
	"github.com/mailproxy/mailproxy/internal/store"
)

// BenchmarkFetchAllCached: a message of three attachments served from the
// memory tier.
func BenchmarkFetchAllCached(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(make([]byte, 50<<10))
	}))
	defer srv.Close()
	f, err := New(Options{AllowPrivate: true, MemoryMaxBytes: 10 << 20, Metrics: metrics.New()})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	atts := []store.Attachment{
		{Filename: "a.pdf", StoragePath: srv.URL + "/a"},
		{Filename: "b.pdf", StoragePath: srv.URL + "/b"},
		{Filename: "c.pdf", StoragePath: srv.URL + "/c"},
	}
	tenant := store.Tenant{ID: "t1"}
	ctx := context.Background()
	if _, err := f.FetchAll(ctx, tenant, atts); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.FetchAll(ctx, tenant, atts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFetchHTTP: one uncached 1 MB http_url fetch over loopback, with
// and without Content-Length (the buffer is sized up front only with it).
func BenchmarkFetchHTTP(b *testing.B) {
	b.Run("content-length", func(b *testing.B) { benchmarkFetchHTTP(b, true) })
	b.Run("chunked", func(b *testing.B) { benchmarkFetchHTTP(b, false) })
}

func benchmarkFetchHTTP(b *testing.B, withLength bool) {
	body := make([]byte, 1<<20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if withLength {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		}
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	f, err := New(Options{AllowPrivate: true, Metrics: metrics.New()})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	atts := []store.Attachment{{Filename: "a.bin", StoragePath: srv.URL + "/a"}}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.FetchAll(context.Background(), store.Tenant{ID: "t1"}, atts); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeBase64(b *testing.B) {
	in := "base64:" + base64.StdEncoding.EncodeToString(make([]byte, 1<<20))
	b.SetBytes(1 << 20)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeBase64(in, "a.bin", 25<<20); err != nil {
			b.Fatal(err)
		}
	}
}
