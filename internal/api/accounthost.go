package api

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/mailproxy/mailproxy/internal/netguard"
)

// hostLookupTimeout bounds the DNS lookup of a tenant's account host when
// only public targets are allowed.
const hostLookupTimeout = 3 * time.Second

// checkAccountHost adds a 422 issue naming host when an account's SMTP
// server is an address the instance refuses (issue 11.9): link-local and
// cloud metadata addresses always; loopback and private ones too for a
// tenant key when GMP_ACCOUNT_TARGETS_PUBLIC_ONLY is set (the admin keeps
// loopback relays). Literal addresses and localhost names are judged here;
// names are resolved only under the public-only rule. The SMTP dial judges
// the address it connects to again (the sender's policy), so a name that
// resolves elsewhere later still never reaches link-local or metadata.
func (s *server) checkAccountHost(c *call, f fields, host string) {
	policy := netguard.Policy{Level: netguard.Private}
	publicOnly := s.opts.AccountTargetsPublicOnly && !c.p.Admin
	if publicOnly {
		policy.Level = netguard.Public
	}
	var addrs []netip.Addr
	name := strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	lower := strings.ToLower(strings.TrimSuffix(name, "."))
	switch ip, err := netip.ParseAddr(name); {
	case err == nil:
		addrs = []netip.Addr{ip}
	case lower == "localhost" || strings.HasSuffix(lower, ".localhost"):
		addrs = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	case publicOnly:
		ctx, cancel := context.WithTimeout(c.ctx(), hostLookupTimeout)
		defer cancel()
		// A name that does not resolve now is left to the dial, which
		// fails or judges what it resolves to then.
		addrs, _ = net.DefaultResolver.LookupNetIP(ctx, "ip", name)
	}
	for _, ip := range addrs {
		if err := policy.CheckAddr(ip); err != nil {
			text := "host " + ip.Unmap().String() + " is a link-local or cloud metadata address, not allowed for SMTP accounts"
			if publicOnly && (netguard.Policy{Level: netguard.Private}).CheckAddr(ip) == nil {
				text = "host " + ip.Unmap().String() + " is not a public address (this instance allows only public SMTP servers for tenant accounts)"
			}
			f.is.valueError(at(f.loc, "host"), jsonInput(host), text)
			return
		}
	}
}
