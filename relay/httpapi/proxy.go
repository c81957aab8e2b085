package httpapi

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	"go.uber.org/zap"
)

// newProxy returns the reverse proxy to the application at upstream.
//
// The outbound request goes to upstream's scheme, host and base path; the
// incoming Host header is kept (the sidecar fronts the application on the
// application's own domain, so virtual hosts, cookies and absolute links
// keep working), and X-Forwarded-For/-Host/-Proto are set from this hop
// (incoming X-Forwarded-* headers are not trusted and are replaced).
// Hop-by-hop headers are handled by httputil.ReverseProxy; WebSocket and
// other Upgrade requests are passed through; responses are flushed as they
// arrive (streaming, server-sent events). An unreachable upstream answers
// 502 in the JSON error shape, with one log line.
//
// Deadlines: the request body must arrive within the server's ReadTimeout
// like any other (a client trickling a body is cut off); once it has
// arrived the request may last as long as the application takes, and the
// response is not bound by the server's WriteTimeout (see
// afterBodyNoDeadlines).
func newProxy(upstream string, log *zap.Logger) (http.Handler, error) {
	target, err := url.Parse(upstream)
	if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
		return nil, fmt.Errorf("httpapi: proxy upstream %q must be an absolute http(s) URL", upstream)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // never route the app's traffic through HTTP_PROXY
	log = log.Named("proxy")
	return afterBodyNoDeadlines(&httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.SetXForwarded()
			r.Out.Host = r.In.Host
		},
		Transport:     tr,
		FlushInterval: -1,
		ErrorLog:      zap.NewStdLog(log),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				log.Debug("proxy request cancelled by the client", zap.String("method", r.Method), zap.String("path", r.URL.Path))
			} else {
				log.Warn("upstream request failed", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err))
			}
			writeError(w, http.StatusBadGateway, "bad_gateway", "the application behind hookrelay did not answer", "")
		},
	}), nil
}

// afterBodyNoDeadlines lifts the server's deadlines from a proxied request
// once its body has been read to the end (at once when it has none, as
// for WebSocket and other upgrades): the application's response may
// stream, and the connection may be hijacked, for as long as the
// application likes. Until then the server's ReadTimeout holds, so a slow
// body is still cut off. (Left in place, the read deadline would also
// cancel the request's context when it passed, whatever the application
// was doing.)
func afterBodyNoDeadlines(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		_ = rc.SetWriteDeadline(time.Time{}) // ErrNotSupported only off a real server (tests)
		lift := func() { _ = rc.SetReadDeadline(time.Time{}) }
		if r.Body == nil || r.Body == http.NoBody {
			lift()
		} else {
			r.Body = &eofHook{ReadCloser: r.Body, onEOF: lift}
		}
		h.ServeHTTP(w, r)
	})
}

// eofHook calls onEOF once, when the body has been read to its end.
type eofHook struct {
	io.ReadCloser
	onEOF func()
	done  bool
}

func (b *eofHook) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		b.onEOF()
	}
	return n, err
}
