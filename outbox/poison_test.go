package outbox_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
)

const plainSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// TestDispatchPayloadIsTheStoredJSON checks that a claimed delivery carries
// the payload byte for byte as PostgreSQL stores it, for payloads with JSON
// escapes that a text-to-bytea cast would misread.
func TestDispatchPayloadIsTheStoredJSON(t *testing.T) {
	ctx, st := parallelStore(t)
	createEndpoint(t, st, outbox.EndpointInput{URL: "https://a.test"})
	want := map[int64]string{}
	for _, p := range outboxtest.RealWorldPayloads {
		var id int64
		if err := st.Pool().QueryRow(ctx, outboxtest.SQL(st.Schema(), `INSERT INTO {{schema}}.outbox (event_type, payload) VALUES ('t', $1)
			RETURNING id`), p).Scan(&id); err != nil {
			t.Fatalf("insert %s: %v", p, err)
		}
		var stored string
		if err := st.Pool().QueryRow(ctx, outboxtest.SQL(st.Schema(), `SELECT payload::text FROM {{schema}}.outbox WHERE id = $1`), id).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		want[id] = stored
	}
	d, err := st.DispatchClaim(ctx, 100, outbox.ClaimParams{Limit: 100, Lease: time.Minute, PerEndpoint: 100})
	if err != nil {
		t.Fatalf("dispatch: %v", err)
	}
	if d.Events != len(outboxtest.RealWorldPayloads) || len(d.Claimed) != len(outboxtest.RealWorldPayloads) {
		t.Fatalf("dispatched %d events, claimed %d, want %d each", d.Events, len(d.Claimed), len(outboxtest.RealWorldPayloads))
	}
	for _, c := range d.Claimed {
		if string(c.Payload) != want[c.EventID] {
			t.Errorf("event %d: payload %q, stored %q", c.EventID, c.Payload, want[c.EventID])
		}
	}
	evs, _, err := st.ListEvents(ctx, outbox.EventFilter{Limit: 100})
	if err != nil {
		t.Fatalf("list events: %v", err)
	}
	for _, e := range evs {
		if string(e.Payload) != want[e.ID] {
			t.Errorf("listed event %d: payload %q, stored %q", e.ID, e.Payload, want[e.ID])
		}
	}
}

// TestDispatchEndpointIDStaysInTenant checks that endpoint_id narrows the
// fan-out to one of the tenant's subscribed endpoints and never reaches
// another tenant's, and that a row whose endpoint_id reaches nothing says
// why.
func TestDispatchEndpointIDStaysInTenant(t *testing.T) {
	ctx, st := parallelStore(t)
	create := func(tenant string, types ...string) outbox.Endpoint {
		return createEndpoint(t, st, outbox.EndpointInput{Tenant: tenant, URL: "https://a.test", EventTypes: types})
	}
	acme, acmeOther, globex := create("acme", "signup.created"), create("acme", "campaign.ended"), create("globex")
	insert := func(tenant, typ, endpointID string) int64 {
		t.Helper()
		var id int64
		err := st.Pool().QueryRow(ctx, outboxtest.SQL(st.Schema(), `INSERT INTO {{schema}}.outbox (event_type, tenant, payload, endpoint_id)
			VALUES ($1, $2, '{}', $3::uuid) RETURNING id`), typ, tenant, endpointID).Scan(&id)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	ok := insert("acme", "signup.created", acme.ID)
	cross := insert("acme", "signup.created", globex.ID)
	unsubscribed := insert("acme", "signup.created", acmeOther.ID)
	unknown := insert("acme", "signup.created", "5f0c6a34-8d0e-4b9e-9a55-0a9c1c0e7d11")
	d, err := st.DispatchClaim(ctx, 100, outbox.ClaimParams{Limit: 100, Lease: time.Minute, PerEndpoint: 10})
	if err != nil {
		t.Fatal(err)
	}
	if d.Events != 4 || d.Deliveries != 1 {
		t.Fatalf("fanned out %d events into %d deliveries, want 4 into 1", d.Events, d.Deliveries)
	}
	if len(d.Claimed) != 1 || d.Claimed[0].EventID != ok || d.Claimed[0].EndpointID != acme.ID {
		t.Fatalf("claimed %+v, want only event %d to endpoint %s", d.Claimed, ok, acme.ID)
	}
	reasons := map[int64]string{}
	for _, u := range d.Unrouted {
		reasons[u.EventID] = u.Error
	}
	for id, want := range map[int64]string{
		cross:        `names no endpoint of tenant "acme"`,
		unknown:      `names no endpoint of tenant "acme"`,
		unsubscribed: `is not subscribed to event type signup.created`,
	} {
		if !strings.Contains(reasons[id], want) {
			t.Errorf("event %d: unrouted reason %q, want it to contain %q", id, reasons[id], want)
		}
		ev, err := st.GetEvent(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if ev.DispatchError != reasons[id] || ev.DispatchedAt == nil || ev.DeliveryCount == nil || *ev.DeliveryCount != 0 {
			t.Errorf("event %d as listed: dispatch_error %q dispatched_at %v delivery_count %v", id, ev.DispatchError, ev.DispatchedAt, ev.DeliveryCount)
		}
	}
	if reasons[cross] != strings.Replace(reasons[unknown], "5f0c6a34-8d0e-4b9e-9a55-0a9c1c0e7d11", globex.ID, 1) {
		t.Errorf("another tenant's endpoint reads differently from no endpoint (%q vs %q): it confirms the endpoint exists",
			reasons[cross], reasons[unknown])
	}
	if _, isUnrouted := reasons[ok]; isUnrouted {
		t.Errorf("the routed event is reported unrouted")
	}
}

// TestDispatchSetsAsideAFailingRow checks that a row whose fan-out the
// database refuses is set aside with the error while the rest of its
// batch is fanned out, and is tried again once the cause is gone.
func TestDispatchSetsAsideAFailingRow(t *testing.T) {
	ctx, st := parallelStore(t)
	createEndpoint(t, st, outbox.EndpointInput{URL: "https://a.test"})
	if _, err := st.Pool().Exec(ctx, outboxtest.SQL(st.Schema(), `INSERT INTO {{schema}}.outbox (event_type, payload)
		SELECT 't', jsonb_build_object('n', g) FROM generate_series(1, 20) g`)); err != nil {
		t.Fatal(err)
	}
	var poison int64
	if err := st.Pool().QueryRow(ctx, outboxtest.SQL(st.Schema(), `SELECT id FROM {{schema}}.outbox ORDER BY id OFFSET 12 LIMIT 1`)).Scan(&poison); err != nil {
		t.Fatal(err)
	}
	// A constraint that refuses the poison row's delivery stands for any
	// value the database refuses.
	if _, err := st.Pool().Exec(ctx, outboxtest.SQL(st.Schema(), `ALTER TABLE {{schema}}.deliveries ADD CONSTRAINT no_poison CHECK (event_id <> `+strconv.FormatInt(poison, 10)+`)`)); err != nil {
		t.Fatal(err)
	}
	d, err := st.DispatchClaim(ctx, 100, outbox.ClaimParams{Limit: 100, Lease: time.Minute, PerEndpoint: 100})
	if err != nil {
		t.Fatalf("dispatch: %v", err)
	}
	if d.Events != 19 || d.Deliveries != 19 {
		t.Fatalf("fanned out %d events into %d deliveries, want 19 into 19", d.Events, d.Deliveries)
	}
	if len(d.SetAside) != 1 || d.SetAside[0].EventID != poison || !strings.Contains(d.SetAside[0].Error, "no_poison") || d.SetAside[0].Repeated {
		t.Fatalf("set aside %+v, want event %d once with the constraint's error", d.SetAside, poison)
	}
	ev, err := st.GetEvent(ctx, poison)
	if err != nil {
		t.Fatal(err)
	}
	if ev.DispatchedAt != nil || !strings.Contains(ev.DispatchError, "no_poison") {
		t.Fatalf("poison event: dispatched_at %v, dispatch_error %q", ev.DispatchedAt, ev.DispatchError)
	}
	// Set aside: not tried again before its time.
	d, err = st.DispatchClaim(ctx, 100, outbox.ClaimParams{Limit: 100, Lease: time.Minute, PerEndpoint: 100})
	if err != nil || d.Events != 0 || len(d.SetAside) != 0 {
		t.Fatalf("second fan-out: %+v, %v; want nothing", d, err)
	}
	// Its time comes, the cause is still there: the same error, reported
	// as a repeat.
	due := outboxtest.SQL(st.Schema(), `UPDATE {{schema}}.outbox SET dispatch_retry_at = now() WHERE id = $1`)
	if _, err := st.Pool().Exec(ctx, due, poison); err != nil {
		t.Fatal(err)
	}
	d, err = st.DispatchClaim(ctx, 100, outbox.ClaimParams{Limit: 100, Lease: time.Minute, PerEndpoint: 100})
	if err != nil || len(d.SetAside) != 1 || !d.SetAside[0].Repeated {
		t.Fatalf("retry with the cause in place: %+v, %v; want it set aside again as a repeat", d.SetAside, err)
	}
	// The cause is fixed: the next try fans it out and clears the error.
	if _, err := st.Pool().Exec(ctx, outboxtest.SQL(st.Schema(), `ALTER TABLE {{schema}}.deliveries DROP CONSTRAINT no_poison`)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, due, poison); err != nil {
		t.Fatal(err)
	}
	d, err = st.DispatchClaim(ctx, 100, outbox.ClaimParams{Limit: 100, Lease: time.Minute, PerEndpoint: 100})
	if err != nil || d.Events != 1 || d.Deliveries != 1 {
		t.Fatalf("after the fix: %+v, %v; want the event fanned out", d, err)
	}
	if ev, err = st.GetEvent(ctx, poison); err != nil || ev.DispatchError != "" || ev.DispatchedAt == nil {
		t.Fatalf("after the fix: %+v, %v", ev, err)
	}
}
