package relay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/hookrelay/hookrelay/relay/destguard"
	"github.com/hookrelay/hookrelay/relay/signature"
)

// MaxExcerpt is how much of a response body is kept with an attempt, in
// bytes; Response.Excerpt is never longer.
const MaxExcerpt = 4 << 10

// MaxResponseHeaderBytes bounds a receiver's response headers (status line
// included); a larger answer fails the attempt with ErrResponseHeadersTooLarge
// (class ClassHeadersTooLarge).
const MaxResponseHeaderBytes = 64 << 10

// maxBodyWait bounds how long a response body is read, once the headers
// have arrived, to fill the excerpt. The status decides the outcome; a body
// that trickles or never ends is cut off and its connection closed.
const maxBodyWait = 2 * time.Second

// ErrResponseHeadersTooLarge is the error of an attempt whose response
// headers exceeded MaxResponseHeaderBytes.
var ErrResponseHeadersTooLarge = fmt.Errorf("response headers exceed %d bytes", MaxResponseHeaderBytes)

// DefaultRequestTimeout bounds one delivery attempt of a Sender whose
// SenderConfig.Timeout is 0.
const DefaultRequestTimeout = 10 * time.Second

// SenderConfig configures the HTTP side of deliveries. The zero value is
// usable: direct connections to any destination, DefaultRequestTimeout.
type SenderConfig struct {
	// Timeout bounds a whole request: connect, TLS, headers and body
	// (DefaultRequestTimeout when 0 or negative).
	Timeout time.Duration
	// MaxConnsPerHost caps connections to one host (0: no cap).
	MaxConnsPerHost int
	// MaxIdleConnsPerHost is how many keep-alive connections per host are
	// kept for reuse (default 256); it should cover the per-endpoint
	// concurrency, or connections churn.
	MaxIdleConnsPerHost int
	// Guard refuses private destinations; nil allows all. Direct
	// connections are checked at dial time; with Proxy set, each request's
	// destination is checked before it is handed to the proxy (see
	// destguard.Guard.CheckHost) and the proxy's own address is not judged.
	Guard *destguard.Guard
	// Proxy is an outbound proxy URL; nil means direct (HTTP_PROXY from
	// the environment is never used).
	Proxy *url.URL
}

// Sender signs and POSTs webhook messages over one shared, tuned
// transport. Redirects are never followed (a 3xx is a failed attempt), and
// a transport never follows one, so requests go to it directly: an
// http.Client would only add its redirect machinery, a copy of the headers
// per request.
type Sender struct {
	tr      *http.Transport
	timeout time.Duration
	ua      string
	bufs    sync.Pool
	guard   *destguard.Guard
	proxied bool
}

// NewSender returns a Sender; zero fields of cfg take the defaults noted
// on SenderConfig.
func NewSender(cfg SenderConfig) *Sender {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultRequestTimeout
	}
	dialer := &net.Dialer{Timeout: min(cfg.Timeout, 10*time.Second), KeepAlive: 30 * time.Second}
	dial := dialer.DialContext
	if cfg.Guard != nil {
		dial = cfg.Guard.DialContext(dialer)
	}
	idle := cfg.MaxIdleConnsPerHost
	if idle <= 0 {
		idle = 256
	}
	tr := &http.Transport{
		DialContext:            dial,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           max(4096, idle),
		MaxIdleConnsPerHost:    idle,
		MaxConnsPerHost:        cfg.MaxConnsPerHost,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    min(cfg.Timeout, 10*time.Second),
		ResponseHeaderTimeout:  cfg.Timeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: MaxResponseHeaderBytes,
	}
	if cfg.Proxy != nil {
		proxy := *cfg.Proxy
		check := &targetCheck{guard: cfg.Guard, now: time.Now}
		tr.Proxy = func(req *http.Request) (*url.URL, error) {
			if err := check.check(req.Context(), req.URL.Hostname()); err != nil {
				return nil, err
			}
			u := proxy
			return &u, nil
		}
		if cfg.Guard != nil {
			// Every connection goes to the proxy, which the operator chose:
			// its address is dialled without the guard, anything else with.
			proxyAddr := canonicalAddr(&proxy)
			direct := dialer.DialContext
			tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				if addr == proxyAddr {
					return direct(ctx, network, addr)
				}
				return dial(ctx, network, addr)
			}
		}
	}
	return &Sender{
		tr:      tr,
		timeout: cfg.Timeout,
		ua:      "hookrelay/" + Version,
		bufs:    sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }},
		guard:   cfg.Guard,
		proxied: cfg.Proxy != nil,
	}
}

// canonicalAddr is the host:port net/http dials for a proxy URL.
func canonicalAddr(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443", "socks5": "1080", "socks5h": "1080"}[u.Scheme]
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// targetCheckTTL is how long a proxied destination's verdict is reused, so
// a busy endpoint does not cost a DNS lookup per request.
const targetCheckTTL = 5 * time.Second

// targetCheckMax bounds the remembered verdicts; the memory is dropped
// when it is full.
const targetCheckMax = 4096

// targetCheck runs the guard on the destination of each proxied request.
type targetCheck struct {
	guard *destguard.Guard
	now   func() time.Time
	mu    sync.Mutex
	seen  map[string]targetVerdict
}

type targetVerdict struct {
	err   error // nil (allowed) or the refusal
	until time.Time
}

func (c *targetCheck) check(ctx context.Context, host string) error {
	if c.guard == nil || c.guard.AllowsAll() {
		return nil
	}
	now := c.now()
	c.mu.Lock()
	v, ok := c.seen[host]
	c.mu.Unlock()
	if ok && now.Before(v.until) {
		return v.err
	}
	err := c.guard.CheckHost(ctx, nil, host)
	var refused *destguard.RefusedError
	if err != nil && !errors.As(err, &refused) {
		return err // a failed lookup is not remembered
	}
	c.mu.Lock()
	if c.seen == nil || len(c.seen) >= targetCheckMax {
		c.seen = make(map[string]targetVerdict)
	}
	c.seen[host] = targetVerdict{err: err, until: now.Add(targetCheckTTL)}
	c.mu.Unlock()
	return err
}

// Close releases idle connections.
func (s *Sender) Close() { s.tr.CloseIdleConnections() }

// Message is one webhook to send.
type Message struct {
	URL       string
	WebhookID string
	EventType string
	Payload   []byte // the event's data, raw JSON
	// Timestamp is the event time written in the body; the attempt time goes
	// in the webhook-timestamp header.
	Timestamp time.Time
	Secrets   []signature.Secret
	// OrderingKey, when set, is sent in the webhook-ordering-key header
	// (see OrderingKeyHeader); it is not part of the signed content.
	OrderingKey string
}

// Response is what one attempt produced.
type Response struct {
	StartedAt  time.Time
	Duration   time.Duration
	StatusCode int // 0 when no response
	Header     http.Header
	// Excerpt is the start of the body: at most MaxExcerpt bytes, valid
	// UTF-8 (invalid bytes replaced by U+FFFD).
	Excerpt string
	// Err is the transport error, nil when a response arrived. Its text
	// names the URL in its redacted form (RedactURL).
	Err error
}

// Send signs and POSTs m once, within the sender's timeout. Once the
// response headers arrive the outcome is decided: the body is read only to
// fill the excerpt, for at most MaxExcerpt bytes and maxBodyWait, then the
// response is closed (a body not read to its end closes the connection
// rather than returning it for reuse).
func (s *Sender) Send(ctx context.Context, m Message) Response {
	bp := s.bufs.Get().(*[]byte)
	body := signature.AppendBody((*bp)[:0], m.EventType, m.Timestamp, m.Payload)
	defer func() { *bp = body[:0]; s.bufs.Put(bp) }()

	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.URL, bytes.NewReader(body))
	if err != nil {
		return Response{StartedAt: start, Err: fmt.Errorf("build request: %w", transportError(err))}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", s.ua)
	signature.Headers(req.Header, m.WebhookID, start, body, m.Secrets...)
	if m.OrderingKey != "" {
		req.Header.Set(OrderingKeyHeader, EncodeOrderingKey(m.OrderingKey))
	}
	resp, err := s.tr.RoundTrip(req)
	if err != nil {
		// Named as http.Client names it (the URL is redacted below).
		err = &url.Error{Op: "Post", URL: m.URL, Err: err}
		return Response{StartedAt: start, Duration: time.Since(start), Err: transportError(err)}
	}
	// Reading the body ends at maxBodyWait: cancelling the request's
	// context aborts a read that is waiting for bytes.
	stop := time.AfterFunc(maxBodyWait, cancel)
	excerpt := readExcerpt(resp.Body)
	stop.Stop()
	resp.Body.Close()
	return Response{
		StartedAt:  start,
		Duration:   time.Since(start),
		StatusCode: resp.StatusCode,
		Header:     resp.Header,
		Excerpt:    excerpt,
	}
}

// excerptBufs holds readExcerpt's buffers: a buffer handed to the body's
// Read escapes, so a local array would cost every attempt a zeroed 4 KiB
// allocation (a quarter of the relay's allocated bytes in a drain).
var excerptBufs = sync.Pool{New: func() any { return new([MaxExcerpt + 1]byte) }}

// readExcerpt reads at most MaxExcerpt+1 bytes of body (the one more tells
// a body that was read to its end from one that was cut off) and returns
// the excerpt. A read error (reset, cancelled) keeps what arrived.
func readExcerpt(body io.Reader) string {
	buf := excerptBufs.Get().(*[MaxExcerpt + 1]byte)
	defer excerptBufs.Put(buf)
	n, err := io.ReadFull(body, buf[:])
	cut := err == nil // more bytes than MaxExcerpt were sent
	if n > MaxExcerpt {
		n = MaxExcerpt
	}
	b := buf[:n]
	if cut || (err != nil && err != io.EOF && err != io.ErrUnexpectedEOF) {
		b = trimPartialRune(b)
	}
	return boundedUTF8(b, MaxExcerpt)
}

// trimPartialRune drops an incomplete UTF-8 sequence at the end of b, left
// there by cutting the body short.
func trimPartialRune(b []byte) []byte {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return b[:i]
			}
			break
		}
	}
	return b
}

// boundedUTF8 returns b as valid UTF-8 of at most limit bytes: invalid
// sequences become U+FFFD (which may lengthen the text), and the result is
// cut at a character boundary.
func boundedUTF8(b []byte, limit int) string {
	s := string(b)
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) <= limit {
		return s
	}
	i := limit
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

// transportError makes the error of a request that got no response fit
// for logs and the attempts table: the URL is redacted, and Go's error for
// oversized headers becomes ErrResponseHeadersTooLarge.
func transportError(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		uerr.URL = RedactURL(uerr.URL)
	}
	if msg := err.Error(); strings.Contains(msg, "server response headers exceeded") ||
		strings.Contains(msg, "response header list larger than advertised limit") {
		if uerr != nil {
			uerr.Err = fmt.Errorf("%w: %w", ErrResponseHeadersTooLarge, uerr.Err)
			return uerr
		}
		return fmt.Errorf("%w: %w", ErrResponseHeadersTooLarge, err)
	}
	return err
}
