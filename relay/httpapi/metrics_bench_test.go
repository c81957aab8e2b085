package httpapi_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
	"github.com/hookrelay/hookrelay/relay/httpapi"
	"github.com/hookrelay/hookrelay/relay/relaytest"
)

// BenchmarkMetricsScrape measures GET /metrics through the real handler
// with no history, 100k and 1M finished deliveries (90 % delivered, 10 %
// dead; vacuumed and analysed, as autovacuum leaves them):
//
//   - refresh: every scrape refreshes the queue sample (a 1ns interval),
//     the worst case; its cost must not grow with the history.
//   - cached: scrapes within the sample interval, the common case.
//   - exact-count: for comparison, the exact per-state count of finished
//     deliveries that each scrape used to run.
//
// Generating the history takes about ten seconds, so the 1M case is
// skipped under -short. Run with
//
//	go test ./relay/httpapi -run '^$' -bench BenchmarkMetricsScrape -benchtime 50x
func BenchmarkMetricsScrape(b *testing.B) {
	for _, rows := range []int{0, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("finished=%d", rows), func(b *testing.B) {
			if rows >= 1_000_000 && testing.Short() {
				b.Skip("-short: generating 1M finished deliveries takes about ten seconds")
			}
			ctx := context.Background()
			st := outboxtest.Store(b)
			ep, err := st.CreateEndpoint(ctx, outbox.EndpointInput{URL: "https://example.com/h", Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, 0)
			if err != nil {
				b.Fatal(err)
			}
			if rows > 0 {
				for _, sql := range []string{
					outboxtest.SQL(st.Schema(), `INSERT INTO {{schema}}.deliveries (event_id, endpoint_id, state, attempts, next_attempt_at, created_at, updated_at, finished_at, last_status)
 SELECT n, '`+ep.ID+`'::uuid, CASE WHEN n % 10 = 0 THEN 'dead' ELSE 'delivered' END, 1, t, t, t, t, 200
   FROM generate_series(1, `+fmt.Sprint(rows)+`) n, LATERAL (SELECT now() - interval '10 days' + n * interval '1 ms' AS t) x`),
					outboxtest.SQL(st.Schema(), `VACUUM ANALYZE {{schema}}.deliveries`),
				} {
					if _, err := st.Pool().Exec(ctx, sql); err != nil {
						b.Fatalf("history: %v", err)
					}
				}
			}
			if q, err := st.QueueStats(ctx); err != nil {
				b.Fatal(err)
			} else {
				b.Logf("finished=%d: QueueStats dead=%d delivered=%d estimated=%v", rows, q.Dead, q.Delivered, q.FinishedEstimated)
			}
			for _, mode := range []string{"refresh", "cached"} {
				b.Run(mode, func(b *testing.B) {
					interval := time.Nanosecond
					if mode == "cached" {
						interval = time.Hour
					}
					reg := prometheus.NewRegistry()
					h, err := httpapi.New(httpapi.Options{Store: st, Endpoints: relaytest.Endpoints(b, st, nil), Gatherer: reg, Registerer: reg, StatsInterval: interval, Log: zap.NewNop()})
					if err != nil {
						b.Fatal(err)
					}
					scrape := func() string {
						rec := httptest.NewRecorder()
						h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
						if rec.Code != 200 {
							b.Fatalf("scrape: %d %s", rec.Code, rec.Body)
						}
						return rec.Body.String()
					}
					if body := scrape(); !strings.Contains(body, "hookrelay_queue_stats_up 1") {
						b.Fatalf("first scrape:\n%s", body)
					}
					for b.Loop() {
						scrape()
					}
				})
			}
			b.Run("exact-count", func(b *testing.B) {
				q := outboxtest.SQL(st.Schema(), `SELECT (SELECT count(*) FROM {{schema}}.deliveries WHERE finished_at IS NOT NULL AND state = 'dead'),
 (SELECT count(*) FROM {{schema}}.deliveries WHERE finished_at IS NOT NULL AND state = 'delivered')`)
				for b.Loop() {
					var dead, delivered int64
					if err := st.Pool().QueryRow(ctx, q).Scan(&dead, &delivered); err != nil {
						b.Fatal(err)
					}
					if dead+delivered != int64(rows) {
						b.Fatalf("counted %d finished deliveries, want %d", dead+delivered, rows)
					}
				}
			})
		})
	}
}
