package outbox_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
)

// orderingFixture is a store with one endpoint and helpers to drive the
// fan-out, claims and outcomes by hand.
type orderingFixture struct {
	t   *testing.T
	st  *outbox.Store
	ep  outbox.Endpoint
	ids map[int64]string // event id → its payload label
}

func newOrderingFixture(t *testing.T, onDead string) *orderingFixture {
	st := outboxtest.Store(t)
	ep, err := st.CreateEndpoint(context.Background(), outbox.EndpointInput{URL: "https://a.test", Secret: plainSecret, OrderingOnDead: onDead}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return &orderingFixture{t: t, st: st, ep: ep, ids: map[int64]string{}}
}

// enqueue writes events labelled by their payload's "n", with key ("" for
// none).
func (f *orderingFixture) enqueue(key string, labels ...string) {
	f.t.Helper()
	for _, l := range labels {
		res, err := outbox.Enqueue(context.Background(), f.st.Pool(), outbox.Event{Type: "t", OrderingKey: key,
			Payload: []byte(`{"n":"` + l + `"}`)}, outbox.Options{Schema: f.st.Schema()})
		if err != nil {
			f.t.Fatal(err)
		}
		f.ids[res.ID] = l
	}
}

func (f *orderingFixture) labels(cs []outbox.Claimed) []string {
	var out []string
	for _, c := range cs {
		out = append(out, f.ids[c.EventID])
	}
	slices.Sort(out)
	return out
}

func (f *orderingFixture) dispatch() []outbox.Claimed {
	f.t.Helper()
	d, err := f.st.DispatchClaim(context.Background(), 100, outbox.ClaimParams{Limit: 100, Lease: time.Minute, PerEndpoint: 100})
	if err != nil {
		f.t.Fatal(err)
	}
	return d.Claimed
}

func (f *orderingFixture) claim() []outbox.Claimed {
	f.t.Helper()
	cs, err := f.st.Claim(context.Background(), outbox.ClaimParams{Limit: 100, Lease: time.Minute, PerEndpoint: 100})
	if err != nil {
		f.t.Fatal(err)
	}
	return cs
}

func (f *orderingFixture) finish(c outbox.Claimed, state string) outbox.Completed {
	f.t.Helper()
	o := outbox.Outcome{DeliveryID: c.DeliveryID, LeaseToken: c.LeaseToken, EventID: c.EventID, EndpointID: c.EndpointID,
		Attempt: c.Attempts + 1, State: state, StartedAt: time.Now(), Result: state}
	if state == outbox.StatePending {
		o.NextAttemptAt = time.Now() // due again at once
	}
	done, err := f.st.Complete(context.Background(), []outbox.Outcome{o})
	if err != nil || len(done.Applied) != 1 {
		f.t.Fatalf("complete %v as %s: %+v, %v", f.ids[c.EventID], state, done, err)
	}
	return done
}

func byLabel(f *orderingFixture, cs []outbox.Claimed, label string) outbox.Claimed {
	f.t.Helper()
	for _, c := range cs {
		if f.ids[c.EventID] == label {
			return c
		}
	}
	f.t.Fatalf("%s not among the claimed %v", label, f.labels(cs))
	return outbox.Claimed{}
}

func expect(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	if got == nil {
		got = []string{}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s: %v, want %v", what, got, want)
	}
}

// TestOrderingOnlyTheHeadIsDue checks what the fan-out, the claim and the
// outcomes lease for keyed events: one delivery per (endpoint, key) at a
// time, in event order, a retry holding the next back, and a dead head
// letting it go (skip).
func TestOrderingOnlyTheHeadIsDue(t *testing.T) {
	f := newOrderingFixture(t, "")
	f.enqueue("k", "k1", "k2", "k3")
	f.enqueue("l", "l1")
	f.enqueue("", "u1", "u2")
	first := f.dispatch()
	expect(t, "first fan-out leased", f.labels(first), "k1", "l1", "u1", "u2")
	if c := byLabel(f, first, "k1"); c.OrderingKey != "k" {
		t.Fatalf("claimed k1 carries ordering key %q", c.OrderingKey)
	}
	expect(t, "claim while k1 is in flight", f.labels(f.claim()))

	// A later event of the key waits behind the unfinished ones.
	f.enqueue("k", "k4")
	expect(t, "fan-out of k4 behind k1..k3", f.labels(f.dispatch()))

	if done := f.finish(byLabel(f, first, "k1"), outbox.StateDelivered); done.Released != 1 {
		t.Fatalf("k1 delivered released %d, want 1", done.Released)
	}
	next := f.claim()
	expect(t, "after k1", f.labels(next), "k2")
	// A retry of k2 holds k3 back.
	if done := f.finish(next[0], outbox.StatePending); done.Released != 0 {
		t.Fatalf("k2 to retry released %d", done.Released)
	}
	next = f.claim()
	expect(t, "while k2 retries", f.labels(next), "k2")
	// k2 dies: with skip, k3 goes.
	f.finish(next[0], outbox.StateDead)
	expect(t, "after k2 died (skip)", f.labels(f.claim()), "k3")
}

// TestOrderingBlockOnDead checks that with ordering_on_dead=block a dead
// head holds its key until it is cancelled (or retried), and other keys go
// on.
func TestOrderingBlockOnDead(t *testing.T) {
	f := newOrderingFixture(t, outbox.OrderingBlock)
	if f.ep.OrderingOnDead != outbox.OrderingBlock {
		t.Fatalf("endpoint ordering_on_dead %q", f.ep.OrderingOnDead)
	}
	f.enqueue("k", "k1", "k2")
	f.enqueue("l", "l1", "l2")
	first := f.dispatch()
	expect(t, "first fan-out", f.labels(first), "k1", "l1")
	if done := f.finish(byLabel(f, first, "k1"), outbox.StateDead); done.Released != 0 {
		t.Fatalf("dead head of a blocking endpoint released %d", done.Released)
	}
	f.finish(byLabel(f, first, "l1"), outbox.StateDelivered)
	expect(t, "k blocked, l goes on", f.labels(f.claim()), "l2")
	blocked, err := f.st.BlockedKeys(context.Background(), f.ep.ID)
	if err != nil || len(blocked) != 1 || blocked[0].OrderingKey != "k" || blocked[0].DeliveryID != byLabel(f, first, "k1").DeliveryID {
		t.Fatalf("blocked keys %+v (%v), want k held by k1", blocked, err)
	}
	if q, err := f.st.QueueStats(context.Background()); err != nil || q.BlockedKeys != 1 {
		t.Fatalf("queue stats blocked keys %d (%v), want 1", q.BlockedKeys, err)
	}
	d, err := f.st.CancelDelivery(context.Background(), byLabel(f, first, "k1").DeliveryID)
	if err != nil || d.State != outbox.StateCancelled {
		t.Fatalf("cancel k1: %+v, %v", d, err)
	}
	expect(t, "after k1 was cancelled", f.labels(f.claim()), "k2")
	if blocked, err := f.st.BlockedKeys(context.Background(), f.ep.ID); err != nil || len(blocked) != 0 {
		t.Fatalf("blocked keys after the cancel: %+v (%v)", blocked, err)
	}
	var se *outbox.StateError
	if _, err := f.st.CancelDelivery(context.Background(), byLabel(f, first, "l1").DeliveryID); !errors.As(err, &se) {
		t.Fatalf("cancel a delivered delivery: %v, want a StateError", err)
	}
}

// TestOrderingSurvivesDisableAndEnable checks that enabling an endpoint
// makes due only the heads of its keys.
func TestOrderingSurvivesDisableAndEnable(t *testing.T) {
	f := newOrderingFixture(t, "")
	ctx := context.Background()
	if _, err := f.st.DisableEndpoint(ctx, f.ep.ID, "test"); err != nil {
		t.Fatal(err)
	}
	f.enqueue("k", "k1", "k2", "k3")
	f.enqueue("", "u1")
	expect(t, "fan-out to a disabled endpoint", f.labels(f.dispatch()))
	on := true
	if _, err := f.st.UpdateEndpoint(ctx, f.ep.ID, outbox.EndpointPatch{Enabled: &on}); err != nil {
		t.Fatal(err)
	}
	got := f.claim()
	expect(t, "after enabling", f.labels(got), "k1", "u1")
	var due int
	if err := f.st.Pool().QueryRow(ctx, outboxtest.SQL(f.st.Schema(), `SELECT count(*) FROM {{schema}}.deliveries WHERE state = 'pending' AND next_attempt_at <> 'infinity'`)).Scan(&due); err != nil || due != 0 {
		t.Fatalf("%d deliveries due while k1 is in flight (%v), want 0: k2 and k3 wait", due, err)
	}
}

func TestOrderingKeyValidated(t *testing.T) {
	st := outboxtest.Store(t)
	long := string(make([]byte, outbox.MaxOrderingKeyLen+1))
	_, err := outbox.Enqueue(context.Background(), st.Pool(), outbox.Event{Type: "t", Payload: []byte(`{}`), OrderingKey: long},
		outbox.Options{Schema: st.Schema()})
	var ve *outbox.ValidationError
	if !errors.As(err, &ve) || ve.Field != "ordering_key" {
		t.Fatalf("enqueue with a %d-byte key: %v, want a validation error on ordering_key", len(long), err)
	}
	if _, err := st.Pool().Exec(context.Background(), outboxtest.SQL(st.Schema(), `INSERT INTO {{schema}}.outbox (event_type, payload, ordering_key) VALUES ('t', '{}', repeat('k', 256))`)); err == nil {
		t.Fatal("plain SQL accepted a 256-byte ordering key")
	}
}

// TestOrderingWaitsForAnotherRelaysFanOut checks the fan-out of two relays
// at once: while one holds the first events of a key (here a transaction
// that has locked them, as a fan-out does), the other leaves the key's
// later events undispatched rather than numbering their deliveries first,
// and fans out everything else; once the first is done, the key's events
// get deliveries in event order with only the first one due.
func TestOrderingWaitsForAnotherRelaysFanOut(t *testing.T) {
	ctx := context.Background()
	f := newOrderingFixture(t, "")
	f.enqueue("k", "k1")
	f.enqueue("l", "l1")
	f.enqueue("k", "k2")
	f.enqueue("", "u1")
	f.enqueue("k", "k3")
	var k1 int64
	for id, l := range f.ids {
		if l == "k1" {
			k1 = id
		}
	}
	other, err := f.st.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback(ctx)
	if _, err := other.Exec(ctx, outboxtest.SQL(f.st.Schema(), `SELECT id FROM {{schema}}.outbox WHERE id = $1 FOR UPDATE`), k1); err != nil {
		t.Fatal(err)
	}
	d, err := f.st.DispatchClaim(ctx, 100, outbox.ClaimParams{Limit: 100, Lease: time.Minute, PerEndpoint: 100})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "fan-out while another relay holds k1", f.labels(d.Claimed), "l1", "u1")
	if d.Events != 2 || d.KeyWaits != 2 {
		t.Fatalf("fan-out while k1 is held: %d events, %d key waits; want 2 and 2 (k2, k3)", d.Events, d.KeyWaits)
	}
	if err := other.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	d, err = f.st.DispatchClaim(ctx, 100, outbox.ClaimParams{Limit: 100, Lease: time.Minute, PerEndpoint: 100})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "fan-out after k1 is free", f.labels(d.Claimed), "k1")
	if d.Events != 3 || d.KeyWaits != 0 {
		t.Fatalf("fan-out after k1 is free: %d events, %d key waits; want 3 and 0", d.Events, d.KeyWaits)
	}
	rows, err := f.st.Pool().Query(ctx, outboxtest.SQL(f.st.Schema(), `SELECT event_id FROM {{schema}}.deliveries WHERE ordering_key = 'k' ORDER BY id`))
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, id := range ids {
		order = append(order, f.ids[id])
	}
	if !slices.Equal(order, []string{"k1", "k2", "k3"}) {
		t.Fatalf("deliveries of key k numbered in the order %v, want k1 k2 k3", order)
	}
	expect(t, "claim while k1 is in flight", f.labels(f.claim()))
}
