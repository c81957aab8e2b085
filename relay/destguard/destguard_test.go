package destguard_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/relay/destguard"
)

// checkTests: want is "" for allowed, else a substring of the reason.
// They seed FuzzCheck too.
var checkTests = []struct {
	addr string
	want string
}{
	// Public.
	{"8.8.8.8", ""},
	{"1.1.1.1", ""},
	{"93.184.215.14", ""},
	{"2606:4700::1111", ""},
	{"2a00:1450:4001:82b::200e", ""},
	{"::ffff:8.8.8.8", ""},
	{"64:ff9b::808:808", ""},
	{"2002:808:808::1", ""},
	// Unspecified and "this network".
	{"0.0.0.0", "unspecified"},
	{"0.1.2.3", "this network"},
	{"0.255.255.255", "this network"},
	{"1.0.0.0", ""},
	{"::", "unspecified"},
	// Loopback.
	{"127.0.0.1", "loopback"},
	{"127.255.255.255", "loopback"},
	{"126.255.255.255", ""},
	{"128.0.0.0", ""},
	{"::1", "loopback"},
	// Private (RFC 1918) and its edges.
	{"10.0.0.0", "private (RFC 1918)"},
	{"10.0.0.1", "private (RFC 1918)"},
	{"10.255.255.255", "private (RFC 1918)"},
	{"9.255.255.255", ""},
	{"11.0.0.0", ""},
	{"172.15.255.255", ""},
	{"172.16.0.0", "private (RFC 1918)"},
	{"172.31.255.255", "private (RFC 1918)"},
	{"172.32.0.0", ""},
	{"192.167.255.255", ""},
	{"192.168.0.0", "private (RFC 1918)"},
	{"192.168.255.255", "private (RFC 1918)"},
	{"192.169.0.0", ""},
	// Link-local (cloud metadata lives here).
	{"169.254.169.254", "link-local"},
	{"169.253.255.255", ""},
	{"169.255.0.0", ""},
	{"fe80::1", "link-local"},
	{"fe80::1%eth0", "link-local"},
	{"febf:ffff::1", "link-local"},
	// Carrier-grade NAT.
	{"100.63.255.255", ""},
	{"100.64.0.0", "carrier-grade NAT (RFC 6598)"},
	{"100.127.255.255", "carrier-grade NAT (RFC 6598)"},
	{"100.128.0.0", ""},
	// Multicast.
	{"224.0.0.1", "multicast"},
	{"239.255.255.255", "multicast"},
	{"223.255.255.255", ""},
	{"ff02::1", "multicast"},
	{"ff0e::1", "multicast"},
	// IETF protocol assignments.
	{"192.0.0.0", "IETF protocol"},
	{"192.0.0.255", "IETF protocol"},
	{"192.0.1.0", ""},
	// Documentation.
	{"192.0.2.1", "documentation"},
	{"198.51.100.7", "documentation"},
	{"203.0.113.255", "documentation"},
	{"203.0.114.0", ""},
	{"2001:db8::1", "documentation"},
	{"3fff::1", "documentation"},
	// Benchmarking.
	{"198.17.255.255", ""},
	{"198.18.0.0", "benchmarking"},
	{"198.19.255.255", "benchmarking"},
	{"198.20.0.0", ""},
	{"2001:2::1", "benchmarking"},
	// Reserved and broadcast.
	{"240.0.0.1", "reserved"},
	{"255.255.255.254", "reserved"},
	{"255.255.255.255", "broadcast"},
	// IPv6-only special ranges.
	{"fc00::1", "unique local"},
	{"fd12:3456::1", "unique local"},
	{"fec0::1", "site-local"},
	{"100::1", "discard"},
	{"2001::1", "Teredo"},
	{"2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"},
	{"2001:10::1", "IETF protocol"},
	{"4000::1", "reserved IPv6"},
	{"1fff:ffff::1", "reserved IPv6"},
	{"::ffff:0:808:808", "reserved IPv6"}, // IPv4-translated (SIIT) is not routable
	// IPv4 embedded in IPv6.
	{"::ffff:127.0.0.1", "IPv4-mapped IPv6 of 127.0.0.1: loopback"},
	{"::ffff:10.0.0.1", "IPv4-mapped IPv6 of 10.0.0.1: private (RFC 1918)"},
	{"::ffff:169.254.169.254", "IPv4-mapped IPv6 of 169.254.169.254: link-local"},
	{"::ffff:0.0.0.0", "IPv4-mapped IPv6 of 0.0.0.0: unspecified"},
	{"::127.0.0.1", "IPv4-compatible IPv6 of 127.0.0.1: loopback"},
	{"::8.8.8.8", "IPv4-compatible IPv6 of 8.8.8.8: deprecated"},
	{"::2", "IPv4-compatible IPv6 of 0.0.0.2"},
	{"64:ff9b::a00:1", "NAT64 IPv6 of 10.0.0.1: private (RFC 1918)"},
	{"64:ff9b::7f00:1", "NAT64 IPv6 of 127.0.0.1: loopback"},
	{"64:ff9b:1::a9fe:a9fe", "local-use NAT64 IPv6 of 169.254.169.254: link-local"},
	{"64:ff9b:1::808:808", ""},
	{"64:ff9c::808:808", "reserved IPv6"},
	{"2002:7f00:1::", "6to4 IPv6 of 127.0.0.1: loopback"},
	{"2002:c0a8:101::1", "6to4 IPv6 of 192.168.1.1: private (RFC 1918)"},
}

func TestCheck(t *testing.T) {
	g := destguard.New(false, nil)
	open := destguard.New(true, nil)
	for _, tt := range checkTests {
		t.Run(tt.addr, func(t *testing.T) {
			addr := netip.MustParseAddr(tt.addr)
			err := g.Check(addr)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Check(%s) = %v, want allowed", addr, err)
				}
			} else {
				var re *destguard.RefusedError
				if !errors.As(err, &re) {
					t.Fatalf("Check(%s) = %v, want *RefusedError containing %q", addr, err, tt.want)
				}
				if re.Addr != addr || !strings.Contains(re.Reason, tt.want) {
					t.Fatalf("RefusedError{%s, %q}, want {%s, ...%q...}", re.Addr, re.Reason, addr, tt.want)
				}
			}
			if err := open.Check(addr); err != nil {
				t.Fatalf("allowPrivate guard: Check(%s) = %v", addr, err)
			}
		})
	}
}

func TestCheckInvalid(t *testing.T) {
	var re *destguard.RefusedError
	if err := destguard.New(false, nil).Check(netip.Addr{}); !errors.As(err, &re) {
		t.Fatalf("Check(zero Addr) = %v, want *RefusedError", err)
	}
}

func TestAllowedPrefixes(t *testing.T) {
	g := destguard.New(false, []netip.Prefix{
		netip.MustParsePrefix("127.0.0.1/8"), // not masked: New masks it
		netip.MustParsePrefix("fd00:1::/32"),
		netip.MustParsePrefix("192.168.10.0/24"),
	})
	tests := []struct {
		addr    string
		allowed bool
	}{
		{"127.0.0.1", true},
		{"127.3.2.1", true},
		{"::ffff:127.0.0.1", true},
		{"64:ff9b::7f00:1", true},
		{"fd00:1::5", true},
		{"192.168.10.77", true},
		{"192.168.11.1", false},
		{"10.0.0.1", false},
		{"::ffff:10.0.0.1", false},
		{"::1", false},
		{"fd00:2::5", false},
		{"169.254.169.254", false},
		{"8.8.8.8", true},
	}
	for _, tt := range tests {
		err := g.Check(netip.MustParseAddr(tt.addr))
		if (err == nil) != tt.allowed {
			t.Errorf("Check(%s) = %v, want allowed=%v", tt.addr, err, tt.allowed)
		}
	}
}

func TestRefusedErrorMessage(t *testing.T) {
	err := destguard.New(false, nil).Check(netip.MustParseAddr("10.0.0.1"))
	want := "destination 10.0.0.1 refused: private (RFC 1918); set HOOKRELAY_ALLOW_PRIVATE_DESTINATIONS=true or add it to HOOKRELAY_ALLOWED_DESTINATION_CIDRS"
	if err == nil || err.Error() != want {
		t.Fatalf("Error() = %v, want %q", err, want)
	}
}

func TestControl(t *testing.T) {
	g := destguard.New(false, nil)
	tests := []struct {
		address string
		refused bool // a *RefusedError
		bad     bool // any other error
	}{
		{"8.8.8.8:443", false, false},
		{"[2606:4700::1111]:443", false, false},
		{"127.0.0.1:8080", true, false},
		{"[::1]:80", true, false},
		{"[fe80::1%eth0]:80", true, false},
		{"[::ffff:10.0.0.1]:80", true, false},
		{"localhost:80", false, true},
		{"8.8.8.8", false, true},
		{"", false, true},
	}
	for _, tt := range tests {
		err := g.Control("tcp", tt.address, nil)
		var re *destguard.RefusedError
		switch {
		case tt.refused && !errors.As(err, &re):
			t.Errorf("Control(%q) = %v, want *RefusedError", tt.address, err)
		case tt.bad && (err == nil || errors.As(err, &re)):
			t.Errorf("Control(%q) = %v, want a parse error", tt.address, err)
		case !tt.refused && !tt.bad && err != nil:
			t.Errorf("Control(%q) = %v, want nil", tt.address, err)
		}
	}
}

// newClient returns a client that dials through g, with no proxy.
func newClient(g *destguard.Guard, d *net.Dialer) *http.Client {
	return &http.Client{
		Transport: &http.Transport{DialContext: g.DialContext(d), DisableKeepAlives: true},
		Timeout:   10 * time.Second,
	}
}

func get(t *testing.T, c *http.Client, url string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if string(body) != "reached" {
		t.Fatalf("body = %q", body)
	}
	return nil
}

func TestHTTPClientEndToEnd(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		io.WriteString(w, "reached")
	}))
	defer srv.Close()
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	byName := "http://localhost:" + port + "/"

	t.Run("refused by default", func(t *testing.T) {
		c := newClient(destguard.New(false, nil), &net.Dialer{Timeout: 5 * time.Second})
		for _, url := range []string{srv.URL, byName} {
			err := get(t, c, url)
			var re *destguard.RefusedError
			if !errors.As(err, &re) {
				t.Fatalf("GET %s: %v, want a *RefusedError", url, err)
			}
			if !re.Addr.IsLoopback() || re.Reason != "loopback" {
				t.Fatalf("GET %s refused %s for %q, want loopback", url, re.Addr, re.Reason)
			}
		}
	})
	if n := hits.Load(); n != 0 {
		t.Fatalf("server reached %d times through a refusing guard", n)
	}

	t.Run("allowed prefix", func(t *testing.T) {
		g := destguard.New(false, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
		if err := get(t, newClient(g, nil), srv.URL); err != nil {
			t.Fatalf("GET with 127.0.0.0/8 allowed: %v", err)
		}
	})

	t.Run("allow private", func(t *testing.T) {
		if err := get(t, newClient(destguard.New(true, nil), nil), byName); err != nil {
			t.Fatalf("GET with allowPrivate: %v", err)
		}
	})

	t.Run("keeps the dialer's own hook", func(t *testing.T) {
		var called atomic.Int32
		d := &net.Dialer{Control: func(string, string, syscall.RawConn) error {
			called.Add(1)
			return nil
		}}
		g := destguard.New(false, []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")})
		if err := get(t, newClient(g, d), srv.URL); err != nil {
			t.Fatal(err)
		}
		if n := called.Load(); n != 1 {
			t.Fatalf("dialer's Control called %d times, want 1", n)
		}
		if d.Control == nil || d.ControlContext != nil {
			t.Fatal("DialContext modified the caller's dialer")
		}
		if err := get(t, newClient(destguard.New(false, nil), d), srv.URL); err == nil {
			t.Fatal("guard did not run before the dialer's hook")
		}
		if called.Load() != 1 {
			t.Fatal("dialer's Control ran for a refused address")
		}
	})
}
