package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/relay/httpapi"
)

func TestNewServerLimits(t *testing.T) {
	srv := httpapi.NewServer(http.NotFoundHandler(), zap.NewNop())
	if srv.ReadHeaderTimeout != httpapi.ReadHeaderTimeout || srv.ReadTimeout != httpapi.ReadTimeout ||
		srv.WriteTimeout != httpapi.WriteTimeout || srv.IdleTimeout != httpapi.IdleTimeout || srv.MaxHeaderBytes != httpapi.MaxHeaderBytes {
		t.Errorf("server limits %v %v %v %v %d", srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout, srv.MaxHeaderBytes)
	}
	for name, d := range map[string]time.Duration{"ReadHeaderTimeout": srv.ReadHeaderTimeout, "ReadTimeout": srv.ReadTimeout,
		"WriteTimeout": srv.WriteTimeout, "IdleTimeout": srv.IdleTimeout} {
		if d <= 0 {
			t.Errorf("%s is not set", name)
		}
	}
	if httpapi.LongCallTimeout <= 5*time.Minute {
		t.Errorf("LongCallTimeout %v does not cover HOOKRELAY_REQUEST_TIMEOUT's 5m maximum", httpapi.LongCallTimeout)
	}
}

// shortServer serves h on a loopback port with NewServer's settings but
// ReadTimeout and WriteTimeout set to d.
func shortServer(t *testing.T, h http.Handler, d time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httpapi.NewServer(h, zap.NewNop())
	srv.ReadTimeout, srv.WriteTimeout = d, d
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	})
	return ln.Addr().String()
}

// TestSlowBodyCutOff sends a body one byte every 100ms to a server whose
// ReadTimeout is 500ms: the server must stop reading and close the
// connection long before the 100-byte body would have arrived (10s), on
// the admin API and on proxied paths alike.
func TestSlowBodyCutOff(t *testing.T) {
	const timeout = 500 * time.Millisecond
	up := newUpstream(t)
	e := newEnv(t, func(o *httpapi.Options) { o.ProxyUpstream = up.srv.URL })
	addr := shortServer(t, e.Server.Config.Handler, timeout)

	for _, path := range []string{"/v1/events", "/echo"} {
		t.Run(path, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			start := time.Now()
			if _, err := fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: app.test\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n", path, token); err != nil {
				t.Fatal(err)
			}
			// The server's answer (or its closing the connection) ends the
			// trickle; a reader goroutine reports it.
			closed := make(chan string, 1)
			go func() {
				b, _ := io.ReadAll(conn)
				closed <- string(b)
			}()
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			sent := 0
			for sent < 100 {
				select {
				case answer := <-closed:
					if elapsed := time.Since(start); elapsed > 10*timeout {
						t.Errorf("cut off after %v, want about %v", elapsed, timeout)
					}
					if answer != "" && !strings.HasPrefix(answer, "HTTP/1.1 4") && !strings.HasPrefix(answer, "HTTP/1.1 5") {
						t.Errorf("answer to a cut-off body: %q", answer)
					}
					t.Logf("%s: cut off after %d of 100 bytes, %v", path, sent, time.Since(start).Round(time.Millisecond))
					return
				case <-tick.C:
					if _, err := conn.Write([]byte{' '}); err != nil {
						t.Logf("%s: write failed after %d bytes: %v", path, sent, err)
						return
					}
					sent++
				}
			}
			t.Fatalf("the server read a 100-byte body trickled over %v (ReadTimeout %v)", time.Since(start), timeout)
		})
	}
}

// TestProxyOutlivesServerTimeouts: once a proxied request's body has
// arrived, the server's ReadTimeout and WriteTimeout no longer apply, so a
// streaming answer or a WebSocket lasts as long as the application wants.
func TestProxyOutlivesServerTimeouts(t *testing.T) {
	const timeout = 200 * time.Millisecond
	up := newUpstream(t)
	e := newEnv(t, func(o *httpapi.Options) { o.ProxyUpstream = up.srv.URL })
	addr := shortServer(t, e.Server.Config.Handler, timeout)

	// Both server deadlines pass before the application answers the rest,
	// or before the messages are sent.
	pastDeadlines := func() { <-time.After(5 * timeout) }
	t.Run("streaming", func(t *testing.T) { up.checkStream(t, addr, pastDeadlines) })
	t.Run("upgrade", func(t *testing.T) { checkUpgrade(t, addr, pastDeadlines, "late") })
}

// TestLongCallOutlivesServerTimeouts: an endpoint test send waits for the
// receiver beyond the server's ReadTimeout and WriteTimeout (it gets
// LongCallTimeout), while other admin calls keep the server's limits.
func TestLongCallOutlivesServerTimeouts(t *testing.T) {
	const timeout = 200 * time.Millisecond
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-time.After(5 * timeout):
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer slow.Close()
	e := newEnv(t, nil)
	ep := e.createEndpoint(map[string]any{"url": slow.URL})
	addr := shortServer(t, e.Server.Config.Handler, timeout)

	req, _ := http.NewRequest("POST", "http://"+addr+"/v1/endpoints/"+ep.ID+"/test", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("test send past the server's timeouts: %v", err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || !strings.Contains(string(b), `"delivered":true`) {
		t.Errorf("test send: %d %s", res.StatusCode, b)
	}
}
