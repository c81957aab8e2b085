package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/endpoint"
	"github.com/hookrelay/hookrelay/relay/relaytest"
)

// tenantToken issues a token for tenant through the admin API.
func (e *env) tenantToken(tenant string, readOnly bool) string {
	e.t.Helper()
	var tok outbox.Token
	e.do("POST", "/v1/tokens", map[string]any{"tenant": tenant, "read_only": readOnly, "expires_in": "720h"}).must(e.t, 201).json(e.t, &tok)
	return "Bearer " + tok.Value
}

// publishID publishes an event through the admin API and returns its id.
func (e *env) publishID(tenant, typ, payload string) int64 {
	e.t.Helper()
	var res struct{ ID int64 }
	e.do("POST", "/v1/events", map[string]any{"type": typ, "tenant": tenant, "payload": json.RawMessage(payload)}).must(e.t, 202).json(e.t, &res)
	return res.ID
}

// TestReplayDeliveredEventIsReceivedAgain: a tenant replays an event its
// endpoint already received; the receiver gets it again with the same
// webhook-id, and the delivery log keeps both attempt series.
func TestReplayDeliveredEventIsReceivedAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.runEngine(relay.Policy{Schedule: []time.Duration{time.Second}}, nil)
	rc := relaytest.NewReceiver(t)
	acme := e.tenantToken("acme", false)
	var ep outbox.Endpoint
	e.doAuth("POST", "/v1/endpoints", acme, map[string]any{"url": rc.URL(), "secret": rc.Secret}).must(t, 201).json(t, &ep)
	if ep.Tenant != "acme" {
		t.Fatalf("endpoint created by acme's token has tenant %q", ep.Tenant)
	}
	id := e.publishID("acme", "signup.created", `{"email": "ada@example.com"}`)
	first := rc.WaitAccepted(1, 20*time.Second)[0]
	waitFor(t, "the delivery recorded as delivered", func() bool {
		return e.queryInt(`SELECT count(*) FROM {{schema}}.deliveries WHERE state = 'delivered'`) == 1
	})

	var res outbox.ReplayResult
	e.doAuth("POST", "/v1/events/"+strconv.FormatInt(id, 10)+"/replay", acme, nil).must(t, 200).json(t, &res)
	if len(res.Deliveries) != 1 || res.WebhookID != first.ID || res.Deliveries[0].Replays != 1 {
		t.Fatalf("replay = %+v", res)
	}
	again := rc.WaitAccepted(2, 20*time.Second)[1]
	if again.ID != first.ID || again.N != 2 || string(again.Data) != string(first.Data) {
		t.Fatalf("second receipt %s (n=%d) %s; want %s again", again.ID, again.N, again.Data, first.ID)
	}
	d := strconv.FormatInt(res.Deliveries[0].ID, 10)
	waitFor(t, "the replayed delivery delivered", func() bool {
		var got outbox.Delivery
		e.doAuth("GET", "/v1/deliveries/"+d, acme, nil).must(t, 200).json(t, &got)
		return got.State == outbox.StateDelivered
	})
	var as struct{ Attempts []outbox.Attempt }
	e.doAuth("GET", "/v1/deliveries/"+d+"/attempts", acme, nil).must(t, 200).json(t, &as)
	if len(as.Attempts) != 2 {
		t.Errorf("attempts after a replay: %+v; want both series", as.Attempts)
	}
	// Another tenant cannot replay it.
	e.doAuth("POST", "/v1/events/"+strconv.FormatInt(id, 10)+"/replay", e.tenantToken("other", false), nil).must(t, 404)
}

// TestBackfillTwiceDeliversOnce: events published before the endpoint
// existed reach it through a backfill; a second backfill sends nothing.
func TestBackfillTwiceDeliversOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.runEngine(relay.Policy{Schedule: []time.Duration{time.Second}}, nil)
	start := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	var ids []int64
	for i := range 3 {
		ids = append(ids, e.publishID("acme", "signup.created", `{"n": `+strconv.Itoa(i)+`}`))
	}
	e.publishID("acme", "campaign.ended", `{}`)
	e.publishID("other", "signup.created", `{}`)
	waitFor(t, "the events fanned out (to no endpoint)", func() bool {
		return e.queryInt(`SELECT count(*) FROM {{schema}}.outbox WHERE dispatched_at IS NULL`) == 0
	})
	rc := relaytest.NewReceiver(t)
	acme := e.tenantToken("acme", false)
	var ep outbox.Endpoint
	e.doAuth("POST", "/v1/endpoints", acme, map[string]any{"url": rc.URL(), "secret": rc.Secret, "event_types": []string{"signup.created"}}).
		must(t, 201).json(t, &ep)

	// The trace says why the endpoint has none of them.
	var tr outbox.Trace
	e.doAuth("GET", "/v1/events/"+strconv.FormatInt(ids[0], 10)+"/trace", acme, nil).must(t, 200).json(t, &tr)
	if len(tr.Endpoints) != 1 || tr.Endpoints[0].Matched || tr.Endpoints[0].Reason != outbox.TraceCreatedAfter {
		t.Fatalf("trace before the backfill = %+v", tr.Endpoints)
	}

	for i, want := range []int{3, 0} {
		var res outbox.BackfillResult
		e.doAuth("POST", "/v1/endpoints/"+ep.ID+"/backfill", acme, map[string]any{"since": start}).must(t, 200).json(t, &res)
		if res.Created != want || res.Matched != 3 {
			t.Fatalf("backfill %d = %+v, want %d created of 3 matched", i+1, res, want)
		}
	}
	rc.WaitAccepted(3, 20*time.Second)
	waitFor(t, "every backfilled delivery finished", func() bool {
		return e.queryInt(`SELECT count(*) FROM {{schema}}.deliveries WHERE state <> 'delivered'`) == 0
	})
	if unique, dups, bad, _ := rc.Stats(); unique != 3 || dups != 0 || bad != 0 {
		t.Errorf("receiver: %d unique, %d duplicates, %d bad; want 3, 0, 0", unique, dups, bad)
	}
	if n := e.queryInt(`SELECT count(*) FROM {{schema}}.deliveries`); n != 3 {
		t.Errorf("%d deliveries, want 3", n)
	}
}

// TestEventTypesAndSchemaOverHTTP: the catalog through the API; an unknown
// type refused at endpoint create; POST /v1/events checks the schema and
// names the failing path; Test sends the example, recorded in the log.
func TestEventTypesAndSchemaOverHTTP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	rc := relaytest.NewReceiver(t)
	e.do("PUT", "/v1/event-types/signup.created", map[string]any{
		"description": "A signup", "example": map[string]any{"email": "ada@example.com"},
		"schema": json.RawMessage(`{"type": "object", "required": ["email"], "properties": {"email": {"type": "string"}}}`),
	}).must(t, 201)
	e.do("PUT", "/v1/event-types/signup.created", map[string]any{
		"description": "A signup", "example": map[string]any{"email": "ada@example.com"},
		"schema": json.RawMessage(`{"type": "object", "required": ["email"], "properties": {"email": {"type": "string"}}}`),
	}).must(t, 200)
	e.do("PUT", "/v1/event-types/bad", map[string]any{"schema": map[string]any{"type": "object", "required": []string{"x"}}, "example": map[string]any{}}).
		must(t, 400)
	acme := e.tenantToken("acme", true)
	var list struct {
		EventTypes []outbox.EventType `json:"event_types"`
	}
	e.doAuth("GET", "/v1/event-types", acme, nil).must(t, 200).json(t, &list)
	if len(list.EventTypes) != 1 || list.EventTypes[0].Name != "signup.created" {
		t.Fatalf("catalog = %+v", list.EventTypes)
	}
	r := e.do("POST", "/v1/endpoints", map[string]any{"url": rc.URL(), "tenant": "acme", "event_types": []string{"signup.craeted"}}).must(t, 400)
	if code, field := r.err(t); code != "invalid_field" || field != "event_types" || !strings.Contains(string(r.body), "signup.craeted") {
		t.Fatalf("unknown type: %s", r.body)
	}
	r = e.do("POST", "/v1/events", map[string]any{"type": "signup.created", "tenant": "acme", "payload": map[string]any{"email": 5}}).must(t, 400)
	if _, field := r.err(t); field != "payload" || !strings.Contains(string(r.body), "/email") {
		t.Fatalf("payload against the schema: %s", r.body)
	}
	var ep outbox.Endpoint
	e.do("POST", "/v1/endpoints", map[string]any{"url": rc.URL(), "tenant": "acme", "secret": rc.Secret, "event_types": []string{"signup.created"}}).
		must(t, 201).json(t, &ep)
	// A read-only token may not press Test.
	e.doAuth("POST", "/v1/endpoints/"+ep.ID+"/test", acme, nil).must(t, 403)
	var res relay.TestResult
	e.doAuth("POST", "/v1/endpoints/"+ep.ID+"/test", e.tenantToken("acme", false), map[string]any{"event_type": "signup.created"}).must(t, 200).json(t, &res)
	got := rc.WaitAccepted(1, 10*time.Second)[0]
	if !res.Delivered || got.Type != "signup.created" || !strings.Contains(string(got.Data), "ada@example.com") {
		t.Fatalf("test result %+v, received %s %s", res, got.Type, got.Data)
	}
	var ds struct{ Deliveries []outbox.Delivery }
	e.doAuth("GET", "/v1/deliveries?endpoint_id="+ep.ID, acme, nil).must(t, 200).json(t, &ds)
	if len(ds.Deliveries) != 1 || !ds.Deliveries[0].Test || ds.Deliveries[0].ID != res.DeliveryID {
		t.Fatalf("delivery log after Test = %+v", ds.Deliveries)
	}
	// The endpoint's health is on GET.
	var d endpoint.Details
	e.doAuth("GET", "/v1/endpoints/"+ep.ID, acme, nil).must(t, 200).json(t, &d)
	if d.Health.AutoDisable.State == "" || d.Health.LastDay.Attempts != 0 {
		t.Errorf("health = %+v (test sends do not count)", d.Health)
	}
}

// TestTenantCannotCrossTenants: ids of another tenant answer 404, creating
// or moving for another tenant 403, and lists hold the tenant's rows only.
func TestTenantCannotCrossTenants(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	a, b := e.tenantToken("a", false), e.tenantToken("b", false)
	var epA, epB outbox.Endpoint
	e.doAuth("POST", "/v1/endpoints", a, map[string]any{"url": "https://a.test/h"}).must(t, 201).json(t, &epA)
	e.doAuth("POST", "/v1/endpoints", b, map[string]any{"url": "https://b.test/h", "tenant": "b"}).must(t, 201).json(t, &epB)
	r := e.doAuth("POST", "/v1/endpoints", a, map[string]any{"url": "https://a.test/h", "tenant": "b"}).must(t, 403)
	if code, _ := r.err(t); code != "other_tenant" {
		t.Errorf("create for another tenant: %s", r.body)
	}
	e.doAuth("PATCH", "/v1/endpoints/"+epA.ID, a, map[string]any{"tenant": "b"}).must(t, 403)
	e.doAuth("PATCH", "/v1/endpoints/"+epB.ID, a, map[string]any{"description": "mine"}).must(t, 404)
	e.doAuth("GET", "/v1/endpoints/"+epB.ID, a, nil).must(t, 404)
	var list struct{ Endpoints []outbox.Endpoint }
	e.doAuth("GET", "/v1/endpoints?tenant=b", a, nil).must(t, 200).json(t, &list)
	if len(list.Endpoints) != 0 {
		t.Errorf("a's list filtered on tenant b: %+v", list.Endpoints)
	}
	e.do("PATCH", "/v1/endpoints/"+epA.ID, map[string]any{"tenant": "b"}).must(t, 400)
	e.doAuth("GET", "/v1/openapi.json", a, nil).must(t, http.StatusOK)
}
