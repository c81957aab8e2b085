package signature

import (
	"time"
	"unicode/utf8"
)

// Body builds the JSON body exactly as it is signed and sent:
//
//	{"type":<eventType>,"timestamp":<ts in UTC, RFC 3339 with nanoseconds>,"data":<payload>}
//
// eventType is JSON-escaped (invalid UTF-8 becomes U+FFFD, as
// encoding/json does). payload is written verbatim, without re-encoding, so
// it must already be valid JSON; an empty payload is written as null.
func Body(eventType string, ts time.Time, payload []byte) []byte {
	return AppendBody(make([]byte, 0, len(`{"type":"","timestamp":"","data":}`)+len(eventType)+len(time.RFC3339Nano)+len(payload)+8), eventType, ts, payload)
}

// AppendBody is Body appending to dst, for reusing buffers.
func AppendBody(dst []byte, eventType string, ts time.Time, payload []byte) []byte {
	dst = append(dst, `{"type":`...)
	dst = appendJSONString(dst, eventType)
	dst = append(dst, `,"timestamp":"`...)
	dst = ts.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","data":`...)
	if len(payload) == 0 {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, payload...)
	}
	return append(dst, '}')
}

// hex is the digit set of \u escapes.
const hex = "0123456789abcdef"

// appendJSONString appends s as a quoted JSON string, byte for byte what
// encoding/json.Marshal writes: control characters, '<', '>', '&' and
// U+2028/U+2029 are escaped, and each invalid UTF-8 byte becomes \ufffd.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
