package outbox_test

import (
	"context"
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

// TestFailedListReadsOnlyItsPage checks that the list of one failed state
// across all endpoints reads about a page of index entries, not the
// deliveries of other states that are newer: here 20k delivered ones,
// newer than every dead and cancelled one.
func TestFailedListReadsOnlyItsPage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, schema, st := sessionStore(t, nil) // one session: its statistics are flushed below
	ep := createEndpoint(t, st, outbox.EndpointInput{})
	// 2,000 dead and 2,000 cancelled deliveries, alternating, an hour ago;
	// then 20k delivered ones. (With far fewer failed ones PostgreSQL
	// sorts them all, which the older partial index per endpoint allows.)
	for _, q := range []string{`WITH o AS (
    INSERT INTO {{schema}}.outbox (event_type, payload, dispatched_at, delivery_count)
    SELECT 'list.test', jsonb_build_object('n', g), now(), 1 FROM generate_series(1, 4000) g RETURNING id)
INSERT INTO {{schema}}.deliveries (event_id, endpoint_id, state, attempts, created_at, finished_at)
SELECT id, $1, CASE WHEN id % 2 = 0 THEN 'dead' ELSE 'cancelled' END, 1,
       now() - interval '2 hours' + id * interval '1 second', now() FROM o`,
		`WITH o AS (
    INSERT INTO {{schema}}.outbox (event_type, payload, dispatched_at, delivery_count)
    SELECT 'list.test', '{}', now(), 1 FROM generate_series(1, 20000) RETURNING id)
INSERT INTO {{schema}}.deliveries (event_id, endpoint_id, state, attempts, finished_at)
SELECT id, $1, 'delivered', 1, now() FROM o`,
	} {
		seed(t, pool, schema, q, ep.ID)
	}
	analyze(t, pool, schema, "deliveries")
	entriesRead := func() int64 { return indexEntriesRead(t, pool, schema, "deliveries") }
	for _, state := range []string{outbox.StateDead, outbox.StateCancelled} {
		before := entriesRead()
		page, next, err := st.ListDeliveries(ctx, outbox.DeliveryFilter{State: &state, Limit: 50})
		read := entriesRead() - before
		if err != nil {
			t.Fatal(err)
		}
		if len(page) != 50 || next == "" {
			t.Fatalf("%s list: %d deliveries, next %q; want a page of 50 and a cursor", state, len(page), next)
		}
		for i, d := range page {
			if d.State != state || (i > 0 && !page[i-1].CreatedAt.After(d.CreatedAt)) {
				t.Fatalf("%s list: delivery %d is %s, created %v after %v; want %s ones, newest first", state, i, d.State, d.CreatedAt, page[max(i-1, 0)].CreatedAt, state)
			}
		}
		// A page of 51 and its rows read back by id: about 100 entries.
		if read > 500 {
			t.Errorf("%s list read %d index entries of deliveries for a page of 50, want it to skip the 20k delivered ones", state, read)
		}
	}
}

// TestNewestListReadsItsPageByIndex checks that a page of the newest
// deliveries reads its rows and their events by primary key, each event
// once. PostgreSQL hash-joined the page to a sequential scan of all
// deliveries (5,000 here: 0.7 ms of a 1.2 ms list), and the event's four
// columns were looked up one at a time.
func TestNewestListReadsItsPageByIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, schema, st := sessionStore(t, nil) // one session: its statistics are flushed below
	ep := createEndpoint(t, st, outbox.EndpointInput{})
	seed(t, pool, schema, `WITH o AS (
    INSERT INTO {{schema}}.outbox (event_type, payload, dispatched_at, delivery_count)
    SELECT 'list.test', jsonb_build_object('n', g), now(), 1 FROM generate_series(1, 5000) g RETURNING id)
INSERT INTO {{schema}}.deliveries (event_id, endpoint_id, state, attempts, created_at, finished_at, event_type)
SELECT id, $1, 'delivered', 1, now() - make_interval(secs => id), now(), 'list.test' FROM o`, ep.ID)
	analyze(t, pool, schema, "deliveries")
	analyze(t, pool, schema, "outbox")
	const calls, limit = 8, 50 // past the plan cache's five custom plans
	scans, events := seqScans(t, pool, schema, "deliveries", "outbox"), indexEntriesRead(t, pool, schema, "outbox")
	for range calls {
		page, _, err := st.ListDeliveries(ctx, outbox.DeliveryFilter{Limit: limit})
		if err != nil || len(page) != limit || page[0].EventType != "list.test" {
			t.Fatalf("a page of %d deliveries (%v), want %d of list.test", len(page), err, limit)
		}
	}
	if n := seqScans(t, pool, schema, "deliveries", "outbox") - scans; n != 0 {
		t.Errorf("%d lists scanned deliveries or the outbox sequentially %d times, want none", calls, n)
	}
	// A page reads limit+1 rows, to tell whether another follows, and
	// each row's event once: about 53 index entries a list, 204 when each
	// of the event's four columns was looked up on its own.
	if n := indexEntriesRead(t, pool, schema, "outbox") - events; n > 2*calls*(limit+1) {
		t.Errorf("%d lists read %d index entries of the outbox, want at most %d: each page's event once", calls, n, 2*calls*(limit+1))
	}
}

// TestTenantAttemptListReadsItsPagesEvents checks that a tenant's attempt
// list, merged from each of its endpoints' lists, looks up the events of
// the page it answers only: each endpoint's list is read to the page's
// length, and the events were looked up for all of those rows, twice.
func TestTenantAttemptListReadsItsPagesEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, schema, st := sessionStore(t, nil) // one session: its statistics are flushed below
	const endpoints, perEndpoint, limit = 5, 100, 50
	for range endpoints {
		ep := createEndpoint(t, st, outbox.EndpointInput{Tenant: "t1"})
		seed(t, pool, schema, `WITH o AS (
    INSERT INTO {{schema}}.outbox (event_type, tenant, payload, dispatched_at, delivery_count)
    SELECT 'list.test', 't1', '{}', now(), 1 FROM generate_series(1, $2) RETURNING id),
d AS (
    INSERT INTO {{schema}}.deliveries (event_id, endpoint_id, state, attempts, finished_at, event_type)
    SELECT id, $1, 'delivered', 1, now(), 'list.test' FROM o RETURNING id, event_id, endpoint_id)
INSERT INTO {{schema}}.attempts (delivery_id, event_id, endpoint_id, attempt, started_at, duration_ms, outcome)
SELECT id, event_id, endpoint_id, 1, now() - make_interval(secs => id), 5, 'delivered' FROM d`, ep.ID, perEndpoint)
	}
	tenant := "t1"
	before := indexEntriesRead(t, pool, schema, "outbox")
	page, _, err := st.ListAttemptsFiltered(ctx, outbox.AttemptFilter{Tenant: &tenant, Limit: limit})
	read := indexEntriesRead(t, pool, schema, "outbox") - before
	if err != nil || len(page) != limit {
		t.Fatalf("a page of %d attempts (%v), want %d", len(page), err, limit)
	}
	for i, a := range page {
		if a.EventType != "list.test" || a.Test || (i > 0 && page[i-1].StartedAt.Before(a.StartedAt)) {
			t.Fatalf("attempt %d: %+v, want one of list.test, not a test, newest first", i, a)
		}
	}
	// The tenant check reads the event of each attempt it considers (at
	// most all of the tenant's), and the page's limit+1 attempts their
	// events once more; an endpoint's list merged into the page read its
	// limit+1 attempts' events twice more (1,010 entries here).
	if most := int64(endpoints*perEndpoint + 2*(limit+1)); read > most {
		t.Errorf("the tenant's attempt list read %d index entries of the outbox, want at most %d: the page's events once each", read, most)
	}
}

// A list by event type reads each delivery's own copy of its event's type
// (schema version 8): walking 20k newer deliveries of another type reads
// no event. Deliveries written before that version have no copy and are
// found through their event.
func TestTypeListReadsTheDeliveryNotItsEvent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, schema, st := sessionStore(t, nil) // one session: its statistics are flushed below
	ep := createEndpoint(t, st, outbox.EndpointInput{})
	// 40 deliveries an hour old, as written before version 8.
	seed(t, pool, schema, `WITH o AS (
    INSERT INTO {{schema}}.outbox (event_type, payload, dispatched_at, delivery_count)
    SELECT 'list.match', jsonb_build_object('n', g), now(), 1 FROM generate_series(1, 40) g RETURNING id)
INSERT INTO {{schema}}.deliveries (event_id, endpoint_id, state, attempts, created_at, finished_at)
SELECT id, $1, 'delivered', 1, now() - interval '1 hour', now() FROM o`, ep.ID)
	// 30 fanned out by the relay, and 70 backfilled to an endpoint
	// created after them (the 40 and the 30).
	for range 30 {
		enqueueOne(t, st, outbox.Event{Type: "list.match"})
	}
	dispatchAll(t, st)
	late := createEndpoint(t, st, outbox.EndpointInput{})
	if res, err := st.Backfill(ctx, late.ID, outbox.BackfillInput{Since: time.Now().Add(-24 * time.Hour), EventTypes: []string{"list.match"}}); err != nil || res.Created != 70 {
		t.Fatalf("backfill: %+v, %v; want 70 created", res, err)
	}
	// 20k newer deliveries of another type, as the relay writes them.
	seed(t, pool, schema, `WITH o AS (
    INSERT INTO {{schema}}.outbox (event_type, payload, dispatched_at, delivery_count)
    SELECT 'list.other', '{}', now(), 1 FROM generate_series(1, 20000) RETURNING id)
INSERT INTO {{schema}}.deliveries (event_id, endpoint_id, state, attempts, created_at, finished_at, event_type)
SELECT id, $1, 'delivered', 1, now() + interval '1 hour', now(), 'list.other' FROM o`, ep.ID)
	analyze(t, pool, schema, "deliveries")
	eventsRead := func() int64 { return indexEntriesRead(t, pool, schema, "outbox") }
	typ := "list.match"
	var all []outbox.Delivery
	for after := ""; ; {
		before := eventsRead()
		page, next, err := st.ListDeliveries(ctx, outbox.DeliveryFilter{EventType: &typ, Limit: 50, After: after})
		read := eventsRead() - before
		if err != nil {
			t.Fatal(err)
		}
		// The first page is backfilled deliveries; its rows' own columns
		// (event type, webhook id, tenant, test) read 4 entries each.
		if after == "" && read > 500 {
			t.Errorf("first page read %d index entries of the outbox, want it to skip the 20k newer deliveries without reading their events", read)
		}
		all = append(all, page...)
		if next == "" {
			break
		}
		after = next
	}
	if len(all) != 140 {
		t.Fatalf("listed %d deliveries of list.match, want 140 (40 written before version 8, 30 fanned out, 70 backfilled)", len(all))
	}
	for i, d := range all {
		if d.EventType != typ || (i > 0 && all[i-1].CreatedAt.Before(d.CreatedAt)) {
			t.Fatalf("delivery %d is of type %q, created %v after %v; want list.match, newest first", i, d.EventType, d.CreatedAt, all[max(i-1, 0)].CreatedAt)
		}
	}
	var copied int
	if err := pool.QueryRow(ctx, outboxtest.SQL(schema, `SELECT count(*) FROM {{schema}}.deliveries WHERE event_type = 'list.match'`)).Scan(&copied); err != nil {
		t.Fatal(err)
	}
	if copied != 100 {
		t.Fatalf("%d deliveries carry list.match, want the 100 the fan-out and the backfill wrote", copied)
	}
}

// A list turns PostgreSQL's JIT off for its own transaction only: the
// session, which a transaction pooler may hand to anyone next, keeps its
// setting.
func TestListLeavesTheSessionsJITSetting(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _, st := sessionStore(t, map[string]string{"jit": "on"})
	createEndpoint(t, st, outbox.EndpointInput{})
	typ := "list.test"
	if _, _, err := st.ListDeliveries(ctx, outbox.DeliveryFilter{EventType: &typ}); err != nil {
		t.Fatal(err)
	}
	if eps, _, err := st.ListEndpoints(ctx, outbox.EndpointFilter{}); err != nil || len(eps) != 1 {
		t.Fatalf("endpoints %v, %v; want the one created", eps, err)
	}
	var jit string
	if err := pool.QueryRow(ctx, "SHOW jit").Scan(&jit); err != nil {
		t.Fatal(err)
	}
	if jit != "on" {
		t.Fatalf("the session's jit is %q after the lists, want its own setting, on", jit)
	}
}
