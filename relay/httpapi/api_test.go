package httpapi_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/endpoint"
	"github.com/hookrelay/hookrelay/relay/httpapi"
	"github.com/hookrelay/hookrelay/relay/signature"
)

func TestAuth(t *testing.T) {
	e := newEnv(t, nil)
	off := newEnv(t, func(o *httpapi.Options) { o.AdminToken = "" })
	paths := []struct{ method, path string }{
		{"GET", "/v1/endpoints"}, {"POST", "/v1/endpoints"}, {"GET", "/v1/openapi.json"},
		{"GET", "/v1/deliveries/1"}, {"POST", "/v1/deliveries/1/retry"}, {"GET", "/v1/nope"}, {"GET", "/v1"},
	}
	for _, p := range paths {
		t.Run(p.method+p.path, func(t *testing.T) {
			for _, tc := range []struct {
				name, auth string
			}{{"missing", ""}, {"wrong", "Bearer nope"}, {"other scheme", "Basic " + token}, {"prefix", "Bearer " + token[:5]}} {
				r := e.doAuth(p.method, p.path, tc.auth, nil)
				if r.status != http.StatusUnauthorized || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("%s: status %d, WWW-Authenticate %q", tc.name, r.status, r.header.Get("WWW-Authenticate"))
				}
				if code, _ := r.err(t); code != "unauthorized" {
					t.Errorf("%s: code %q", tc.name, code)
				}
			}
			if r := e.do(p.method, p.path, nil); r.status == http.StatusUnauthorized || r.status == http.StatusForbidden {
				t.Errorf("right token: status %d", r.status)
			}
			r := off.do(p.method, p.path, nil)
			if code, _ := r.err(t); r.status != http.StatusForbidden || code != "admin_disabled" {
				t.Errorf("disabled: status %d code %q", r.status, code)
			}
		})
	}
}

func TestHealthReadyAndMethods(t *testing.T) {
	notReady := errors.New("engine stopped")
	var mu sync.Mutex
	var readyErr error
	e := newEnv(t, func(o *httpapi.Options) {
		o.Ready = func(context.Context) error { mu.Lock(); defer mu.Unlock(); return readyErr }
	})
	e.doAuth("GET", "/healthz", "", nil).must(t, 200)
	r := e.doAuth("GET", "/readyz", "", nil).must(t, 200)
	if !strings.Contains(string(r.body), `"ready"`) {
		t.Errorf("readyz body %s", r.body)
	}
	mu.Lock()
	readyErr = notReady
	mu.Unlock()
	r = e.doAuth("GET", "/readyz", "", nil).must(t, 503)
	if !strings.Contains(string(r.body), "not_ready") || !strings.Contains(string(r.body), "engine stopped") {
		t.Errorf("readyz body %s", r.body)
	}
	for _, tc := range []struct{ method, path, allow string }{
		{"POST", "/healthz", "GET, HEAD"},
		{"DELETE", "/metrics", "GET, HEAD"},
		{"PUT", "/v1/endpoints", "GET, HEAD, POST"},
		{"POST", "/v1/deliveries/1", "GET, HEAD"},
	} {
		r := e.do(tc.method, tc.path, nil)
		code, _ := r.err(t)
		if r.status != 405 || code != "method_not_allowed" || r.header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d %q Allow %q", tc.method, tc.path, r.status, code, r.header.Get("Allow"))
		}
	}
	for _, p := range []string{"/v1/nope", "/v1/endpoints/x/y/z", "/elsewhere"} {
		r := e.do("GET", p, nil)
		if code, _ := r.err(t); r.status != 404 || code != "not_found" {
			t.Errorf("%s: %d %q", p, r.status, code)
		}
	}
}

func TestEndpointValidation(t *testing.T) {
	e := newEnvWith(t, nil, func(c *endpoint.Config) { c.MaxPerTenant = 2 })
	long := strings.Repeat("a", 70<<10)
	for _, tc := range []struct {
		name         string
		method, path string
		body         any
		status       int
		code, field  string
	}{
		{"no url", "POST", "/v1/endpoints", `{}`, 400, "invalid_field", "url"},
		{"bad url", "POST", "/v1/endpoints", `{"url":"ftp://x"}`, 400, "invalid_field", "url"},
		{"bad event type", "POST", "/v1/endpoints", `{"url":"https://x.test","event_types":["a b"]}`, 400, "invalid_field", "event_types"},
		{"bad secret", "POST", "/v1/endpoints", `{"url":"https://x.test","secret":"whsec_!!"}`, 400, "invalid_field", "secret"},
		{"unknown field", "POST", "/v1/endpoints", `{"url":"https://x.test","bogus":1}`, 400, "unknown_field", "bogus"},
		{"wrong type", "POST", "/v1/endpoints", `{"url":"https://x.test","max_in_flight":"x"}`, 400, "invalid_field", "max_in_flight"},
		{"negative limit", "POST", "/v1/endpoints", `{"url":"https://x.test","rate_limit":-1}`, 400, "invalid_field", "rate_limit"},
		{"long description", "POST", "/v1/endpoints", `{"url":"https://x.test","description":"` + strings.Repeat("d", 2000) + `"}`, 400, "invalid_field", "description"},
		{"bad json", "POST", "/v1/endpoints", `{"url":`, 400, "invalid_json", ""},
		{"not an object", "POST", "/v1/endpoints", `[1]`, 400, "invalid_json", ""},
		{"trailing", "POST", "/v1/endpoints", `{"url":"https://x.test"} {}`, 400, "invalid_json", ""},
		{"empty", "POST", "/v1/endpoints", ``, 400, "invalid_json", ""},
		{"too large", "POST", "/v1/endpoints", `{"url":"https://x.test","description":"` + long + `"}`, 413, "body_too_large", ""},
		{"list bad limit", "GET", "/v1/endpoints?limit=0", nil, 400, "invalid_field", "limit"},
		{"list bad enabled", "GET", "/v1/endpoints?enabled=maybe", nil, 400, "invalid_field", "enabled"},
		{"list bad cursor", "GET", "/v1/endpoints?cursor=zzz", nil, 400, "invalid_field", "cursor"},
		{"get unknown", "GET", "/v1/endpoints/00000000-0000-0000-0000-000000000001", nil, 404, "not_found", ""},
		{"get not uuid", "GET", "/v1/endpoints/abc", nil, 404, "not_found", ""},
		{"patch unknown", "PATCH", "/v1/endpoints/00000000-0000-0000-0000-000000000001", `{}`, 404, "not_found", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.method, tc.path, tc.body)
			code, field := r.err(t)
			if r.status != tc.status || code != tc.code || field != tc.field {
				t.Errorf("got %d %q field %q, want %d %q field %q: %s", r.status, code, field, tc.status, tc.code, tc.field, r.body)
			}
		})
	}
	if n := e.queryInt(`SELECT count(*) FROM {{schema}}.endpoints`); n != 0 {
		t.Errorf("%d endpoints written by failed requests", n)
	}
	// The per-tenant cap answers 409.
	e.createEndpoint(map[string]any{"url": "https://a.test", "tenant": "t"})
	e.createEndpoint(map[string]any{"url": "https://b.test", "tenant": "t"})
	r := e.do("POST", "/v1/endpoints", map[string]any{"url": "https://c.test", "tenant": "t"}).must(t, 409)
	if code, _ := r.err(t); code != "too_many_endpoints" {
		t.Errorf("code %q", code)
	}
}

func TestEndpointCRUD(t *testing.T) {
	e := newEnv(t, nil)
	given, err := signature.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	a := e.createEndpoint(map[string]any{"url": "https://a.test/hook", "tenant": "acme", "event_types": []string{"signup.created"},
		"description": "main", "secret": given, "max_in_flight": 3, "rate_limit": 10})
	if a.Secret != given || a.Tenant != "acme" || a.MaxInFlight != 3 || a.RateLimit != 10 || !a.Enabled {
		t.Errorf("created %+v", a)
	}
	b := e.createEndpoint(map[string]any{"url": "https://b.test/hook"})
	if _, err := signature.ParseSecret(b.Secret); err != nil {
		t.Errorf("generated secret %q: %v", b.Secret, err)
	}

	var got outbox.Endpoint
	e.do("GET", "/v1/endpoints/"+a.ID, nil).must(t, 200).json(t, &got)
	if got.ID != a.ID || got.Secret != "" {
		t.Errorf("get: %+v (the secret must not be shown again)", got)
	}

	// Patch: disable, change fields; then a held delivery is released on enable.
	e.do("PATCH", "/v1/endpoints/"+a.ID, map[string]any{"enabled": false, "description": "paused", "event_types": []string{}}).
		must(t, 200).json(t, &got)
	if got.Enabled || got.Description != "paused" || len(got.EventTypes) != 0 || got.URL != a.URL {
		t.Errorf("patched %+v", got)
	}
	r := e.do("PATCH", "/v1/endpoints/"+a.ID, `{"url":"mailto:x"}`).must(t, 400)
	if _, field := r.err(t); field != "url" {
		t.Errorf("field %q", field)
	}
	e.exec(`INSERT INTO {{schema}}.deliveries (event_id, endpoint_id, next_attempt_at) VALUES (1, $1, 'infinity')`, a.ID)
	e.do("PATCH", "/v1/endpoints/"+a.ID, `{"enabled":true}`).must(t, 200)
	if n := e.queryInt(`SELECT count(*) FROM {{schema}}.deliveries WHERE next_attempt_at = 'infinity'`); n != 0 {
		t.Errorf("%d deliveries still held after enabling", n)
	}

	// Filters.
	var list struct {
		Endpoints  []outbox.Endpoint `json:"endpoints"`
		NextCursor string            `json:"next_cursor"`
	}
	e.do("GET", "/v1/endpoints?tenant=acme", nil).must(t, 200).json(t, &list)
	if len(list.Endpoints) != 1 || list.Endpoints[0].ID != a.ID || list.NextCursor != "" {
		t.Errorf("tenant filter: %+v", list)
	}
	e.do("PATCH", "/v1/endpoints/"+b.ID, `{"enabled":false}`).must(t, 200)
	e.do("GET", "/v1/endpoints?enabled=false", nil).must(t, 200).json(t, &list)
	if len(list.Endpoints) != 1 || list.Endpoints[0].ID != b.ID {
		t.Errorf("enabled filter: %+v", list)
	}

	e.do("DELETE", "/v1/endpoints/"+b.ID, nil).must(t, 204)
	e.do("DELETE", "/v1/endpoints/"+b.ID, nil).must(t, 404)
	e.do("GET", "/v1/endpoints/"+b.ID, nil).must(t, 404)
}

func TestPaginationStableUnderInserts(t *testing.T) {
	e := newEnv(t, nil)
	before := map[string]bool{}
	for i := range 23 {
		before[e.createEndpoint(map[string]any{"url": fmt.Sprintf("https://h%d.test", i)}).ID] = true
	}
	for i := range 23 {
		r := e.do("POST", "/v1/events", map[string]any{"type": "x.y", "payload": map[string]int{"i": i}}).must(t, 202)
		var res struct{ ID int64 }
		r.json(t, &res)
		before[fmt.Sprint(res.ID)] = true
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	inserted := make(chan struct{}, 1000)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			in := outbox.EndpointInput{URL: fmt.Sprintf("https://new%d.test", i), Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
			if _, err := e.Store.CreateEndpoint(ctx, in, 0); err != nil {
				return
			}
			if _, err := outbox.Enqueue(ctx, e.Store.Pool(), outbox.Event{Type: "x.y", Payload: []byte(`{}`)}, outbox.Options{Schema: e.Store.Schema()}); err != nil {
				return
			}
			select {
			case inserted <- struct{}{}:
			default:
			}
		}
	}()
	defer func() { cancel(); wg.Wait() }()
	<-inserted // inserts are under way

	for _, kind := range []string{"endpoints", "events"} {
		seen := map[string]bool{}
		cursor := ""
		for page := 0; ; page++ {
			var body map[string]any
			e.do("GET", "/v1/"+kind+"?limit=4&cursor="+cursor, nil).must(t, 200).json(t, &body)
			for _, it := range body[kind].([]any) {
				id := fmt.Sprint(it.(map[string]any)["id"])
				if kind == "events" {
					id = fmt.Sprintf("%.0f", it.(map[string]any)["id"].(float64))
				}
				if seen[id] {
					t.Fatalf("%s: %s listed twice", kind, id)
				}
				seen[id] = true
			}
			next, _ := body["next_cursor"].(string)
			if next == "" {
				break
			}
			if page > 1000 {
				t.Fatalf("%s: endless pagination", kind)
			}
			cursor = next
		}
		for id := range before {
			if isEvent := !strings.Contains(id, "-"); isEvent == (kind == "events") && !seen[id] {
				t.Errorf("%s: %s existed before paging but was skipped", kind, id)
			}
		}
	}
}

func TestEvents(t *testing.T) {
	e := newEnv(t, func(o *httpapi.Options) { o.MaxPayloadBytes = 1024 })
	ep := e.createEndpoint(map[string]any{"url": "https://a.test", "tenant": "acme"})
	for _, tc := range []struct {
		name        string
		body        string
		status      int
		code, field string
	}{
		{"no type", `{"payload":{}}`, 400, "invalid_field", "type"},
		{"bad type", `{"type":"a b","payload":{}}`, 400, "invalid_field", "type"},
		{"no payload", `{"type":"a"}`, 400, "invalid_field", "payload"},
		{"payload too big", `{"type":"a","payload":"` + strings.Repeat("x", 2000) + `"}`, 400, "invalid_field", "payload"},
		{"body too big", `{"type":"a","payload":"` + strings.Repeat("x", 70<<10) + `"}`, 413, "body_too_large", ""},
		{"bad endpoint id", `{"type":"a","payload":{},"endpoint_id":"x"}`, 400, "invalid_field", "endpoint_id"},
		{"unknown endpoint", `{"type":"a","payload":{},"endpoint_id":"00000000-0000-0000-0000-000000000001"}`, 400, "invalid_field", "endpoint_id"},
		{"long key", `{"type":"a","payload":{},"idempotency_key":"` + strings.Repeat("k", 300) + `"}`, 400, "invalid_field", "idempotency_key"},
		{"unknown field", `{"type":"a","payload":{},"data":{}}`, 400, "unknown_field", "data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("POST", "/v1/events", tc.body)
			code, field := r.err(t)
			if r.status != tc.status || code != tc.code || field != tc.field {
				t.Errorf("got %d %q field %q, want %d %q field %q: %s", r.status, code, field, tc.status, tc.code, tc.field, r.body)
			}
		})
	}
	if n := e.queryInt(`SELECT count(*) FROM {{schema}}.outbox`); n != 0 {
		t.Fatalf("%d events written by failed requests", n)
	}

	type published struct {
		ID        int64  `json:"id"`
		WebhookID string `json:"webhook_id"`
		Duplicate bool   `json:"duplicate"`
	}
	var p1, p2, p3 published
	body := map[string]any{"type": "signup.created", "tenant": "acme", "payload": map[string]string{"email": "a@b.test"}, "idempotency_key": "k1"}
	e.do("POST", "/v1/events", body).must(t, 202).json(t, &p1)
	e.do("POST", "/v1/events", body).must(t, 202).json(t, &p2)
	if p1.ID == 0 || p1.Duplicate || !p2.Duplicate || p2.ID != p1.ID || p2.WebhookID != p1.WebhookID || !strings.HasPrefix(p1.WebhookID, "msg_") {
		t.Errorf("idempotency: %+v then %+v", p1, p2)
	}
	e.do("POST", "/v1/events", map[string]any{"type": "other", "tenant": "beta", "payload": 1}).must(t, 202).json(t, &p3)
	if _, _, err := e.Store.Dispatch(context.Background(), 100); err != nil {
		t.Fatal(err)
	}

	var ev struct {
		outbox.StoredEvent
		Deliveries []outbox.Delivery `json:"deliveries"`
	}
	e.do("GET", fmt.Sprintf("/v1/events/%d", p1.ID), nil).must(t, 200).json(t, &ev)
	if ev.ID != p1.ID || ev.Type != "signup.created" || ev.WebhookID != p1.WebhookID || string(ev.Payload) != `{"email":"a@b.test"}` ||
		len(ev.Deliveries) != 1 || ev.Deliveries[0].EndpointID != ep.ID || ev.Deliveries[0].State != "pending" {
		t.Errorf("event %+v (payload %s)", ev, ev.Payload)
	}
	e.do("GET", "/v1/events/999999", nil).must(t, 404)
	e.do("GET", "/v1/events/abc", nil).must(t, 404)

	var list struct {
		Events []outbox.StoredEvent `json:"events"`
	}
	for _, tc := range []struct {
		query string
		want  []int64
	}{
		{"", []int64{p3.ID, p1.ID}},
		{"?tenant=acme", []int64{p1.ID}},
		{"?type=other", []int64{p3.ID}},
		{"?since=" + time.Now().Add(time.Hour).UTC().Format(time.RFC3339), nil},
		{"?until=" + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + "&tenant=beta", []int64{p3.ID}},
	} {
		e.do("GET", "/v1/events"+tc.query, nil).must(t, 200).json(t, &list)
		var got []int64
		for _, ev := range list.Events {
			got = append(got, ev.ID)
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%q: got %v, want %v", tc.query, got, tc.want)
		}
	}
	r := e.do("GET", "/v1/events?since=yesterday", nil).must(t, 400)
	if _, field := r.err(t); field != "since" {
		t.Errorf("field %q", field)
	}
}

func TestDeliveries(t *testing.T) {
	e := newEnv(t, nil)
	ep := e.createEndpoint(map[string]any{"url": "https://a.test"})
	e.exec(`INSERT INTO {{schema}}.deliveries (id, event_id, endpoint_id, state, attempts, finished_at, lease_expires_at) VALUES
  (1, 10, $1, 'dead', 3, now(), NULL), (2, 11, $1, 'delivered', 1, now(), NULL),
  (3, 12, $1, 'in_flight', 0, NULL, now() + interval '1 minute'), (4, 13, $1, 'pending', 2, NULL, NULL),
  (5, 14, $1, 'cancelled', 0, now(), NULL)`, ep.ID)
	e.exec(`UPDATE {{schema}}.deliveries SET next_attempt_at = now() + interval '1 hour' WHERE id = 4`)
	e.exec(`INSERT INTO {{schema}}.attempts (delivery_id, event_id, endpoint_id, attempt, started_at, duration_ms, status_code, outcome, error_class, response_excerpt)
  VALUES (1, 10, $1, 1, now(), 12, 500, 'retry', 'http_status', 'oops'), (1, 10, $1, 2, now(), 7, NULL, 'dead', 'timeout', '')`, ep.ID)

	var d outbox.Delivery
	e.do("GET", "/v1/deliveries/1", nil).must(t, 200).json(t, &d)
	if d.State != "dead" || d.Attempts != 3 || d.EndpointID != ep.ID {
		t.Errorf("get: %+v", d)
	}
	var att struct{ Attempts []outbox.Attempt }
	e.do("GET", "/v1/deliveries/1/attempts", nil).must(t, 200).json(t, &att)
	if len(att.Attempts) != 2 || att.Attempts[0].Attempt != 1 || *att.Attempts[0].StatusCode != 500 ||
		att.Attempts[0].Response != "oops" || att.Attempts[1].ErrorClass != "timeout" || att.Attempts[1].StatusCode != nil {
		t.Errorf("attempts: %+v", att)
	}
	e.do("GET", "/v1/deliveries/2/attempts", nil).must(t, 200).json(t, &att)
	if len(att.Attempts) != 0 {
		t.Errorf("attempts of 2: %+v", att)
	}
	e.do("GET", "/v1/deliveries/99/attempts", nil).must(t, 404)
	e.do("GET", "/v1/deliveries/99", nil).must(t, 404)

	var list struct {
		Deliveries []outbox.Delivery
		NextCursor string `json:"next_cursor"`
	}
	e.do("GET", "/v1/deliveries?state=dead&endpoint_id="+ep.ID, nil).must(t, 200).json(t, &list)
	if len(list.Deliveries) != 1 || list.Deliveries[0].ID != 1 {
		t.Errorf("state filter: %+v", list)
	}
	e.do("GET", "/v1/deliveries?event_id=12", nil).must(t, 200).json(t, &list)
	if len(list.Deliveries) != 1 || list.Deliveries[0].ID != 3 {
		t.Errorf("event filter: %+v", list)
	}
	e.do("GET", "/v1/deliveries?limit=2", nil).must(t, 200).json(t, &list)
	if len(list.Deliveries) != 2 || list.Deliveries[0].ID != 5 || list.NextCursor == "" {
		t.Errorf("page 1: %+v", list)
	}
	e.do("GET", "/v1/deliveries?limit=2&cursor="+list.NextCursor, nil).must(t, 200).json(t, &list)
	if len(list.Deliveries) != 2 || list.Deliveries[0].ID != 3 {
		t.Errorf("page 2: %+v", list)
	}
	for q, field := range map[string]string{"state=lost": "state", "endpoint_id=x": "endpoint_id", "event_id=-1": "event_id", "cursor=AAAA": "cursor"} {
		r := e.do("GET", "/v1/deliveries?"+q, nil).must(t, 400)
		if _, f := r.err(t); f != field {
			t.Errorf("%s: field %q", q, f)
		}
	}

	for _, tc := range []struct {
		id     int
		status int
	}{{1, 200}, {4, 200}, {2, 409}, {3, 409}, {5, 409}, {99, 404}} {
		r := e.do("POST", fmt.Sprintf("/v1/deliveries/%d/retry", tc.id), nil)
		if r.status != tc.status {
			t.Errorf("retry %d: %d, want %d: %s", tc.id, r.status, tc.status, r.body)
		}
	}
	if n := e.queryInt(`SELECT count(*) FROM {{schema}}.deliveries WHERE id IN (1, 4) AND state = 'pending' AND next_attempt_at <= now() AND finished_at IS NULL`); n != 2 {
		t.Errorf("%d of 2 retried deliveries are due now", n)
	}
}

func TestRecover(t *testing.T) {
	e := newEnv(t, nil)
	ep := e.createEndpoint(map[string]any{"url": "https://a.test"})
	other := e.createEndpoint(map[string]any{"url": "https://b.test"})
	base := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return base.Add(time.Duration(m) * time.Minute) }
	rows := []struct {
		id       int
		endpoint string
		state    string
		attempts int
		created  time.Time
		future   bool // a retry waiting for its time
		requeue  bool
	}{
		{1, ep.ID, "dead", 3, at(-1), false, false},           // before the window
		{2, ep.ID, "dead", 3, at(0), false, true},             // at since: inside
		{3, ep.ID, "dead", 3, at(30), false, true},            //
		{4, ep.ID, "pending", 2, at(40), true, true},          // waiting retry
		{5, ep.ID, "pending", 0, at(41), false, false},        // fresh, not failed
		{6, ep.ID, "delivered", 1, at(42), false, false},      //
		{7, other.ID, "dead", 3, at(43), false, false},        // another endpoint
		{8, ep.ID, "dead", 3, at(60), false, false},           // at until: outside
		{9, ep.ID, "cancelled", 0, at(44), false, false},      //
		{10, ep.ID, "dead", 1, at(59).Add(59e9), false, true}, //
	}
	for _, r := range rows {
		next := "now()"
		if r.future {
			next = "now() + interval '1 hour'"
		}
		e.exec(`INSERT INTO {{schema}}.deliveries (id, event_id, endpoint_id, state, attempts, created_at, next_attempt_at, finished_at)
  VALUES ($1, $1, $2, $3, $4, $5, `+next+`, CASE WHEN $3 IN ('dead', 'delivered', 'cancelled') THEN now() END)`,
			r.id, r.endpoint, r.state, r.attempts, r.created)
	}
	for _, tc := range []struct {
		body  string
		field string
	}{
		{`{}`, "since"}, {`{"since":"yesterday"}`, "since"},
		{`{"since":"2024-05-01T12:00:00Z","until":"2024-05-01T11:00:00Z"}`, "until"},
		{`{"since":"2024-05-01T12:00:00Z","until":5}`, "until"},
	} {
		r := e.do("POST", "/v1/endpoints/"+ep.ID+"/recover", tc.body).must(t, 400)
		if _, f := r.err(t); f != tc.field {
			t.Errorf("%s: field %q, want %q", tc.body, f, tc.field)
		}
	}
	e.do("POST", "/v1/endpoints/00000000-0000-0000-0000-000000000001/recover", `{"since":"2024-05-01T12:00:00Z"}`).must(t, 404)

	var res struct{ Requeued int }
	e.do("POST", "/v1/endpoints/"+ep.ID+"/recover", map[string]string{
		"since": at(0).Format(time.RFC3339), "until": at(60).Format(time.RFC3339),
	}).must(t, 200).json(t, &res)
	want := 0
	for _, r := range rows {
		due := e.queryInt(`SELECT count(*) FROM {{schema}}.deliveries WHERE id = $1 AND state = 'pending' AND next_attempt_at <= now() AND finished_at IS NULL`, r.id)
		if r.requeue {
			want++
			if due != 1 {
				t.Errorf("delivery %d (%s) was not re-queued", r.id, r.state)
			}
		} else if r.state != "pending" && due == 1 {
			t.Errorf("delivery %d (%s) was re-queued", r.id, r.state)
		}
	}
	if res.Requeued != want {
		t.Errorf("requeued %d, want %d", res.Requeued, want)
	}
}

func TestEnableFlipWritesOperationalEvents(t *testing.T) {
	e := newEnvWith(t, nil, func(c *endpoint.Config) { c.Ops = relay.NewOpsEvents(c.Store, "ops", zap.NewNop()) })
	ep := e.createEndpoint(map[string]any{"url": "https://a.test/hook"})
	count := func(typ string) int {
		return e.queryInt(`SELECT count(*) FROM {{schema}}.outbox WHERE tenant = 'ops' AND event_type = $1 AND payload->>'endpoint_id' = $2`, typ, ep.ID)
	}
	e.do("PATCH", "/v1/endpoints/"+ep.ID, map[string]any{"enabled": false}).must(t, 200)
	e.do("PATCH", "/v1/endpoints/"+ep.ID, map[string]any{"enabled": false}).must(t, 200) // no flip, no event
	e.do("PATCH", "/v1/endpoints/"+ep.ID, map[string]any{"description": "x"}).must(t, 200)
	e.do("PATCH", "/v1/endpoints/"+ep.ID, map[string]any{"enabled": true}).must(t, 200)
	if d, en := count(relay.EventEndpointDisabled), count(relay.EventEndpointEnabled); d != 1 || en != 1 {
		t.Fatalf("operational events: %d disabled, %d enabled; want 1 and 1", d, en)
	}
}

// TestInvalidText: text PostgreSQL cannot hold (NUL, invalid UTF-8) in a
// query parameter is a 400 naming the parameter, and a JSON body that is
// not valid UTF-8 is refused rather than silently repaired.
func TestInvalidText(t *testing.T) {
	e := newEnv(t, nil)
	for _, path := range []string{"/v1/endpoints?tenant=", "/v1/events?tenant=", "/v1/events?type=", "/v1/deliveries?state=",
		"/v1/deliveries?endpoint_id=", "/v1/endpoints?cursor=", "/v1/events?cursor=", "/v1/deliveries?cursor="} {
		param := path[strings.Index(path, "?")+1 : len(path)-1]
		for _, bad := range []string{"%00", "a%00b", "%FF", "%C3%28", "%ED%A0%80"} {
			r := e.do("GET", path+bad, nil)
			code, field := r.err(t)
			if r.status != 400 || code != "invalid_field" || field != param {
				t.Errorf("GET %s%s: %d %q field %q, want 400 invalid_field %q: %s", path, bad, r.status, code, field, param, r.body)
			}
		}
	}

	for _, tc := range []struct {
		path string
		body []byte
	}{
		{"/v1/endpoints", []byte("{\"url\":\"https://a.test\",\"description\":\"caf\xe9\"}")},
		{"/v1/endpoints", []byte("{\"url\":\"https://a.test\",\"tenant\":\"\xff\xfe\"}")},
		{"/v1/events", []byte("{\"type\":\"a.b\",\"payload\":{\"name\":\"\xc3\x28\"}}")},
		{"/v1/events", []byte("{\"type\":\"a.b\",\"payload\":{\"s\":\"\xed\xa0\x80\"}}")}, // a UTF-16 surrogate
	} {
		r := e.do("POST", tc.path, tc.body)
		code, _ := r.err(t)
		if r.status != 400 || code != "invalid_json" || !strings.Contains(string(r.body), "not valid UTF-8") {
			t.Errorf("POST %s %q: %d %q: %s", tc.path, tc.body, r.status, code, r.body)
		}
	}
	if n := e.queryInt(`SELECT (SELECT count(*) FROM {{schema}}.endpoints) + (SELECT count(*) FROM {{schema}}.outbox)`); n != 0 {
		t.Errorf("%d rows written from invalid UTF-8", n)
	}
	// Valid non-ASCII text is kept as sent.
	ep := e.createEndpoint(map[string]any{"url": "https://a.test", "description": "café ☕ 𝄞"})
	if ep.Description != "café ☕ 𝄞" {
		t.Errorf("description %q", ep.Description)
	}
}
