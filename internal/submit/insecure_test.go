package submit

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"net/textproto"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mailproxy/mailproxy/internal/api"
	"github.com/mailproxy/mailproxy/internal/auth"
	"github.com/mailproxy/mailproxy/internal/metrics"
	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/store/sqlite"
	"github.com/mailproxy/mailproxy/internal/testsmtp"
)

// TestPlaintextAuthRefusedOffLoopback: a listener that is not on loopback
// (here: a loopback one told otherwise, the only kind tests may open)
// refuses AUTH before STARTTLS and accepts it after.
func TestPlaintextAuthRefusedOffLoopback(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "t.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	key, hash := auth.NewAPIKey()
	if _, err := st.UpsertTenant(ctx, store.Tenant{ID: "acme", Active: true}); err != nil {
		t.Fatal(err)
	}
	if err := st.SetAPIKey(ctx, "acme", hash, nil); err != nil {
		t.Fatal(err)
	}
	if err := st.UpsertAccount(ctx, store.Account{TenantID: "acme", ID: "main", Host: "127.0.0.1", Port: 25, LimitBehavior: "defer", TLSVerify: true}); err != nil {
		t.Fatal(err)
	}
	_, subs, err := api.NewWithSubmissions(api.Deps{Store: st, Metrics: metrics.New(), AdminToken: "admin-token-for-this-test",
		Options: api.Options{MaxEnqueueBatch: 1000, MaxRequestBytes: 1 << 20, DefaultPriority: "2", TestMode: true}})
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, pool, err := testsmtp.WriteCertificate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Options{Addr: "127.0.0.1:0", TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, Submitter: subs, Registerer: metrics.New().Registry})
	if err != nil {
		t.Fatal(err)
	}
	if !srv.servers[0].AllowInsecureAuth {
		t.Fatal("a loopback listener should allow AUTH without TLS")
	}
	srv.servers[0].AllowInsecureAuth = false // as on a public address
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("Run did not return")
		}
	})
	addr := srv.Addrs()[0].String()

	// A plaintext session, spoken by hand to see the exact replies.
	tp, err := textproto.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	expect := func(cmd string, want int) string {
		t.Helper()
		if cmd != "" {
			if err := tp.PrintfLine("%s", cmd); err != nil {
				t.Fatal(err)
			}
		}
		code, msg, err := tp.ReadResponse(0)
		if code != want {
			t.Fatalf("%q: %d %s %v, want %d", cmd, code, msg, err, want)
		}
		return msg
	}
	expect("", 220)
	if caps := expect("EHLO client.test", 250); strings.Contains(caps, "AUTH") {
		t.Errorf("AUTH advertised on a plaintext connection: %q", caps)
	}
	expect("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00acme/main\x00"+key)), 523)
	expect("MAIL FROM:<a@example.com>", 530)

	tc, err := smtp.DialStartTLS(addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if err := tc.Auth(sasl.NewPlainClient("", "acme/main", key)); err != nil {
		t.Fatalf("AUTH after STARTTLS: %v", err)
	}
}
