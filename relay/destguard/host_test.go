package destguard_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/relay/destguard"
)

// fakeResolver answers from a table; a name not in it is not found.
type fakeResolver struct {
	t       *testing.T
	answers map[string][]string
	calls   int
}

func (r *fakeResolver) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	r.calls++
	if network != "ip" {
		r.t.Errorf("lookup network = %q, want ip", network)
	}
	ans, ok := r.answers[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	var out []netip.Addr
	for _, a := range ans {
		out = append(out, netip.MustParseAddr(a))
	}
	return out, nil
}

func TestCheckHost(t *testing.T) {
	r := &fakeResolver{t: t, answers: map[string][]string{
		"public.example":  {"93.184.215.14", "2606:4700::1111"},
		"private.example": {"10.0.0.5", "::1"},
		"mixed.example":   {"93.184.215.14", "10.0.0.5"},
		"mapped.example":  {"::ffff:127.0.0.1"},
		"empty.example":   {},
	}}
	g := destguard.New(false, nil)
	// want: "" allowed; "dns" a lookup error; else a substring of the error.
	tests := []struct {
		host     string
		every    string // CheckHost: every address must be allowed
		oneOfAll string // CheckHostAny: one allowed address suffices
	}{
		{"93.184.215.14", "", ""},
		{"127.0.0.1", "127.0.0.1 refused: loopback", "127.0.0.1 refused: loopback"},
		{"::1", "::1 refused: loopback", "::1 refused: loopback"},
		{"[::1]", "::1 refused: loopback", "::1 refused: loopback"},
		{"169.254.169.254", "link-local", "link-local"},
		{"public.example", "", ""},
		{"private.example", "resolves only to refused addresses (10.0.0.5: private (RFC 1918), ::1: loopback)", "resolves only to refused addresses"},
		{"mixed.example", "resolves to refused addresses (10.0.0.5: private (RFC 1918))", ""},
		{"mapped.example", "127.0.0.1: loopback", "127.0.0.1: loopback"},
		{"missing.example", "dns", "dns"},
		{"empty.example", "dns", "dns"},
	}
	check := func(t *testing.T, err error, want string) {
		t.Helper()
		var dnsErr *net.DNSError
		var refused *destguard.RefusedError
		switch {
		case want == "":
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
		case want == "dns":
			if !errors.As(err, &dnsErr) {
				t.Fatalf("err = %v, want a *net.DNSError", err)
			}
		default:
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("err = %v, want it to contain %q", err, want)
			}
			if !errors.As(err, &refused) {
				t.Fatalf("err = %T, want it to hold a *RefusedError (so the relay classifies it destination_refused)", err)
			}
			if !strings.Contains(err.Error(), "HOOKRELAY_ALLOW_PRIVATE_DESTINATIONS") || !strings.Contains(err.Error(), "HOOKRELAY_ALLOWED_DESTINATION_CIDRS") {
				t.Fatalf("err = %v, want it to say how to allow the destination", err)
			}
		}
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			check(t, g.CheckHost(context.Background(), r, tt.host), tt.every)
			check(t, g.CheckHostAny(context.Background(), r, tt.host), tt.oneOfAll)
		})
	}
}

func TestCheckHostAllowed(t *testing.T) {
	r := &fakeResolver{t: t, answers: map[string][]string{"private.example": {"10.0.0.5"}}}
	open := destguard.New(true, nil)
	if !open.AllowsAll() {
		t.Fatal("AllowsAll = false with private destinations allowed")
	}
	if err := open.CheckHost(context.Background(), r, "private.example"); err != nil {
		t.Fatalf("allow-private guard refused: %v", err)
	}
	if err := open.CheckHost(context.Background(), r, "missing.example"); err != nil {
		t.Fatalf("allow-private guard looked the name up: %v", err)
	}
	if r.calls != 0 {
		t.Fatalf("%d lookups with private destinations allowed, want none", r.calls)
	}

	cidr := destguard.New(false, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")})
	if cidr.AllowsAll() {
		t.Fatal("AllowsAll = true for a guard with only allowed CIDRs")
	}
	if err := cidr.CheckHost(context.Background(), r, "private.example"); err != nil {
		t.Fatalf("address in HOOKRELAY_ALLOWED_DESTINATION_CIDRS refused: %v", err)
	}
	if err := cidr.CheckHost(context.Background(), r, "10.0.1.1"); err == nil {
		t.Fatal("address outside the allowed CIDR was allowed")
	}
}

func TestCheckHostRealResolver(t *testing.T) {
	// localhost resolves through /etc/hosts to loopback, whatever form the
	// resolver answers in.
	err := destguard.New(false, nil).CheckHost(context.Background(), nil, "localhost")
	var refused *destguard.RefusedError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("CheckHost(localhost) = %v, want a loopback refusal", err)
	}
}
