package destguard

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Resolver looks up the addresses of a host name; *net.Resolver satisfies
// it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// HostRefusedError says that a host name resolves to refused addresses.
type HostRefusedError struct {
	// Host is the name that was looked up.
	Host string
	// Refused lists why each refused address was refused, in lookup order.
	Refused []*RefusedError
	// All is true when every address the name resolves to was refused.
	All bool
}

// Error names the host, its refused addresses and how to allow them.
func (e *HostRefusedError) Error() string {
	var b strings.Builder
	if e.All {
		fmt.Fprintf(&b, "destination %s refused: it resolves only to refused addresses (", e.Host)
	} else {
		fmt.Fprintf(&b, "destination %s refused: it resolves to refused addresses (", e.Host)
	}
	for i, r := range e.Refused {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s: %s", r.Addr, r.Reason)
	}
	b.WriteString("); set HOOKRELAY_ALLOW_PRIVATE_DESTINATIONS=true or add them to HOOKRELAY_ALLOWED_DESTINATION_CIDRS")
	return b.String()
}

// Unwrap returns the first refusal, so errors.As finds a *RefusedError.
func (e *HostRefusedError) Unwrap() error {
	if len(e.Refused) == 0 {
		return nil
	}
	return e.Refused[0]
}

// AllowsAll reports whether the guard allows every address, in which case
// host checks need no lookup.
func (g *Guard) AllowsAll() bool { return g.allowPrivate }

// CheckHost checks a URL host (u.Hostname(): a name or an IP literal)
// before the relay hands a request to something else that will connect —
// an outbound proxy. An IP literal is checked as it is; a name is looked up
// with r (net.DefaultResolver when nil) and refused, with a
// *HostRefusedError, when any of its addresses is refused, since the relay
// cannot know which one the proxy will use. A failed lookup is returned as
// it is (a *net.DNSError). With private destinations allowed it returns nil
// without a lookup.
//
// The proxy looks the name up again: a name whose answer changes between
// the two lookups (DNS rebinding) is the proxy's to refuse. Connections the
// relay dials itself are checked at dial time instead (see DialContext).
func (g *Guard) CheckHost(ctx context.Context, r Resolver, host string) error {
	return g.checkHost(ctx, r, host, false)
}

// CheckHostAny is CheckHost for a direct connection, which tries each
// address in turn and succeeds on an allowed one: a name is refused only
// when every address it resolves to is refused.
func (g *Guard) CheckHostAny(ctx context.Context, r Resolver, host string) error {
	return g.checkHost(ctx, r, host, true)
}

func (g *Guard) checkHost(ctx context.Context, r Resolver, host string, oneSuffices bool) error {
	if g.allowPrivate {
		return nil
	}
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return g.Check(a.Unmap())
	}
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return err
	}
	if len(addrs) == 0 {
		return &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
	}
	var refused []*RefusedError
	for _, a := range addrs {
		// Lookups may answer IPv4 addresses in their IPv4-mapped form.
		if err := g.Check(a.Unmap()); err != nil {
			refused = append(refused, err.(*RefusedError))
		}
	}
	all := len(refused) == len(addrs)
	if len(refused) == 0 || (oneSuffices && !all) {
		return nil
	}
	return &HostRefusedError{Host: host, Refused: refused, All: all}
}
