package httpapi_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
	"github.com/hookrelay/hookrelay/relay/httpapi"
	"github.com/hookrelay/hookrelay/relay/relaytest"
)

// collectorEnv is a QueueCollector on a fresh schema, served by promhttp,
// with its queries counted.
type collectorEnv struct {
	store   *outbox.Store      // the counted store
	plain   *outbox.Store      // the same schema through another pool
	queries *relaytest.Queries // the statistics statements of store
	qc      *httpapi.QueueCollector
	srv     *httptest.Server
}

func newCollectorEnv(t *testing.T, interval, timeout time.Duration) *collectorEnv {
	t.Helper()
	plain := outboxtest.Store(t)
	store, counter := relaytest.CountedStore(t, plain.Schema(), "FILTER (WHERE state = 'dead')")
	qc := httpapi.NewQueueCollector(store, interval, timeout, zap.NewNop())
	reg := prometheus.NewRegistry()
	reg.MustRegister(qc)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	return &collectorEnv{store: store, plain: plain, queries: counter, qc: qc, srv: srv}
}

func (c *collectorEnv) scrape(t *testing.T) string {
	t.Helper()
	res, err := c.srv.Client().Get(c.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("scrape: %d %v: %s", res.StatusCode, err, b)
	}
	return string(b)
}

// lockEndpoints holds an exclusive lock on the schema's endpoints table,
// which every statistics query reads, until the returned func is called.
func lockEndpoints(t *testing.T, st *outbox.Store) (release func()) {
	t.Helper()
	ctx := context.Background()
	tx, err := st.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, outboxtest.SQL(st.Schema(), `LOCK TABLE {{schema}}.endpoints IN ACCESS EXCLUSIVE MODE`)); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(func() { _ = tx.Rollback(ctx) }) }
	t.Cleanup(release)
	return release
}

// waitingOnLock counts the queries on st's schema blocked on a lock (the
// statistics queries, while lockEndpoints holds its lock).
func waitingOnLock(t *testing.T, st *outbox.Store) int {
	t.Helper()
	var n int
	if err := st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
 WHERE wait_event_type = 'Lock' AND position($1 in query) > 0`, st.Schema()).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestQueueMetricsConcurrentScrapesShareOneQuery(t *testing.T) {
	// Every scrape would refresh (a 1ns interval) unless one is running.
	c := newCollectorEnv(t, time.Nanosecond, 30*time.Second)
	release := lockEndpoints(t, c.plain)

	const scrapes = 6
	bodies := make(chan string, scrapes)
	var wg sync.WaitGroup
	for range scrapes {
		wg.Go(func() {
			res, err := c.srv.Client().Get(c.srv.URL)
			if err != nil {
				t.Error(err)
				return
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			bodies <- string(b)
		})
	}
	waitFor(t, "one query blocked and the other scrapes waiting for it", func() bool {
		return waitingOnLock(t, c.plain) == 1 && c.qc.Waiting() == scrapes-1
	})
	release()
	wg.Wait()
	close(bodies)
	for b := range bodies {
		if !strings.Contains(b, "hookrelay_queue_stats_up 1") || !strings.Contains(b, `hookrelay_queue_depth{state="pending"} 0`) {
			t.Errorf("scrape:\n%s", b)
		}
	}
	if n := c.queries.Count(); n != 1 {
		t.Errorf("%d scrapes ran %d statistics queries, want 1", scrapes, n)
	}
}

func TestQueueMetricsCached(t *testing.T) {
	c := newCollectorEnv(t, time.Hour, 30*time.Second)
	ctx := context.Background()
	ep, err := c.plain.CreateEndpoint(ctx, outbox.EndpointInput{URL: "https://a.test", Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if b := c.scrape(t); !strings.Contains(b, `hookrelay_queue_depth{state="pending"} 0`) {
		t.Fatalf("first scrape:\n%s", b)
	}
	if _, err := c.plain.Pool().Exec(ctx, outboxtest.SQL(c.plain.Schema(), `INSERT INTO {{schema}}.deliveries (event_id, endpoint_id) VALUES (1, $1)`), ep.ID); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		b := c.scrape(t)
		if !strings.Contains(b, `hookrelay_queue_depth{state="pending"} 0`) || !strings.Contains(b, "hookrelay_queue_stats_age_seconds") {
			t.Fatalf("a scrape within the interval did not serve the sample:\n%s", b)
		}
	}
	if n := c.queries.Count(); n != 1 {
		t.Errorf("6 scrapes within the interval ran %d queries, want 1", n)
	}

	// With a short interval the next sample shows the new delivery.
	fresh := newCollectorEnv(t, 20*time.Millisecond, 30*time.Second)
	_ = fresh.scrape(t)
	if _, err := fresh.plain.CreateEndpoint(ctx, outbox.EndpointInput{URL: "https://b.test", Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.plain.Pool().Exec(ctx, outboxtest.SQL(fresh.plain.Schema(), `INSERT INTO {{schema}}.deliveries (event_id, endpoint_id) SELECT 1, id FROM {{schema}}.endpoints`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a refreshed sample", func() bool {
		return strings.Contains(fresh.scrape(t), `hookrelay_queue_depth{state="pending"} 1`)
	})
}

func TestQueueMetricsFailedRefresh(t *testing.T) {
	c := newCollectorEnv(t, time.Nanosecond, 300*time.Millisecond)
	if b := c.scrape(t); !strings.Contains(b, "hookrelay_queue_stats_up 1") {
		t.Fatalf("first scrape:\n%s", b)
	}
	release := lockEndpoints(t, c.plain)
	b := c.scrape(t) // the refresh times out on the lock
	if !strings.Contains(b, "hookrelay_queue_stats_up 0") || strings.Contains(b, "hookrelay_queue_depth") ||
		!strings.Contains(b, "hookrelay_queue_stats_age_seconds") {
		t.Errorf("scrape during a failing refresh: want up 0, the sample's age and no gauges:\n%s", b)
	}
	release()
	waitFor(t, "a successful refresh", func() bool { return strings.Contains(c.scrape(t), "hookrelay_queue_stats_up 1") })
}

// TestQueueStatsLargeHistory checks the estimated counts of finished
// deliveries beyond outbox.FinishedExactLimit.
func TestQueueStatsLargeHistory(t *testing.T) {
	st := outboxtest.Store(t)
	ctx := context.Background()
	ep, err := st.CreateEndpoint(ctx, outbox.EndpointInput{URL: "https://a.test", Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	const rows = 3 * outbox.FinishedExactLimit
	if _, err := st.Pool().Exec(ctx, outboxtest.SQL(st.Schema(), `INSERT INTO {{schema}}.deliveries (event_id, endpoint_id, state, attempts, finished_at)
 SELECT n, $1::uuid, CASE WHEN n % 4 = 0 THEN 'dead' ELSE 'delivered' END, 1, now() FROM generate_series(1, $2) n`), ep.ID, rows); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, outboxtest.SQL(st.Schema(), `ANALYZE {{schema}}.deliveries`)); err != nil {
		t.Fatal(err)
	}
	q, err := st.QueueStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	near := func(got, want int64) bool { return got > want*9/10 && got < want*11/10 }
	if !q.FinishedEstimated || !near(q.Dead, rows/4) || !near(q.Delivered, rows*3/4) {
		t.Errorf("with %d finished deliveries: %+v, want estimates near %d dead and %d delivered", rows, q, rows/4, rows*3/4)
	}
}

// serveFrom calls h in-process as a client at remoteAddr would.
func serveFrom(h http.Handler, remoteAddr, method, target, auth string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	req.RemoteAddr = remoteAddr
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

const metricsToken = "metrics-token-0123456789"

func TestMetricsAccess(t *testing.T) {
	up := newUpstream(t)
	const (
		public   = "203.0.113.7:40000"
		loopback = "127.0.0.1:40000"
		v6loop   = "[::1]:40000"
	)
	type check struct {
		remote, auth string
		status       int
	}
	for _, tc := range []struct {
		name   string
		mod    func(*httpapi.Options)
		checks []check
	}{
		{"no proxy, no token: open", nil, []check{{public, "", 200}, {loopback, "", 200}}},
		{"proxy, no token: loopback only", func(o *httpapi.Options) { o.ProxyUpstream = up.srv.URL }, []check{
			{public, "", 403}, {public, "Bearer " + token, 403}, {loopback, "", 200}, {v6loop, "", 200},
		}},
		{"token: anyone with it", func(o *httpapi.Options) { o.MetricsToken = metricsToken }, []check{
			{public, "", 401}, {public, "Bearer wrong-token", 401}, {loopback, "", 401}, {public, "Bearer " + token, 401},
			{public, "Bearer " + metricsToken, 200}, {public, "bearer " + metricsToken, 200},
		}},
		{"proxy and token", func(o *httpapi.Options) { o.ProxyUpstream = up.srv.URL; o.MetricsToken = metricsToken }, []check{
			{public, "", 401}, {public, "Bearer " + metricsToken, 200}, {loopback, "", 401},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.mod)
			h := e.Server.Config.Handler
			before := up.hits.Load()
			for _, c := range tc.checks {
				rec := serveFrom(h, c.remote, "GET", "/metrics", c.auth)
				if rec.Code != c.status {
					t.Errorf("from %s with %q: %d, want %d: %s", c.remote, c.auth, rec.Code, c.status, rec.Body)
					continue
				}
				switch c.status {
				case 200:
					if !strings.Contains(rec.Body.String(), "hookrelay_queue_stats_up 1") {
						t.Errorf("from %s: not the metrics:\n%s", c.remote, rec.Body)
					}
				case 401:
					if !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") || !strings.Contains(rec.Body.String(), `"unauthorized"`) {
						t.Errorf("401 without the challenge or the error shape: %v %s", rec.Header(), rec.Body)
					}
				case 403:
					if !strings.Contains(rec.Body.String(), "HOOKRELAY_METRICS_TOKEN") {
						t.Errorf("403 does not say what to set: %s", rec.Body)
					}
				}
			}
			if n := up.hits.Load() - before; n != 0 {
				t.Errorf("/metrics reached the upstream %d times", n)
			}
		})
	}
}

func TestMetricsSeparateListener(t *testing.T) {
	up := newUpstream(t)
	for _, proxied := range []bool{false, true} {
		e := newEnv(t, func(o *httpapi.Options) {
			o.MetricsSeparate, o.MetricsToken = true, metricsToken
			if proxied {
				o.ProxyUpstream = up.srv.URL
			}
		})
		h := e.Server.Config.Handler.(*httpapi.Handler)

		// The main listener no longer serves /metrics: it is the
		// application's path (proxied) or nobody's.
		before := up.hits.Load()
		rec := serveFrom(h, "127.0.0.1:1", "GET", "/metrics", "Bearer "+metricsToken)
		switch {
		case proxied && (rec.Code != 404 || up.hits.Load() != before+1):
			t.Errorf("proxy on: main /metrics %d, upstream hits %d, want it proxied", rec.Code, up.hits.Load()-before)
		case !proxied && (rec.Code != 404 || strings.Contains(rec.Body.String(), "hookrelay_")):
			t.Errorf("proxy off: main /metrics %d: %s", rec.Code, rec.Body)
		}

		m := h.Metrics()
		for _, c := range []struct {
			method, path, auth string
			status             int
		}{
			{"GET", "/metrics", "", 401}, {"GET", "/metrics", "Bearer " + metricsToken, 200},
			{"GET", "/healthz", "", 200}, {"GET", "/readyz", "", 200}, {"POST", "/metrics", "", 405},
			{"GET", "/v1/endpoints", "Bearer " + token, 404}, {"GET", "/", "", 404},
		} {
			if rec := serveFrom(m, "203.0.113.7:1", c.method, c.path, c.auth); rec.Code != c.status {
				t.Errorf("metrics listener %s %s: %d, want %d: %s", c.method, c.path, rec.Code, c.status, rec.Body)
			}
		}
	}
}

func TestStartingHandler(t *testing.T) {
	up := newUpstream(t)
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "early_total", Help: "registered before the store exists"}))
	reason := "database unreachable: dial tcp 127.0.0.1:1: connect: connection refused"
	h, err := httpapi.Starting(httpapi.Options{ProxyUpstream: up.srv.URL, Gatherer: reg, AdminToken: token, Log: zap.NewNop()},
		func() string { return reason })
	if err != nil {
		t.Fatal(err)
	}
	rec := serveFrom(h, "127.0.0.1:1", "GET", "/healthz", "")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"ok"`) {
		t.Errorf("healthz %d %s", rec.Code, rec.Body)
	}
	rec = serveFrom(h, "127.0.0.1:1", "GET", "/readyz", "")
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), `"not_ready"`) || !strings.Contains(rec.Body.String(), "connection refused") {
		t.Errorf("readyz %d %s", rec.Code, rec.Body)
	}
	rec = serveFrom(h, "127.0.0.1:1", "GET", "/v1/endpoints", "Bearer "+token)
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), `"starting"`) {
		t.Errorf("admin API while starting: %d %s", rec.Code, rec.Body)
	}
	rec = serveFrom(h, "127.0.0.1:1", "GET", "/metrics", "")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "early_total 0") {
		t.Errorf("metrics while starting: %d %s", rec.Code, rec.Body)
	}
	if rec := serveFrom(h, "203.0.113.7:1", "GET", "/metrics", ""); rec.Code != 403 {
		t.Errorf("metrics from a public client while starting behind the proxy: %d", rec.Code)
	}
	before := up.hits.Load()
	if rec := serveFrom(h, "203.0.113.7:1", "GET", "/echo", ""); rec.Code != 200 || up.hits.Load() != before+1 {
		t.Errorf("the proxy does not pass requests while starting: %d %s", rec.Code, rec.Body)
	}
}
