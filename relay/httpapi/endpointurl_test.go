package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/destguard"
	"github.com/hookrelay/hookrelay/relay/endpoint"
)

// guardedEnv is an API whose sender refuses private destinations, as
// `hookrelay run` builds it by default.
func guardedEnv(t *testing.T) *env {
	t.Helper()
	sender := relay.NewSender(relay.SenderConfig{Timeout: 5 * time.Second, Guard: destguard.New(false, nil)})
	t.Cleanup(sender.Close)
	return newEnvWith(t, nil, func(c *endpoint.Config) { c.Sender = sender })
}

func TestEndpointURLRefusedAtCreateAndUpdate(t *testing.T) {
	e := guardedEnv(t)
	refused := []string{
		"http://127.0.0.1:8080/hook",
		"http://localhost/hook",
		"http://169.254.169.254/latest/meta-data",
		"https://10.0.0.7/hook",
		"http://[::1]/hook",
	}
	for _, u := range refused {
		r := e.do(http.MethodPost, "/v1/endpoints", map[string]any{"url": u})
		if r.status != http.StatusBadRequest {
			t.Fatalf("create %s: status %d, want 400: %s", u, r.status, r.body)
		}
		if code, field := r.err(t); code != "invalid_field" || field != "url" {
			t.Fatalf("create %s: code %q field %q, want invalid_field url", u, code, field)
		}
		for _, want := range []string{"refused", "HOOKRELAY_ALLOW_PRIVATE_DESTINATIONS", "HOOKRELAY_ALLOWED_DESTINATION_CIDRS"} {
			if !strings.Contains(string(r.body), want) {
				t.Fatalf("create %s: message lacks %q: %s", u, want, r.body)
			}
		}
	}

	// A public address is stored; changing it to a private one is refused
	// and leaves it as it was.
	r := e.do(http.MethodPost, "/v1/endpoints", map[string]any{"url": "https://93.184.215.14/hook"})
	if r.status != http.StatusCreated {
		t.Fatalf("create public: status %d: %s", r.status, r.body)
	}
	var ep struct {
		ID       string   `json:"id"`
		URL      string   `json:"url"`
		Warnings []string `json:"warnings"`
	}
	r.json(t, &ep)
	if len(ep.Warnings) != 0 {
		t.Fatalf("warnings for an IP literal: %q", ep.Warnings)
	}
	r = e.do(http.MethodPatch, "/v1/endpoints/"+ep.ID, map[string]any{"url": "http://127.0.0.1:9/x"})
	if r.status != http.StatusBadRequest {
		t.Fatalf("update to loopback: status %d, want 400: %s", r.status, r.body)
	}
	if code, field := r.err(t); code != "invalid_field" || field != "url" {
		t.Fatalf("update: code %q field %q, want invalid_field url", code, field)
	}
	r = e.do(http.MethodGet, "/v1/endpoints/"+ep.ID, nil)
	r.json(t, &ep)
	if ep.URL != "https://93.184.215.14/hook" {
		t.Fatalf("a refused update changed the URL to %q", ep.URL)
	}
	// An update that does not touch the URL is not checked again.
	if r := e.do(http.MethodPatch, "/v1/endpoints/"+ep.ID, map[string]any{"description": "d"}); r.status != http.StatusOK {
		t.Fatalf("update description: status %d: %s", r.status, r.body)
	}
}

func TestEndpointURLUnresolvableIsAcceptedWithWarning(t *testing.T) {
	e := guardedEnv(t)
	r := e.do(http.MethodPost, "/v1/endpoints", map[string]any{"url": "https://not-yet.invalid/hook"})
	if r.status != http.StatusCreated {
		t.Fatalf("status %d, want 201: %s", r.status, r.body)
	}
	var ep struct {
		ID       string   `json:"id"`
		Secret   string   `json:"secret"`
		Warnings []string `json:"warnings"`
	}
	r.json(t, &ep)
	if ep.ID == "" || ep.Secret == "" {
		t.Fatalf("not the endpoint: %s", r.body)
	}
	if len(ep.Warnings) != 1 || !strings.Contains(ep.Warnings[0], "not-yet.invalid") {
		t.Fatalf("warnings %q, want one naming the host", ep.Warnings)
	}
}

func TestEndpointURLPrivateAllowedByConfig(t *testing.T) {
	// newEnv's sender has no guard, like HOOKRELAY_ALLOW_PRIVATE_DESTINATIONS=true.
	e := newEnv(t, nil)
	r := e.do(http.MethodPost, "/v1/endpoints", map[string]any{"url": "http://127.0.0.1:8080/hook"})
	if r.status != http.StatusCreated {
		t.Fatalf("status %d, want 201: %s", r.status, r.body)
	}
	if strings.Contains(string(r.body), "warnings") {
		t.Fatalf("unexpected warnings: %s", r.body)
	}
}
