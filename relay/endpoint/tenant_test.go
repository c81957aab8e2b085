package endpoint_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
	"github.com/hookrelay/hookrelay/relay/endpoint"
	"github.com/hookrelay/hookrelay/relay/relaytest"
)

func TestMain(m *testing.M) { os.Exit(outboxtest.Main(m)) }

func newService(t *testing.T, mod func(*endpoint.Config)) *endpoint.Service {
	t.Helper()
	return relaytest.Endpoints(t, outboxtest.Store(t), mod)
}

func fieldErr(t *testing.T, err error, field, contains string) {
	t.Helper()
	var fe *outbox.FieldError
	if !errors.As(err, &fe) || fe.Field != field || !strings.Contains(fe.Error(), contains) {
		t.Fatalf("error %v: want a field error on %q containing %q", err, field, contains)
	}
}

func TestForTenantActsForOneTenant(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	admin := newService(t, nil)
	b, err := admin.Create(ctx, endpoint.Input{URL: "https://b.test/h", Tenant: "b"})
	if err != nil {
		t.Fatal(err)
	}
	a := admin.ForTenant("a")
	own, err := a.Create(ctx, endpoint.Input{URL: "https://a.test/h"})
	if err != nil || own.Tenant != "a" {
		t.Fatalf("tenant Create without a tenant = %+v, %v; want tenant a", own, err)
	}
	if _, err := a.Create(ctx, endpoint.Input{URL: "https://a.test/h", Tenant: "b"}); !errors.Is(err, outbox.ErrOtherTenant) {
		t.Errorf("tenant Create for b = %v, want ErrOtherTenant", err)
	}
	desc := "x"
	if _, err := a.Update(ctx, b.ID, endpoint.Patch{Description: &desc}); !errors.Is(err, outbox.ErrNotFound) {
		t.Errorf("tenant Update of b's endpoint = %v, want ErrNotFound", err)
	}
	if _, err := a.Get(ctx, b.ID); !errors.Is(err, outbox.ErrNotFound) {
		t.Errorf("tenant Get of b's endpoint = %v, want ErrNotFound", err)
	}
	if _, err := a.TestEvent(ctx, b.ID, ""); !errors.Is(err, outbox.ErrNotFound) {
		t.Errorf("tenant Test of b's endpoint = %v, want ErrNotFound", err)
	}
	other, same := "b", "a"
	if _, err := a.Update(ctx, own.ID, endpoint.Patch{Tenant: &other}); !errors.Is(err, outbox.ErrOtherTenant) {
		t.Errorf("tenant moving its endpoint to b = %v, want ErrOtherTenant", err)
	}
	if _, err := a.Update(ctx, own.ID, endpoint.Patch{Tenant: &same, Description: &desc}); err != nil {
		t.Errorf("patch naming the endpoint's own tenant = %v", err)
	}
	_, err = admin.Update(ctx, own.ID, endpoint.Patch{Tenant: &other})
	fieldErr(t, err, "tenant", "cannot be changed")
	if tn, ok := a.Tenant(); !ok || tn != "a" {
		t.Errorf("Tenant() = %q, %v", tn, ok)
	}
}

func TestRequireHTTPS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc := newService(t, func(c *endpoint.Config) { c.RequireHTTPS = true })
	_, err := svc.Create(ctx, endpoint.Input{URL: "http://example.com/h"})
	fieldErr(t, err, "url", "HOOKRELAY_REQUIRE_HTTPS")
	e, err := svc.Create(ctx, endpoint.Input{URL: "https://example.com/h"})
	if err != nil {
		t.Fatal(err)
	}
	plain := "HTTP://example.com/h"
	_, err = svc.Update(ctx, e.ID, endpoint.Patch{URL: &plain})
	fieldErr(t, err, "url", "https")
	// Off by default.
	if _, err := newService(t, nil).Create(ctx, endpoint.Input{URL: "http://example.com/h"}); err != nil {
		t.Errorf("http URL with RequireHTTPS off: %v", err)
	}
}

// TestCatalogRefusesUnknownType: an empty catalog allows every type; once
// it has entries, a type missing from it is refused by name.
func TestCatalogRefusesUnknownType(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc := newService(t, nil)
	if _, err := svc.Create(ctx, endpoint.Input{URL: "https://a.test", EventTypes: []string{"signup.craeted"}}); err != nil {
		t.Fatalf("empty catalog: %v", err)
	}
	st := svc.Store()
	for _, et := range []outbox.EventType{{Name: "signup.created"}, {Name: "signup.deleted", Deprecated: true}} {
		if _, _, err := st.PutEventType(ctx, et); err != nil {
			t.Fatal(err)
		}
	}
	_, err := svc.Create(ctx, endpoint.Input{URL: "https://a.test", EventTypes: []string{"signup.created", "signup.craeted"}})
	fieldErr(t, err, "event_types", `"signup.craeted"`)
	res, err := svc.Create(ctx, endpoint.Input{URL: "https://a.test", EventTypes: []string{"signup.created", "signup.deleted"}})
	if err != nil || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "deprecated") {
		t.Fatalf("Create with a deprecated type = %+v, %v; want a deprecation warning", res, err)
	}
	types := []string{"campaign.ended"}
	_, err = svc.Update(ctx, res.ID, endpoint.Patch{EventTypes: &types})
	fieldErr(t, err, "event_types", `"campaign.ended"`)
}

// TestTestSendsExampleAndRecordsIt: the Test button sends the catalog's
// example of the endpoint's type, and the attempt is in the endpoint's
// delivery log, marked as a test.
func TestTestSendsExampleAndRecordsIt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc := newService(t, nil)
	st := svc.Store()
	rc := relaytest.NewReceiver(t)
	example := `{"email": "ada@example.com", "position": 42}`
	if _, _, err := st.PutEventType(ctx, outbox.EventType{Name: "signup.created", Example: json.RawMessage(example)}); err != nil {
		t.Fatal(err)
	}
	ep, err := svc.Create(ctx, endpoint.Input{URL: rc.URL(), Secret: rc.Secret, Tenant: "acme", EventTypes: []string{"campaign.ended", "signup.created"}})
	if err == nil {
		t.Fatal("campaign.ended is not in the catalog: Create should refuse it")
	}
	if _, _, err := st.PutEventType(ctx, outbox.EventType{Name: "campaign.ended"}); err != nil {
		t.Fatal(err)
	}
	if ep, err = svc.Create(ctx, endpoint.Input{URL: rc.URL(), Secret: rc.Secret, Tenant: "acme", EventTypes: []string{"campaign.ended", "signup.created"}}); err != nil {
		t.Fatal(err)
	}
	res, err := svc.ForTenant("acme").Test(ctx, ep.ID)
	if err != nil || !res.Delivered || res.EventType != "signup.created" || res.DeliveryID == 0 {
		t.Fatalf("Test = %+v, %v", res, err)
	}
	got := rc.WaitAccepted(1, 5*time.Second)
	var want, data any
	_ = json.Unmarshal([]byte(example), &want)
	_ = json.Unmarshal(got[0].Data, &data)
	if got[0].Type != "signup.created" || got[0].ID != res.WebhookID || !jsonEqual(want, data) {
		t.Fatalf("received %s %s %s; want signup.created %s with the example", got[0].ID, got[0].Type, got[0].Data, res.WebhookID)
	}

	// In the log: the endpoint's deliveries and attempts, marked test.
	ds, _, err := st.ForTenant("acme").ListDeliveries(ctx, outbox.DeliveryFilter{EndpointID: &ep.ID})
	if err != nil || len(ds) != 1 || !ds[0].Test || ds[0].State != outbox.StateDelivered || ds[0].WebhookID != res.WebhookID ||
		ds[0].EventType != "signup.created" {
		t.Fatalf("delivery log = %+v, %v; want the test delivery", ds, err)
	}
	as, err := st.ListAttempts(ctx, ds[0].ID)
	if err != nil || len(as) != 1 || as[0].Outcome != "delivered" || as[0].StatusCode == nil || *as[0].StatusCode != 204 {
		t.Fatalf("attempts = %+v, %v", as, err)
	}

	// A named type without an example is sent with the sample payload; a
	// type not in the catalog is refused.
	res, err = svc.TestEvent(ctx, ep.ID, "campaign.ended")
	if err != nil || res.EventType != "campaign.ended" || !res.Delivered {
		t.Fatalf("TestEvent(campaign.ended) = %+v, %v", res, err)
	}
	_, err = svc.TestEvent(ctx, ep.ID, "signup.craeted")
	fieldErr(t, err, "event_type", "not in the event-type catalog")

	// A failed test is recorded too, as dead (a test is tried once), and
	// the endpoint's failure count is left alone.
	bad := relaytest.NewReceiver(t)
	bad.Respond = func(w http.ResponseWriter, r *http.Request, got relaytest.Receipt) int { return 500 }
	ep2, err := svc.Create(ctx, endpoint.Input{URL: bad.URL(), Secret: bad.Secret, Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	res, err = svc.Test(ctx, ep2.ID)
	if err != nil || res.Delivered || res.StatusCode != 500 || res.EventType != "signup.created" {
		t.Fatalf("Test of a failing endpoint = %+v, %v; want not delivered, 500, the catalog's first type with an example", res, err)
	}
	d, err := st.GetDelivery(ctx, res.DeliveryID)
	if err != nil || d.State != outbox.StateDead || !d.Test || d.LastStatus == nil || *d.LastStatus != 500 {
		t.Fatalf("failed test delivery = %+v, %v", d, err)
	}
	if e, err := st.GetEndpoint(ctx, ep2.ID); err != nil || e.ConsecutiveFailures != 0 {
		t.Errorf("endpoint after a failed test: %+v, %v; want no failure counted", e, err)
	}
}

// TestGetReportsHealth: success rate and p95 over the last hour and day
// (test sends excluded), the last error, and the auto-disable standing.
func TestGetReportsHealth(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc := newService(t, func(c *endpoint.Config) { c.DisableAfter = time.Hour; c.DisableAfterFailures = 3 })
	st := svc.Store()
	ep, err := svc.Create(ctx, endpoint.Input{URL: "https://a.test/h"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := svc.Get(ctx, ep.ID)
	if err != nil || d.Health.LastHour.Attempts != 0 || d.Health.LastHour.SuccessRate != nil || d.Health.LastError != nil ||
		d.Health.AutoDisable.State != endpoint.AutoDisableHealthy {
		t.Fatalf("Get of a new endpoint = %+v, %v", d.Health, err)
	}
	// 10 attempts in the last hour (8 delivered, 10..100 ms), 10 more two
	// hours ago (all failed, 1000 ms), one a week ago.
	if _, err := st.Pool().Exec(ctx, outboxtest.SQL(st.Schema(), `INSERT INTO {{schema}}.outbox (id, event_type, payload) VALUES (1, 't', '{}')`)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, outboxtest.SQL(st.Schema(), `INSERT INTO {{schema}}.attempts
    (delivery_id, event_id, endpoint_id, attempt, started_at, duration_ms, status_code, outcome, error_class, error)
SELECT 1, 1, $1::uuid, 1, now() - make_interval(mins => n), n * 10, CASE WHEN n <= 8 THEN 200 ELSE 500 END,
       CASE WHEN n <= 8 THEN 'delivered' ELSE 'retry' END, CASE WHEN n <= 8 THEN '' ELSE 'http_status' END,
       CASE WHEN n <= 8 THEN '' ELSE 'HTTP ' || n END
  FROM generate_series(1, 10) n
UNION ALL
SELECT 1, 1, $1::uuid, 2, now() - interval '2 hours', 1000, 503, 'retry', 'http_status', 'old' FROM generate_series(1, 10)
UNION ALL
SELECT 1, 1, $1::uuid, 3, now() - interval '7 days', 5, 200, 'delivered', '', '' `), ep.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, outboxtest.SQL(st.Schema(), `UPDATE {{schema}}.endpoints SET consecutive_failures = 5,
    last_success_at = now() - interval '2 hours' WHERE id = $1`), ep.ID); err != nil {
		t.Fatal(err)
	}
	d, err = svc.Get(ctx, ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	h := d.Health
	if h.LastHour.Attempts != 10 || h.LastHour.Succeeded != 8 || *h.LastHour.SuccessRate != 0.8 || *h.LastHour.P95LatencyMS != 95 {
		t.Errorf("last hour = %+v (rate %v, p95 %v); want 10 attempts, 8 delivered, 0.8, p95 95 ms", h.LastHour, *h.LastHour.SuccessRate, *h.LastHour.P95LatencyMS)
	}
	if h.LastDay.Attempts != 20 || h.LastDay.Succeeded != 8 || *h.LastDay.P95LatencyMS != 1000 {
		t.Errorf("last day = %+v; want 20 attempts, 8 delivered, p95 1000 ms", h.LastDay)
	}
	if h.LastError == nil || h.LastError.Error != "HTTP 9" || *h.LastError.StatusCode != 500 {
		t.Errorf("last error = %+v; want the newest failure (HTTP 9)", h.LastError)
	}
	if h.ConsecutiveFailures != 5 || h.AutoDisable.State != endpoint.AutoDisableDue || h.AutoDisable.DisablesAt == nil {
		t.Errorf("auto-disable = %+v with %d failures; want due", h.AutoDisable, h.ConsecutiveFailures)
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
