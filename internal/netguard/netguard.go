// Package netguard is the one address policy for every connection the proxy
// opens on a tenant's behalf: attachment fetches (http_url, endpoint), report
// POSTs and SMTP account targets (tenancy-security.md, issue 11).
//
// A Policy is judged in the net.Dialer Control hook, after DNS and before
// connect, on the address actually dialled. Redirects, DNS rebinding and
// hosts with several addresses are therefore covered by construction: there
// is no earlier check a later dial could get around.
//
// Two levels:
//   - Public: only public unicast addresses. The ranges are those of
//     code.dny.dev/ssrf (the IANA special-purpose registries, kept up to date
//     by that library) on any port.
//   - Private: also loopback and private networks (an operator's own relay or
//     client application), but never link-local (169.254.0.0/16, fe80::/10),
//     cloud metadata (fd00:ec2::254, 100.100.100.200), unspecified, multicast
//     or broadcast addresses.
package netguard

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"code.dny.dev/ssrf"
)

// Level is how far inside the operator's network a connection may go.
type Level int

const (
	// Public allows only public unicast addresses.
	Public Level = iota
	// Private also allows loopback and private networks, never link-local,
	// metadata, unspecified or multicast addresses.
	Private
)

func (l Level) String() string {
	if l == Private {
		return "private"
	}
	return "public"
}

// LevelFor is Private when allowPrivate, else Public.
func LevelFor(allowPrivate bool) Level {
	if allowPrivate {
		return Private
	}
	return Public
}

// Policy decides which addresses may be dialled. The zero value is Public.
type Policy struct {
	Level Level
	// TreatAsPublic lists addresses judged as if they were public hosts.
	// Tests use it: they can only listen on loopback, so a loopback server
	// stands in for a public origin while every other address still meets
	// the real policy. Production code leaves it empty.
	TreatAsPublic []netip.AddrPort
}

// public is the library's guard on every port and TCP network.
var public = ssrf.New(ssrf.WithAnyPort())

// metadata are cloud metadata services outside link-local space.
var metadata = []netip.Addr{
	netip.MustParseAddr("fd00:ec2::254"),   // AWS IMDS over IPv6 (inside fc00::/7)
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud (inside 100.64.0.0/10)
}

// AddressError is a connection refused by the policy.
type AddressError struct{ IP netip.Addr }

func (e *AddressError) Error() string { return "address not allowed: " + e.IP.String() }

// CheckAddrPort returns an *AddressError when ap may not be dialled.
func (p Policy) CheckAddrPort(ap netip.AddrPort) error {
	for _, allowed := range p.TreatAsPublic {
		if allowed == ap {
			return nil
		}
	}
	return p.CheckAddr(ap.Addr())
}

// CheckAddr returns an *AddressError when ip may not be dialled.
func (p Policy) CheckAddr(ip netip.Addr) error {
	ip = ip.WithZone("")
	if !ip.IsValid() {
		return &AddressError{IP: ip}
	}
	if p.Level == Private {
		if privateAllowed(ip.Unmap()) {
			return nil
		}
		return &AddressError{IP: ip.Unmap()}
	}
	// The library judges an IPv4-mapped address as IPv6 (and refuses it):
	// judge the IPv4 address it reaches. NAT64 and 6to4, which embed an IPv4
	// address too, lie outside what the library allows.
	ip = ip.Unmap()
	if err := public.SafeAddr(ip); err != nil {
		return &AddressError{IP: ip}
	}
	return nil
}

// privateAllowed is the Private level's rule.
func privateAllowed(ip netip.Addr) bool {
	if ip.IsUnspecified() || ip.IsMulticast() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() {
		return false
	}
	for _, m := range metadata {
		if ip == m {
			return false
		}
	}
	if ip.Is4() {
		b := ip.As4()
		if b[0] == 0 || b[0] >= 240 { // "this network"; reserved and broadcast
			return false
		}
	}
	if v4, ok := embeddedIPv4(ip); ok {
		return privateAllowed(v4)
	}
	return true
}

// embeddedIPv4 extracts the IPv4 address of NAT64 (64:ff9b::/96) and 6to4
// (2002::/16) addresses.
func embeddedIPv4(ip netip.Addr) (netip.Addr, bool) {
	if !ip.Is6() || ip.Is4In6() {
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

// Control is a net.Dialer Control hook enforcing p.
func (p Policy) Control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("netguard: dial address %q: %w", address, err)
	}
	return p.CheckAddrPort(ap)
}

// Dialer returns a dialer that enforces p on every connection.
func (p Policy) Dialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second, Control: p.Control}
}

// Refused reports whether err is (or wraps) a refusal of this package and
// returns it.
func Refused(err error) (*AddressError, bool) {
	var ae *AddressError
	if errors.As(err, &ae) {
		return ae, true
	}
	return nil, false
}
