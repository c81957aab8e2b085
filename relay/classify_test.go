package relay_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/destguard"
)

func TestClassify(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	wrap := func(err error) error { return &url.Error{Op: "Post", URL: "https://example.com", Err: err} }
	cases := []struct {
		name       string
		status     int
		header     http.Header
		err        error
		delivered  bool
		final      bool
		disable    bool
		class      string
		retryAfter time.Duration
	}{
		{"200", 200, nil, nil, true, false, false, "", 0},
		{"204", 204, nil, nil, true, false, false, "", 0},
		{"299", 299, nil, nil, true, false, false, "", 0},
		{"301 not followed", 301, nil, nil, false, false, false, relay.ClassRedirect, 0},
		{"307", 307, nil, nil, false, false, false, relay.ClassRedirect, 0},
		{"400", 400, nil, nil, false, false, false, relay.ClassHTTPStatus, 0},
		{"404", 404, nil, nil, false, false, false, relay.ClassHTTPStatus, 0},
		{"410 disables", 410, nil, nil, false, true, true, relay.ClassGone, 0},
		{"429 with seconds", 429, hdr("Retry-After", "30"), nil, false, false, false, relay.ClassRateLimited, 30 * time.Second},
		{"429 with date", 429, hdr("Retry-After", now.Add(time.Minute).Format(http.TimeFormat)), nil, false, false, false, relay.ClassRateLimited, time.Minute},
		{"429 without header", 429, nil, nil, false, false, false, relay.ClassRateLimited, 0},
		{"500", 500, nil, nil, false, false, false, relay.ClassHTTPStatus, 0},
		{"502", 502, nil, nil, false, false, false, relay.ClassHTTPStatus, 0},
		{"503 retry-after", 503, hdr("Retry-After", "5"), nil, false, false, false, relay.ClassHTTPStatus, 5 * time.Second},
		{"504", 504, nil, nil, false, false, false, relay.ClassHTTPStatus, 0},
		{"timeout", 0, nil, wrap(context.DeadlineExceeded), false, false, false, relay.ClassTimeout, 0},
		{"refused", 0, nil, wrap(&net.OpError{Op: "dial", Err: &osSyscallError{syscall.ECONNREFUSED}}), false, false, false, relay.ClassConnectionRefused, 0},
		{"reset", 0, nil, wrap(&net.OpError{Op: "read", Err: &osSyscallError{syscall.ECONNRESET}}), false, false, false, relay.ClassConnectionReset, 0},
		{"eof", 0, nil, wrap(io.EOF), false, false, false, relay.ClassConnectionReset, 0},
		{"dns", 0, nil, wrap(&net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "nope.invalid", IsNotFound: true}}), false, false, false, relay.ClassDNS, 0},
		{"tls", 0, nil, wrap(&tls.CertificateVerificationError{Err: errors.New("x509: certificate signed by unknown authority")}), false, false, false, relay.ClassTLS, 0},
		{"tls record", 0, nil, wrap(tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}), false, false, false, relay.ClassTLS, 0},
		{"refused destination", 0, nil, wrap(&net.OpError{Op: "dial", Err: &destguard.RefusedError{Addr: netip.MustParseAddr("10.0.0.1"), Reason: "private"}}), false, true, false, relay.ClassDestination, 0},
		{"other network", 0, nil, wrap(errors.New("something odd")), false, false, false, relay.ClassNetwork, 0},
		{"headers too large", 0, nil, wrap(fmt.Errorf("%w: net/http: server response headers exceeded 65536 bytes; aborted", relay.ErrResponseHeadersTooLarge)), false, false, false, relay.ClassHeadersTooLarge, 0},
		{"http2 protocol error", 0, nil, wrap(errors.New("connection error: PROTOCOL_ERROR")), false, false, false, relay.ClassProtocol, 0},
		{"malformed response", 0, nil, wrap(fmt.Errorf("net/http: HTTP/1.x transport connection broken: malformed HTTP response \"xx\"")), false, false, false, relay.ClassProtocol, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := relay.Classify(c.status, c.header, c.err, now)
			if v.Delivered != c.delivered || v.Final != c.final || v.DisableEndpoint != c.disable || v.Class != c.class || v.RetryAfter != c.retryAfter {
				t.Fatalf("Classify = %+v, want delivered=%v final=%v disable=%v class=%q retryAfter=%v",
					v, c.delivered, c.final, c.disable, c.class, c.retryAfter)
			}
		})
	}
}

type osSyscallError struct{ errno syscall.Errno }

func (e *osSyscallError) Error() string { return e.errno.Error() }
func (e *osSyscallError) Unwrap() error { return e.errno }

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"0", 0}, {"-5", 0}, {"abc", 0}, {"10", 10 * time.Second},
		{"999999999", relay.MaxRetryAfter},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
	} {
		if got := relay.ParseRetryAfter(c.in, now); got != c.want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestPolicy(t *testing.T) {
	p := relay.Policy{Schedule: []time.Duration{10 * time.Second, time.Minute, time.Hour}}
	if p.MaxAttempts() != 4 {
		t.Fatalf("MaxAttempts = %d", p.MaxAttempts())
	}
	for attempt, base := range map[int]time.Duration{1: 10 * time.Second, 2: time.Minute, 3: time.Hour} {
		for i := 0; i < 50; i++ {
			d, ok := p.Next(attempt, 0)
			if !ok || d < base*80/100 || d > base*120/100 {
				t.Fatalf("Next(%d) = %v, %v; want %v ±20%%", attempt, d, ok, base)
			}
		}
	}
	if _, ok := p.Next(4, 0); ok {
		t.Fatal("schedule not exhausted after the last entry")
	}
	if d, ok := p.Next(1, 3*time.Second); !ok || d != 3*time.Second {
		t.Fatalf("Retry-After not honoured: %v", d)
	}
	if d, _ := p.Next(1, time.Millisecond); d != relay.MinRetryAfter {
		t.Fatalf("Retry-After not clamped up: %v", d)
	}
	if d, _ := p.Next(1, 1000*time.Hour); d != relay.MaxRetryAfter {
		t.Fatalf("Retry-After not clamped down: %v", d)
	}
}
