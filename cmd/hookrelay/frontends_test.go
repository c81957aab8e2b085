package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
)

// TestEndpointFieldsSameInCLIAndAPI runs the same endpoint cases through
// `hookrelay endpoints` and the admin API of `hookrelay run`: both call
// relay/endpoint, so both accept the same fields and refuse the same input,
// naming the same field.
func TestEndpointFieldsSameInCLIAndAPI(t *testing.T) {
	const adminToken = "frontends-test-token-0123456789"
	schema := outboxtest.NewSchema(t)
	env := testEnv(schema, "HOOKRELAY_ADMIN_TOKEN="+adminToken, "HOOKRELAY_LISTEN_ADDR=127.0.0.1:0",
		"HOOKRELAY_ALLOW_PRIVATE_DESTINATIONS=false", "HOOKRELAY_MAX_ENDPOINTS_PER_TENANT=0")
	if res := hookrelay(t, env, "migrate"); res.Code != 0 {
		t.Fatalf("migrate: %s", res)
	}
	run, _ := startRun(t, env, false)
	defer run.stop(t)
	api := func(method, path string, body any) (int, []byte) {
		t.Helper()
		b, _ := json.Marshal(body)
		req, err := http.NewRequest(method, run.base+path, bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+adminToken)
		client := http.Client{Timeout: 10 * time.Second}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(res.Body)
		return res.StatusCode, buf.Bytes()
	}
	// create makes an endpoint through the CLI for the update cases.
	create := func() string {
		t.Helper()
		res := hookrelay(t, env, "endpoints", "create", "--url", "https://93.184.216.34/hook", "--output", "json")
		if res.Code != 0 {
			t.Fatalf("create: %s", res)
		}
		return decodeEndpoint(t, res).ID
	}
	type fields map[string]any
	cases := []struct {
		name  string
		flags []string // CLI flags of create (or update when id)
		body  fields   // the same through the API
		// field is the field named by the refusal; "" when accepted.
		field string
		check func(t *testing.T, ep outbox.Endpoint)
	}{
		{name: "all fields", flags: []string{"--url", "https://93.184.216.34/a", "--tenant", "acme", "--event-types", "a.b,c.d",
			"--description", "d", "--max-in-flight", "3", "--rate-limit", "7", "--ordering-on-dead", "block"},
			body: fields{"url": "https://93.184.216.34/a", "tenant": "acme", "event_types": []string{"a.b", "c.d"}, "description": "d",
				"max_in_flight": 3, "rate_limit": 7, "ordering_on_dead": "block"},
			check: func(t *testing.T, ep outbox.Endpoint) {
				if ep.Tenant != "acme" || ep.MaxInFlight != 3 || ep.RateLimit != 7 || ep.OrderingOnDead != "block" ||
					strings.Join(ep.EventTypes, ",") != "a.b,c.d" || ep.Secret == "" {
					t.Errorf("stored %+v", ep)
				}
			}},
		{name: "given secret", flags: []string{"--url", "https://93.184.216.34/a", "--secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
			body: fields{"url": "https://93.184.216.34/a", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
			check: func(t *testing.T, ep outbox.Endpoint) {
				if ep.Secret != "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" {
					t.Errorf("secret %q", ep.Secret)
				}
			}},
		{name: "bad scheme", flags: []string{"--url", "ftp://x"}, body: fields{"url": "ftp://x"}, field: "url"},
		{name: "private destination", flags: []string{"--url", "http://127.0.0.1:9/hook"}, body: fields{"url": "http://127.0.0.1:9/hook"}, field: "url"},
		{name: "bad event type", flags: []string{"--url", "https://93.184.216.34/a", "--event-types", "a b"},
			body: fields{"url": "https://93.184.216.34/a", "event_types": []string{"a b"}}, field: "event_types"},
		{name: "bad secret", flags: []string{"--url", "https://93.184.216.34/a", "--secret", "whsec_!!"},
			body: fields{"url": "https://93.184.216.34/a", "secret": "whsec_!!"}, field: "secret"},
		{name: "negative rate limit", flags: []string{"--url", "https://93.184.216.34/a", "--rate-limit", "-1"},
			body: fields{"url": "https://93.184.216.34/a", "rate_limit": -1}, field: "rate_limit"},
		{name: "bad ordering mode", flags: []string{"--url", "https://93.184.216.34/a", "--ordering-on-dead", "retry"},
			body: fields{"url": "https://93.184.216.34/a", "ordering_on_dead": "retry"}, field: "ordering_on_dead"},
		{name: "long description", flags: []string{"--url", "https://93.184.216.34/a", "--description", strings.Repeat("d", 2000)},
			body: fields{"url": "https://93.184.216.34/a", "description": strings.Repeat("d", 2000)}, field: "description"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cli := hookrelay(t, env, append([]string{"endpoints", "create", "--output", "json"}, c.flags...)...)
			status, body := api("POST", "/v1/endpoints", c.body)
			if c.field == "" {
				if cli.Code != 0 || status != http.StatusCreated {
					t.Fatalf("accepted case: CLI %s\nAPI %d %s", cli, status, body)
				}
				var viaAPI outbox.Endpoint
				if err := json.Unmarshal(body, &viaAPI); err != nil {
					t.Fatal(err)
				}
				c.check(t, decodeEndpoint(t, cli))
				c.check(t, viaAPI)
				return
			}
			var e struct {
				Error struct{ Field string } `json:"error"`
			}
			_ = json.Unmarshal(body, &e)
			if status != http.StatusBadRequest || e.Error.Field != c.field {
				t.Errorf("API: %d %s, want 400 naming %s", status, body, c.field)
			}
			if flag := "--" + strings.ReplaceAll(c.field, "_", "-"); cli.Code != 2 || !strings.Contains(cli.Stderr, flag) {
				t.Errorf("CLI: %s\nwant exit 2 naming %s", cli, flag)
			}
		})
	}

	// Update and rotate: the same rules too.
	id := create()
	for _, c := range []struct {
		name  string
		flags []string
		path  string
		body  fields
		field string
	}{
		{"rate limit", []string{"endpoints", "update", id, "--rate-limit", "5"}, "/v1/endpoints/" + id, fields{"rate_limit": 5}, ""},
		{"ordering mode", []string{"endpoints", "update", id, "--ordering-on-dead", "nope"}, "/v1/endpoints/" + id, fields{"ordering_on_dead": "nope"}, "ordering_on_dead"},
		{"grace 0s", []string{"endpoints", "rotate-secret", id, "--grace", "0s"}, "/v1/endpoints/" + id + "/rotate-secret", fields{"grace": "0s"}, ""},
		{"grace too long", []string{"endpoints", "rotate-secret", id, "--grace", "3000h"}, "/v1/endpoints/" + id + "/rotate-secret", fields{"grace": "3000h"}, "grace"},
		{"grace not a duration", []string{"endpoints", "rotate-secret", id, "--grace", "soon"}, "/v1/endpoints/" + id + "/rotate-secret", fields{"grace": "soon"}, "grace"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cli := hookrelay(t, env, append(c.flags, "--output", "json")...)
			method := "POST"
			if strings.HasSuffix(c.path, id) {
				method = "PATCH"
			}
			status, body := api(method, c.path, c.body)
			if c.field == "" {
				if cli.Code != 0 || status != http.StatusOK {
					t.Errorf("accepted case: CLI %s\nAPI %d %s", cli, status, body)
				}
				return
			}
			if status != http.StatusBadRequest || !strings.Contains(string(body), `"field":"`+c.field+`"`) {
				t.Errorf("API: %d %s, want 400 naming %s", status, body, c.field)
			}
			if flag := "--" + strings.ReplaceAll(c.field, "_", "-"); cli.Code != 2 || !strings.Contains(cli.Stderr, flag) {
				t.Errorf("CLI: %s\nwant exit 2 naming %s", cli, flag)
			}
		})
	}
}
