package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/relay/httpapi"
)

// upstreamApp is the application behind the proxy.
type upstreamApp struct {
	srv     *httptest.Server
	hits    atomic.Int64
	last    atomic.Value  // the request-URI of the last request, as received
	release chan struct{} // lets /stream finish
}

func newUpstream(t *testing.T) *upstreamApp {
	u := &upstreamApp{release: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"method": r.Method, "path": r.URL.RequestURI(), "body": string(b), "host": r.Host,
			"xff": r.Header.Get("X-Forwarded-For"), "xfproto": r.Header.Get("X-Forwarded-Proto"), "xfhost": r.Header.Get("X-Forwarded-Host"),
		})
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		select {
		case <-u.release:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "second\n")
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "echo") {
			http.Error(w, "upgrade required", http.StatusUpgradeRequired)
			return
		}
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		_ = rw.Flush()
		_, _ = io.Copy(conn, rw) // echo until the client closes
	})
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		u.last.Store(r.RequestURI)
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// checkStream gets /stream through the proxy at addr: the first chunk
// arrives while the upstream handler is still blocked; after pause (if not
// nil) the handler is released and the rest arrives.
func (u *upstreamApp) checkStream(t *testing.T, addr string, pause func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/stream", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "first\n" {
		t.Fatalf("first chunk %q, %v", line, err)
	}
	if pause != nil {
		pause()
	}
	close(u.release)
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "second\n" {
		t.Fatalf("rest %q, %v", rest, err)
	}
}

// checkUpgrade upgrades /ws through the proxy at addr to the upstream's
// echo protocol and, after pause (if not nil), has each of msgs echoed.
func checkUpgrade(t *testing.T, addr string, pause func(), msgs ...string) {
	t.Helper()
	conn := dial(t, addr)
	_, _ = fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols || res.Header.Get("Upgrade") != "echo" {
		t.Fatalf("status %d, Upgrade %q", res.StatusCode, res.Header.Get("Upgrade"))
	}
	if pause != nil {
		pause()
	}
	for _, msg := range msgs {
		_, _ = io.WriteString(conn, msg)
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(br, buf); err != nil || string(buf) != msg {
			t.Fatalf("echo %q, %v", buf, err)
		}
	}
}

func TestProxy(t *testing.T) {
	up := newUpstream(t)
	e := newEnv(t, func(o *httpapi.Options) { o.ProxyUpstream = up.srv.URL; o.PortalPrefix = "/webhooks" })

	t.Run("GET and POST with bodies", func(t *testing.T) {
		for _, method := range []string{"GET", "POST", "PUT"} {
			var got map[string]string
			r := e.doAuth(method, "/echo?q=1", "", "hello "+method).must(t, 200)
			r.json(t, &got)
			host := strings.TrimPrefix(e.Server.URL, "http://")
			if got["method"] != method || got["body"] != "hello "+method || got["path"] != "/echo?q=1" ||
				got["host"] != host || got["xfhost"] != host || got["xfproto"] != "http" || got["xff"] != "127.0.0.1" {
				t.Errorf("%s: upstream saw %v", method, got)
			}
		}
	})

	addr := strings.TrimPrefix(e.Server.URL, "http://")
	t.Run("streaming", func(t *testing.T) { up.checkStream(t, addr, nil) })
	t.Run("upgrade", func(t *testing.T) { checkUpgrade(t, addr, nil, "ping", "pong!") })

	t.Run("own routes never forwarded", func(t *testing.T) {
		before := up.hits.Load()
		for _, tc := range []struct {
			method, path string
			status       int
		}{
			{"GET", "/healthz", 200}, {"GET", "/readyz", 200}, {"GET", "/metrics", 200}, {"POST", "/healthz", 405},
			{"GET", "/v1/endpoints", 200}, {"GET", "/v1/nope", 404}, {"GET", "/v1", 404}, {"PUT", "/v1/events", 405},
			{"GET", "/webhooks/", 404}, {"GET", "/webhooks/x", 404}, {"GET", "/webhooks", 404},
		} {
			if r := e.do(tc.method, tc.path, nil); r.status != tc.status {
				t.Errorf("%s %s: %d, want %d", tc.method, tc.path, r.status, tc.status)
			}
		}
		if n := up.hits.Load() - before; n != 0 {
			t.Errorf("%d of hookrelay's own requests reached the upstream", n)
		}
	})

	t.Run("unclean paths proxied as they came", func(t *testing.T) {
		for _, p := range []string{"//echo", "/a//b", "/./echo", "/x/../echo", "//healthz", "/v1//endpoints", "//metrics",
			"/webhooks/../v1/endpoints", "/echo/.?q=1"} {
			before := up.hits.Load()
			rawRequest(t, addr, "POST", p, "b")
			if up.hits.Load() != before+1 || up.last.Load() != p {
				t.Errorf("POST %s: upstream hits %d, last request-URI %v; want it proxied as is", p, up.hits.Load()-before, up.last.Load())
			}
		}
	})

	t.Run("upstream down", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		_ = l.Close()
		down := newEnv(t, func(o *httpapi.Options) { o.ProxyUpstream = "http://" + addr })
		r := down.doAuth("POST", "/anything", "", "body").must(t, http.StatusBadGateway)
		if code, _ := r.err(t); code != "bad_gateway" {
			t.Errorf("code %q", code)
		}
	})
}

func TestNoProxyUnknownPaths(t *testing.T) {
	e := newEnv(t, nil)
	r := e.doAuth("GET", "/index.html", "", nil).must(t, 404)
	if code, _ := r.err(t); code != "not_found" {
		t.Errorf("code %q", code)
	}
	// Without a proxy an unclean path is redirected to its clean form, in
	// the JSON error shape.
	res, b := rawRequest(t, strings.TrimPrefix(e.Server.URL, "http://"), "GET", "//healthz", "")
	if res.StatusCode != http.StatusTemporaryRedirect || res.Header.Get("Location") != "/healthz" || !strings.Contains(b, `"redirect"`) {
		t.Errorf("//healthz without a proxy: %d Location %q: %s", res.StatusCode, res.Header.Get("Location"), b)
	}
}

// dial connects to addr for a raw exchange of at most 20 s; the
// connection is closed when the test ends.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	return conn
}

// rawRequest sends one request with target written on the request line
// exactly as given (clients would clean //x) and returns the answer.
func rawRequest(t *testing.T, addr, method, target, body string) (*http.Response, string) {
	t.Helper()
	conn := dial(t, addr)
	if _, err := fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", method, target, len(body), body); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func TestNewRejectsBadOptions(t *testing.T) {
	e := newEnv(t, nil)
	for _, tt := range []struct {
		name string
		o    httpapi.Options
		want string // in the error
	}{
		{"no store", httpapi.Options{Endpoints: e.Endpoints}, "Store"},
		{"no endpoint service", httpapi.Options{Store: e.Store}, "Endpoints"},
		{"bad upstream", httpapi.Options{Store: e.Store, Endpoints: e.Endpoints, ProxyUpstream: "ftp://x"}, "ftp://x"},
		{"relative", httpapi.Options{Store: e.Store, Endpoints: e.Endpoints, ProxyUpstream: "/app"}, "/app"},
		{"portal no /", httpapi.Options{Store: e.Store, Endpoints: e.Endpoints, PortalPrefix: "portal"}, `"portal"`},
		{"portal slash /", httpapi.Options{Store: e.Store, Endpoints: e.Endpoints, PortalPrefix: "/portal/"}, `"/portal/"`},
	} {
		if _, err := httpapi.New(tt.o); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one naming %s", tt.name, err, tt.want)
		}
	}
}
