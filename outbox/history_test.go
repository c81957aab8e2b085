package outbox_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
)

// TestListDeliveriesFilters checks each filter and that paging a tenant's
// list (merged from its endpoints) visits every delivery once, newest
// first.
func TestListDeliveriesFilters(t *testing.T) {
	ctx, st := parallelStore(t)
	a1 := createEndpoint(t, st, outbox.EndpointInput{Tenant: "a"})
	a2 := createEndpoint(t, st, outbox.EndpointInput{Tenant: "a"})
	createEndpoint(t, st, outbox.EndpointInput{Tenant: "b"})
	for i := range 30 {
		typ := "signup.created"
		if i%3 == 0 {
			typ = "campaign.ended"
		}
		enqueueOne(t, st, outbox.Event{Type: typ, Tenant: "a"})
		enqueueOne(t, st, outbox.Event{Type: typ, Tenant: "b"})
	}
	dispatchAll(t, st)
	// Spread creation over 60 minutes, newest with the highest id; make
	// every 5th dead.
	if _, err := st.Pool().Exec(ctx, outboxtest.SQL(st.Schema(), `UPDATE {{schema}}.deliveries
   SET created_at = now() - make_interval(mins => (200 - id)::int),
       state = CASE WHEN id % 5 = 0 THEN 'dead' ELSE 'delivered' END, finished_at = now()`)); err != nil {
		t.Fatal(err)
	}
	all, _, err := st.ListDeliveries(ctx, outbox.DeliveryFilter{Limit: 500})
	if err != nil || len(all) != 90 {
		t.Fatalf("all deliveries: %d, %v; want 90", len(all), err)
	}
	for i := 1; i < len(all); i++ {
		if all[i].CreatedAt.After(all[i-1].CreatedAt) {
			t.Fatalf("not newest first at %d", i)
		}
	}
	scoped := st.ForTenant("a")
	// Page through tenant a's deliveries 7 at a time.
	var paged []int64
	f := outbox.DeliveryFilter{Limit: 7}
	for {
		page, next, err := scoped.ListDeliveries(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range page {
			paged = append(paged, d.ID)
		}
		if next == "" {
			break
		}
		f.After = next
	}
	var want []int64
	for _, d := range all {
		if d.Tenant == "a" {
			want = append(want, d.ID)
		}
	}
	if !slices.Equal(paged, want) {
		t.Fatalf("tenant a paged: %v\nwant %v", paged, want)
	}

	count := func(st *outbox.Store, f outbox.DeliveryFilter, check func(outbox.Delivery) bool) int {
		t.Helper()
		f.Limit = 500
		ds, _, err := st.ListDeliveries(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if !check(d) {
				t.Fatalf("%+v does not match the filter", d)
			}
		}
		return len(ds)
	}
	dead, typ := "dead", "campaign.ended"
	since, until := time.Now().Add(-150*time.Minute), time.Now().Add(-120*time.Minute)
	for _, tc := range []struct {
		name  string
		st    *outbox.Store
		f     outbox.DeliveryFilter
		check func(outbox.Delivery) bool
	}{
		{"state", st, outbox.DeliveryFilter{State: &dead}, func(d outbox.Delivery) bool { return d.State == dead }},
		{"tenant state", scoped, outbox.DeliveryFilter{State: &dead}, func(d outbox.Delivery) bool { return d.State == dead && d.Tenant == "a" }},
		{"type", st, outbox.DeliveryFilter{EventType: &typ}, func(d outbox.Delivery) bool { return d.EventType == typ }},
		{"endpoint", st, outbox.DeliveryFilter{EndpointID: &a2.ID}, func(d outbox.Delivery) bool { return d.EndpointID == a2.ID }},
		{"tenant endpoint type", scoped, outbox.DeliveryFilter{EndpointID: &a1.ID, EventType: &typ},
			func(d outbox.Delivery) bool { return d.EndpointID == a1.ID && d.EventType == typ }},
		{"range", st, outbox.DeliveryFilter{Since: &since, Until: &until},
			func(d outbox.Delivery) bool { return !d.CreatedAt.Before(since) && d.CreatedAt.Before(until) }},
		{"tenant range", scoped, outbox.DeliveryFilter{Since: &since, Until: &until},
			func(d outbox.Delivery) bool {
				return !d.CreatedAt.Before(since) && d.CreatedAt.Before(until) && d.Tenant == "a"
			}},
	} {
		n := count(tc.st, tc.f, tc.check)
		var expected int
		for _, d := range all {
			if tc.check(d) && (tc.st == st || d.Tenant == "a") {
				expected++
			}
		}
		if n != expected || n == 0 {
			t.Errorf("%s: %d deliveries, want %d (and some)", tc.name, n, expected)
		}
	}
	bad := "lost"
	var fe *outbox.FieldError
	if _, _, err := st.ListDeliveries(ctx, outbox.DeliveryFilter{State: &bad}); !errors.As(err, &fe) || fe.Field != "state" {
		t.Errorf("bad state: %v", err)
	}
	if _, _, err := st.ListDeliveries(ctx, outbox.DeliveryFilter{After: "nope"}); !errors.Is(err, outbox.ErrBadCursor) {
		t.Errorf("bad cursor: %v", err)
	}

	// Attempts: by tenant, failed only.
	failed := outbox.AttemptsFailed
	if _, err := st.Pool().Exec(ctx, outboxtest.SQL(st.Schema(), `INSERT INTO {{schema}}.attempts
    (delivery_id, event_id, endpoint_id, attempt, started_at, duration_ms, outcome)
SELECT id, event_id, endpoint_id, 1, created_at, 5, CASE WHEN state = 'dead' THEN 'dead' ELSE 'delivered' END
  FROM {{schema}}.deliveries`)); err != nil {
		t.Fatal(err)
	}
	as, _, err := scoped.ListAttemptsFiltered(ctx, outbox.AttemptFilter{Outcome: &failed, Limit: 500})
	if err != nil || len(as) != count(scoped, outbox.DeliveryFilter{State: &dead}, func(outbox.Delivery) bool { return true }) {
		t.Errorf("tenant a's failed attempts: %d, %v", len(as), err)
	}
	for _, a := range as {
		if a.Outcome == "delivered" || (a.EndpointID != a1.ID && a.EndpointID != a2.ID) {
			t.Fatalf("attempt %+v does not match", a)
		}
	}
	if _, _, err := st.ListAttemptsFiltered(ctx, outbox.AttemptFilter{}); !errors.As(err, &fe) {
		t.Errorf("an unscoped attempt list without endpoint, delivery or tenant: %v, want a field error", err)
	}
}
