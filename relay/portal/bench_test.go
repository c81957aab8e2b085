package portal_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
	"github.com/hookrelay/hookrelay/relay/endpoint"
	"github.com/hookrelay/hookrelay/relay/portal"
	"github.com/hookrelay/hookrelay/relay/relaytest"
)

// BenchmarkPortalPages1M renders each portal page for one tenant with 1M
// deliveries (and 1M attempts) in the database: 100 tenants with 3
// endpoints each, the tenant under test owning a tenth of the history,
// spread over 30 days, 2% dead. Each page is a real request through the
// portal's handler (session lookup, queries, template); it reports the p95
// latency (ms) and the statements the page ran (queries/op, the session
// lookup included). Generating the history takes a minute or two:
//
//	go test -run '^$' -bench BenchmarkPortalPages1M -benchtime 200x ./relay/portal
func BenchmarkPortalPages1M(b *testing.B) {
	ctx := context.Background()
	st, counter := relaytest.CountedStore(b, "", "")
	schema := st.Schema()
	svc := relaytest.Endpoints(b, st, nil)
	const (
		rows      = 1_000_000
		tenants   = 100
		perTenant = 3
	)
	for t := range tenants {
		for range perTenant {
			if _, err := svc.Create(ctx, endpoint.Input{Tenant: fmt.Sprintf("t%03d", t), URL: "https://example.com/h"}); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, name := range []string{"signup.created", "signup.deleted", "participant.reached_goal"} {
		if _, _, err := st.PutEventType(ctx, outbox.EventType{Name: name, Description: "an event",
			Example: []byte(`{"email":"ada@example.com"}`)}); err != nil {
			b.Fatal(err)
		}
	}
	for _, sql := range []string{
		// Event n: tenant t000 for one in ten, else one of the other 99;
		// one of three types; created over 30 days, oldest first.
		outboxtest.SQL(schema, `INSERT INTO {{schema}}.outbox (event_type, tenant, payload, created_at, dispatched_at, delivery_count)
 SELECT (ARRAY['signup.created', 'signup.deleted', 'participant.reached_goal'])[1 + abs(hashint8(n)) % 3],
        CASE WHEN n % 10 = 0 THEN 't000' ELSE 't' || lpad((1 + n % 99)::text, 3, '0') END,
        '{"email":"ada@example.com","position":12,"referred_by":"bob@example.com"}',
        now() - interval '30 days' + make_interval(secs => n * 2.592), now() - interval '30 days' + make_interval(secs => n * 2.592), 1
   FROM generate_series(1, `+fmt.Sprint(rows)+`) n`),
		// Its delivery to one of the tenant's endpoints, dead for one in 50.
		outboxtest.SQL(schema, `INSERT INTO {{schema}}.deliveries (event_id, endpoint_id, state, attempts, next_attempt_at, created_at, updated_at, finished_at, last_status)
 SELECT o.id, e.id, CASE WHEN abs(hashint8(o.id * 7)) % 50 = 0 THEN 'dead' ELSE 'delivered' END, 1, o.created_at, o.created_at, o.created_at, o.created_at,
        CASE WHEN abs(hashint8(o.id * 7)) % 50 = 0 THEN 500 ELSE 200 END
   FROM {{schema}}.outbox o
   JOIN LATERAL (SELECT id FROM {{schema}}.endpoints e WHERE e.tenant = o.tenant ORDER BY id
                  OFFSET (o.id / 100) % 3 LIMIT 1) e ON true`),
		// And its attempt.
		outboxtest.SQL(schema, `INSERT INTO {{schema}}.attempts (delivery_id, event_id, endpoint_id, attempt, started_at, duration_ms, status_code, outcome, error_class, error, response_excerpt)
 SELECT d.id, d.event_id, d.endpoint_id, 1, d.created_at, 5 + abs(hashint8(d.id)) % 300, d.last_status,
        CASE WHEN d.state = 'dead' THEN 'dead' ELSE 'delivered' END,
        CASE WHEN d.state = 'dead' THEN 'http_5xx' ELSE '' END, '', CASE WHEN d.state = 'dead' THEN 'upstream failed' ELSE '' END
   FROM {{schema}}.deliveries d`),
		outboxtest.SQL(schema, `VACUUM ANALYZE {{schema}}.outbox`),
		outboxtest.SQL(schema, `VACUUM ANALYZE {{schema}}.deliveries`),
		outboxtest.SQL(schema, `VACUUM ANALYZE {{schema}}.attempts`),
	} {
		if _, err := st.Pool().Exec(ctx, sql); err != nil {
			b.Fatalf("history: %v", err)
		}
	}

	p, err := portal.New(portal.Config{Store: st, Endpoints: svc, Prefix: prefix})
	if err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest("POST", "/v1/portal/sessions", nil)
	link, err := p.CreateSession(ctx, r, portal.SessionRequest{Tenant: "t000"})
	if err != nil {
		b.Fatal(err)
	}
	u, _ := url.Parse(link.URL)
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, httptest.NewRequest("GET", u.RequestURI(), nil))
	cookie := rec.Result().Cookies()[0]
	get := func(path string) (*httptest.ResponseRecorder, int64) {
		req := httptest.NewRequest("GET", prefix+path, nil)
		req.AddCookie(cookie)
		rec := httptest.NewRecorder()
		before := counter.Count()
		p.ServeHTTP(rec, req)
		return rec, counter.Count() - before
	}
	eps, _, err := st.ForTenant("t000").ListEndpoints(ctx, outbox.EndpointFilter{})
	if err != nil || len(eps) != perTenant {
		b.Fatalf("tenant t000's endpoints: %d, %v", len(eps), err)
	}
	ds, next, err := st.ForTenant("t000").ListDeliveries(ctx, outbox.DeliveryFilter{Limit: 50})
	if err != nil || len(ds) == 0 {
		b.Fatalf("tenant t000's deliveries: %d, %v", len(ds), err)
	}
	var n int64
	if err := st.Pool().QueryRow(ctx, outboxtest.SQL(schema, `SELECT count(*) FROM {{schema}}.deliveries`)).Scan(&n); err != nil || n != rows {
		b.Fatalf("%d deliveries, %v", n, err)
	}

	pages := []struct{ name, path string }{
		{"endpoints", "/endpoints"},
		{"endpoint", "/endpoints/" + eps[0].ID},
		{"deliveries", "/deliveries"},
		{"deliveries/next_page", "/deliveries?after=" + url.QueryEscape(next)},
		{"deliveries/state=dead", "/deliveries?state=dead"},
		{"deliveries/endpoint+event_type", "/deliveries?endpoint=" + eps[1].ID + "&event_type=signup.deleted"},
		{"deliveries/day_in_the_past", "/deliveries?since=" + time.Now().Add(-10*24*time.Hour).UTC().Format("2006-01-02T15:04") +
			"&until=" + time.Now().Add(-9*24*time.Hour).UTC().Format("2006-01-02T15:04")},
		{"delivery", "/deliveries/" + fmt.Sprint(ds[0].ID)},
		{"event-types", "/event-types"},
		{"verify", "/verify"},
	}
	rowsOf := regexp.MustCompile(`<tr>`)
	for _, pg := range pages {
		b.Run(pg.name, func(b *testing.B) {
			var took []time.Duration
			var queries int64
			for b.Loop() {
				start := time.Now()
				rec, q := get(pg.path)
				took = append(took, time.Since(start))
				if rec.Code != http.StatusOK {
					b.Fatalf("%s: %d\n%s", pg.path, rec.Code, rec.Body.String())
				}
				if strings.HasPrefix(pg.name, "deliveries") && len(rowsOf.FindAllString(rec.Body.String(), -1)) < 2 {
					b.Fatalf("%s lists nothing", pg.path)
				}
				queries = q
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)*95/100].Microseconds())/1000, "p95-ms")
			b.ReportMetric(float64(queries), "queries/op")
		})
	}
}
