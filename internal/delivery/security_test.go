package delivery_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/mailproxy/mailproxy/internal/delivery"
	"github.com/mailproxy/mailproxy/internal/netguard"
	"github.com/mailproxy/mailproxy/internal/testsmtp"
)

// TestNoClearAuthWithoutSTARTTLS (issue 11.10): use_tls unset, a server
// offering AUTH but no STARTTLS: the credentials are not sent, the message
// gets a permanent error saying why, unless the account says tls_verify
// false. The test server is on loopback, which is exempt in production:
// NoLoopbackClearAuth makes it count as a remote server here.
func TestNoClearAuthWithoutSTARTTLS(t *testing.T) {
	t.Parallel()
	users := map[string]string{"user": "pass"}
	b := setup(t, setupOpts{server: testsmtp.Options{Users: users, AuthRequired: true},
		sender: delivery.SenderOptions{NoLoopbackClearAuth: true}})
	b.acct.UseTLS = nil
	b.acct.User, b.acct.Password = "user", "pass"
	_, err := b.send(t, payload("m1"))
	de := asError(t, err)
	if !de.Permanent || de.Command != "AUTH" || !strings.Contains(de.Public(), "credentials not sent in clear") {
		t.Fatalf("error %q %+v, want a permanent refusal to send credentials in clear", de.Public(), de)
	}
	if n := b.srv.Commands("AUTH"); n != 0 {
		t.Fatalf("the server saw %d AUTH commands in clear, want 0", n)
	}

	// tls_verify false is the account's explicit opt-out.
	b.acct.TLSVerify = false
	b.mustSend(t, payload("m2"))
	if m := b.srv.Messages(); len(m) != 1 || m[0].AuthUser != "user" {
		t.Fatalf("with tls_verify false: messages %+v, want one authenticated as user", m)
	}
}

// TestClearAuthAllowedOnLoopbackAndWithTLS: the loopback exemption (the
// production default) and a server that offers STARTTLS keep working.
func TestClearAuthAllowedOnLoopbackAndWithTLS(t *testing.T) {
	t.Parallel()
	users := map[string]string{"user": "pass"}
	plain := setup(t, setupOpts{server: testsmtp.Options{Users: users, AuthRequired: true}})
	plain.acct.UseTLS, plain.acct.User, plain.acct.Password = nil, "user", "pass"
	plain.mustSend(t, payload("m1"))

	tlsSrv := setup(t, setupOpts{server: testsmtp.Options{Users: users, AuthRequired: true, TLS: true},
		sender: delivery.SenderOptions{NoLoopbackClearAuth: true}})
	tlsSrv.acct.UseTLS, tlsSrv.acct.User, tlsSrv.acct.Password = nil, "user", "pass"
	tlsSrv.mustSend(t, payload("m2"))
	if m := tlsSrv.srv.Messages(); len(m) != 1 || !m[0].TLS || m[0].AuthUser != "user" {
		t.Fatalf("STARTTLS server: messages %+v, want one over TLS, authenticated", m)
	}
}

// TestTargetPolicyAtDial (issue 11.9): the SMTP dial passes the address
// policy, so a server address the policy refuses is never connected to,
// and the error is permanent and names no address to the tenant.
func TestTargetPolicyAtDial(t *testing.T) {
	t.Parallel()
	public := setup(t, setupOpts{sender: delivery.SenderOptions{TargetPolicy: &netguard.Policy{Level: netguard.Public}}})
	_, err := public.send(t, payload("m1"))
	de := asError(t, err)
	if !de.Permanent || de.Public() != "Connection failed: address not allowed" || public.srv.Connections() != 0 {
		t.Fatalf("public-only policy, loopback server: %q %+v, %d connections; want a permanent refusal, none",
			de.Public(), de, public.srv.Connections())
	}

	// The default policy (private relays allowed) never reaches link-local
	// or metadata addresses; nothing listens there, the policy refuses first.
	b := setup(t, setupOpts{})
	for _, host := range []string{"169.254.169.254", "fe80::1", "fd00:ec2::254"} {
		b.acct.Host = host
		_, err := b.send(t, payload("m2"))
		de := asError(t, err)
		if !de.Permanent || de.Public() != "Connection failed: address not allowed" {
			t.Errorf("host %s: %q %+v, want a permanent refusal", host, de.Public(), de)
		}
	}
	// The exemption list of the policy still works for the SMTP dialer.
	ok := setup(t, setupOpts{})
	ok.sender, _ = delivery.NewSender(delivery.SenderOptions{Pool: ok.pool, HeloName: "client.test",
		TargetPolicy: &netguard.Policy{TreatAsPublic: []netip.AddrPort{netip.MustParseAddrPort(ok.srv.Addr())}}})
	ok.mustSend(t, payload("m3"))
}

// TestPublicHidesDialErrors: a refused connection is "Connection failed"
// for the tenant, while Error keeps the cause for the log.
func TestPublicHidesDialErrors(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	addr := b.srv.Addr()
	if err := b.srv.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := b.send(t, payload("m1"))
	de := asError(t, err)
	if de.Public() != "Connection failed" || strings.Contains(de.Public(), "127.0.0.1") {
		t.Fatalf("Public() = %q, want Connection failed", de.Public())
	}
	if !strings.Contains(de.Error(), addr) && !strings.Contains(de.Error(), "connection refused") {
		t.Fatalf("Error() = %q lost the cause", de.Error())
	}
	// An SMTP reply is shown as it is.
	r := setup(t, setupOpts{server: testsmtp.Options{Faults: []testsmtp.Fault{testsmtp.Reply(testsmtp.StageMail, 550, "5.7.1", "relay denied")}}})
	_, err = r.send(t, payload("m2"))
	if got := asError(t, err).Public(); got != "5.7.1 relay denied (SMTP 550)" {
		t.Fatalf("Public() of a reply = %q", got)
	}
}

// TestTenantTargetPolicyAtDial: an account whose host a tenant key set is
// dialled through TenantTargetPolicy (public-only under
// GMP_ACCOUNT_TARGETS_PUBLIC_ONLY), so a name that later resolves to a
// private address is still refused; the admin's accounts keep local relays.
func TestTenantTargetPolicyAtDial(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{sender: delivery.SenderOptions{TenantTargetPolicy: &netguard.Policy{Level: netguard.Public}}})
	b.mustSend(t, payload("m1")) // set by the admin: loopback relay
	b.acct.HostByTenant = true
	_, err := b.send(t, payload("m2"))
	if de := asError(t, err); !de.Permanent || de.Public() != "Connection failed: address not allowed" {
		t.Fatalf("tenant-set loopback host: %q %+v, want a permanent refusal", de.Public(), de)
	}
	if n := b.srv.Count(); n != 1 {
		t.Fatalf("server accepted %d messages, want 1 (the admin account's)", n)
	}
}
