package attach

import (
	"fmt"
	"net/netip"
	"syscall"
)

// addressPolicy refuses http_url connections to addresses inside the
// operator's network (attachments.md §4). It is checked in the dialer's
// Control hook, on the address actually dialled, so DNS rebinding and
// redirects to internal hosts are caught too.
type addressPolicy struct {
	blocked []netip.Prefix
}

func newAddressPolicy() *addressPolicy {
	ranges := []string{
		"0.0.0.0/8",      // "this network", includes 0.0.0.0
		"10.0.0.0/8",     // private
		"100.64.0.0/10",  // carrier-grade NAT
		"127.0.0.0/8",    // loopback
		"169.254.0.0/16", // link-local, cloud metadata
		"172.16.0.0/12",  // private
		"192.0.0.0/24",   // IETF protocol assignments
		"192.168.0.0/16", // private
		"198.18.0.0/15",  // benchmarking, used inside networks
		"224.0.0.0/4",    // multicast
		"240.0.0.0/4",    // reserved, broadcast
		"::/96",          // unspecified, loopback, IPv4-compatible
		"fc00::/7",       // unique local
		"fe80::/10",      // link-local
		"fec0::/10",      // site-local (deprecated, still routable inside)
		"ff00::/8",       // multicast
		"100::/64",       // discard-only
		"2001:db8::/32",  // documentation
		"2001::/32",      // Teredo: tunnels to arbitrary IPv4
		"64:ff9b:1::/48", // local-use NAT64
	}
	p := &addressPolicy{blocked: make([]netip.Prefix, 0, len(ranges))}
	for _, r := range ranges {
		p.blocked = append(p.blocked, netip.MustParsePrefix(r))
	}
	return p
}

// allowed reports whether ip may be dialled.
func (p *addressPolicy) allowed(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsUnspecified() || ip.IsMulticast() ||
		ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() {
		return false
	}
	for _, prefix := range p.blocked {
		if prefix.Contains(ip) {
			return false
		}
	}
	// Addresses that embed an IPv4 address reach it: judge the embedded one.
	if embedded, ok := embeddedIPv4(ip); ok {
		return p.allowed(embedded)
	}
	return true
}

// embeddedIPv4 extracts the IPv4 address of NAT64 (64:ff9b::/96) and 6to4
// (2002::/16) addresses.
func embeddedIPv4(ip netip.Addr) (netip.Addr, bool) {
	if !ip.Is6() {
		return netip.Addr{}, false
	}
	b := ip.As16()
	switch {
	case b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && isZero(b[4:12]):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case b[0] == 0x20 && b[1] == 0x02:
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

func isZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// control is a net.Dialer Control hook: it runs after DNS, before connect.
func (p *addressPolicy) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("attach: dial address %q: %w", address, err)
	}
	if ip := ap.Addr().Unmap(); !p.allowed(ip) {
		return &addressError{ip: ip.WithZone("")}
	}
	return nil
}

// addressError is a connection refused by the policy.
type addressError struct{ ip netip.Addr }

func (e *addressError) Error() string { return "address not allowed: " + e.ip.String() }
