package outbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
)

func TestAsyncCommitIsTransactionLocal(t *testing.T) {
	ctx := context.Background()
	// One connection with synchronous_commit on (the test server's
	// default may be off), so every query below runs on the same session.
	pc, err := pgxpool.ParseConfig(outboxtest.Shared().URL())
	if err != nil {
		t.Fatal(err)
	}
	pc.MaxConns = 1
	pc.ConnConfig.RuntimeParams["synchronous_commit"] = "on"
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
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

// TestEngineStatementsArePlannedPerCall checks that the claim and the
// outcome statement never settle on a generic plan. PostgreSQL switches a
// prepared statement to a generic plan after five calls when it costs no
// more than the custom ones so far; on a relay started against small
// tables that plan reads deliveries sequentially, and keeps doing so as
// they grow.
func TestEngineStatementsArePlannedPerCall(t *testing.T) {
	for _, async := range []bool{true, false} {
		t.Run(map[bool]string{true: "async", false: "sync"}[async], func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			pc, err := pgxpool.ParseConfig(outboxtest.Shared().URL())
			if err != nil {
				t.Fatal(err)
			}
			pc.MaxConns = 1 // every call below runs on the session queried last
			pool, err := pgxpool.NewWithConfig(ctx, pc)
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			st := outboxtest.StoreOn(t, pool, outboxtest.NewSchema(t))
			if async {
				st = st.AsyncCommit()
			}
			createEndpoint(t, st, outbox.EndpointInput{})
			for i := range 12 {
				if _, err := outbox.Enqueue(ctx, pool, outbox.Event{Type: "plan.test", Payload: []byte(`{"n": 1}`)}, outbox.Options{Schema: st.Schema()}); err != nil {
					t.Fatal(err)
				}
				d, err := st.DispatchClaim(ctx, 10, outbox.ClaimParams{Limit: 10, Lease: time.Minute, PerEndpoint: 4})
				if err != nil || len(d.Claimed) != 1 {
					t.Fatalf("call %d: claimed %d deliveries (%v), want 1", i, len(d.Claimed), err)
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
			}
			var generic, custom int64
			if err := pool.QueryRow(ctx, `SELECT coalesce(sum(generic_plans), 0), coalesce(sum(custom_plans), 0)
				  FROM pg_prepared_statements
				 WHERE statement LIKE 'WITH r AS%' OR statement LIKE 'WITH lim AS%'`).Scan(&generic, &custom); err != nil {
				t.Fatal(err)
			}
			if generic != 0 || custom != 24 {
				t.Fatalf("claim and outcome statements: %d generic and %d custom plans, want 0 generic and 24 custom (12 calls of each)", generic, custom)
			}
		})
	}
}
