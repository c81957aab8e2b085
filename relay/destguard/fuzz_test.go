package destguard_test

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/hookrelay/hookrelay/relay/destguard"
)

func FuzzCheck(f *testing.F) {
	for _, tt := range checkTests {
		a := netip.MustParseAddr(tt.addr)
		f.Add(a.AsSlice())
	}
	f.Add([]byte{})
	f.Add([]byte{1, 2, 3})
	g := destguard.New(false, nil)
	open := destguard.New(true, nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		a, ok := netip.AddrFromSlice(b)
		err := g.Check(a) // the zero Addr too
		var re *destguard.RefusedError
		if err != nil && !errors.As(err, &re) {
			t.Fatalf("Check(%s) = %v (%T), want nil or *RefusedError", a, err, err)
		}
		if !ok {
			if err == nil {
				t.Fatal("invalid address allowed")
			}
			return
		}
		if err := open.Check(a); err != nil {
			t.Fatalf("allowPrivate guard refused %s: %v", a, err)
		}
		// A mapped address is judged like the IPv4 address it carries.
		if a.Is4In6() {
			if (err == nil) != (g.Check(a.Unmap()) == nil) {
				t.Fatalf("%s and %s judged differently: %v", a, a.Unmap(), err)
			}
		}
		// Addresses the standard library knows to be non-public are refused.
		if err == nil && (a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsMulticast() || a.IsUnspecified()) {
			t.Fatalf("%s allowed", a)
		}
	})
}
