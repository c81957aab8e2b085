package outbox_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
)

// BenchmarkDueQueriesWithHistory measures one Dispatch + Claim of 100 fresh
// events with no history and with 1M finished events and deliveries behind
// them (vacuumed and analysed, as autovacuum would leave them). Run with
// -benchtime 20x; generating the history takes about half a minute.
func BenchmarkDueQueriesWithHistory(b *testing.B) {
	for _, rows := range []int{0, 1_000_000} {
		b.Run(fmt.Sprintf("history=%d", rows), func(b *testing.B) {
			ctx := context.Background()
			st := outboxtest.Store(b)
			ep, err := st.CreateEndpoint(ctx, outbox.EndpointInput{URL: "https://example.com/h", Secret: testSecret("A")}, 0)
			if err != nil {
				b.Fatal(err)
			}
			if rows > 0 {
				steps := []struct {
					sql  string
					args []any
				}{
					{outboxtest.SQL(st.Schema(), `INSERT INTO {{schema}}.outbox (event_type, payload, created_at, dispatched_at, delivery_count)
 SELECT 'signup.created', '{"n":1}', now() - interval '10 days', now() - interval '10 days', 1 FROM generate_series(1, $1)`), []any{rows}},
					{outboxtest.SQL(st.Schema(), `INSERT INTO {{schema}}.deliveries (event_id, endpoint_id, state, attempts, next_attempt_at, created_at, updated_at, finished_at, last_status)
 SELECT id, $1::uuid, CASE WHEN id % 10 = 0 THEN 'dead' ELSE 'delivered' END, 1, created_at, created_at, created_at, created_at, 200
   FROM {{schema}}.outbox`), []any{ep.ID}},
					{outboxtest.SQL(st.Schema(), `VACUUM ANALYZE {{schema}}.outbox`), nil},
					{outboxtest.SQL(st.Schema(), `VACUUM ANALYZE {{schema}}.deliveries`), nil},
					// Start measuring from a clean checkpoint, as a
					// long-running database would be: otherwise the first
					// writes after the bulk load pay for full-page images.
					{`CHECKPOINT`, nil},
				}
				for _, step := range steps {
					if _, err := st.Pool().Exec(ctx, step.sql, step.args...); err != nil {
						b.Fatalf("history: %v", err)
					}
				}
			}
			insert := outboxtest.SQL(st.Schema(), `INSERT INTO {{schema}}.outbox (event_type, payload) SELECT 'signup.created', '{}' FROM generate_series(1, 100)`)
			finish := outboxtest.SQL(st.Schema(), `UPDATE {{schema}}.deliveries SET state = 'delivered', lease_token = NULL, lease_expires_at = NULL, finished_at = now()
 WHERE state = 'in_flight'`)
			var claimed int
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				if _, err := st.Pool().Exec(ctx, insert); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if _, _, err := st.Dispatch(ctx, 500); err != nil {
					b.Fatal(err)
				}
				c, err := st.Claim(ctx, outbox.ClaimParams{Limit: 500, Lease: time.Minute, PerEndpoint: 1000})
				if err != nil {
					b.Fatal(err)
				}
				claimed += len(c)
				b.StopTimer()
				if _, err := st.Pool().Exec(ctx, finish); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			if claimed != 100*b.N {
				b.Fatalf("claimed %d deliveries, want %d", claimed, 100*b.N)
			}
		})
	}
}
