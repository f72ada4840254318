package api_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkAddMessages drives POST /commands/add-messages through the real
// handler over loopback, into a real SQLite file, from concurrent clients.
func BenchmarkAddMessages(b *testing.B) {
	for _, bc := range []struct {
		perRequest, clients int
		tenantKey           bool
	}{
		{1, 16, false},
		{100, 4, false},
		{1, 16, true},
	} {
		name := fmt.Sprintf("msgs=%d/clients=%d", bc.perRequest, bc.clients)
		if bc.tenantKey {
			name += "/tenant-key"
		}
		b.Run(name, func(b *testing.B) { benchAddMessages(b, bc.perRequest, bc.clients, bc.tenantKey) })
	}
}

func benchAddMessages(b *testing.B, perRequest, clients int, useTenantKey bool) {
	e := setup(b)
	token := adminToken
	key := benchTenant(b, e, "bench")
	if useTenantKey {
		token = key
	}
	tr := &http.Transport{MaxIdleConns: clients, MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	url := e.srv.URL + "/commands/add-messages"
	var seq, failures atomic.Int64
	post := func(buf *bytes.Buffer) error {
		buf.Reset()
		buf.WriteString(`{"messages":[`)
		for i := range perRequest {
			if i > 0 {
				buf.WriteByte(',')
			}
			fmt.Fprintf(buf, `{"id":"m%d","tenant_id":"bench","account_id":"smtp","from":"Sender <sender@example.com>","to":"rcpt@example.com","subject":"Benchmark","body":"Hello, this is a benchmark message."}`, seq.Add(1))
		}
		buf.WriteString(`]}`)
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(buf.Bytes()))
		if err != nil {
			return err
		}
		req.Header.Set("X-API-Token", token)
		res, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", res.StatusCode)
		}
		return nil
	}
	b.ResetTimer()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			var buf bytes.Buffer
			for next.Add(1) <= int64(b.N) {
				if err := post(&buf); err != nil {
					if failures.Add(1) == 1 {
						b.Errorf("add-messages: %v", err)
					}
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed, "req/s")
	b.ReportMetric(float64(b.N*perRequest)/elapsed, "msg/s")
}

// benchTenant creates a tenant with an account, returning its key.
func benchTenant(b *testing.B, e *env, id string) string {
	r := e.doT(b, "POST", "/tenant", adminToken, map[string]any{"id": id})
	if r.Status != 200 {
		b.Fatalf("create tenant: %d %s", r.Status, r.Body)
	}
	var body struct {
		APIKey string `json:"api_key"`
	}
	if err := jsonUnmarshal(r.Body, &body); err != nil {
		b.Fatal(err)
	}
	r = e.doT(b, "POST", "/account", adminToken, map[string]any{"id": "smtp", "tenant_id": id, "host": "127.0.0.1", "port": 2525})
	if r.Status != 200 {
		b.Fatalf("create account: %d %s", r.Status, r.Body)
	}
	return body.APIKey
}
