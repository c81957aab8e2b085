package main

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
	"github.com/hookrelay/hookrelay/relay/relaytest"
	"github.com/hookrelay/hookrelay/relay/signature"
)

// decodeEndpoint parses the JSON form of one endpoint.
func decodeEndpoint(t *testing.T, res result) outbox.Endpoint {
	t.Helper()
	if res.Code != 0 {
		t.Fatalf("want exit 0:\n%s", res)
	}
	var ep outbox.Endpoint
	if err := json.Unmarshal([]byte(res.Stdout), &ep); err != nil {
		t.Fatalf("stdout is not an endpoint: %v\n%s", err, res)
	}
	return ep
}

func TestEndpointsLifecycle(t *testing.T) {
	env := testEnv(outboxtest.NewSchema(t))

	// The raw JSON carries the contract's field names.
	res := hookrelay(t, env, "endpoints", "create", "--url", "https://example.com/hooks",
		"--tenant", "acme", "--event-types", "signup.created, signup.deleted", "--description", "CRM", "--output", "json")
	var raw map[string]any
	if err := json.Unmarshal([]byte(res.Stdout), &raw); err != nil {
		t.Fatalf("create output is not JSON: %v\n%s", err, res)
	}
	for _, k := range []string{"id", "tenant", "url", "event_types", "enabled", "secret"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("create output lacks %q: %s", k, res.Stdout)
		}
	}
	ep := decodeEndpoint(t, res)
	if !strings.HasPrefix(ep.Secret, "whsec_") {
		t.Errorf("secret = %q, want whsec_ prefix", ep.Secret)
	}
	if _, err := signature.ParseSecret(ep.Secret); err != nil {
		t.Errorf("generated secret does not parse: %v", err)
	}
	if ep.Tenant != "acme" || ep.URL != "https://example.com/hooks" || !ep.Enabled ||
		!slices.Equal(ep.EventTypes, []string{"signup.created", "signup.deleted"}) || ep.Description != "CRM" {
		t.Errorf("created endpoint = %+v", ep)
	}

	// A second endpoint with a given secret, for another tenant.
	given := "whsec_" + strings.Repeat("QUJD", 8) // 24 bytes
	other := decodeEndpoint(t, hookrelay(t, env, "endpoints", "create", "--url", "https://example.org/x", "--secret", given, "--output", "json"))
	if other.Secret != given {
		t.Errorf("given secret not kept: %q", other.Secret)
	}

	// list: JSON object with endpoints and next_cursor; filters.
	res = hookrelay(t, env, "endpoints", "list", "--output", "json")
	var page struct {
		Endpoints  []outbox.Endpoint `json:"endpoints"`
		NextCursor *string           `json:"next_cursor"`
	}
	if err := json.Unmarshal([]byte(res.Stdout), &page); err != nil || res.Code != 0 {
		t.Fatalf("list output: %v\n%s", err, res)
	}
	if len(page.Endpoints) != 2 || page.NextCursor == nil {
		t.Fatalf("list = %+v", page)
	}
	res = hookrelay(t, env, "endpoints", "list", "--tenant", "acme", "--output", "json")
	if err := json.Unmarshal([]byte(res.Stdout), &page); err != nil || len(page.Endpoints) != 1 || page.Endpoints[0].ID != ep.ID {
		t.Fatalf("list --tenant acme: %v\n%s", err, res)
	}
	res = hookrelay(t, env, "endpoints", "list", "--limit", "1")
	if res.Code != 0 || !strings.Contains(res.Stdout, "ID") || !strings.Contains(res.Stdout, "EVENT TYPES") ||
		!strings.Contains(res.Stdout, ep.ID) || !strings.Contains(res.Stdout, "--cursor ") {
		t.Fatalf("list table:\n%s", res)
	}

	// get, with the flag after the ID; no secret.
	got := decodeEndpoint(t, hookrelay(t, env, "endpoints", "get", ep.ID, "--output", "json"))
	if got.ID != ep.ID || got.Secret != "" {
		t.Errorf("get = %+v", got)
	}
	res = hookrelay(t, env, "endpoints", "get", ep.ID)
	if res.Code != 0 || !strings.Contains(res.Stdout, "https://example.com/hooks") || strings.Contains(res.Stdout, "whsec_") {
		t.Errorf("get table:\n%s", res)
	}

	// update changes only what is given.
	upd := decodeEndpoint(t, hookrelay(t, env, "endpoints", "update", ep.ID, "--enabled", "false", "--output", "json"))
	if upd.Enabled || upd.URL != ep.URL || upd.Description != "CRM" || len(upd.EventTypes) != 2 {
		t.Errorf("update --enabled false = %+v", upd)
	}
	upd = decodeEndpoint(t, hookrelay(t, env, "endpoints", "update", ep.ID, "--event-types", "", "--output", "json"))
	if len(upd.EventTypes) != 0 || upd.Enabled {
		t.Errorf(`update --event-types "" = %+v`, upd)
	}
	res = hookrelay(t, env, "endpoints", "list", "--enabled", "false", "--output", "json")
	if err := json.Unmarshal([]byte(res.Stdout), &page); err != nil || len(page.Endpoints) != 1 || page.Endpoints[0].ID != ep.ID {
		t.Fatalf("list --enabled false: %v\n%s", err, res)
	}

	// rotate-secret prints a new secret.
	rot := decodeEndpoint(t, hookrelay(t, env, "endpoints", "rotate-secret", ep.ID, "--grace", "1h", "--output", "json"))
	if !strings.HasPrefix(rot.Secret, "whsec_") || rot.Secret == ep.Secret {
		t.Errorf("rotate-secret secret = %q (old %q)", rot.Secret, ep.Secret)
	}

	// delete, then get is not found.
	res = hookrelay(t, env, "endpoints", "delete", ep.ID)
	if res.Code != 0 || !strings.Contains(res.Stdout, "deleted") {
		t.Fatalf("delete:\n%s", res)
	}
	for _, args := range [][]string{{"get", ep.ID}, {"delete", ep.ID}, {"update", ep.ID, "--description", "x"}, {"get", "not-a-uuid"}} {
		res = hookrelay(t, env, append([]string{"endpoints"}, args...)...)
		if res.Code != 1 || !strings.Contains(res.Stderr, "endpoint "+args[1]+" not found") {
			t.Errorf("%v after delete: want exit 1 and not found:\n%s", args, res)
		}
	}
}

func TestEndpointsBadInput(t *testing.T) {
	env := testEnv(outboxtest.NewSchema(t))
	ep := decodeEndpoint(t, hookrelay(t, env, "endpoints", "create", "--url", "https://example.com/", "--output", "json"))
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"ftp url", []string{"create", "--url", "ftp://x"}, "--url"},
		{"no url", []string{"create"}, "--url"},
		{"bad secret", []string{"create", "--url", "https://example.com/", "--secret", "whsec_!!!"}, "--secret"},
		{"short secret", []string{"create", "--url", "https://example.com/", "--secret", "whsec_QUJD"}, "--secret"},
		{"bad event type", []string{"create", "--url", "https://example.com/", "--event-types", "a b"}, "--event-types"},
		{"bad enabled", []string{"update", ep.ID, "--enabled", "maybe"}, "--enabled"},
		{"update nothing", []string{"update", ep.ID}, "at least one"},
		{"update bad url", []string{"update", ep.ID, "--url", "mailto:x@y"}, "--url"},
		{"rotate bad secret", []string{"rotate-secret", ep.ID, "--secret", "nope"}, "--secret"},
		{"list bad limit", []string{"list", "--limit", "0"}, "--limit"},
		{"list bad cursor", []string{"list", "--cursor", "garbage"}, "--cursor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := hookrelay(t, env, append([]string{"endpoints"}, tt.args...)...)
			if res.Code != 2 {
				t.Fatalf("want exit 2:\n%s", res)
			}
			if !strings.Contains(res.Stderr, tt.want) {
				t.Errorf("stderr lacks %q:\n%s", tt.want, res.Stderr)
			}
		})
	}
}

// newReceiver is a verifying receiver (relaytest.Receiver) answering
// status.
func newReceiver(t *testing.T, status int) *relaytest.Receiver {
	rc := relaytest.NewReceiver(t)
	rc.Respond = func(w http.ResponseWriter, _ *http.Request, _ relaytest.Receipt) int {
		w.WriteHeader(status)
		_, _ = io.WriteString(w, `{"received":true}`)
		return status
	}
	return rc
}

func TestEndpointsTest(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		wantCode int
		want     string
	}{
		{"delivered", http.StatusOK, 0, "Status:"},
		{"failed", http.StatusInternalServerError, 1, "500"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := testEnv(outboxtest.NewSchema(t), "HOOKRELAY_ALLOW_PRIVATE_DESTINATIONS=true")
			rc := newReceiver(t, tt.status)
			ep := decodeEndpoint(t, hookrelay(t, env, "endpoints", "create", "--url", rc.URL(), "--secret", rc.Secret, "--output", "json"))
			res := hookrelay(t, env, "endpoints", "test", ep.ID)
			if res.Code != tt.wantCode {
				t.Fatalf("want exit %d:\n%s", tt.wantCode, res)
			}
			if !strings.Contains(res.Stdout, tt.want) || !strings.Contains(res.Stdout, "Latency:") {
				t.Errorf("stdout lacks %q and the latency:\n%s", tt.want, res)
			}
			if n, _, _, _ := rc.Stats(); n != 1 {
				t.Errorf("the receiver verified %d deliveries, want 1", n)
			}
			if got := rc.Accepted(); tt.status == http.StatusOK && (len(got) != 1 || got[0].Type != "hookrelay.test") {
				t.Errorf("accepted %+v, want one hookrelay.test", got)
			}
		})
	}
}

func TestEndpointsTestGuarded(t *testing.T) {
	// Registered while private destinations were allowed, the loopback
	// receiver is refused by the destination guard once they are not, as
	// the relay would refuse it.
	schema := outboxtest.NewSchema(t)
	env := testEnv(schema)
	rc := newReceiver(t, http.StatusOK)
	ep := decodeEndpoint(t, hookrelay(t, testEnv(schema, "HOOKRELAY_ALLOW_PRIVATE_DESTINATIONS=true"), "endpoints", "create", "--url", rc.URL(), "--secret", rc.Secret, "--output", "json"))
	res := hookrelay(t, env, "endpoints", "test", ep.ID, "--output", "json")
	if res.Code != 1 {
		t.Fatalf("want exit 1:\n%s", res)
	}
	var tr struct {
		Delivered  bool   `json:"delivered"`
		ErrorClass string `json:"error_class"`
	}
	if err := json.Unmarshal([]byte(res.Stdout), &tr); err != nil || tr.Delivered || tr.ErrorClass == "" {
		t.Errorf("test result: %v\n%s", err, res)
	}
	if n, _, _, _ := rc.Stats(); n != 0 {
		t.Error("the guarded destination received a request")
	}
}

func TestEndpointsPrivateURLRefused(t *testing.T) {
	schema := outboxtest.NewSchema(t)
	env := testEnv(schema)
	ep := decodeEndpoint(t, hookrelay(t, env, "endpoints", "create", "--url", "https://93.184.215.14/hooks", "--output", "json"))
	for _, args := range [][]string{
		{"create", "--url", "http://127.0.0.1:8080/hook"},
		{"create", "--url", "http://localhost/hook"},
		{"create", "--url", "http://169.254.169.254/latest/meta-data"},
		{"update", ep.ID, "--url", "https://192.168.1.10/hook"},
	} {
		res := hookrelay(t, env, append([]string{"endpoints"}, args...)...)
		if res.Code != 2 {
			t.Fatalf("%v: want exit 2:\n%s", args, res)
		}
		for _, want := range []string{"invalid --url", "refused", "HOOKRELAY_ALLOW_PRIVATE_DESTINATIONS", "HOOKRELAY_ALLOWED_DESTINATION_CIDRS"} {
			if !strings.Contains(res.Stderr, want) {
				t.Errorf("%v: stderr lacks %q:\n%s", args, want, res.Stderr)
			}
		}
	}
	got := decodeEndpoint(t, hookrelay(t, env, "endpoints", "get", ep.ID, "--output", "json"))
	if got.URL != "https://93.184.215.14/hooks" {
		t.Errorf("a refused update changed the URL to %q", got.URL)
	}

	// Allowed by configuration, the same URLs are stored.
	for _, extra := range []string{"HOOKRELAY_ALLOW_PRIVATE_DESTINATIONS=true", "HOOKRELAY_ALLOWED_DESTINATION_CIDRS=127.0.0.0/8"} {
		res := hookrelay(t, testEnv(schema, extra), "endpoints", "create", "--url", "http://127.0.0.1:8080/hook", "--output", "json")
		if res.Code != 0 || res.Stderr != "" {
			t.Errorf("with %s: want exit 0 and no warning:\n%s", extra, res)
		}
	}

	// A name that does not resolve yet is stored, with a warning.
	res := hookrelay(t, env, "endpoints", "create", "--url", "https://not-yet.invalid/hook", "--output", "json")
	decodeEndpoint(t, res)
	if !strings.Contains(res.Stderr, "warning") || !strings.Contains(res.Stderr, "not-yet.invalid") {
		t.Errorf("stderr lacks the warning:\n%s", res.Stderr)
	}
}
