package relay

import (
	"bytes"
	"context"
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

// MaxExcerpt is how much of a response body is kept with an attempt.
const MaxExcerpt = 4 << 10

// maxDrain is how much more of a response body is read (and discarded) so
// the connection can be reused; larger bodies close the connection.
const maxDrain = 64 << 10

// SenderConfig configures the HTTP side of deliveries.
type SenderConfig struct {
	// Timeout bounds a whole request: connect, TLS, headers and body.
	Timeout time.Duration
	// MaxConnsPerHost caps connections to one host (0: no cap).
	MaxConnsPerHost int
	// MaxIdleConnsPerHost is how many keep-alive connections per host are
	// kept for reuse (default 256); it should cover the per-endpoint
	// concurrency, or connections churn.
	MaxIdleConnsPerHost int
	// Guard refuses private destinations at dial time; nil allows all.
	Guard *destguard.Guard
	// Proxy is an outbound proxy URL; nil means direct (HTTP_PROXY from
	// the environment is never used).
	Proxy *url.URL
}

// Sender signs and POSTs webhook messages with one shared, tuned client.
type Sender struct {
	client  *http.Client
	timeout time.Duration
	ua      string
	bufs    sync.Pool
}

// NewSender returns a Sender.
func NewSender(cfg SenderConfig) *Sender {
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
		MaxResponseHeaderBytes: 64 << 10,
	}
	if cfg.Proxy != nil {
		tr.Proxy = http.ProxyURL(cfg.Proxy)
	}
	return &Sender{
		client: &http.Client{
			Transport: tr,
			// Redirects are never followed: a 3xx is a failed attempt.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		timeout: cfg.Timeout,
		ua:      "hookrelay/" + Version,
		bufs:    sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }},
	}
}

// Close releases idle connections.
func (s *Sender) Close() { s.client.CloseIdleConnections() }

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
	Excerpt    string // up to MaxExcerpt bytes of the body, valid UTF-8
	Err        error  // transport error, nil when a response arrived
}

// Send signs and POSTs m once, within the sender's timeout.
func (s *Sender) Send(ctx context.Context, m Message) Response {
	bp := s.bufs.Get().(*[]byte)
	body := signature.AppendBody((*bp)[:0], m.EventType, m.Timestamp, m.Payload)
	defer func() { *bp = body[:0]; s.bufs.Put(bp) }()

	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.URL, bytes.NewReader(body))
	if err != nil {
		return Response{StartedAt: start, Err: fmt.Errorf("build request: %w", err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", s.ua)
	signature.Headers(req.Header, m.WebhookID, start, body, m.Secrets...)
	if m.OrderingKey != "" {
		req.Header.Set(OrderingKeyHeader, EncodeOrderingKey(m.OrderingKey))
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return Response{StartedAt: start, Duration: time.Since(start), Err: err}
	}
	defer resp.Body.Close()
	var excerpt [MaxExcerpt]byte
	n, readErr := io.ReadFull(resp.Body, excerpt[:])
	if readErr == nil {
		// Read a little more so the connection can be reused; a huge or
		// endless body is cut off (the connection is then closed).
		_, readErr = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	}
	if readErr == io.EOF || readErr == io.ErrUnexpectedEOF {
		readErr = nil
	}
	r := Response{
		StartedAt:  start,
		Duration:   time.Since(start),
		StatusCode: resp.StatusCode,
		Header:     resp.Header,
		Excerpt:    validUTF8(excerpt[:n]),
	}
	// A response that arrived counts even if reading its body timed out.
	_ = readErr
	return r
}

func validUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}
