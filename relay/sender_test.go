package relay_test

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/destguard"
	"github.com/hookrelay/hookrelay/relay/relaytest"
	"github.com/hookrelay/hookrelay/relay/signature"
)

// testMessage is a signed message to u.
func testMessage(t *testing.T, u string) relay.Message {
	t.Helper()
	_, sec := relaytest.NewSecret(t)
	return relay.Message{URL: u, WebhookID: "msg_sendertest", EventType: "signup.created",
		Payload: []byte(`{"n":1}`), Timestamp: time.Now(), Secrets: []signature.Secret{sec}}
}

// testProxy is a real outbound proxy: CONNECT tunnels for https targets,
// absolute-URI forwarding for http ones. It records each target.
type testProxy struct {
	srv     *httptest.Server
	mu      sync.Mutex
	targets []string
	tr      *http.Transport
}

func newTestProxy(t *testing.T) *testProxy {
	t.Helper()
	p := &testProxy{tr: &http.Transport{Proxy: nil}}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(func() {
		p.srv.Close()
		p.tr.CloseIdleConnections()
	})
	return p
}

func (p *testProxy) url(t *testing.T) *url.URL {
	u, err := url.Parse(p.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (p *testProxy) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.targets...)
}

func (p *testProxy) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.targets = append(p.targets, r.Method+" "+r.Host)
	p.mu.Unlock()
	if r.Method == http.MethodConnect {
		up, err := net.Dial("tcp", r.Host)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer up.Close()
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		if _, err := conn.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
			return
		}
		done := make(chan struct{}, 2)
		go func() { _, _ = io.Copy(up, buf); done <- struct{}{} }()
		go func() { _, _ = io.Copy(conn, up); done <- struct{}{} }()
		<-done
		return
	}
	if !r.URL.IsAbs() {
		http.Error(w, "not a proxy request", http.StatusBadRequest)
		return
	}
	out := r.Clone(r.Context())
	out.RequestURI = ""
	resp, err := p.tr.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// listenOn starts an httptest server (TLS when tlsOn) on host, counting
// the requests it answers with 200.
func listenOn(t *testing.T, host string, tlsOn bool, hits *atomic.Int64) *httptest.Server {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Skipf("cannot listen on %s: %v", host, err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		hits.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	srv.Listener.Close()
	srv.Listener = ln
	if tlsOn {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv
}

// TestSenderProxyKeepsGuard sends through a real local proxy: the real
// destination is checked by the guard before the request reaches the proxy,
// while the proxy's own (loopback) address is not judged.
// TestSenderZeroConfig: a Sender from a zero SenderConfig sends with
// DefaultRequestTimeout (a zero timeout used to fail every send at once
// with "context deadline exceeded").
func TestSenderZeroConfig(t *testing.T) {
	msg := testMessage(t, "")
	verified := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err == nil {
			err = signature.Verify(r.Header, body, msg.Secrets[0], 5*time.Minute, time.Now())
		}
		verified <- err
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	msg.URL = srv.URL

	s := relay.NewSender(relay.SenderConfig{})
	defer s.Close()
	if got := relay.SenderTimeout(s); got != relay.DefaultRequestTimeout {
		t.Errorf("timeout = %s, want DefaultRequestTimeout (%s)", got, relay.DefaultRequestTimeout)
	}
	resp := s.Send(context.Background(), msg)
	if resp.Err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("Send = status %d, err %v; want 204", resp.StatusCode, resp.Err)
	}
	if err := <-verified; err != nil {
		t.Errorf("receiver could not verify the request: %v", err)
	}
}

func TestSenderProxyKeepsGuard(t *testing.T) {
	var hits atomic.Int64
	plain := listenOn(t, "127.0.0.1", false, &hits)
	secure := listenOn(t, "127.0.0.1", true, &hits)
	_, plainPort, _ := net.SplitHostPort(strings.TrimPrefix(plain.URL, "http://"))

	tests := []struct {
		name      string
		guard     *destguard.Guard
		target    string
		delivered bool
	}{
		{"http loopback refused", destguard.New(false, nil), plain.URL + "/hook?token=s3cret", false},
		{"https loopback refused", destguard.New(false, nil), secure.URL + "/hook", false},
		{"name resolving to loopback refused", destguard.New(false, nil), "http://localhost:" + plainPort + "/hook", false},
		{"link-local literal refused", destguard.New(false, nil), "http://169.254.169.254/latest/meta-data", false},
		{"http allowed with private destinations", destguard.New(true, nil), plain.URL + "/hook", true},
		{"https allowed with private destinations", destguard.New(true, nil), secure.URL + "/hook", true},
		{"http allowed by CIDR", destguard.New(false, []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}), plain.URL + "/hook", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proxy := newTestProxy(t)
			s := relay.NewSender(relay.SenderConfig{Timeout: 10 * time.Second, Guard: tt.guard, Proxy: proxy.url(t)})
			defer s.Close()
			relay.TrustRoots(s, x509CertPool(secure))
			before := hits.Load()
			resp := s.Send(context.Background(), testMessage(t, tt.target))
			v := relay.Classify(resp.StatusCode, resp.Header, resp.Err, time.Now())
			if tt.delivered {
				if !v.Delivered {
					t.Fatalf("not delivered: status %d, err %v", resp.StatusCode, resp.Err)
				}
				if got := proxy.seen(); len(got) != 1 {
					t.Fatalf("proxy saw %q, want the one request", got)
				}
				if hits.Load() != before+1 {
					t.Fatal("the receiver did not get the request")
				}
				return
			}
			if v.Class != relay.ClassDestination || !v.Final {
				t.Fatalf("verdict %+v (err %v), want a final %s", v, resp.Err, relay.ClassDestination)
			}
			if got := proxy.seen(); len(got) != 0 {
				t.Fatalf("a refused destination reached the proxy: %q", got)
			}
			if hits.Load() != before {
				t.Fatal("a refused destination received a request")
			}
			if strings.Contains(resp.Err.Error(), "s3cret") {
				t.Fatalf("error shows the URL's query: %v", resp.Err)
			}
		})
	}
}

// TestSenderProxyIsNotJudged: with only the destination's address allowed,
// the proxy (on another loopback address) is still usable, and another
// loopback destination is refused.
func TestSenderProxyIsNotJudged(t *testing.T) {
	var hits atomic.Int64
	allowed := listenOn(t, "127.0.0.2", false, &hits)
	other := listenOn(t, "127.0.0.1", false, &hits)
	proxy := newTestProxy(t)
	g := destguard.New(false, []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")})
	s := relay.NewSender(relay.SenderConfig{Timeout: 10 * time.Second, Guard: g, Proxy: proxy.url(t)})
	defer s.Close()

	resp := s.Send(context.Background(), testMessage(t, allowed.URL+"/hook"))
	if resp.Err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("allowed destination through a loopback proxy: status %d, err %v", resp.StatusCode, resp.Err)
	}
	resp = s.Send(context.Background(), testMessage(t, other.URL+"/hook"))
	if v := relay.Classify(resp.StatusCode, resp.Header, resp.Err, time.Now()); v.Class != relay.ClassDestination {
		t.Fatalf("127.0.0.1 through the proxy: %+v (err %v), want %s", v, resp.Err, relay.ClassDestination)
	}
	if got := proxy.seen(); len(got) != 1 || !strings.Contains(got[0], "127.0.0.2") {
		t.Fatalf("proxy saw %q, want only the allowed destination", got)
	}
	if hits.Load() != 1 {
		t.Fatalf("receivers got %d requests, want 1", hits.Load())
	}
}

func x509CertPool(srv *httptest.Server) *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return pool
}

// hostile starts a receiver running h and counting new connections.
func hostile(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

func TestSenderHugeHeaders(t *testing.T) {
	huge := func(w http.ResponseWriter, r *http.Request) {
		pad := strings.Repeat("x", 1000)
		for i := range 100 {
			w.Header().Set("X-Pad-"+string(rune('a'+i%26))+strings.Repeat("z", i/26), pad)
		}
		w.WriteHeader(http.StatusOK)
	}
	for _, h2 := range []bool{false, true} {
		name := "HTTP/1.1"
		if h2 {
			name = "HTTP/2"
		}
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewUnstartedServer(http.HandlerFunc(huge))
			srv.EnableHTTP2 = h2
			if h2 {
				srv.StartTLS()
			} else {
				srv.Start()
			}
			defer srv.Close()
			s := relay.NewSender(relay.SenderConfig{Timeout: 10 * time.Second})
			defer s.Close()
			if h2 {
				relay.TrustRoots(s, x509CertPool(srv))
			}
			resp := s.Send(context.Background(), testMessage(t, srv.URL+"/hook?token=s3cret"))
			v := relay.Classify(resp.StatusCode, resp.Header, resp.Err, time.Now())
			if h2 {
				// The HTTP/2 client closes the connection with PROTOCOL_ERROR
				// when the header block overshoots the limit by more than a
				// frame, which it nearly always does.
				if (v.Class != relay.ClassHeadersTooLarge && v.Class != relay.ClassProtocol) || v.Final || v.Delivered {
					t.Fatalf("verdict %+v (err %v), want a retryable %s or %s", v, resp.Err, relay.ClassHeadersTooLarge, relay.ClassProtocol)
				}
			} else {
				if !errors.Is(resp.Err, relay.ErrResponseHeadersTooLarge) {
					t.Fatalf("err = %v, want ErrResponseHeadersTooLarge", resp.Err)
				}
				if v.Class != relay.ClassHeadersTooLarge || v.Final || v.Delivered {
					t.Fatalf("verdict %+v, want a retryable %s", v, relay.ClassHeadersTooLarge)
				}
			}
			if strings.Contains(resp.Err.Error(), "s3cret") || !strings.Contains(resp.Err.Error(), srv.URL+"/hook") {
				t.Fatalf("error text %q: want the redacted URL", resp.Err)
			}
		})
	}
}

func TestSenderEndlessBody(t *testing.T) {
	gone := make(chan struct{})
	var once sync.Once
	srv, conns := hostile(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		chunk := []byte(strings.Repeat("é", 16<<10)) // 2-byte runes
		for {
			if _, err := w.Write(chunk); err != nil {
				once.Do(func() { close(gone) })
				return
			}
		}
	})
	const timeout = 30 * time.Second
	s := relay.NewSender(relay.SenderConfig{Timeout: timeout})
	defer s.Close()
	for i := range 2 {
		resp := s.Send(context.Background(), testMessage(t, srv.URL))
		if resp.Err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("send %d: status %d, err %v: the status decides, whatever the body", i, resp.StatusCode, resp.Err)
		}
		if resp.Duration > timeout/3 {
			t.Fatalf("send %d took %s: it waited for the body instead of stopping at the excerpt", i, resp.Duration)
		}
		if len(resp.Excerpt) > relay.MaxExcerpt || len(resp.Excerpt) < relay.MaxExcerpt-1 || !utf8.ValidString(resp.Excerpt) {
			t.Fatalf("excerpt of %d bytes (valid UTF-8: %t), want just under %d", len(resp.Excerpt), utf8.ValidString(resp.Excerpt), relay.MaxExcerpt)
		}
		if strings.ContainsRune(resp.Excerpt, utf8.RuneError) {
			t.Fatal("the excerpt ends in a broken character")
		}
	}
	select {
	case <-gone:
	case <-time.After(10 * time.Second):
		t.Fatal("the receiver kept writing: the connection was not closed")
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections for 2 sends, want 2: a connection whose body was not read to its end must not be reused", n)
	}
}

func TestSenderTricklingBody(t *testing.T) {
	release := make(chan struct{})
	srv, _ := hostile(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		rc := http.NewResponseController(w)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if _, err := w.Write([]byte("x")); err != nil {
				return
			}
			_ = rc.Flush()
			select {
			case <-tick.C:
			case <-r.Context().Done():
				return
			case <-release:
				return
			}
		}
	})
	defer close(release)
	const timeout = 30 * time.Second
	s := relay.NewSender(relay.SenderConfig{Timeout: timeout})
	defer s.Close()
	resp := s.Send(context.Background(), testMessage(t, srv.URL))
	if resp.Err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d, err %v", resp.StatusCode, resp.Err)
	}
	if resp.Duration > timeout/3 {
		t.Fatalf("took %s: a trickling body held the attempt towards the request timeout", resp.Duration)
	}
	if resp.Excerpt == "" || strings.Trim(resp.Excerpt, "x") != "" {
		t.Fatalf("excerpt %q, want the bytes that arrived", resp.Excerpt)
	}
}

func TestSenderNeverAnswers(t *testing.T) {
	release := make(chan struct{})
	srv, _ := hostile(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	const timeout = 300 * time.Millisecond
	s := relay.NewSender(relay.SenderConfig{Timeout: timeout})
	defer s.Close()
	resp := s.Send(context.Background(), testMessage(t, srv.URL+"/?k=s3cret"))
	v := relay.Classify(resp.StatusCode, resp.Header, resp.Err, time.Now())
	if v.Class != relay.ClassTimeout || v.Final {
		t.Fatalf("verdict %+v (err %v), want a retryable %s", v, resp.Err, relay.ClassTimeout)
	}
	if resp.Duration < timeout || resp.Duration > timeout+5*time.Second {
		t.Fatalf("took %s with a %s timeout", resp.Duration, timeout)
	}
	if strings.Contains(resp.Err.Error(), "s3cret") {
		t.Fatalf("error shows the URL's query: %v", resp.Err)
	}
}

func TestSenderExcerpt(t *testing.T) {
	bad := strings.Repeat("\xffa", relay.MaxExcerpt) // each invalid byte becomes 3
	tests := []struct {
		name  string
		body  string
		want  string // "" checks only the bounds
		reuse bool   // the body is read to its end: the connection is kept
	}{
		{"small", `{"ok":true}`, `{"ok":true}`, true},
		{"exactly the cap", strings.Repeat("a", relay.MaxExcerpt), strings.Repeat("a", relay.MaxExcerpt), true},
		// The one byte over the cap that is read ends the body: read to
		// its end, the connection is kept.
		{"one over the cap", strings.Repeat("a", relay.MaxExcerpt+1), strings.Repeat("a", relay.MaxExcerpt), true},
		{"two over the cap", strings.Repeat("a", relay.MaxExcerpt+2), strings.Repeat("a", relay.MaxExcerpt), false},
		{"NUL kept for the store to clean", "a\x00b", "a\x00b", true},
		{"invalid UTF-8 bounded", bad, "", false},
		{"short invalid UTF-8 replaced", "ok\xff\xfe", "ok\uFFFD", true},
		{"rune cut at the cap", "ab" + strings.Repeat("€", relay.MaxExcerpt), "ab" + strings.Repeat("€", (relay.MaxExcerpt-2)/3), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, conns := hostile(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusBadRequest)
				_, _ = io.WriteString(w, tt.body)
			})
			s := relay.NewSender(relay.SenderConfig{Timeout: 10 * time.Second})
			defer s.Close()
			for range 2 {
				resp := s.Send(context.Background(), testMessage(t, srv.URL))
				if resp.Err != nil || resp.StatusCode != http.StatusBadRequest {
					t.Fatalf("status %d, err %v", resp.StatusCode, resp.Err)
				}
				if len(resp.Excerpt) > relay.MaxExcerpt || !utf8.ValidString(resp.Excerpt) {
					t.Fatalf("excerpt of %d bytes, valid UTF-8 %t: want at most %d valid bytes", len(resp.Excerpt), utf8.ValidString(resp.Excerpt), relay.MaxExcerpt)
				}
				if tt.want != "" && resp.Excerpt != tt.want {
					t.Fatalf("excerpt %.60q (%d bytes), want %.60q (%d bytes)", resp.Excerpt, len(resp.Excerpt), tt.want, len(tt.want))
				}
			}
			want := int64(2)
			if tt.reuse {
				want = 1
			}
			if n := conns.Load(); n != want {
				t.Fatalf("%d connections for 2 sends, want %d", n, want)
			}
		})
	}
}

// TestSenderDoesNotFollowRedirects: a 3xx is the attempt's answer; its
// Location is never requested, whatever the status (307 and 308 would
// repeat the POST with its body).
func TestSenderDoesNotFollowRedirects(t *testing.T) {
	for _, status := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		var followed atomic.Int64
		srv, _ := hostile(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/moved" {
				followed.Add(1)
				return
			}
			http.Redirect(w, r, "/moved", status)
		})
		s := relay.NewSender(relay.SenderConfig{Timeout: 10 * time.Second})
		resp := s.Send(context.Background(), testMessage(t, srv.URL+"/hook"))
		s.Close()
		if resp.Err != nil || resp.StatusCode != status {
			t.Fatalf("redirect %d: status %d, err %v; want the %[1]d itself", status, resp.StatusCode, resp.Err)
		}
		if n := followed.Load(); n != 0 {
			t.Fatalf("redirect %d: the Location was requested %d times", status, n)
		}
	}
}

// TestSenderExcerptsAreTheirOwn: the excerpt buffer is reused, so each
// attempt's excerpt must be a copy that a later answer cannot overwrite.
func TestSenderExcerptsAreTheirOwn(t *testing.T) {
	var n atomic.Int64
	srv, _ := hostile(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, strings.Repeat(string(rune('a'+n.Add(1)%26)), relay.MaxExcerpt))
	})
	s := relay.NewSender(relay.SenderConfig{Timeout: 10 * time.Second})
	defer s.Close()
	var got []string
	for range 3 {
		got = append(got, s.Send(context.Background(), testMessage(t, srv.URL)).Excerpt)
	}
	for i, ex := range got {
		want := strings.Repeat(string(rune('a'+(i+1)%26)), relay.MaxExcerpt)
		if ex != want {
			t.Fatalf("excerpt %d after %d sends: %.20q…, want %.20q…", i+1, len(got), ex, want)
		}
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://hooks.example.com/in/abc?token=s3cret&x=1", "https://hooks.example.com/in/abc"},
		{"https://user:pw@example.com:8443/p#frag", "https://example.com:8443/p"},
		{"http://[::1]:9000/a%2Fb?q", "http://[::1]:9000/a%2Fb"},
		{"https://example.com", "https://example.com"},
		{"https://example.com?only=query", "https://example.com"},
		{"not a url", "(invalid URL)"},
		{"mailto:x@example.com", "(invalid URL)"},
		{"http://%zz", "(invalid URL)"},
	}
	for _, tt := range tests {
		if got := relay.RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCheckEndpointURL(t *testing.T) {
	ctx := context.Background()
	guarded := relay.NewSender(relay.SenderConfig{Timeout: time.Second, Guard: destguard.New(false, nil)})
	open := relay.NewSender(relay.SenderConfig{Timeout: time.Second, Guard: destguard.New(true, nil)})
	unguarded := relay.NewSender(relay.SenderConfig{Timeout: time.Second})
	byCIDR := relay.NewSender(relay.SenderConfig{Timeout: time.Second, Guard: destguard.New(false, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")})})
	proxied := relay.NewSender(relay.SenderConfig{Timeout: time.Second, Guard: destguard.New(false, nil), Proxy: &url.URL{Scheme: "http", Host: "127.0.0.1:3128"}})
	for _, s := range []*relay.Sender{guarded, open, unguarded, byCIDR, proxied} {
		defer s.Close()
	}
	tests := []struct {
		name    string
		s       *relay.Sender
		url     string
		wantErr string // substring of the FieldError reason
		warn    bool
	}{
		{"loopback literal", guarded, "http://127.0.0.1:8080/hook", "127.0.0.1 is a refused destination (loopback)", false},
		{"metadata literal", guarded, "http://169.254.169.254/latest", "link-local", false},
		{"private literal", guarded, "https://10.1.2.3/x", "private (RFC 1918)", false},
		{"ipv6 loopback literal", guarded, "http://[::1]:9/x", "::1 is a refused destination (loopback)", false},
		{"name resolving to loopback", guarded, "http://localhost:8080/hook", "host localhost resolves only to refused addresses", false},
		{"through a proxy", proxied, "http://localhost/hook", "host localhost resolves", false},
		{"public literal", guarded, "https://93.184.215.14/hook", "", false},
		{"unresolvable name accepted with a warning", guarded, "https://no-such-host.invalid/hook", "", true},
		{"private allowed", open, "http://127.0.0.1/hook", "", false},
		{"no guard", unguarded, "http://127.0.0.1/hook", "", false},
		{"nil sender", nil, "http://127.0.0.1/hook", "", false},
		{"allowed CIDR", byCIDR, "http://localhost/hook", "", false},
		{"invalid URL first", guarded, "ftp://127.0.0.1/x", "scheme \"ftp\" is not allowed", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			warning, err := tt.s.CheckEndpointURL(ctx, tt.url)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
			} else {
				var fe *outbox.FieldError
				if !errors.As(err, &fe) || fe.Field != "url" || !strings.Contains(fe.Reason, tt.wantErr) {
					t.Fatalf("err = %v, want a url FieldError containing %q", err, tt.wantErr)
				}
				if !strings.Contains(tt.wantErr, "scheme") && (!strings.Contains(fe.Reason, "HOOKRELAY_ALLOW_PRIVATE_DESTINATIONS") || !strings.Contains(fe.Reason, "HOOKRELAY_ALLOWED_DESTINATION_CIDRS")) {
					t.Fatalf("reason %q does not say how to allow the destination", fe.Reason)
				}
			}
			if (warning != "") != tt.warn {
				t.Fatalf("warning = %q, want one: %t", warning, tt.warn)
			}
			if tt.warn && !strings.Contains(warning, "no-such-host.invalid") {
				t.Fatalf("warning %q does not name the host", warning)
			}
		})
	}
}
