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

// TestEndpointURLAtCreate: create refuses private destinations when the
// sender's guard does (naming the variables that allow them), stores an
// unresolvable host with a warning naming it, and takes private ones
// without a warning when no guard refuses them.
func TestEndpointURLAtCreate(t *testing.T) {
	guarded := guardedEnv(t)
	// newEnv's sender has no guard, like HOOKRELAY_ALLOW_PRIVATE_DESTINATIONS=true.
	open := newEnv(t, nil)
	tests := []struct {
		name    string
		e       *env
		url     string
		refused bool
		warning string // the one warning names this; "": no warning
	}{
		{"loopback", guarded, "http://127.0.0.1:8080/hook", true, ""},
		{"localhost", guarded, "http://localhost/hook", true, ""},
		{"link-local metadata", guarded, "http://169.254.169.254/latest/meta-data", true, ""},
		{"private", guarded, "https://10.0.0.7/hook", true, ""},
		{"loopback v6", guarded, "http://[::1]/hook", true, ""},
		{"public literal", guarded, "https://93.184.215.14/hook", false, ""},
		{"unresolvable", guarded, "https://not-yet.invalid/hook", false, "not-yet.invalid"},
		{"private allowed by config", open, "http://127.0.0.1:8080/hook", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.e.do(http.MethodPost, "/v1/endpoints", map[string]any{"url": tt.url})
			if tt.refused {
				refusedURL(t, r)
				return
			}
			var ep struct {
				ID, Secret string
				Warnings   []string
			}
			r.must(t, http.StatusCreated).json(t, &ep)
			if ep.ID == "" || ep.Secret == "" {
				t.Fatalf("not the endpoint: %s", r.body)
			}
			switch {
			case tt.warning == "" && strings.Contains(string(r.body), "warnings"):
				t.Fatalf("unexpected warnings: %s", r.body)
			case tt.warning != "" && (len(ep.Warnings) != 1 || !strings.Contains(ep.Warnings[0], tt.warning)):
				t.Fatalf("warnings %q, want one naming %q", ep.Warnings, tt.warning)
			}
		})
	}
}

// refusedURL checks r is the refusal of a private destination.
func refusedURL(t *testing.T, r resp) {
	t.Helper()
	if r.status != http.StatusBadRequest {
		t.Fatalf("status %d, want 400: %s", r.status, r.body)
	}
	if code, field := r.err(t); code != "invalid_field" || field != "url" {
		t.Fatalf("code %q field %q, want invalid_field url", code, field)
	}
	for _, want := range []string{"refused", "HOOKRELAY_ALLOW_PRIVATE_DESTINATIONS", "HOOKRELAY_ALLOWED_DESTINATION_CIDRS"} {
		if !strings.Contains(string(r.body), want) {
			t.Fatalf("message lacks %q: %s", want, r.body)
		}
	}
}

// TestEndpointURLRefusedAtUpdate: changing a stored URL to a private one is
// refused and leaves it as it was; an update that does not touch the URL
// is not checked again.
func TestEndpointURLRefusedAtUpdate(t *testing.T) {
	e := guardedEnv(t)
	const public = "https://93.184.215.14/hook"
	ep := e.createEndpoint(map[string]any{"url": public})
	refusedURL(t, e.do(http.MethodPatch, "/v1/endpoints/"+ep.ID, map[string]any{"url": "http://127.0.0.1:9/x"}))
	e.do(http.MethodGet, "/v1/endpoints/"+ep.ID, nil).must(t, http.StatusOK).json(t, &ep)
	if ep.URL != public {
		t.Fatalf("a refused update changed the URL to %q", ep.URL)
	}
	e.do(http.MethodPatch, "/v1/endpoints/"+ep.ID, map[string]any{"description": "d"}).must(t, http.StatusOK)
}
