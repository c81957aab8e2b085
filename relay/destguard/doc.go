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
// The guard only sees the address dialled: when an HTTP proxy is
// configured the guard checks the proxy, not the destination, so the relay's
// transport must not use one.
package destguard
