// Package httpapi is hookrelay's HTTP surface: health, readiness, metrics,
// the admin API under /v1 and the optional reverse-proxy pass-through.
//
// Routing on the main listener:
//
//   - GET /healthz: liveness, always 200 {"status":"ok"}; no I/O. Served
//     from the first moment, before the database is reachable (see
//     [Starting]).
//   - GET /readyz: readiness; pings the database, checks the schema version
//     and Options.Ready; 200 {"status":"ready"} or 503
//     {"status":"not_ready","reason":...}.
//   - GET /metrics: Prometheus exposition of Options.Gatherer (see
//     [QueueCollector] for the queue metrics added here). With
//     Options.MetricsToken it needs that bearer token. With the reverse
//     proxy on and no token it answers loopback clients only, so the
//     application's public port does not expose it. With
//     Options.MetricsSeparate it is served by [Handler.Metrics] on its own
//     listener instead, and the main listener treats /metrics like any
//     other path.
//   - /v1/...: the admin API (bearer token; see the OpenAPI document at
//     GET /v1/openapi.json). With no token configured every /v1 route
//     answers 403 admin_disabled; it is never open.
//   - Options.PortalPrefix and everything under it: the customer portal
//     (Options.Portal, see relay/portal); 404 while there is none.
//   - anything else: the reverse proxy to Options.ProxyUpstream when set,
//     404 otherwise. A path ServeMux would clean (//x, /a/../b) is never
//     served here: with the proxy on it is proxied as it came, without it
//     answered 307 with its clean form.
//
// Every error body has one shape: {"error":{"code","message","field"?}}.
// [NewServer] wraps a handler in an http.Server with the timeouts that
// bound slow clients.
package httpapi

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/relay/endpoint"
	"github.com/hookrelay/hookrelay/relay/portal"
)

// Options configure the handler.
type Options struct {
	// Store runs the queries; required.
	Store *outbox.Store
	// Endpoints runs the endpoint operations (create, update, delete,
	// rotate, test); required with Store.
	Endpoints *endpoint.Service
	// Ready reports extra readiness conditions (e.g. the engine is running);
	// nil means none. The database and schema version are always checked.
	Ready func(ctx context.Context) error
	// AdminToken enables the admin API; empty turns it off.
	AdminToken string
	// MetricsToken, when set, is the bearer token GET /metrics requires
	// (on either listener).
	MetricsToken string
	// MetricsSeparate serves /metrics only through Handler.Metrics (a
	// listener of its own, HOOKRELAY_METRICS_ADDR); the main handler then
	// passes /metrics to the proxy, or answers 404.
	MetricsSeparate bool
	// Gatherer serves /metrics; Registerer receives the queue-depth collectors.
	Gatherer   prometheus.Gatherer
	Registerer prometheus.Registerer
	// ProxyUpstream is the application to pass other requests to; "" for none.
	ProxyUpstream string
	// PortalPrefix is where the customer portal is served.
	PortalPrefix string
	// Portal serves the customer portal under PortalPrefix (built for the
	// same prefix) and makes the sessions of POST /v1/portal/sessions; nil
	// answers 404 there.
	Portal *portal.Portal
	// MaxPayloadBytes caps published events' payloads.
	MaxPayloadBytes int
	// Log receives request errors.
	Log *zap.Logger
	// ReadyTimeout bounds the readiness checks (default 2s).
	ReadyTimeout time.Duration
	// StatsInterval is how old the queue sample behind the metrics may get
	// before a scrape refreshes it (default DefaultStatsInterval).
	StatsInterval time.Duration
	// StatsTimeout bounds one refresh of the queue sample (default
	// DefaultStatsTimeout).
	StatsTimeout time.Duration
}

// maxBody caps request bodies other than published events.
const maxBody = 64 << 10

// longCalls are the admin routes that wait for a receiver (a test send
// takes up to HOOKRELAY_REQUEST_TIMEOUT): they get LongCallTimeout in place
// of the server's read and write timeouts.
var longCalls = map[string]bool{"POST /v1/endpoints/{id}/test": true}

// metricsMaxInFlight caps concurrent /metrics requests; more answer 503.
const metricsMaxInFlight = 8

// server holds the handlers' dependencies.
type server struct {
	o            Options
	log          *zap.Logger
	token        []byte
	metricsToken []byte
	v1           http.Handler
}

// Handler is hookrelay's HTTP surface. It serves the main listener
// (HOOKRELAY_LISTEN_ADDR); Metrics serves the optional metrics listener.
type Handler struct {
	main    http.Handler
	metrics http.Handler
}

// ServeHTTP serves the main listener.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.main.ServeHTTP(w, r) }

// Metrics returns the handler of a listener of its own for metrics
// (Options.MetricsSeparate): GET /metrics (bearer token when
// Options.MetricsToken is set), /healthz and /readyz; anything else 404.
func (h *Handler) Metrics() http.Handler { return h.metrics }

// New returns the handler for hookrelay's listeners. It registers the queue
// collector (and the Go and process collectors, unless already registered)
// on o.Registerer.
func New(o Options) (*Handler, error) {
	switch {
	case o.Store == nil:
		return nil, errors.New("httpapi: Options.Store is required")
	case o.Endpoints == nil:
		return nil, errors.New("httpapi: Options.Endpoints is required")
	}
	s, err := newServer(o)
	if err != nil {
		return nil, err
	}
	o = s.o

	if o.Registerer != nil {
		if err := o.Registerer.Register(NewQueueCollector(o.Store, o.StatsInterval, o.StatsTimeout, s.log)); err != nil {
			return nil, fmt.Errorf("httpapi: register queue metrics: %w", err)
		}
		for _, c := range []prometheus.Collector{collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
			if err := o.Registerer.Register(c); err != nil {
				var already prometheus.AlreadyRegisteredError
				if !errors.As(err, &already) {
					return nil, fmt.Errorf("httpapi: register runtime metrics: %w", err)
				}
			}
		}
	}

	v1 := http.NewServeMux()
	for _, rt := range s.routes() {
		h := s.wrap(rt)
		if longCalls[rt.method+" "+rt.pattern] {
			h = withDeadlines(LongCallTimeout, h)
		}
		v1.HandleFunc(rt.method+" "+rt.pattern, h)
	}
	s.v1 = jsonMuxErrors(v1, nil)
	return s.handler(s.readyz, s.serveV1)
}

// Starting returns the handler to serve while the process starts, before
// the database is reachable and the store exists (o.Store is not used):
// /healthz answers 200, /readyz 503 with status() as the reason, the admin
// API 503 starting, /metrics what o.Gatherer holds so far (with the same
// access rules as later), and the reverse proxy already passes requests
// to the application.
func Starting(o Options, status func() string) (*Handler, error) {
	s, err := newServer(o)
	if err != nil {
		return nil, err
	}
	readyz := func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not_ready", "reason": status()})
	}
	v1 := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "starting", "hookrelay is starting: "+status(), "")
	}
	return s.handler(readyz, v1)
}

// newServer applies the defaults shared by New and Starting.
func newServer(o Options) (*server, error) {
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.MaxPayloadBytes <= 0 {
		o.MaxPayloadBytes = outbox.DefaultMaxPayloadBytes
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 2 * time.Second
	}
	if o.StatsInterval <= 0 {
		o.StatsInterval = DefaultStatsInterval
	}
	if o.StatsTimeout <= 0 {
		o.StatsTimeout = DefaultStatsTimeout
	}
	if o.PortalPrefix != "" && (!strings.HasPrefix(o.PortalPrefix, "/") || strings.HasSuffix(o.PortalPrefix, "/")) {
		return nil, fmt.Errorf("httpapi: portal prefix %q must start with / and not end with /", o.PortalPrefix)
	}
	return &server{o: o, log: o.Log.Named("http"), token: []byte(o.AdminToken), metricsToken: []byte(o.MetricsToken)}, nil
}

// handler routes both listeners; readyz and v1 differ while starting.
func (s *server) handler(readyz, v1 http.HandlerFunc) (*Handler, error) {
	o := s.o
	gatherer := o.Gatherer
	if gatherer == nil {
		gatherer = prometheus.NewRegistry()
	}
	metrics := promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{
		ErrorLog:            zap.NewStdLog(s.log),
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: metricsMaxInFlight,
	})

	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", getOnly(s.healthz))
	mux.HandleFunc("/readyz", getOnly(readyz))
	if !o.MetricsSeparate {
		mux.HandleFunc("/metrics", getOnly(s.guardMetrics(metrics, true)))
	}
	mux.HandleFunc("/v1/", v1)
	mux.HandleFunc("/v1", v1)
	if o.PortalPrefix != "" && o.Portal != nil {
		mux.Handle(o.PortalPrefix+"/", portalDeadlines(o.Portal))
		mux.Handle(o.PortalPrefix, o.Portal)
	} else if o.PortalPrefix != "" {
		notYet := func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusNotFound, "not_found", "the tenant portal is not available yet", "")
		}
		mux.HandleFunc(o.PortalPrefix+"/", notYet)
		mux.HandleFunc(o.PortalPrefix, notYet)
	}
	var proxy http.Handler
	if o.ProxyUpstream != "" {
		p, err := newProxy(o.ProxyUpstream, s.log)
		if err != nil {
			return nil, err
		}
		proxy = p
		mux.Handle("/", p)
	} else {
		mux.HandleFunc("/", notFound)
	}

	side := http.NewServeMux()
	side.HandleFunc("/healthz", getOnly(s.healthz))
	side.HandleFunc("/readyz", getOnly(readyz))
	side.HandleFunc("/metrics", getOnly(s.guardMetrics(metrics, false)))
	side.HandleFunc("/", notFound)
	return &Handler{main: jsonMuxErrors(mux, proxy), metrics: jsonMuxErrors(side, nil)}, nil
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, "not_found", "no such route", "")
}

// guardMetrics applies the access rules of /metrics: the bearer token
// when one is configured; otherwise, on the main listener while the
// reverse proxy exposes it to the application's public clients, loopback
// clients only (the TCP peer, never a forwarded header).
func (s *server) guardMetrics(h http.Handler, main bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		switch {
		case len(s.metricsToken) > 0:
			if msg, ok := checkBearer(r, s.metricsToken); !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="hookrelay metrics"`)
				writeError(w, http.StatusUnauthorized, "unauthorized", msg, "")
				return
			}
		case main && s.o.ProxyUpstream != "" && !fromLoopback(r):
			writeError(w, http.StatusForbidden, "forbidden",
				"/metrics answers only loopback clients while the reverse proxy is on: set HOOKRELAY_METRICS_TOKEN or HOOKRELAY_METRICS_ADDR to scrape it from elsewhere", "")
			return
		}
		h.ServeHTTP(w, r)
	}
}

// fromLoopback reports whether the TCP peer of r is a loopback address.
func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkBearer checks r's Authorization header against token in constant
// time; when it fails, msg says what was wrong.
func checkBearer(r *http.Request, token []byte) (msg string, ok bool) {
	auth := r.Header.Get("Authorization")
	scheme, tok, found := strings.Cut(auth, " ")
	if found && strings.EqualFold(scheme, "Bearer") && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), token) == 1 {
		return "", true
	}
	if auth == "" {
		return "missing bearer token", false
	}
	return "invalid bearer token", false
}

// getOnly answers methods other than GET and HEAD with 405 and Allow.
func getOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed here", "")
			return
		}
		h(w, r)
	}
}

func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.o.ReadyTimeout)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not_ready", "reason": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *server) ready(ctx context.Context) error {
	pool := s.o.Store.Pool()
	if err := pool.Ping(ctx); err != nil {
		return fmt.Errorf("database unreachable: %w", err)
	}
	if err := outbox.CheckSchema(ctx, pool, s.o.Store.Schema()); err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	if s.o.Ready != nil {
		if err := s.o.Ready(ctx); err != nil {
			return err
		}
	}
	return nil
}

// serveV1 authenticates (the admin token or a tenant token, see
// authenticate) and routes the /v1 API.
func (s *server) serveV1(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	p := s.authenticate(w, r)
	if p == nil {
		return
	}
	s.v1.ServeHTTP(w, withPrincipal(r, p))
}

// jsonMuxErrors serves mux, turning the mux's own plain-text 404 and 405
// answers (no pattern matched) into the JSON error shape; Allow is kept.
// A path the mux would clean (//x, /a/./b) is never hookrelay's own: with
// a proxy it is proxied as it came, without one it is redirected to its
// clean form.
func jsonMuxErrors(mux *http.ServeMux, proxy http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if clean := cleanPath(r.URL.Path); r.Method != http.MethodConnect && clean != r.URL.Path {
			if proxy != nil {
				proxy.ServeHTTP(w, r)
				return
			}
			u := url.URL{Path: clean, RawQuery: r.URL.RawQuery}
			w.Header().Set("Location", u.String())
			writeError(w, http.StatusTemporaryRedirect, "redirect", "see "+u.String(), "")
			return
		}
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r) // sets the path values
			return
		}
		rec := &statusRecorder{header: http.Header{}}
		h.ServeHTTP(rec, r)
		switch rec.status {
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", rec.header.Get("Allow"))
			writeError(w, rec.status, "method_not_allowed", r.Method+" is not allowed here", "")
		case http.StatusNotFound:
			writeError(w, rec.status, "not_found", "no such route", "")
		case http.StatusMovedPermanently, http.StatusPermanentRedirect, http.StatusTemporaryRedirect, http.StatusFound:
			w.Header().Set("Location", rec.header.Get("Location"))
			writeError(w, rec.status, "redirect", "see "+rec.header.Get("Location"), "")
		default:
			writeError(w, http.StatusNotFound, "not_found", "no such route", "")
		}
	})
}

// cleanPath is the path ServeMux would redirect p to (its cleanPath): p
// with a leading slash, without . and .. elements or repeated slashes,
// keeping a trailing slash.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		if len(p) == len(np)+1 && strings.HasPrefix(p, np) {
			np = p
		} else {
			np += "/"
		}
	}
	return np
}

// statusRecorder captures the status and headers of the mux's built-in
// error handlers.
type statusRecorder struct {
	header http.Header
	status int
}

func (r *statusRecorder) Header() http.Header { return r.header }
func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return len(b), nil
}
func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

// wrap checks that the request's principal may call rt (see access),
// runs it with the principal's scoped store and service, and turns its
// error into the one error shape.
func (s *server) wrap(rt route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p := principalOf(r)
		if p == nil {
			writeError(w, http.StatusUnauthorized, "unauthorized", "missing bearer token", "")
			return
		}
		if !allow(w, p, rt.access) {
			return
		}
		if err := rt.handle(w, r, p); err != nil {
			s.writeErr(w, r, err)
		}
	}
}

// apiError is an error with its HTTP answer.
type apiError struct {
	status int
	code   string
	msg    string
	field  string
}

func (e *apiError) Error() string { return e.msg }

func badField(field, format string, args ...any) error {
	return &apiError{status: http.StatusBadRequest, code: "invalid_field", msg: field + ": " + fmt.Sprintf(format, args...), field: field}
}

// writeErr maps err to its status and error body.
func (s *server) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	var (
		ae       *apiError
		fe       *outbox.FieldError
		ve       *outbox.ValidationError
		tooMany  *outbox.TooManyEndpointsError
		stateErr *outbox.StateError
		maxBytes *http.MaxBytesError
	)
	switch {
	case errors.As(err, &ae):
		writeError(w, ae.status, ae.code, ae.msg, ae.field)
	case errors.As(err, &maxBytes):
		writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("the request body exceeds %d bytes", maxBytes.Limit), "")
	case errors.As(err, &fe):
		writeError(w, http.StatusBadRequest, "invalid_field", fe.Error(), fe.Field)
	case errors.As(err, &ve):
		writeError(w, http.StatusBadRequest, "invalid_field", ve.Field+": "+ve.Reason, ve.Field)
	case errors.Is(err, outbox.ErrOtherTenant):
		writeError(w, http.StatusForbidden, "other_tenant", "this token's tenant may not create or move anything for another tenant", "tenant")
	case errors.Is(err, outbox.ErrNotDispatched):
		writeError(w, http.StatusConflict, "not_dispatched", outbox.ErrNotDispatched.Error(), "")
	case errors.Is(err, outbox.ErrBadCursor):
		writeError(w, http.StatusBadRequest, "invalid_field", "cursor: is not a cursor returned by this API", "cursor")
	case errors.As(err, &tooMany):
		writeError(w, http.StatusConflict, "too_many_endpoints", tooMany.Error(), "")
	case errors.As(err, &stateErr):
		writeError(w, http.StatusConflict, "invalid_state", stateErr.Error(), "")
	case errors.Is(err, outbox.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "not found", "")
	case errors.Is(err, outbox.ErrConflict):
		writeError(w, http.StatusConflict, "conflict", err.Error(), "")
	case r.Context().Err() != nil:
		// The client went away; nobody reads the answer.
		writeError(w, http.StatusServiceUnavailable, "cancelled", "the request was cancelled", "")
	default:
		s.log.Error("admin request failed", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err))
		writeError(w, http.StatusInternalServerError, "internal", "internal error (logged)", "")
	}
}

// errorBody is the one error shape.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func writeError(w http.ResponseWriter, status int, code, msg, field string) {
	writeJSON(w, status, errorBody{Error: errorDetail{Code: code, Message: msg, Field: field}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"cannot encode the response"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
