package relaytest

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/relay/signature"
)

// Receipt is one verified request a Receiver got.
type Receipt struct {
	ID        string // webhook-id
	Timestamp string // webhook-timestamp
	Type      string
	Data      json.RawMessage // the body's "data", byte for byte
	Body      []byte
	Header    http.Header
	N         int // how many times this webhook-id has arrived, this one included
	At        time.Time
}

// Receiver is a real webhook endpoint on a loopback port that verifies
// every request's Standard Webhooks signature the way a customer would, and
// records what it got. A request that fails verification fails the test
// and is answered 400. It can be taken down (connections refused) and
// brought back on the same address.
type Receiver struct {
	// Secret is the endpoint's signing secret (whsec_...).
	Secret string
	// Respond, if set before requests arrive, decides the status of each
	// verified request (and may set headers or write a body); nil answers
	// 204.
	Respond func(w http.ResponseWriter, r *http.Request, got Receipt) int
	// Hang, if set before requests arrive, makes every request wait until
	// the client gives up or the test ends: a receiver that never answers.
	Hang bool
	// Delay, if set before requests arrive, is added to every request.
	Delay time.Duration

	tb     testing.TB
	start  func() // starts serving, once
	secret signature.Secret
	stop   chan struct{}
	conns  atomic.Int64
	addr   string

	mu       sync.Mutex
	srv      *http.Server
	accepted []Receipt
	byID     map[string]int
	bodies   map[string][]byte
	requests int
	bad      int
	lastNew  time.Time
	changed  chan struct{}
}

// NewReceiver starts a receiver on a fresh loopback port; it stops when the
// test ends.
func NewReceiver(tb testing.TB) *Receiver {
	tb.Helper()
	raw, sec := NewSecret(tb)
	rc := &Receiver{Secret: raw, tb: tb, secret: sec, stop: make(chan struct{}), byID: map[string]int{},
		bodies: map[string][]byte{}, changed: make(chan struct{}, 1)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	rc.addr = ln.Addr().String()
	// Serving starts when the address is first asked for, after the test
	// has set Respond, Hang or Delay: that start orders those writes before
	// every request the receiver handles (the race detector sees no order
	// through the network).
	rc.start = sync.OnceFunc(func() { rc.serve(ln) })
	tb.Cleanup(func() {
		close(rc.stop)
		rc.Down()
	})
	return rc
}

// URL is the endpoint URL of the receiver.
func (rc *Receiver) URL() string { rc.start(); return "http://" + rc.addr + "/hook" }

// SetSecret makes the receiver verify with raw (whsec_...) from now on, as
// a customer does who pastes the secret an endpoint was given (the portal
// generates one) into their receiver.
func (rc *Receiver) SetSecret(raw string) {
	rc.tb.Helper()
	sec, err := signature.ParseSecret(raw)
	if err != nil {
		rc.tb.Fatalf("receiver: secret: %v", err)
	}
	rc.mu.Lock()
	rc.Secret, rc.secret = raw, sec
	rc.mu.Unlock()
}

// Addr is the receiver's host:port.
func (rc *Receiver) Addr() string { rc.start(); return rc.addr }

func (rc *Receiver) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(rc.handle), ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				rc.conns.Add(1)
			}
		}}
	rc.mu.Lock()
	rc.srv = srv
	rc.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// Down closes the listener and every connection: new connections are
// refused until Up.
func (rc *Receiver) Down() {
	rc.start() // so the listener is the server's, closed below
	rc.mu.Lock()
	srv := rc.srv
	rc.srv = nil
	rc.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// Up listens again on the same address.
func (rc *Receiver) Up() {
	rc.tb.Helper()
	ln, err := net.Listen("tcp", rc.addr)
	if err != nil {
		rc.tb.Fatalf("receiver: listen again on %s: %v", rc.addr, err)
	}
	rc.serve(ln)
}

// wait waits d, or until the request or the test ends; false if cut short.
func (rc *Receiver) wait(r *http.Request, d time.Duration) {
	var timer <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-timer:
	case <-r.Context().Done():
	case <-rc.stop:
	}
}

func (rc *Receiver) handle(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if rc.Hang {
		rc.wait(r, 0)
		return
	}
	if rc.Delay > 0 {
		rc.wait(r, rc.Delay)
	}
	rc.mu.Lock()
	secret := rc.secret
	rc.mu.Unlock()
	if err := signature.Verify(r.Header, body, secret, 5*time.Minute, time.Now()); err != nil {
		rc.mu.Lock()
		rc.bad++
		rc.mu.Unlock()
		rc.tb.Errorf("receiver: bad signature: %v", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	var b struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		rc.tb.Errorf("receiver: body is not JSON: %v", err)
	}
	got := Receipt{ID: r.Header.Get(signature.HeaderID), Timestamp: r.Header.Get("webhook-timestamp"), Type: b.Type,
		Data: b.Data, Body: body, Header: r.Header.Clone(), At: time.Now()}
	rc.mu.Lock()
	rc.requests++
	rc.byID[got.ID]++
	got.N = rc.byID[got.ID]
	if got.N == 1 {
		rc.lastNew = got.At
	}
	rc.bodies[got.ID] = body
	rc.mu.Unlock()
	status := http.StatusNoContent
	ww := &headerWriter{ResponseWriter: w}
	if rc.Respond != nil {
		status = rc.Respond(ww, r, got)
	}
	if status >= 200 && status < 300 {
		rc.mu.Lock()
		rc.accepted = append(rc.accepted, got)
		rc.mu.Unlock()
	}
	if !ww.wrote {
		w.WriteHeader(status)
	}
	select {
	case rc.changed <- struct{}{}:
	default:
	}
}

// Accepted returns the requests answered 2xx, in order.
func (rc *Receiver) Accepted() []Receipt {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]Receipt(nil), rc.accepted...)
}

// WaitAccepted waits until at least n requests were answered 2xx and
// returns them; it fails the test after timeout.
func (rc *Receiver) WaitAccepted(n int, timeout time.Duration) []Receipt {
	rc.tb.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if got := rc.Accepted(); len(got) >= n {
			return got
		}
		select {
		case <-rc.changed:
		case <-deadline.C:
			rc.tb.Fatalf("receiver got %d accepted deliveries, want %d within %v", len(rc.Accepted()), n, timeout)
		}
	}
}

// Stats returns the number of distinct webhook-ids received, the
// duplicates (requests beyond the first per id), the signature failures
// and when the last new id arrived.
func (rc *Receiver) Stats() (unique, dups, bad int, lastNew time.Time) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.byID), rc.requests - len(rc.byID), rc.bad, rc.lastNew
}

// Unique is the number of distinct webhook-ids received.
func (rc *Receiver) Unique() int {
	u, _, _, _ := rc.Stats()
	return u
}

// Has reports whether webhook-id id arrived.
func (rc *Receiver) Has(id string) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.byID[id] > 0
}

// Body returns the last verified body received with webhook-id id.
func (rc *Receiver) Body(id string) []byte {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.bodies[id]
}

// Reset forgets what the receiver got.
func (rc *Receiver) Reset() {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.accepted, rc.byID, rc.bodies, rc.requests, rc.bad = nil, map[string]int{}, map[string][]byte{}, 0, 0
}

// Conns is the number of connections accepted.
func (rc *Receiver) Conns() int64 { return rc.conns.Load() }

// Counts returns how many times each webhook-id arrived.
func (rc *Receiver) Counts() map[string]int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make(map[string]int, len(rc.byID))
	for id, n := range rc.byID {
		out[id] = n
	}
	return out
}

// headerWriter notes whether Respond already wrote the status (directly,
// or by writing a body).
type headerWriter struct {
	http.ResponseWriter
	wrote bool
}

func (h *headerWriter) WriteHeader(code int) {
	h.wrote = true
	h.ResponseWriter.WriteHeader(code)
}

func (h *headerWriter) Write(b []byte) (int, error) {
	h.wrote = true
	return h.ResponseWriter.Write(b)
}
