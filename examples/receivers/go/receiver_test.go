package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/relaytest"
	"github.com/hookrelay/hookrelay/relay/signature"
)

// recorder collects the events a handler processed.
type recorder struct {
	mu     sync.Mutex
	events map[string][]string // webhook-id -> event types, one per process call
}

func (r *recorder) process(id string, ev event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events[id] = append(r.events[id], ev.Type)
}

func (r *recorder) calls(id string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.events[id]
}

// recordingHandler is the receiver's handler for secretText, recording
// what it processes.
func recordingHandler(t *testing.T, secretText string) (http.Handler, *recorder) {
	t.Helper()
	rec := &recorder{events: map[string][]string{}}
	h, err := newHandler(secretText, rec.process)
	if err != nil {
		t.Fatalf("newHandler: %v", err)
	}
	return h, rec
}

// TestReceiverVerifiesHookrelaySender sends real deliveries with hookrelay's
// sender to the handler and checks the status and how often each event was
// processed.
func TestReceiverVerifiesHookrelaySender(t *testing.T) {
	secretText, secret := relaytest.NewSecret(t)
	_, otherSecret := relaytest.NewSecret(t)

	tests := []struct {
		name      string
		secrets   []signature.Secret
		sends     int
		wantCode  int
		wantCalls int
	}{
		{name: "signed once", secrets: []signature.Secret{secret}, sends: 1, wantCode: http.StatusNoContent, wantCalls: 1},
		{name: "duplicate id processed once", secrets: []signature.Secret{secret}, sends: 3, wantCode: http.StatusNoContent, wantCalls: 1},
		{name: "rotation: old and new secret", secrets: []signature.Secret{otherSecret, secret}, sends: 1, wantCode: http.StatusNoContent, wantCalls: 1},
		{name: "wrong secret", secrets: []signature.Secret{otherSecret}, sends: 1, wantCode: http.StatusBadRequest, wantCalls: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, rec := recordingHandler(t, secretText)
			srv := httptest.NewServer(h)
			defer srv.Close()
			sender := relay.NewSender(relay.SenderConfig{Timeout: 5 * time.Second})
			defer sender.Close()

			msg := relay.Message{
				URL:       srv.URL,
				WebhookID: "evt_" + time.Now().Format("150405.000000000"),
				EventType: "referral.reward_reached",
				Payload:   []byte(`{"user_id":42,"reward":"free_month"}`),
				Timestamp: time.Now(),
				Secrets:   tc.secrets,
			}
			for i := range tc.sends {
				resp := sender.Send(context.Background(), msg)
				if resp.Err != nil {
					t.Fatalf("send %d: %v", i, resp.Err)
				}
				if resp.StatusCode != tc.wantCode {
					t.Fatalf("send %d: status %d (%q), want %d", i, resp.StatusCode, resp.Excerpt, tc.wantCode)
				}
			}
			calls := rec.calls(msg.WebhookID)
			if len(calls) != tc.wantCalls {
				t.Fatalf("processed %d times (%v), want %d", len(calls), calls, tc.wantCalls)
			}
			if tc.wantCalls > 0 && calls[0] != msg.EventType {
				t.Errorf("event type %q, want %q", calls[0], msg.EventType)
			}
		})
	}
}

// TestReceiverRejects covers requests the handler must refuse without
// processing them.
func TestReceiverRejects(t *testing.T) {
	secretText, secret := relaytest.NewSecret(t)
	now := time.Now()
	body := signature.Body("user.signed_up", now, []byte(`{"user_id":1}`))

	signed := func(id string, ts time.Time, signedBody []byte) http.Header {
		h := http.Header{}
		signature.Headers(h, id, ts, signedBody, secret)
		return h
	}
	tampered := bytes.Replace(body, []byte(`"user_id":1`), []byte(`"user_id":2`), 1)
	if bytes.Equal(tampered, body) {
		t.Fatal("tampering did not change the body")
	}

	tests := []struct {
		name     string
		method   string
		header   http.Header
		body     []byte
		wantCode int
	}{
		{name: "tampered body", method: http.MethodPost, header: signed("evt_a", now, body), body: tampered, wantCode: http.StatusBadRequest},
		{name: "stale timestamp", method: http.MethodPost, header: signed("evt_b", now.Add(-time.Hour), body), body: body, wantCode: http.StatusBadRequest},
		{name: "id swapped", method: http.MethodPost, header: func() http.Header { h := signed("evt_c", now, body); h.Set("webhook-id", "evt_other"); return h }(), body: body, wantCode: http.StatusBadRequest},
		{name: "no headers", method: http.MethodPost, header: http.Header{}, body: body, wantCode: http.StatusBadRequest},
		{name: "GET", method: http.MethodGet, header: signed("evt_d", now, body), body: body, wantCode: http.StatusMethodNotAllowed},
		{name: "control: valid", method: http.MethodPost, header: signed("evt_e", now, body), body: body, wantCode: http.StatusNoContent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, rec := recordingHandler(t, secretText)
			req := httptest.NewRequest(tc.method, "/", bytes.NewReader(tc.body))
			req.Header = tc.header
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != tc.wantCode {
				t.Fatalf("status %d (%q), want %d", w.Code, w.Body.String(), tc.wantCode)
			}
			processed := 0
			for _, calls := range rec.events {
				processed += len(calls)
			}
			if want := map[bool]int{true: 1, false: 0}[tc.wantCode/100 == 2]; processed != want {
				t.Errorf("processed %d events, want %d", processed, want)
			}
		})
	}
}

func TestIDSetForgetsOldest(t *testing.T) {
	s := newIDSet(2)
	for _, step := range []struct {
		id   string
		want bool
	}{
		{"a", true}, {"b", true}, {"a", false}, {"c", true}, // evicts a
		{"b", false}, {"a", true}, // evicts b
		{"c", false}, {"b", true},
	} {
		if got := s.add(step.id); got != step.want {
			t.Fatalf("add(%q) = %v, want %v", step.id, got, step.want)
		}
	}
}

func TestNewHandlerRejectsBadSecret(t *testing.T) {
	if _, err := newHandler("whsec_!!!not-base64", func(string, event) {}); err == nil {
		t.Fatal("newHandler accepted a secret that is not base64")
	}
}
