package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/relay/relaytest"
	"github.com/hookrelay/hookrelay/relay/signature"
)

func TestReceiverVerifiesAndCounts(t *testing.T) {
	_, sec := relaytest.NewSecret(t)
	_, other := relaytest.NewSecret(t)
	sent := time.Now().Add(-5 * time.Millisecond)
	tests := []struct {
		name    string
		secret  signature.Secret
		payload string
		status  int
		ok, bad int64
		latency bool
	}{
		{"valid", sec, `{"n": 1}`, http.StatusNoContent, 1, 0, false},
		{"valid with timestamp", sec, `{"t": ` + strconv.FormatInt(sent.UnixNano(), 10) + `}`, http.StatusNoContent, 1, 0, true},
		{"wrong secret", other, `{"n": 1}`, http.StatusBadRequest, 0, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := &receiverServer{secret: sec, ok: map[string]*atomic.Int64{}}
			now := time.Now()
			body := signature.Body("bench.event", now, []byte(tt.payload))
			req := httptest.NewRequest(http.MethodPost, "/hook/x", bytes.NewReader(body))
			signature.Headers(req.Header, "msg_1", now, body, tt.secret)
			w := httptest.NewRecorder()
			rs.ServeHTTP(w, req)
			if w.Code != tt.status {
				t.Errorf("status %d, want %d", w.Code, tt.status)
			}
			var got int64
			if c := rs.ok["/hook/x"]; c != nil {
				got = c.Load()
			}
			if got != tt.ok || rs.bad.Load() != tt.bad {
				t.Errorf("ok %d bad %d, want %d %d", got, rs.bad.Load(), tt.ok, tt.bad)
			}
			if tt.latency {
				if len(rs.lat) != 1 || rs.lat[0] < 5000 || rs.lat[0] > int64(time.Minute/time.Microsecond) {
					t.Errorf("latencies %v µs, want one of at least 5000", rs.lat)
				}
			} else if len(rs.lat) != 0 {
				t.Errorf("latencies %v, want none", rs.lat)
			}
		})
	}
}
