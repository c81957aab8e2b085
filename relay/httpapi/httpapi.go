// Package httpapi is hookrelay's HTTP surface: health, readiness, metrics,
// the admin API under /v1 and the optional reverse-proxy pass-through.
//
// Routing on the one listener:
//
//   - GET /healthz: liveness, always 200 {"status":"ok"}; no I/O.
//   - GET /readyz: readiness; pings the database, checks the schema version
//     and Options.Ready; 200 {"status":"ready"} or 503
//     {"status":"not_ready","reason":...}.
//   - GET /metrics: Prometheus exposition of Options.Gatherer (see
//     [QueueCollector] for the queue metrics added here).
//   - /v1/...: the admin API (bearer token; see the OpenAPI document at
//     GET /v1/openapi.json). With no token configured every /v1 route
//     answers 403 admin_disabled; it is never open.
//   - Options.PortalPrefix + "/": reserved for the tenant portal (404 now).
//   - anything else: the reverse proxy to Options.ProxyUpstream when set,
//     404 otherwise.
//
// Every error body has one shape: {"error":{"code","message","field"?}}.
package httpapi

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/relay"
)

// Options configure the handler.
type Options struct {
	// Store runs the queries; required.
	Store *outbox.Store
	// Sender sends endpoint test events; required for POST /v1/endpoints/{id}/test.
	Sender *relay.Sender
	// Ready reports extra readiness conditions (e.g. the engine is running);
	// nil means none. The database and schema version are always checked.
	Ready func(ctx context.Context) error
	// AdminToken enables the admin API; empty turns it off.
	AdminToken string
	// Gatherer serves /metrics; Registerer receives the queue-depth collectors.
	Gatherer   prometheus.Gatherer
	Registerer prometheus.Registerer
	// ProxyUpstream is the application to pass other requests to; "" for none.
	ProxyUpstream string
	// PortalPrefix is reserved for the tenant portal.
	PortalPrefix string
	// MaxPayloadBytes caps published events' payloads.
	MaxPayloadBytes int
	// MaxEndpointsPerTenant caps endpoints per tenant (0: unlimited).
	MaxEndpointsPerTenant int
	// RotationGrace is how long an old secret keeps signing by default.
	RotationGrace time.Duration
	// Ops, when set, writes hookrelay.endpoint.enabled/disabled events
	// when an update flips an endpoint's enabled flag.
	Ops *relay.OpsEvents
	// Log receives request errors.
	Log *zap.Logger
	// ReadyTimeout bounds the readiness checks (default 2s).
	ReadyTimeout time.Duration
	// StatsTimeout bounds the queue-statistics query run on each scrape
	// (default 5s).
	StatsTimeout time.Duration
}

// DefaultRotationGrace is the grace window of a rotated secret when neither
// the request nor Options.RotationGrace sets one.
const DefaultRotationGrace = 24 * time.Hour

// maxBody caps request bodies other than published events.
const maxBody = 64 << 10

// server holds the handlers' dependencies.
type server struct {
	o     Options
	log   *zap.Logger
	token []byte
	v1    http.Handler
}

// New returns the handler for hookrelay's listener. It registers the queue
// collector (and the Go and process collectors, unless already registered)
// on o.Registerer.
func New(o Options) (http.Handler, error) {
	if o.Store == nil {
		return nil, errors.New("httpapi: Options.Store is required")
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.MaxPayloadBytes <= 0 {
		o.MaxPayloadBytes = outbox.DefaultMaxPayloadBytes
	}
	if o.RotationGrace <= 0 {
		o.RotationGrace = DefaultRotationGrace
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 2 * time.Second
	}
	if o.StatsTimeout <= 0 {
		o.StatsTimeout = 5 * time.Second
	}
	if o.PortalPrefix != "" && (!strings.HasPrefix(o.PortalPrefix, "/") || strings.HasSuffix(o.PortalPrefix, "/")) {
		return nil, fmt.Errorf("httpapi: portal prefix %q must start with / and not end with /", o.PortalPrefix)
	}
	s := &server{o: o, log: o.Log.Named("http"), token: []byte(o.AdminToken)}

	if o.Registerer != nil {
		if err := o.Registerer.Register(NewQueueCollector(o.Store, o.StatsTimeout, s.log)); err != nil {
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
		v1.HandleFunc(rt.method+" "+rt.pattern, s.wrap(rt.handle))
	}
	s.v1 = jsonMuxErrors(v1)

	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", getOnly(s.healthz))
	mux.HandleFunc("/readyz", getOnly(s.readyz))
	gatherer := o.Gatherer
	if gatherer == nil {
		gatherer = prometheus.NewRegistry()
	}
	metrics := promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{ErrorLog: zap.NewStdLog(s.log), ErrorHandling: promhttp.ContinueOnError})
	mux.HandleFunc("/metrics", getOnly(metrics.ServeHTTP))
	mux.HandleFunc("/v1/", s.serveV1)
	mux.HandleFunc("/v1", s.serveV1)
	if o.PortalPrefix != "" {
		notYet := func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusNotFound, "not_found", "the tenant portal is not available yet", "")
		}
		mux.HandleFunc(o.PortalPrefix+"/", notYet)
		mux.HandleFunc(o.PortalPrefix, notYet)
	}
	if o.ProxyUpstream != "" {
		p, err := newProxy(o.ProxyUpstream, s.log)
		if err != nil {
			return nil, err
		}
		mux.Handle("/", p)
	} else {
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusNotFound, "not_found", "no such route", "")
		})
	}
	return jsonMuxErrors(mux), nil
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
		return errors.New("database unreachable")
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

// serveV1 authenticates and routes the admin API.
func (s *server) serveV1(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if len(s.token) == 0 {
		writeError(w, http.StatusForbidden, "admin_disabled", "the admin API is off: set HOOKRELAY_ADMIN_TOKEN to enable it", "")
		return
	}
	auth := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), s.token) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="hookrelay"`)
		msg := "missing bearer token"
		if auth != "" {
			msg = "invalid bearer token"
		}
		writeError(w, http.StatusUnauthorized, "unauthorized", msg, "")
		return
	}
	s.v1.ServeHTTP(w, r)
}

// jsonMuxErrors serves mux, turning the mux's own plain-text 404 and 405
// answers (no pattern matched) into the JSON error shape; Allow is kept.
func jsonMuxErrors(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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

// wrap turns a v1 handler's error into the one error shape.
func (s *server) wrap(h func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
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
