package outbox_test

import (
	"slices"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/outbox"
)

func TestDispatchClaimLeasesWithinRoom(t *testing.T) {
	ctx, st := parallelStore(t)
	in := outbox.EndpointInput{URL: "https://a.test"}
	known, unknown, off := createEndpoint(t, st, in), createEndpoint(t, st, in), createEndpoint(t, st, in)
	if _, err := st.DisableEndpoint(ctx, off.ID, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, `INSERT INTO "`+st.Schema()+`".outbox (event_type, payload)
		SELECT 'signup.created', jsonb_build_object('n', g) FROM generate_series(1, 10) g`); err != nil {
		t.Fatal(err)
	}
	// known: room for 4; unknown: its cap, 3; off: disabled, held.
	d, err := st.DispatchClaim(ctx, 8, outbox.ClaimParams{
		Limit: 100, Lease: time.Minute, PerEndpoint: 3, Room: map[string]int{known.ID: 4},
	})
	if err != nil {
		t.Fatal(err)
	}
	if d.Events != 8 || d.Deliveries != 24 {
		t.Fatalf("fanned out %d events into %d deliveries, want 8 into 24", d.Events, d.Deliveries)
	}
	// Left pending for want of room: known and unknown (the disabled one
	// is held, not waiting); none cut by the overall limit.
	slices.Sort(d.Waiting)
	want := []string{known.ID, unknown.ID}
	slices.Sort(want)
	if !slices.Equal(d.Waiting, want) || d.Cut != 0 {
		t.Fatalf("waiting %v cut %d, want %v and 0", d.Waiting, d.Cut, want)
	}
	per := map[string]int{}
	for _, c := range d.Claimed {
		per[c.EndpointID]++
		if c.LeaseToken == 0 || c.Payload == nil || c.URL != "https://a.test" || len(c.Secrets) != 1 || c.WebhookID == "" {
			t.Fatalf("claimed delivery incomplete: %+v", c)
		}
	}
	if per[known.ID] != 4 || per[unknown.ID] != 3 || per[off.ID] != 0 {
		t.Fatalf("claimed per endpoint %v, want 4 for the known one, 3 for the unknown one, none held", per)
	}
	q, err := st.QueueStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if q.InFlight != 7 || q.Undispatched != 2 {
		t.Fatalf("after the fan-out: %+v, want 7 in flight and 2 events left", q)
	}

	// A global limit of 2 leases 2; no room leases none.
	d, err = st.DispatchClaim(ctx, 1, outbox.ClaimParams{Limit: 2, Lease: time.Minute, PerEndpoint: 3})
	if err != nil || len(d.Claimed) != 2 || d.Events != 1 || d.Cut != 0 {
		t.Fatalf("limit 2: %d claimed of %d events, %d cut (%v)", len(d.Claimed), d.Events, d.Cut, err)
	}
	d, err = st.DispatchClaim(ctx, 1, outbox.ClaimParams{Lease: time.Minute, PerEndpoint: 3})
	if err != nil || len(d.Claimed) != 0 || d.Events != 1 || d.Deliveries != 3 || d.Cut != 2 {
		t.Fatalf("no overall room: %d claimed, %d events, %d deliveries, %d cut (%v)", len(d.Claimed), d.Events, d.Deliveries, d.Cut, err)
	}
	// Nothing left: an empty fan-out.
	d, err = st.DispatchClaim(ctx, 8, outbox.ClaimParams{Limit: 100, Lease: time.Minute, PerEndpoint: 3})
	if err != nil || d.Events != 0 || d.Deliveries != 0 || len(d.Claimed) != 0 {
		t.Fatalf("empty outbox: %+v (%v)", d, err)
	}
}
