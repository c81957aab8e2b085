package httpapi

import (
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"

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
func newProxy(upstream string, log *zap.Logger) (http.Handler, error) {
	target, err := url.Parse(upstream)
	if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
		return nil, fmt.Errorf("httpapi: proxy upstream %q must be an absolute http(s) URL", upstream)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // never route the app's traffic through HTTP_PROXY
	log = log.Named("proxy")
	return &httputil.ReverseProxy{
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
	}, nil
}
