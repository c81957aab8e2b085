package destguard

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// Guard decides whether the relay may connect to an address. It is safe for
// concurrent use and immutable once built.
type Guard struct {
	allowPrivate bool
	allowed      []netip.Prefix
}

// New returns a guard. With allowPrivate every address is allowed (for
// development and private deployments). allowed lists prefixes that are
// always allowed, checked before the deny list; an IPv4 prefix also allows
// the IPv6 forms that embed one of its addresses.
func New(allowPrivate bool, allowed []netip.Prefix) *Guard {
	g := &Guard{allowPrivate: allowPrivate}
	for _, p := range allowed {
		if p.IsValid() {
			g.allowed = append(g.allowed, p.Masked())
		}
	}
	return g
}

// RefusedError says which address was refused and why.
type RefusedError struct {
	// Addr is the address that was refused.
	Addr netip.Addr
	// Reason names the range it fell in, e.g. "private (RFC 1918)".
	Reason string
}

// Error names the address, the reason and how to allow it.
func (e *RefusedError) Error() string {
	return fmt.Sprintf("destination %s refused: %s; set HOOKRELAY_ALLOW_PRIVATE_DESTINATIONS=true or add it to HOOKRELAY_ALLOWED_DESTINATION_CIDRS",
		e.Addr, e.Reason)
}

// Check returns nil if the relay may connect to addr, or a *RefusedError.
// An IPv6 zone is ignored.
func (g *Guard) Check(addr netip.Addr) error {
	if g.allowPrivate {
		return nil
	}
	if !addr.IsValid() {
		return &RefusedError{Addr: addr, Reason: "invalid address"}
	}
	if reason := g.refusal(addr.WithZone("")); reason != "" {
		return &RefusedError{Addr: addr, Reason: reason}
	}
	return nil
}

// Control is a net.Dialer.Control hook: it parses address (ip:port, after
// DNS resolution) and calls Check. An address it cannot parse is refused.
func (g *Guard) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("destination guard: parse dial address %q on %s: %w", address, network, err)
	}
	return g.Check(ap.Addr())
}

// DialContext returns the DialContext of a copy of d (the zero Dialer when
// d is nil) whose Control hook runs the guard before any hook d already had.
// It is usable as http.Transport.DialContext.
func (g *Guard) DialContext(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	var dd net.Dialer
	if d != nil {
		dd = *d
	}
	prevCtx, prev := dd.ControlContext, dd.Control
	dd.Control = nil
	dd.ControlContext = func(ctx context.Context, network, address string, c syscall.RawConn) error {
		if err := g.Control(network, address, c); err != nil {
			return err
		}
		switch {
		case prevCtx != nil:
			return prevCtx(ctx, network, address, c)
		case prev != nil:
			return prev(network, address, c)
		}
		return nil
	}
	return dd.DialContext
}

// refusal returns why a (zone-less) address is refused, or "" if it is
// allowed.
func (g *Guard) refusal(a netip.Addr) string {
	for _, p := range g.allowed {
		if p.Contains(a) {
			return ""
		}
	}
	if a.Is4() {
		return lookup(denied4, a)
	}
	if r := lookup(denied6, a); r != "" {
		return r
	}
	for _, e := range embedded {
		if !e.prefix.Contains(a) {
			continue
		}
		v4 := e.extract(a)
		if r := g.refusal(v4); r != "" {
			return fmt.Sprintf("%s of %s: %s", e.name, v4, r)
		}
		if e.alwaysRefused != "" {
			return fmt.Sprintf("%s of %s: %s", e.name, v4, e.alwaysRefused)
		}
		return ""
	}
	if !globalUnicast.Contains(a) {
		return "reserved IPv6 (outside global unicast 2000::/3)"
	}
	return lookup(denied6Global, a)
}

// rangeReason pairs a refused prefix with the reason reported.
type rangeReason struct {
	prefix netip.Prefix
	reason string
}

func lookup(table []rangeReason, a netip.Addr) string {
	for _, r := range table {
		if r.prefix.Contains(a) {
			return r.reason
		}
	}
	return ""
}

func rr(prefix, reason string) rangeReason {
	return rangeReason{prefix: netip.MustParsePrefix(prefix), reason: reason}
}

// denied4 are the refused IPv4 ranges, the IANA special-purpose registry
// entries that are not globally reachable. More specific entries first.
var denied4 = []rangeReason{
	rr("0.0.0.0/32", "unspecified"),
	rr("0.0.0.0/8", `"this network" (RFC 791)`),
	rr("10.0.0.0/8", "private (RFC 1918)"),
	rr("100.64.0.0/10", "carrier-grade NAT (RFC 6598)"),
	rr("127.0.0.0/8", "loopback"),
	rr("169.254.0.0/16", "link-local (RFC 3927)"),
	rr("172.16.0.0/12", "private (RFC 1918)"),
	rr("192.0.0.0/24", "IETF protocol assignments (RFC 6890)"),
	rr("192.0.2.0/24", "documentation (RFC 5737)"),
	rr("192.168.0.0/16", "private (RFC 1918)"),
	rr("198.18.0.0/15", "benchmarking (RFC 2544)"),
	rr("198.51.100.0/24", "documentation (RFC 5737)"),
	rr("203.0.113.0/24", "documentation (RFC 5737)"),
	rr("224.0.0.0/4", "multicast"),
	rr("255.255.255.255/32", "limited broadcast"),
	rr("240.0.0.0/4", "reserved (RFC 1112)"),
}

// denied6 are refused IPv6 ranges outside 2000::/3 with a reason of their
// own, checked before the embedded-IPv4 forms (:: and ::1 lie in ::/96).
var denied6 = []rangeReason{
	rr("::/128", "unspecified"),
	rr("::1/128", "loopback"),
	rr("100::/64", "discard-only (RFC 6666)"),
	rr("fc00::/7", "unique local (RFC 4193)"),
	rr("fe80::/10", "link-local"),
	rr("fec0::/10", "site-local (deprecated, RFC 3879)"),
	rr("ff00::/8", "multicast"),
}

// denied6Global are refused ranges inside 2000::/3.
var denied6Global = []rangeReason{
	rr("2001::/32", "Teredo (RFC 4380)"),
	rr("2001:2::/48", "benchmarking (RFC 5180)"),
	rr("2001::/23", "IETF protocol assignments (RFC 2928)"),
	rr("2001:db8::/32", "documentation (RFC 3849)"),
	rr("3fff::/20", "documentation (RFC 9637)"),
}

// globalUnicast is where every public IPv6 address lives; what lies
// outside is refused, with a specific reason where one is known.
var globalUnicast = netip.MustParsePrefix("2000::/3")

// embeddedForm is an IPv6 range that carries an IPv4 address.
type embeddedForm struct {
	name    string
	prefix  netip.Prefix
	extract func(netip.Addr) netip.Addr
	// alwaysRefused, when set, refuses the form even for a public IPv4.
	alwaysRefused string
}

// lastFour returns the IPv4 address in the low 32 bits.
func lastFour(a netip.Addr) netip.Addr {
	b := a.As16()
	return netip.AddrFrom4([4]byte(b[12:16]))
}

// embedded are the IPv6 forms judged by the IPv4 address they carry. A
// public IPv4 address makes the form allowed unless alwaysRefused is set.
var embedded = []embeddedForm{
	{name: "IPv4-mapped IPv6", prefix: netip.MustParsePrefix("::ffff:0:0/96"), extract: lastFour},
	{name: "IPv4-compatible IPv6", prefix: netip.MustParsePrefix("::/96"), extract: lastFour,
		alwaysRefused: "deprecated (RFC 4291), not routable"},
	{name: "NAT64 IPv6", prefix: netip.MustParsePrefix("64:ff9b::/96"), extract: lastFour},
	{name: "local-use NAT64 IPv6", prefix: netip.MustParsePrefix("64:ff9b:1::/48"), extract: lastFour},
	{name: "6to4 IPv6", prefix: netip.MustParsePrefix("2002::/16"), extract: func(a netip.Addr) netip.Addr {
		b := a.As16()
		return netip.AddrFrom4([4]byte(b[2:6]))
	}},
}
