package relay_test

import (
	"net/url"
	"testing"

	"github.com/hookrelay/hookrelay/relay"
)

func TestEncodeOrderingKey(t *testing.T) {
	for _, c := range []struct{ key, want string }{
		{"participant:123", "participant:123"},
		{"user/42#a?b=c", "user/42#a?b=c"},
		{"50%", "50%25"},
		{"two words", "two%20words"},
		{"line\nbreak", "line%0Abreak"},
		{"Zoë", "Zo%C3%AB"},
		{"\x00\x7f", "%00%7F"},
	} {
		got := relay.EncodeOrderingKey(c.key)
		if got != c.want {
			t.Errorf("EncodeOrderingKey(%q) = %q, want %q", c.key, got, c.want)
		}
		if back, err := url.PathUnescape(got); err != nil || back != c.key {
			t.Errorf("%q does not decode back to %q: %q, %v", got, c.key, back, err)
		}
	}
}
