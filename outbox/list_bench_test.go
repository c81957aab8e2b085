package outbox_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
)

// BenchmarkListDeliveries1M measures a page (50) of the filtered delivery
// list with 1M deliveries of history: 100 tenants with 3 endpoints each,
// 10 event types (one of them rare, 0.5%), 2% dead, spread over 30 days.
// Each sub-benchmark varies the tenant, endpoint and range per call and
// reports the p95 latency (ms) beside the mean. Generating the history
// takes about a minute:
//
//	go test -run '^$' -bench BenchmarkListDeliveries1M -benchtime 200x ./outbox
func BenchmarkListDeliveries1M(b *testing.B) {
	ctx, st := newStore(b)
	const (
		rows      = 1_000_000
		tenants   = 100
		perTenant = 3
	)
	var endpoints [tenants][perTenant]string
	for t := range tenants {
		for e := range perTenant {
			ep, err := st.CreateEndpoint(ctx, outbox.EndpointInput{Tenant: fmt.Sprintf("t%03d", t), URL: "https://example.com/h", Secret: plainSecret}, 0)
			if err != nil {
				b.Fatal(err)
			}
			endpoints[t][e] = ep.ID
		}
	}
	for _, step := range []struct {
		sql  string
		args []any
	}{
		// Event n: tenant n % 100, the rare type for one in 200 (by a hash
		// of n), else one of nine; created over 30 days, oldest first.
		{outboxtest.SQL(st.Schema(), `INSERT INTO {{schema}}.outbox (event_type, tenant, payload, created_at, dispatched_at, delivery_count)
 SELECT CASE WHEN abs(hashint8(n)) % 200 = 0 THEN 'rare.type' ELSE 'type.' || (abs(hashint8(-n)) % 9) END,
        't' || lpad((n % 100)::text, 3, '0'), '{"n":1}',
        now() - interval '30 days' + make_interval(secs => n * 2.592), now() - interval '30 days' + make_interval(secs => n * 2.592), 1
   FROM generate_series(1, $1) n`), []any{rows}},
		// Delivery of event n to endpoint (n / 100) % 3 of its tenant, dead
		// for one in 50 (by a hash of n), with its event's type as the
		// relay writes it.
		{outboxtest.SQL(st.Schema(), `INSERT INTO {{schema}}.deliveries (event_id, endpoint_id, state, attempts, next_attempt_at, created_at, updated_at, finished_at, last_status, event_type)
 SELECT o.id, e.id, CASE WHEN abs(hashint8(o.id * 7)) % 50 = 0 THEN 'dead' ELSE 'delivered' END, 1, o.created_at, o.created_at, o.created_at, o.created_at, 200, o.event_type
   FROM {{schema}}.outbox o
   JOIN LATERAL (SELECT id FROM {{schema}}.endpoints e WHERE e.tenant = o.tenant ORDER BY id
                  OFFSET (o.id / 100) % 3 LIMIT 1) e ON true`), nil},
		{outboxtest.SQL(st.Schema(), `VACUUM ANALYZE {{schema}}.outbox`), nil},
		{outboxtest.SQL(st.Schema(), `VACUUM ANALYZE {{schema}}.deliveries`), nil},
	} {
		if _, err := st.Pool().Exec(ctx, step.sql, step.args...); err != nil {
			b.Fatalf("history: %v", err)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	tenant := func() string { return fmt.Sprintf("t%03d", rng.IntN(tenants)) }
	ptr := func(s string) *string { return &s }
	midRange := func() (*time.Time, *time.Time) {
		since := time.Now().Add(-time.Duration(1+rng.IntN(28)) * 24 * time.Hour)
		until := since.Add(24 * time.Hour)
		return &since, &until
	}
	type shape struct {
		name string
		run  func() (int, error)
	}
	list := func(s *outbox.Store, f outbox.DeliveryFilter) (int, error) {
		f.Limit = 50
		ds, _, err := s.ListDeliveries(ctx, f)
		return len(ds), err
	}
	var cursor string // page 2 of a tenant's list
	shapes := []shape{
		{"admin/newest", func() (int, error) { return list(st, outbox.DeliveryFilter{}) }},
		{"admin/state=dead", func() (int, error) { return list(st, outbox.DeliveryFilter{State: ptr("dead")}) }},
		{"admin/event_type", func() (int, error) {
			return list(st, outbox.DeliveryFilter{EventType: ptr(fmt.Sprintf("type.%d", rng.IntN(9)))})
		}},
		{"admin/rare_event_type", func() (int, error) { return list(st, outbox.DeliveryFilter{EventType: ptr("rare.type")}) }},
		{"admin/day_in_the_past", func() (int, error) {
			s, u := midRange()
			return list(st, outbox.DeliveryFilter{Since: s, Until: u})
		}},
		{"tenant/newest", func() (int, error) { return list(st.ForTenant(tenant()), outbox.DeliveryFilter{}) }},
		{"tenant/next_page", func() (int, error) {
			s := st.ForTenant(tenant())
			ds, next, err := s.ListDeliveries(ctx, outbox.DeliveryFilter{Limit: 50, After: cursor})
			cursor = next
			return len(ds), err
		}},
		{"tenant/state=dead", func() (int, error) { return list(st.ForTenant(tenant()), outbox.DeliveryFilter{State: ptr("dead")}) }},
		{"tenant/event_type", func() (int, error) {
			return list(st.ForTenant(tenant()), outbox.DeliveryFilter{EventType: ptr(fmt.Sprintf("type.%d", rng.IntN(9)))})
		}},
		{"tenant/rare_event_type", func() (int, error) {
			return list(st.ForTenant(tenant()), outbox.DeliveryFilter{EventType: ptr("rare.type")})
		}},
		{"tenant/endpoint", func() (int, error) {
			t := rng.IntN(tenants)
			return list(st.ForTenant(fmt.Sprintf("t%03d", t)), outbox.DeliveryFilter{EndpointID: &endpoints[t][rng.IntN(perTenant)]})
		}},
		{"tenant/day_in_the_past", func() (int, error) {
			s, u := midRange()
			return list(st.ForTenant(tenant()), outbox.DeliveryFilter{Since: s, Until: u})
		}},
		{"tenant/day+dead+event_type", func() (int, error) {
			s, u := midRange()
			return list(st.ForTenant(tenant()), outbox.DeliveryFilter{Since: s, Until: u, State: ptr("dead"), EventType: ptr(fmt.Sprintf("type.%d", rng.IntN(9)))})
		}},
	}
	for _, sh := range shapes {
		b.Run(sh.name, func(b *testing.B) {
			var took []time.Duration
			found := 0
			for b.Loop() {
				start := time.Now()
				n, err := sh.run()
				took = append(took, time.Since(start))
				if err != nil {
					b.Fatal(err)
				}
				found += n
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)*95/100].Microseconds())/1000, "p95-ms")
			b.ReportMetric(float64(found)/float64(len(took)), "rows/op")
		})
	}
}
