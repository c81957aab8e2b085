package relay_test

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
	"github.com/hookrelay/hookrelay/relay"
)

// BenchmarkDrain measures how fast a backlog of 20k events to one local,
// verifying endpoint drains: events/s is reported.
//
//	go test -run '^$' -bench Drain -benchtime 3x ./relay/
func BenchmarkDrain(b *testing.B) {
	const backlog = 20000
	var total time.Duration
	for range b.N {
		b.StopTimer()
		st := outboxtest.Store(b)
		rc := newReceiver(b, nil)
		createEndpoint(b, st, rc, "")
		insertBulk(b, st, backlog)
		b.StartTimer()
		start := time.Now()
		e := startEngineQuiet(b, st, relay.Config{BatchSize: 1000, MaxInFlight: 256, EndpointMaxInFlight: 256}, nil)
		waitDelivered(b, st, backlog, 5*time.Minute)
		total += time.Since(start)
		_ = e
		b.ReportMetric(float64(rc.Conns()), "conns")
	}
	b.ReportMetric(float64(backlog*b.N)/total.Seconds(), "events/s")
}

// BenchmarkLatency offers 1,000 events/s (one per transaction) and reports
// the commit→receipt latency percentiles.
//
//	go test -run '^$' -bench Latency -benchtime 1x ./relay/
func BenchmarkLatency(b *testing.B) {
	const rate, seconds = 1000, 5
	for range b.N {
		b.StopTimer()
		st := outboxtest.Store(b)
		l, stopListener := startListener(b, outboxtest.Shared().URL(), st.Schema())
		var lat []time.Duration
		var latMu = make(chan struct{}, 1)
		latMu <- struct{}{}
		rc := newReceiver(b, func(w http.ResponseWriter, n int, r receipt) int {
			var sent int64
			_, _ = fmt.Sscanf(string(r.Data), `{"t": %d}`, &sent)
			d := time.Since(time.Unix(0, sent))
			<-latMu
			lat = append(lat, d)
			latMu <- struct{}{}
			return http.StatusNoContent
		})
		createEndpoint(b, st, rc, "")
		eventually(b, 10*time.Second, "listener", l.Connected)
		startEngine(b, st, engineOpts{wake: l.Wake(), listening: l.Connected, log: zapNop()})
		b.StartTimer()
		q := outboxtest.SQL(st.Schema(), `INSERT INTO {{schema}}.outbox (event_type, payload) VALUES ('lat', $1)`)
		tick := time.NewTicker(time.Second / rate)
		var sent atomic.Int64
		for i := 0; i < rate*seconds; i++ {
			<-tick.C
			go func() {
				// The timestamp is taken right before the commit returns.
				tx, err := st.Pool().Begin(context.Background())
				if err != nil {
					b.Error(err)
					return
				}
				if _, err := tx.Exec(context.Background(), q, fmt.Sprintf(`{"t": %d}`, time.Now().UnixNano())); err != nil {
					b.Error(err)
				}
				if err := tx.Commit(context.Background()); err != nil {
					b.Error(err)
				}
				sent.Add(1)
			}()
		}
		tick.Stop()
		rc.WaitAccepted(rate*seconds, time.Minute)
		stopListener()
		<-latMu
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		pct := func(p float64) float64 { return float64(lat[int(float64(len(lat)-1)*p)].Microseconds()) / 1000 }
		b.ReportMetric(pct(0.50), "p50_ms")
		b.ReportMetric(pct(0.95), "p95_ms")
		b.ReportMetric(pct(0.99), "p99_ms")
		latMu <- struct{}{}
		b.StartTimer()
	}
}

func insertBulk(tb testing.TB, st *outbox.Store, n int) {
	tb.Helper()
	_, err := st.Pool().Exec(context.Background(), outboxtest.SQL(st.Schema(), `INSERT INTO {{schema}}.outbox (event_type, payload) SELECT 'bench.event', jsonb_build_object('n', g, 'email', 'user'||g||'@example.com') FROM generate_series(1, $1) g`), n)
	if err != nil {
		tb.Fatal(err)
	}
}

// waitDelivered waits until n deliveries are delivered. It asks the cheap
// question first (is any work left? — answered from the partial indexes) so
// that the polling does not steal the database's time from the relay.
func waitDelivered(tb testing.TB, st *outbox.Store, n int, timeout time.Duration) {
	tb.Helper()
	left := outboxtest.SQL(st.Schema(), `SELECT EXISTS (SELECT 1 FROM {{schema}}.outbox WHERE dispatched_at IS NULL)
    OR EXISTS (SELECT 1 FROM {{schema}}.deliveries WHERE state = 'pending' AND attempts = 0)
    OR EXISTS (SELECT 1 FROM {{schema}}.deliveries WHERE state = 'in_flight')`)
	eventually(tb, timeout, fmt.Sprintf("%d delivered", n), func() bool {
		var busy bool
		if err := st.Pool().QueryRow(context.Background(), left).Scan(&busy); err != nil || busy {
			return false
		}
		var got int
		_ = st.Pool().QueryRow(context.Background(), outboxtest.SQL(st.Schema(), `SELECT count(*) FROM {{schema}}.deliveries WHERE state = 'delivered'`)).Scan(&got)
		return got >= n
	})
}

func startEngineQuiet(tb testing.TB, st *outbox.Store, cfg relay.Config, wake <-chan struct{}) *relay.Engine {
	tb.Helper()
	return startEngine(tb, st, engineOpts{cfg: cfg, wake: wake, log: zapNop()})
}
