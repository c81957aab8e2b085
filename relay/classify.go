package relay

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hookrelay/hookrelay/relay/destguard"
)

// Attempt results, as recorded in attempts.outcome and the metrics.
const (
	ResultDelivered = "delivered"
	ResultRetry     = "retry"
	ResultDead      = "dead"
	ResultReleased  = "released"
)

// Error classes recorded with failed attempts.
const (
	ClassHTTPStatus        = "http_status"
	ClassRedirect          = "redirect"
	ClassGone              = "gone"
	ClassRateLimited       = "rate_limited"
	ClassTimeout           = "timeout"
	ClassConnectionRefused = "connection_refused"
	ClassConnectionReset   = "connection_reset"
	ClassDNS               = "dns_error"
	ClassTLS               = "tls_error"
	ClassDestination       = "destination_refused"
	ClassProtocol          = "protocol_error"
	ClassHeadersTooLarge   = "headers_too_large"
	ClassNetwork           = "network_error"
	ClassCancelled         = "cancelled"
)

// Verdict is the classification of one attempt.
type Verdict struct {
	// Delivered is true for any 2xx.
	Delivered bool
	// Final is true when retrying cannot help (the delivery becomes dead).
	Final bool
	// DisableEndpoint is true for 410 Gone.
	DisableEndpoint bool
	// Class is the error class ("" when delivered).
	Class string
	// RetryAfter is the receiver's requested delay (0 when none).
	RetryAfter time.Duration
}

// Classify maps a response or transport error to a verdict. now is used to
// interpret a Retry-After HTTP date.
func Classify(status int, header http.Header, err error, now time.Time) Verdict {
	if err != nil {
		return classifyError(err)
	}
	switch {
	case status >= 200 && status < 300:
		return Verdict{Delivered: true}
	case status == http.StatusGone:
		return Verdict{Final: true, DisableEndpoint: true, Class: ClassGone}
	case status >= 300 && status < 400:
		return Verdict{Class: ClassRedirect}
	case status == http.StatusTooManyRequests:
		return Verdict{Class: ClassRateLimited, RetryAfter: ParseRetryAfter(header.Get("Retry-After"), now)}
	default:
		return Verdict{Class: ClassHTTPStatus, RetryAfter: ParseRetryAfter(header.Get("Retry-After"), now)}
	}
}

func classifyError(err error) Verdict {
	var refused *destguard.RefusedError
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalidCert x509.CertificateInvalidError
	var recordErr tls.RecordHeaderError
	var alertErr tls.AlertError
	var netErr net.Error
	switch {
	case errors.As(err, &refused):
		return Verdict{Final: true, Class: ClassDestination}
	case errors.Is(err, ErrResponseHeadersTooLarge):
		return Verdict{Class: ClassHeadersTooLarge}
	case errors.Is(err, context.Canceled):
		return Verdict{Class: ClassCancelled}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, syscall.ETIMEDOUT):
		return Verdict{Class: ClassTimeout}
	case errors.As(err, &dnsErr):
		return Verdict{Class: ClassDNS}
	case errors.As(err, &certErr), errors.As(err, &unknownAuth), errors.As(err, &hostErr),
		errors.As(err, &invalidCert), errors.As(err, &recordErr), errors.As(err, &alertErr),
		strings.Contains(err.Error(), "tls: "):
		return Verdict{Class: ClassTLS}
	case errors.Is(err, syscall.ECONNREFUSED):
		return Verdict{Class: ClassConnectionRefused}
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return Verdict{Class: ClassConnectionReset}
	case errors.As(err, &netErr) && netErr.Timeout():
		return Verdict{Class: ClassTimeout}
	case strings.Contains(err.Error(), "malformed HTTP"), strings.Contains(err.Error(), "http: "),
		strings.Contains(err.Error(), "PROTOCOL_ERROR"): // HTTP/2 connection and stream errors
		return Verdict{Class: ClassProtocol}
	}
	return Verdict{Class: ClassNetwork}
}

// ParseRetryAfter reads a Retry-After value (delay seconds or an HTTP date)
// and returns the delay, 0 when absent or unparsable.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
