package httpapi

import (
	"net/http"
	"time"

	"go.uber.org/zap"
)

// The limits NewServer sets on hookrelay's listeners. A client that sends
// its request slowly, or reads its answer slowly, holds a connection and a
// goroutine; these bound how long.
const (
	// ReadHeaderTimeout bounds reading a request's line and headers.
	ReadHeaderTimeout = 10 * time.Second
	// ReadTimeout bounds reading a whole request, body included, from its
	// first byte: the admin API's bodies are at most a few hundred KiB,
	// and a body trickled a byte at a time is cut off here. Proxied
	// requests are held to it until their body has arrived, then not (see
	// newProxy); hookrelay's own handlers are cancelled when it passes.
	ReadTimeout = time.Minute
	// WriteTimeout bounds a request of hookrelay's own, from the end of its
	// headers to the end of its answer (a client reading its answer
	// slowly). POST /v1/endpoints/{id}/test raises it to LongCallTimeout;
	// proxied requests are not bound by it, since the application's
	// answers may stream.
	WriteTimeout = 2 * time.Minute
	// LongCallTimeout bounds the admin calls that wait for a receiver
	// (endpoint test sends): above HOOKRELAY_REQUEST_TIMEOUT's 5m maximum.
	LongCallTimeout = 6 * time.Minute
	// IdleTimeout closes keep-alive connections idle this long; above the
	// 60s idle timeout of common load balancers, so that they close first.
	IdleTimeout = 2 * time.Minute
	// MaxHeaderBytes caps a request's line and headers.
	MaxHeaderBytes = 64 << 10
)

// NewServer returns the http.Server for one of hookrelay's listeners,
// serving h with the timeouts above and logging its own errors to log.
func NewServer(h http.Handler, log *zap.Logger) *http.Server {
	if log == nil {
		log = zap.NewNop()
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          zap.NewStdLog(log),
	}
}

// withDeadlines gives the requests h serves d from their start to finish,
// in place of the server's ReadTimeout and WriteTimeout.
func withDeadlines(d time.Duration, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		t := time.Now().Add(d)
		_ = rc.SetReadDeadline(t) // ErrNotSupported only off a real server (tests)
		_ = rc.SetWriteDeadline(t)
		h(w, r)
	}
}
