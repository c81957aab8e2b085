// Package destguard keeps the relay from being used for server-side request
// forgery: it refuses connections to loopback, private, link-local and other
// non-public addresses unless the operator allows them.
//
// The check runs at dial time, on the address the connection is about to
// use — after DNS resolution, for every address tried — through
// net.Dialer.Control. A hostname that resolves to a public address when the
// endpoint is registered and to 127.0.0.1 when the webhook is sent (DNS
// rebinding) is therefore still refused. IPv6 forms that embed an IPv4
// address (IPv4-mapped, IPv4-compatible, NAT64, 6to4) are judged by the
// IPv4 address they carry.
//
// With an outbound proxy the relay dials only the proxy, which the
// operator configured and which the dial-time check therefore does not
// judge. The real destination is checked before each request is handed to
// the proxy, with Guard.CheckHost: an IP literal as it is, a name by looking
// it up and refusing it when any of its addresses is refused. The proxy
// looks the name up again, so DNS rebinding between the two lookups is
// outside what the relay can see; a proxy that enforces its own egress
// policy closes that gap.
//
// Endpoint registration uses Guard.CheckHostAny to refuse a URL early when
// every address of its host is refused; the dial-time check remains the
// real guard.
package destguard
