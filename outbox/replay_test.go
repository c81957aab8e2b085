package outbox_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
)

func enqueueOne(t *testing.T, st *outbox.Store, ev outbox.Event) int64 {
	t.Helper()
	if ev.Payload == nil {
		ev.Payload = []byte(`{}`)
	}
	res, err := outbox.Enqueue(context.Background(), st.Pool(), ev, outbox.Options{Schema: st.Schema()})
	if err != nil {
		t.Fatal(err)
	}
	return res.ID
}

func dispatchAll(t *testing.T, st *outbox.Store) {
	t.Helper()
	if _, _, err := st.Dispatch(context.Background(), 1000); err != nil {
		t.Fatal(err)
	}
}

func createEndpoint(t *testing.T, st *outbox.Store, in outbox.EndpointInput) outbox.Endpoint {
	t.Helper()
	if in.URL == "" {
		in.URL = "https://example.com/h"
	}
	in.Secret = plainSecret
	e, err := st.CreateEndpoint(context.Background(), in, 0)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func traceOf(t *testing.T, st *outbox.Store, eventID int64, endpointID string) outbox.TraceEndpoint {
	t.Helper()
	tr, err := st.ForTenant("acme").TraceEvent(context.Background(), eventID)
	if err != nil {
		t.Fatal(err)
	}
	for _, te := range tr.Endpoints {
		if te.EndpointID == endpointID {
			return te
		}
	}
	t.Fatalf("endpoint %s is not in the trace %+v", endpointID, tr.Endpoints)
	return outbox.TraceEndpoint{}
}

// TestTraceExplainsWhyNot checks each reason the trace gives for an event
// that did not reach an endpoint of its tenant.
func TestTraceExplainsWhyNot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	signup := outbox.Event{Type: "signup.created", Tenant: "acme"}
	cases := []struct {
		name string
		// setUp makes the case and returns the event, the endpoint whose
		// trace is checked, and what the trace's detail must say.
		setUp   func(t *testing.T, st *outbox.Store) (id int64, endpointID string, detail []string)
		matched bool
		reason  string
		held    bool
	}{
		{"event type not subscribed", func(t *testing.T, st *outbox.Store) (int64, string, []string) {
			e := createEndpoint(t, st, outbox.EndpointInput{Tenant: "acme", EventTypes: []string{"campaign.ended"}})
			id := enqueueOne(t, st, signup)
			dispatchAll(t, st)
			return id, e.ID, []string{"campaign.ended"}
		}, false, outbox.TraceTypeNotSubscribed, false},
		{"endpoint disabled since", func(t *testing.T, st *outbox.Store) (int64, string, []string) {
			e := createEndpoint(t, st, outbox.EndpointInput{Tenant: "acme"})
			if _, err := st.DisableEndpoint(ctx, e.ID, "failing for 5 days"); err != nil {
				t.Fatal(err)
			}
			id := enqueueOne(t, st, signup)
			dispatchAll(t, st)
			return id, e.ID, []string{"disabled since", "failing for 5 days"}
		}, true, outbox.TraceDisabled, true},
		{"endpoint created after the event", func(t *testing.T, st *outbox.Store) (int64, string, []string) {
			id := enqueueOne(t, st, signup)
			dispatchAll(t, st)
			return id, createEndpoint(t, st, outbox.EndpointInput{Tenant: "acme"}).ID, []string{"backfill"}
		}, false, outbox.TraceCreatedAfter, false},
		{"targeted at another endpoint", func(t *testing.T, st *outbox.Store) (int64, string, []string) {
			target := createEndpoint(t, st, outbox.EndpointInput{Tenant: "acme"})
			other := createEndpoint(t, st, outbox.EndpointInput{Tenant: "acme"})
			targeted := signup
			targeted.EndpointID = target.ID
			id := enqueueOne(t, st, targeted)
			dispatchAll(t, st)
			if te := traceOf(t, st, id, target.ID); !te.Matched || te.Reason != "" {
				t.Errorf("the target's trace = %+v", te)
			}
			return id, other.ID, []string{target.ID}
		}, false, outbox.TraceTargetedElsewhere, false},
		{"not fanned out yet", func(t *testing.T, st *outbox.Store) (int64, string, []string) {
			e := createEndpoint(t, st, outbox.EndpointInput{Tenant: "acme"})
			id := enqueueOne(t, st, signup)
			if _, err := st.ReplayEvent(ctx, id, ""); !errors.Is(err, outbox.ErrNotDispatched) {
				t.Errorf("ReplayEvent before the fan-out = %v, want ErrNotDispatched", err)
			}
			return id, e.ID, nil
		}, false, outbox.TraceNotDispatched, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			st := outboxtest.Store(t)
			id, endpointID, detail := c.setUp(t, st)
			te := traceOf(t, st, id, endpointID)
			held := te.Delivery != nil && te.Delivery.Held
			if te.Matched != c.matched || te.Reason != c.reason || held != c.held {
				t.Errorf("trace = %+v, want matched %v, reason %q, held %v", te, c.matched, c.reason, c.held)
			}
			for _, d := range detail {
				if !strings.Contains(te.Detail, d) {
					t.Errorf("trace detail %q lacks %q", te.Detail, d)
				}
			}
		})
	}
}

// TestReplayKeepsKeyOrder: a replayed event of an ordering key goes out
// before the key's later deliveries that are still pending.
func TestReplayKeepsKeyOrder(t *testing.T) {
	t.Parallel()
	f := newOrderingFixture(t, outbox.OrderingSkip)
	f.enqueue("k", "1", "2")
	leased := f.dispatch()
	expect(t, "fan-out", f.labels(leased), "1")
	f.finish(leased[0], outbox.StateDelivered)
	// 2 is due now; replay 1 before 2 is claimed.
	var first int64
	for id, l := range f.ids {
		if l == "1" {
			first = id
		}
	}
	res, err := f.st.ReplayEvent(context.Background(), first, "")
	if err != nil || len(res.Deliveries) != 1 || res.Deliveries[0].State != outbox.StatePending || res.Deliveries[0].Attempts != 0 {
		t.Fatalf("replay = %+v, %v", res, err)
	}
	c := f.claim()
	expect(t, "claim after the replay", f.labels(c), "1")
	if c[0].Attempts != 0 {
		t.Errorf("the replayed delivery claims with %d attempts, want a new series (0)", c[0].Attempts)
	}
	expect(t, "claim while the replay is in flight", f.labels(f.claim()))
	f.finish(c[0], outbox.StateDelivered)
	expect(t, "claim after the replay finished", f.labels(f.claim()), "2")
}

// TestReplayToNamedEndpoint creates the delivery an endpoint never had,
// and refuses an endpoint that would not receive the event.
func TestReplayToNamedEndpoint(t *testing.T) {
	ctx, st := parallelStore(t)
	id := enqueueOne(t, st, outbox.Event{Type: "signup.created", Tenant: "acme"})
	dispatchAll(t, st)
	late := createEndpoint(t, st, outbox.EndpointInput{Tenant: "acme"})
	res, err := st.ReplayEvent(ctx, id, late.ID)
	if err != nil || len(res.Deliveries) != 1 || res.Deliveries[0].EndpointID != late.ID || res.Deliveries[0].State != outbox.StatePending {
		t.Fatalf("replay to a late endpoint = %+v, %v", res, err)
	}
	picky := createEndpoint(t, st, outbox.EndpointInput{Tenant: "acme", EventTypes: []string{"campaign.ended"}})
	var fe *outbox.FieldError
	if _, err := st.ReplayEvent(ctx, id, picky.ID); !errors.As(err, &fe) || !strings.Contains(fe.Reason, "not subscribed") {
		t.Errorf("replay to an unsubscribed endpoint = %v", err)
	}
	other := createEndpoint(t, st, outbox.EndpointInput{Tenant: "other"})
	if _, err := st.ReplayEvent(ctx, id, other.ID); !errors.As(err, &fe) || fe.Field != "endpoint_id" {
		t.Errorf("replay to another tenant's endpoint = %v", err)
	}
}

// TestBackfillOnce sends a tenant's past events once, within the
// endpoint's subscription and the range.
func TestBackfillOnce(t *testing.T) {
	ctx, st := parallelStore(t)
	since := time.Now().Add(-time.Minute)
	for _, ev := range []outbox.Event{
		{Type: "signup.created", Tenant: "acme"}, {Type: "signup.created", Tenant: "acme", OrderingKey: "k"},
		{Type: "signup.created", Tenant: "acme", OrderingKey: "k"}, {Type: "campaign.ended", Tenant: "acme"},
		{Type: "signup.created", Tenant: "other"},
	} {
		enqueueOne(t, st, ev)
	}
	dispatchAll(t, st)
	e := createEndpoint(t, st, outbox.EndpointInput{Tenant: "acme", EventTypes: []string{"signup.created"}})
	res, err := st.Backfill(ctx, e.ID, outbox.BackfillInput{Since: since})
	if err != nil || res.Matched != 3 || res.Created != 3 {
		t.Fatalf("backfill = %+v, %v; want 3 of 3", res, err)
	}
	res, err = st.Backfill(ctx, e.ID, outbox.BackfillInput{Since: since})
	if err != nil || res.Created != 0 {
		t.Fatalf("second backfill = %+v, %v; want nothing created", res, err)
	}
	// Keyed: only the first of the key is due.
	var due, waiting int
	if err := st.Pool().QueryRow(ctx, outboxtest.SQL(st.Schema(), `SELECT count(*) FILTER (WHERE next_attempt_at <> 'infinity'), count(*) FILTER (WHERE next_attempt_at = 'infinity')
  FROM {{schema}}.deliveries`)).Scan(&due, &waiting); err != nil || due != 2 || waiting != 1 {
		t.Errorf("backfilled deliveries: %d due, %d waiting (%v); want 2 and 1", due, waiting, err)
	}
	if res, err := st.Backfill(ctx, e.ID, outbox.BackfillInput{Since: since.Add(-time.Hour), Until: &since}); err != nil || res.Matched != 0 {
		t.Errorf("backfill of an empty range = %+v, %v", res, err)
	}
}
