package outbox_test

import (
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
)

// TestCompleteKeepsEndpointHealth checks the endpoint counters Complete
// keeps: a failure is written at once and a success ends the streak at
// once, but a success after a recent one leaves last_success_at as it is
// (relays completing batches for one endpoint would otherwise all queue on
// its row lock), and one after a second rewrites it.
func TestCompleteKeepsEndpointHealth(t *testing.T) {
	ctx, st := parallelStore(t)
	ep := createEndpoint(t, st, outbox.EndpointInput{})
	complete := func(state string) {
		t.Helper()
		enqueueOne(t, st, outbox.Event{Type: "signup.created"})
		d, err := st.DispatchClaim(ctx, 10, outbox.ClaimParams{Limit: 10, Lease: time.Minute, PerEndpoint: 10})
		if err != nil || len(d.Claimed) != 1 {
			t.Fatalf("dispatch: %+v, %v", d, err)
		}
		c := d.Claimed[0]
		o := outbox.Outcome{DeliveryID: c.DeliveryID, LeaseToken: c.LeaseToken, EventID: c.EventID, EndpointID: c.EndpointID,
			Attempt: 1, State: state, StartedAt: time.Now(), StatusCode: 200, Result: "delivered"}
		if state != outbox.StateDelivered {
			o.StatusCode, o.Result, o.ErrorClass, o.Error = 500, "retry", "http_status", "HTTP 500"
			o.NextAttemptAt = time.Now().Add(time.Hour)
		}
		if _, err := st.Complete(ctx, []outbox.Outcome{o}); err != nil {
			t.Fatal(err)
		}
	}
	get := func() outbox.Endpoint {
		t.Helper()
		e, err := st.GetEndpoint(ctx, ep.ID)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	// setLastSuccess stores a last_success_at of now() plus offset.
	setLastSuccess := func(offset string) time.Time {
		t.Helper()
		var at time.Time
		if err := st.Pool().QueryRow(ctx, outboxtest.SQL(st.Schema(),
			`UPDATE {{schema}}.endpoints SET last_success_at = now() + $2::interval WHERE id = $1 RETURNING last_success_at`),
			ep.ID, offset).Scan(&at); err != nil {
			t.Fatal(err)
		}
		return at
	}
	same := func(got *time.Time, want time.Time) bool { return got != nil && got.Equal(want) }

	complete(outbox.StateDelivered)
	if e := get(); e.LastSuccessAt == nil || e.ConsecutiveFailures != 0 {
		t.Fatalf("after a success: last_success_at %v, %d failures; want set, 0", e.LastSuccessAt, e.ConsecutiveFailures)
	}

	// A success recorded less than a second ago (here: stamped ahead) stays.
	recent := setLastSuccess("1 hour")
	complete(outbox.StateDelivered)
	if e := get(); !same(e.LastSuccessAt, recent) {
		t.Errorf("a success after a recent one rewrote last_success_at: %v, want %v", e.LastSuccessAt, recent)
	}

	// One older than a second is rewritten.
	old := setLastSuccess("-2 seconds")
	complete(outbox.StateDelivered)
	if e := get(); e.LastSuccessAt == nil || !e.LastSuccessAt.After(old) {
		t.Errorf("a success a second after the last one left last_success_at at %v, want after %v", e.LastSuccessAt, old)
	}

	// A failure is counted at once, however recent the last success.
	recent = setLastSuccess("1 hour")
	complete(outbox.StatePending)
	e := get()
	if e.ConsecutiveFailures != 1 || e.LastFailureAt == nil || !same(e.LastSuccessAt, recent) {
		t.Fatalf("after a failure: %d failures, last_failure_at %v, last_success_at %v; want 1, set, %v",
			e.ConsecutiveFailures, e.LastFailureAt, e.LastSuccessAt, recent)
	}

	// The success that ends the streak is written at once too.
	complete(outbox.StateDelivered)
	if e := get(); e.ConsecutiveFailures != 0 || same(e.LastSuccessAt, recent) {
		t.Errorf("a success after a failure: %d failures, last_success_at %v; want 0 and rewritten", e.ConsecutiveFailures, e.LastSuccessAt)
	}
}
