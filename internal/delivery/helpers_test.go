package delivery_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/internal/delivery"
	"github.com/mailproxy/mailproxy/internal/smtppool"
	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/testclock"
	"github.com/mailproxy/mailproxy/internal/testsmtp"
)

// bundle is one test's server, pool, sender and account.
type bundle struct {
	srv    *testsmtp.Server
	pool   *smtppool.Pool
	sender *delivery.Sender
	acct   store.Account
	clock  *testclock.Clock
}

type setupOpts struct {
	server     testsmtp.Options
	sender     delivery.SenderOptions
	pool       smtppool.Options
	noRootCAs  bool
	implicitTo bool // treat the server's port as an implicit-TLS port
}

func ptr[T any](v T) *T { return &v }

func setup(t *testing.T, o setupOpts) *bundle {
	t.Helper()
	b := &bundle{srv: testsmtp.Start(t, o.server), clock: testclock.New(time.Unix(1_700_000_000, 0))}
	o.pool.Now = b.clock.Now
	b.pool = smtppool.New(o.pool)
	t.Cleanup(func() { _ = b.pool.Close(context.Background()) })
	so := o.sender
	so.Pool = b.pool
	so.HeloName = "client.test"
	if !o.noRootCAs {
		so.RootCAs = b.srv.CertPool()
	}
	if o.implicitTo {
		so.ImplicitTLSPorts = []int{b.srv.Port()}
	}
	sender, err := delivery.NewSender(so)
	if err != nil {
		t.Fatal(err)
	}
	b.sender = sender
	b.acct = store.Account{
		TenantID: "t1", ID: "acc", Host: "127.0.0.1", Port: b.srv.Port(),
		TTL: 300, UseTLS: ptr(false), TLSVerify: true,
	}
	return b
}

func payload(id string) store.Payload {
	return store.Payload{
		ID: id, TenantID: "t1", AccountID: "acc",
		From: "Sender <sender@example.com>", To: []string{"rcpt@example.net"},
		Subject: "hello", Body: "body text",
	}
}

func build(t *testing.T, p store.Payload, parts ...delivery.Part) *delivery.Message {
	t.Helper()
	m, err := delivery.Build(p, "pk-"+p.ID, parts, time.Unix(1_700_000_000, 0))
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	return m
}

func (b *bundle) send(t *testing.T, p store.Payload) (delivery.Result, error) {
	t.Helper()
	return b.sender.Send(t.Context(), b.acct, build(t, p))
}

func (b *bundle) mustSend(t *testing.T, p store.Payload) delivery.Result {
	t.Helper()
	res, err := b.send(t, p)
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	return res
}

// asError asserts err is a *delivery.Error.
func asError(t *testing.T, err error) *delivery.Error {
	t.Helper()
	var de *delivery.Error
	if !errors.As(err, &de) {
		t.Fatalf("error %v (%T) is not a *delivery.Error", err, err)
	}
	return de
}
