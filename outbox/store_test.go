package outbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
)

func TestEngineSettingsAreTransactionLocal(t *testing.T) {
	ctx := context.Background()
	// synchronous_commit and jit on (the test server's defaults may be
	// off), on the one session every query below runs on.
	pool := sessionPool(t, map[string]string{"synchronous_commit": "on", "jit": "on"})
	plain, err := outbox.NewStore(pool, outboxtest.NewSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	setting := func(st *outbox.Store, name string) string {
		t.Helper()
		rows, err := st.EngineQuery(ctx, "SELECT current_setting($1)", name)
		if err != nil {
			t.Fatal(err)
		}
		v, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if got := setting(plain.AsyncCommit(), "synchronous_commit"); got != "off" {
		t.Errorf("async store's statement ran with synchronous_commit %s, want off", got)
	}
	if got := setting(plain, "synchronous_commit"); got != "on" {
		t.Errorf("after an async statement the session has synchronous_commit %s, want on", got)
	}
	// JIT is off for engine statements (sync or not), and only for them.
	if got := setting(plain, "jit"); got != "off" {
		t.Errorf("engine statement ran with jit %s, want off", got)
	}
	var jit string
	if err := pool.QueryRow(ctx, "SELECT current_setting('jit')").Scan(&jit); err != nil || jit != "on" {
		t.Errorf("after an engine statement the session has jit %q (%v), want on", jit, err)
	}
}

// TestEngineStatementsKeepToIndexes checks that the fan-out, the claim and
// the outcome statement find their rows through indexes once the tables
// have grown, after many calls on small ones. PostgreSQL switches a prepared statement
// to a generic plan after five calls when it costs no more than the custom
// ones so far; made while deliveries was small, that plan read it
// sequentially, and kept doing so as it grew.
func TestEngineStatementsKeepToIndexes(t *testing.T) {
	for _, async := range []bool{true, false} {
		t.Run(map[bool]string{true: "async", false: "sync"}[async], func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			pool, schema, st := sessionStore(t, nil) // one session: its prepared statements and its statistics
			if async {
				st = st.AsyncCommit()
			}
			ep := createEndpoint(t, st, outbox.EndpointInput{})
			// round delivers one event: fan-out and lease, outcome, and an
			// empty claim; it returns the sequential scans of deliveries
			// and the outbox they made.
			round := func() int64 {
				t.Helper()
				if _, err := outbox.Enqueue(ctx, pool, outbox.Event{Type: "plan.test", Payload: []byte(`{"n": 1}`)}, outbox.Options{Schema: schema}); err != nil {
					t.Fatal(err)
				}
				before := seqScans(t, pool, schema, "deliveries", "outbox")
				d, err := st.DispatchClaim(ctx, 10, outbox.ClaimParams{Limit: 10, Lease: time.Minute, PerEndpoint: 4})
				if err != nil || len(d.Claimed) != 1 {
					t.Fatalf("claimed %d deliveries (%v), want 1", len(d.Claimed), err)
				}
				c := d.Claimed[0]
				if _, err := st.Complete(ctx, []outbox.Outcome{{
					DeliveryID: c.DeliveryID, LeaseToken: c.LeaseToken, EventID: c.EventID, EndpointID: c.EndpointID,
					Attempt: 1, State: outbox.StateDelivered, StartedAt: time.Now(), Result: "delivered",
				}}); err != nil {
					t.Fatal(err)
				}
				if _, err := st.Claim(ctx, outbox.ClaimParams{Limit: 10, Lease: time.Minute, PerEndpoint: 4}); err != nil {
					t.Fatal(err)
				}
				return seqScans(t, pool, schema, "deliveries", "outbox") - before
			}
			for range 12 {
				round()
			}
			// The table grows by 50k finished deliveries, as under load,
			// with no ANALYZE to make PostgreSQL plan the statements anew.
			seed(t, pool, schema, `WITH o AS (
				INSERT INTO {{schema}}.outbox (event_type, payload, dispatched_at, delivery_count)
				SELECT 'plan.test', '{}', now(), 1 FROM generate_series(1, 50000) RETURNING id)
				INSERT INTO {{schema}}.deliveries (event_id, endpoint_id, state, attempts, finished_at)
				SELECT id, $1, 'delivered', 1, now() FROM o`, ep.ID)
			var scans int64
			for range 3 {
				scans += round()
			}
			if scans != 0 {
				t.Fatalf("the engine's statements scanned deliveries or the outbox (50k rows each) sequentially %d times in 3 rounds, want none", scans)
			}
		})
	}
}

// TestEngineStatementsArePlannedOncePerSession checks that the claim and
// the fan-out keep one generic plan per session. Left to choose,
// PostgreSQL planned the claim afresh on every call once deliveries were
// waiting (2.9 ms of planning for 0.5 ms of execution): the custom plans
// cost less than its generic one. The fan-out made five custom plans per
// session before settling, ~7 ms each on a fresh connection, which four
// replicas paid on four times the connections.
func TestEngineStatementsArePlannedOncePerSession(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, schema, st := sessionStore(t, nil)
	createEndpoint(t, st, outbox.EndpointInput{})
	const calls = 8
	// plans reads how the session planned the statement opening with
	// prefix: it must have run its generic plan calls times and made no
	// custom plan.
	plans := func(what, prefix string) {
		t.Helper()
		var generic, custom int64
		if err := pool.QueryRow(ctx, `SELECT generic_plans, custom_plans FROM pg_prepared_statements
			WHERE statement LIKE $1`, prefix+"%").Scan(&generic, &custom); err != nil {
			t.Fatalf("the %s's prepared statement: %v", what, err)
		}
		if custom != 0 || generic != calls {
			t.Errorf("%d %ss made %d custom plans and ran a generic one %d times, want 0 and %d", calls, what, custom, generic, calls)
		}
	}
	for range calls {
		seed(t, pool, schema, `INSERT INTO {{schema}}.outbox (event_type, payload)
			SELECT 'plan.test', jsonb_build_object('n', g) FROM generate_series(1, 30) g`)
		d, err := st.DispatchClaim(ctx, 100, outbox.ClaimParams{Limit: 100, Lease: time.Minute, PerEndpoint: 4})
		if err != nil || d.Events != 30 || len(d.Claimed) != 4 {
			t.Fatalf("fanned out %d events and leased %d deliveries (%v), want 30 and 4", d.Events, len(d.Claimed), err)
		}
		release(t, st, d.Claimed)
	}
	plans("fan-out", "WITH locked AS")
	for range calls {
		claimed, err := st.Claim(ctx, outbox.ClaimParams{Limit: 100, Lease: time.Minute, PerEndpoint: 16})
		if err != nil || len(claimed) != 16 {
			t.Fatalf("claimed %d deliveries (%v), want 16", len(claimed), err)
		}
		release(t, st, claimed)
	}
	plans("claim", "WITH lim AS")
}

// release gives leased deliveries back, failing the test unless all of
// them were released.
func release(t *testing.T, st *outbox.Store, claimed []outbox.Claimed) {
	t.Helper()
	ids, tokens := make([]int64, len(claimed)), make([]int64, len(claimed))
	for i, c := range claimed {
		ids[i], tokens[i] = c.DeliveryID, c.LeaseToken
	}
	if n, err := st.Release(context.Background(), ids, tokens); err != nil || n != len(claimed) {
		t.Fatalf("released %d of %d deliveries (%v)", n, len(claimed), err)
	}
}

// TestAdminChangeOutlivesADeadlock checks that an endpoint change chosen
// as a deadlock's victim is run again: the other transaction locks a
// pending delivery and then the endpoint (as the engine's outcomes do),
// while disabling the endpoint locks it and then its pending deliveries.
func TestAdminChangeOutlivesADeadlock(t *testing.T) {
	ctx, st := parallelStore(t)
	ep := createEndpoint(t, st, outbox.EndpointInput{})
	enqueueOne(t, st, outbox.Event{Type: "deadlock.test"})
	dispatchAll(t, st)
	var deliveryID int64
	if err := st.Pool().QueryRow(ctx, outboxtest.SQL(st.Schema(), `SELECT id FROM {{schema}}.deliveries`)).Scan(&deliveryID); err != nil {
		t.Fatal(err)
	}
	other, err := st.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback(ctx)
	// The disabling session waits first, so its deadlock check (after the
	// server's deadlock_timeout) runs first and makes it the victim.
	if _, err := other.Exec(ctx, `SET LOCAL deadlock_timeout = '30s'`); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Exec(ctx, outboxtest.SQL(st.Schema(), `SELECT id FROM {{schema}}.deliveries WHERE id = $1 FOR UPDATE`), deliveryID); err != nil {
		t.Fatal(err)
	}
	var xid string
	if err := other.QueryRow(ctx, `SELECT pg_current_xact_id()::text`).Scan(&xid); err != nil {
		t.Fatal(err)
	}
	off := false
	done := make(chan error, 1)
	go func() {
		_, err := st.UpdateEndpoint(ctx, ep.ID, outbox.EndpointPatch{Enabled: &off})
		done <- err
	}()
	waiting := func() bool {
		var n int
		if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_locks
 WHERE NOT granted AND locktype = 'transactionid' AND transactionid::text = $1`, xid).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n > 0
	}
	deadline := time.Now().Add(30 * time.Second)
	for !waiting() {
		if time.Now().After(deadline) {
			t.Fatal("disabling the endpoint never waited for the locked delivery")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Returns once PostgreSQL has aborted the disabling transaction.
	if _, err := other.Exec(ctx, outboxtest.SQL(st.Schema(), `UPDATE {{schema}}.endpoints SET updated_at = now() WHERE id = $1`), ep.ID); err != nil {
		t.Fatal(err)
	}
	if err := other.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("disable the endpoint after a deadlock: %v, want it run again", err)
	}
	d, err := st.GetDelivery(ctx, deliveryID)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Held {
		t.Errorf("the pending delivery of the disabled endpoint is not held: %+v", d)
	}
}
