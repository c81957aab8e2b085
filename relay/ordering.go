package relay

import "strings"

// OrderingKeyHeader carries the event's ordering key to the receiver. It is
// not part of the signed content: the signature stays exactly Standard
// Webhooks.
const OrderingKeyHeader = "webhook-ordering-key"

// EncodeOrderingKey makes a key a valid header value: printable ASCII is
// sent as it is, except '%', which like every other byte (spaces, control
// characters, UTF-8) is percent-encoded, so any standard percent-decoder
// (decodeURIComponent, urllib.parse.unquote, url.PathUnescape) gives the
// key back.
func EncodeOrderingKey(key string) string {
	plain := true
	for i := 0; i < len(key); i++ {
		if c := key[i]; c <= ' ' || c >= 0x7f || c == '%' {
			plain = false
			break
		}
	}
	if plain {
		return key
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(key) * 3)
	for i := 0; i < len(key); i++ {
		if c := key[i]; c <= ' ' || c >= 0x7f || c == '%' {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}
