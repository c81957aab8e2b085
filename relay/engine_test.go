package relay_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
	"github.com/hookrelay/hookrelay/outbox/pgcluster"
	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/relaytest"
)

func TestDeliversEverythingExactlyOnce(t *testing.T) {
	st := outboxtest.ParallelStore(t)
	rc := newReceiver(t, nil)
	createEndpoint(t, st, rc, "acme")
	startEngine(t, st, engineOpts{})
	const n = 300
	insertSQL(t, st, "acme", "signup.created", n, 37)
	got := rc.WaitAccepted(n, 30*time.Second)
	seen := map[string]bool{}
	for _, r := range got {
		if seen[r.ID] {
			t.Errorf("duplicate delivery of %s", r.ID)
		}
		seen[r.ID] = true
		if r.Type != "signup.created" {
			t.Errorf("type = %q", r.Type)
		}
	}
	eventually(t, 10*time.Second, "all deliveries recorded", func() bool { return states(t, st)[outbox.StateDelivered] == n })
	if len(rc.Accepted()) != n {
		t.Fatalf("receiver got %d, want exactly %d", len(rc.Accepted()), n)
	}
}

func TestFiltersAndTargeting(t *testing.T) {
	ctx := context.Background()
	st := outboxtest.ParallelStore(t)
	all := newReceiver(t, nil)
	signups := newReceiver(t, nil)
	other := newReceiver(t, nil)
	target := newReceiver(t, nil)
	createEndpoint(t, st, all, "acme")
	createEndpoint(t, st, signups, "acme", "signup.created", "signup.deleted")
	createEndpoint(t, st, other, "globex")
	tgt := createEndpoint(t, st, target, "acme", "campaign.ended")
	startEngine(t, st, engineOpts{})

	opts := outbox.Options{Schema: st.Schema()}
	for _, ev := range []outbox.Event{
		{Type: "signup.created", Tenant: "acme", Payload: json.RawMessage(`{"i":1}`)},
		{Type: "participant.reached_goal", Tenant: "acme", Payload: json.RawMessage(`{"i":2}`)},
		{Type: "signup.deleted", Tenant: "acme", Payload: json.RawMessage(`{"i":3}`)},
		{Type: "signup.created", Tenant: "globex", Payload: json.RawMessage(`{"i":4}`)},
		{Type: "signup.created", Tenant: "nobody", Payload: json.RawMessage(`{"i":5}`)},
		// endpoint_id narrows the fan-out to that endpoint (the "all"
		// endpoint of acme does not get it) ...
		{Type: "campaign.ended", Tenant: "acme", EndpointID: tgt.ID, Payload: json.RawMessage(`{"i":6}`)},
		// ... and never widens it: not to a type the endpoint does not
		// subscribe to, not across tenants.
		{Type: "signup.created", Tenant: "acme", EndpointID: tgt.ID, Payload: json.RawMessage(`{"i":7}`)},
		{Type: "campaign.ended", Tenant: "globex", EndpointID: tgt.ID, Payload: json.RawMessage(`{"i":8}`)},
	} {
		if _, err := outbox.Enqueue(ctx, st.Pool(), ev, opts); err != nil {
			t.Fatal(err)
		}
	}
	all.WaitAccepted(3, 10*time.Second)
	signups.WaitAccepted(2, 10*time.Second)
	other.WaitAccepted(1, 10*time.Second)
	target.WaitAccepted(1, 10*time.Second)
	// Every event is dispatched, including the one nobody subscribes to,
	// which is done (not retried forever).
	eventually(t, 10*time.Second, "all events dispatched", func() bool {
		var n int
		_ = st.Pool().QueryRow(ctx, outboxtest.SQL(st.Schema(), `SELECT count(*) FROM {{schema}}.outbox WHERE dispatched_at IS NULL`)).Scan(&n)
		return n == 0
	})
	eventually(t, 10*time.Second, "7 deliveries", func() bool { return states(t, st)[outbox.StateDelivered] == 7 })
	for name, c := range map[string]struct {
		rc   *relaytest.Receiver
		want []string
	}{
		"all":     {all, []string{`{"i":1}`, `{"i":2}`, `{"i":3}`}},
		"signups": {signups, []string{`{"i":1}`, `{"i":3}`}},
		"other":   {other, []string{`{"i":4}`}},
		"target":  {target, []string{`{"i":6}`}},
	} {
		got := map[string]bool{}
		for _, r := range c.rc.Accepted() {
			got[compactJSON(t, r.Data)] = true
		}
		if len(got) != len(c.want) {
			t.Errorf("%s got %v, want %v", name, got, c.want)
		}
		for _, w := range c.want {
			if !got[w] {
				t.Errorf("%s missing %s (got %v)", name, w, got)
			}
		}
	}
}

func TestDisabledEndpointHoldsUntilEnabled(t *testing.T) {
	st := outboxtest.ParallelStore(t)
	rc := newReceiver(t, nil)
	ep := createEndpoint(t, st, rc, "")
	updateEndpoint(t, st, ep.ID, outbox.EndpointPatch{Enabled: ptr(false)})
	startEngine(t, st, engineOpts{})
	insertSQL(t, st, "", "signup.created", 20, 5)
	eventually(t, 10*time.Second, "events dispatched and held", func() bool { return states(t, st)[outbox.StatePending] == 20 })
	// A few polls later still nothing was sent.
	probe := newReceiver(t, nil)
	createEndpoint(t, st, probe, "")
	insertSQL(t, st, "", "probe", 1, 1)
	probe.WaitAccepted(1, 10*time.Second)
	if n := len(rc.Accepted()); n != 0 {
		t.Fatalf("disabled endpoint received %d", n)
	}
	updateEndpoint(t, st, ep.ID, outbox.EndpointPatch{Enabled: ptr(true)})
	rc.WaitAccepted(21, 10*time.Second) // the 20 held and the probe
}

func TestOutOfOrderCommitsAreDelivered(t *testing.T) {
	ctx := context.Background()
	st := outboxtest.ParallelStore(t)
	rc := newReceiver(t, nil)
	createEndpoint(t, st, rc, "")
	startEngine(t, st, engineOpts{})
	q := outboxtest.SQL(st.Schema(), `INSERT INTO {{schema}}.outbox (event_type, payload) VALUES ($1, $2)`)
	// tx1 takes the lower id but commits after tx2 (and after the relay has
	// delivered tx2's event).
	tx1, err := st.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx1.Rollback(ctx)
	if _, err := tx1.Exec(ctx, q, "first", `{"tx":1}`); err != nil {
		t.Fatal(err)
	}
	tx2, err := st.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx2.Exec(ctx, q, "second", `{"tx":2}`); err != nil {
		t.Fatal(err)
	}
	if err := tx2.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	rc.WaitAccepted(1, 10*time.Second)
	if err := tx1.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	got := rc.WaitAccepted(2, 10*time.Second)
	if got[0].Type != "second" || got[1].Type != "first" {
		t.Fatalf("got %s then %s", got[0].Type, got[1].Type)
	}
}

func TestRetryThenDeliverWithSameID(t *testing.T) {
	st := outboxtest.ParallelStore(t)
	var mu sync.Mutex
	var stamps []string
	rc := newReceiver(t, func(w http.ResponseWriter, n int, r receipt) int {
		mu.Lock()
		stamps = append(stamps, r.Timestamp)
		mu.Unlock()
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	createEndpoint(t, st, rc, "")
	startEngine(t, st, engineOpts{cfg: relay.Config{Policy: relay.Policy{Schedule: []time.Duration{time.Second, time.Second, time.Second}}}})
	insertSQL(t, st, "", "signup.created", 1, 1)
	got := rc.WaitAccepted(1, 20*time.Second)
	tries := rc.Counts()[got[0].ID]
	if tries != 3 {
		t.Fatalf("delivered after %d tries, want 3", tries)
	}
	mu.Lock()
	defer mu.Unlock()
	if stamps[0] == stamps[2] {
		t.Errorf("webhook-timestamp not refreshed between attempts: %v", stamps)
	}
	eventually(t, 5*time.Second, "delivered state", func() bool { return states(t, st)[outbox.StateDelivered] == 1 })
	var attempts int
	var lastStatus int
	if err := st.Pool().QueryRow(context.Background(), outboxtest.SQL(st.Schema(), `SELECT attempts, last_status FROM {{schema}}.deliveries`)).Scan(&attempts, &lastStatus); err != nil {
		t.Fatal(err)
	}
	if attempts != 3 || lastStatus != 200 {
		t.Fatalf("attempts=%d last_status=%d", attempts, lastStatus)
	}
	var rows int
	if err := st.Pool().QueryRow(context.Background(), outboxtest.SQL(st.Schema(), `SELECT count(*) FROM {{schema}}.attempts`)).Scan(&rows); err != nil || rows != 3 {
		t.Fatalf("attempt rows = %d (%v)", rows, err)
	}
}

func TestGoneDisablesEndpoint(t *testing.T) {
	ctx := context.Background()
	st := outboxtest.ParallelStore(t)
	rc := newReceiver(t, func(http.ResponseWriter, int, receipt) int { return http.StatusGone })
	ep := createEndpoint(t, st, rc, "")
	startEngine(t, st, engineOpts{})
	insertSQL(t, st, "", "signup.created", 1, 1)
	eventually(t, 10*time.Second, "endpoint disabled", func() bool {
		e, err := st.GetEndpoint(ctx, ep.ID)
		return err == nil && !e.Enabled && e.DisabledReason != ""
	})
	eventually(t, 10*time.Second, "delivery dead", func() bool { return states(t, st)[outbox.StateDead] == 1 })
	// New events for the disabled endpoint are held, not attempted.
	insertSQL(t, st, "", "signup.created", 3, 3)
	eventually(t, 10*time.Second, "held", func() bool { return states(t, st)[outbox.StatePending] == 3 })
	var infinite int
	if err := st.Pool().QueryRow(ctx, outboxtest.SQL(st.Schema(), `SELECT count(*) FROM {{schema}}.deliveries WHERE next_attempt_at = 'infinity'`)).Scan(&infinite); err != nil || infinite != 3 {
		t.Fatalf("held deliveries = %d (%v)", infinite, err)
	}
}

func TestExhaustedScheduleIsDead(t *testing.T) {
	st := outboxtest.ParallelStore(t)
	rc := newReceiver(t, func(http.ResponseWriter, int, receipt) int { return http.StatusServiceUnavailable })
	createEndpoint(t, st, rc, "")
	startEngine(t, st, engineOpts{cfg: relay.Config{Policy: relay.Policy{Schedule: []time.Duration{50 * time.Millisecond, 50 * time.Millisecond}}}})
	insertSQL(t, st, "", "signup.created", 2, 2)
	eventually(t, 10*time.Second, "dead", func() bool { return states(t, st)[outbox.StateDead] == 2 })
	for id, n := range rc.Counts() {
		if n != 3 {
			t.Errorf("%s tried %d times, want 3", id, n)
		}
	}
}

func TestRetryAfterRespected(t *testing.T) {
	st := outboxtest.ParallelStore(t)
	var mu sync.Mutex
	var times []time.Time
	rc := newReceiver(t, func(w http.ResponseWriter, n int, r receipt) int {
		mu.Lock()
		times = append(times, r.At)
		mu.Unlock()
		if n == 1 {
			w.Header().Set("Retry-After", "2")
			return http.StatusTooManyRequests
		}
		return http.StatusOK
	})
	createEndpoint(t, st, rc, "")
	// The schedule alone would retry after 50ms.
	startEngine(t, st, engineOpts{cfg: relay.Config{Policy: relay.Policy{Schedule: []time.Duration{50 * time.Millisecond}}}})
	insertSQL(t, st, "", "signup.created", 1, 1)
	rc.WaitAccepted(1, 20*time.Second)
	mu.Lock()
	defer mu.Unlock()
	if gap := times[1].Sub(times[0]); gap < 2*time.Second {
		t.Fatalf("retried after %v, Retry-After asked for 2s", gap)
	}
}

func TestCrashedRelayLeasesAreReclaimed(t *testing.T) {
	ctx := context.Background()
	st := outboxtest.ParallelStore(t)
	rc := newReceiver(t, nil)
	createEndpoint(t, st, rc, "")
	insertSQL(t, st, "", "signup.created", 50, 50)
	// A relay fans out and claims, then dies without sending or releasing.
	if _, _, err := st.Dispatch(ctx, 100); err != nil {
		t.Fatal(err)
	}
	claimed, err := st.Claim(ctx, outbox.ClaimParams{Limit: 30, Lease: time.Second, PerEndpoint: 100})
	if err != nil || len(claimed) != 30 {
		t.Fatalf("claimed %d (%v)", len(claimed), err)
	}
	startEngine(t, st, engineOpts{})
	acceptedOnce(t, rc, 50, 20*time.Second)
	// The dead relay's late outcome must not overwrite the new state.
	outs := []outbox.Outcome{{DeliveryID: claimed[0].DeliveryID, LeaseToken: claimed[0].LeaseToken, EventID: claimed[0].EventID,
		EndpointID: claimed[0].EndpointID, Attempt: 1, State: outbox.StateDead, StartedAt: time.Now(), Result: "dead"}}
	eventually(t, 10*time.Second, "all delivered", func() bool { return states(t, st)[outbox.StateDelivered] == 50 })
	done, err := st.Complete(ctx, outs)
	if err != nil || len(done.Applied) != 0 {
		t.Fatalf("late outcome applied %v (%v)", done.Applied, err)
	}
	if s := states(t, st); s[outbox.StateDelivered] != 50 {
		t.Fatalf("states after late outcome = %v", s)
	}
}

func TestTwoEnginesNoDoubleDelivery(t *testing.T) {
	st := outboxtest.ParallelStore(t)
	rc := newReceiver(t, nil)
	createEndpoint(t, st, rc, "")
	st2, err := outbox.NewStore(outboxtest.Pool(t), st.Schema())
	if err != nil {
		t.Fatal(err)
	}
	startEngine(t, st, engineOpts{cfg: relay.Config{BatchSize: 20}})
	startEngine(t, st2, engineOpts{cfg: relay.Config{BatchSize: 20}})
	const n = 1000
	insertSQL(t, st, "", "signup.created", n, 100)
	rc.WaitAccepted(n, 60*time.Second)
	eventually(t, 10*time.Second, "all recorded", func() bool { return states(t, st)[outbox.StateDelivered] == n })
	counts := rc.Counts()
	for id, c := range counts {
		if c != 1 {
			t.Errorf("%s delivered %d times", id, c)
		}
	}
	if len(counts) != n {
		t.Fatalf("distinct = %d", len(counts))
	}
}

func TestPollingAloneDelivers(t *testing.T) {
	st := outboxtest.ParallelStore(t)
	rc := newReceiver(t, nil)
	createEndpoint(t, st, rc, "")
	// No wake channel at all: as behind a transaction pooler.
	startEngine(t, st, engineOpts{cfg: relay.Config{PollInterval: 100 * time.Millisecond}})
	insertSQL(t, st, "", "signup.created", 40, 7)
	rc.WaitAccepted(40, 20*time.Second)
}

func TestListenerWakesEngine(t *testing.T) {
	st := outboxtest.ParallelStore(t)
	rc := newReceiver(t, nil)
	createEndpoint(t, st, rc, "")
	l, _ := startListener(t, outboxtest.Shared().URL(), st.Schema())
	eventually(t, 10*time.Second, "listener connected", l.Connected)
	// A long poll interval: only the notification can explain a fast delivery.
	startEngine(t, st, engineOpts{cfg: relay.Config{PollInterval: time.Hour}, wake: l.Wake(), listening: l.Connected})
	// Once the relay has found nothing to do it marks itself idle, which
	// turns the trigger's notifications on.
	eventually(t, 10*time.Second, "relay idle", func() bool {
		var idle bool
		_ = st.Pool().QueryRow(context.Background(), outboxtest.SQL(st.Schema(), `SELECT EXISTS (SELECT 1 FROM {{schema}}.relays WHERE idle)`)).Scan(&idle)
		return idle
	})
	insertSQL(t, st, "", "signup.created", 5, 5)
	rc.WaitAccepted(5, 10*time.Second)
	if l.Received() == 0 {
		t.Fatal("no notification received")
	}
}

func TestDatabaseRestartMidDrain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := outboxtest.Server(t, pgcluster.Options{})
	pool, err := pgxPool(ctx, srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	st := outboxtest.StoreOn(t, pool, "hookrelay")
	rc := newReceiver(t, nil)
	createEndpoint(t, st, rc, "")
	l, _ := startListener(t, srv.URL(), "hookrelay")
	startEngine(t, st, engineOpts{cfg: relay.Config{BatchSize: 50, PollInterval: 200 * time.Millisecond}, wake: l.Wake(), listening: l.Connected})
	insertSQL(t, st, "", "signup.created", 500, 100)
	rc.WaitAccepted(50, 20*time.Second)
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	// The application writes through its own fresh pool; the relay's pool
	// holds dead connections and must recover by itself.
	appPool, err := pgxPool(ctx, srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(appPool.Close)
	app, err := outbox.NewStore(appPool, "hookrelay")
	if err != nil {
		t.Fatal(err)
	}
	insertSQL(t, app, "", "after.restart", 100, 100)
	acceptedOnce(t, rc, 600, 60*time.Second)
	eventually(t, 20*time.Second, "listener reconnected", l.Connected)
}

func TestGracefulShutdownReleasesLeases(t *testing.T) {
	ctx := context.Background()
	st := outboxtest.ParallelStore(t)
	block := make(chan struct{})
	var once sync.Once
	rc := newReceiver(t, func(w http.ResponseWriter, n int, r receipt) int {
		<-block
		return http.StatusOK
	})
	t.Cleanup(func() { once.Do(func() { close(block) }) })
	createEndpoint(t, st, rc, "")
	sender := relay.NewSender(relay.SenderConfig{Timeout: 30 * time.Second})
	defer sender.Close()
	e, err := relay.New(relay.Config{PollInterval: 50 * time.Millisecond, ShutdownTimeout: 300 * time.Millisecond, Lease: time.Minute,
		Policy: relay.Policy{Schedule: []time.Duration{time.Second}}}, st, sender, nil, zapNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.Run(rctx) }()
	insertSQL(t, st, "", "signup.created", 10, 10)
	eventually(t, 10*time.Second, "in flight", func() bool { return states(t, st)[outbox.StateInFlight] == 10 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("engine did not stop within its shutdown timeout")
	}
	if e.Running() {
		t.Fatal("still running")
	}
	s := states(t, st)
	if s[outbox.StateInFlight] != 0 || s[outbox.StatePending] != 10 {
		t.Fatalf("after shutdown: %v, want 10 pending and no lease held", s)
	}
	var attempts int
	if err := st.Pool().QueryRow(ctx, outboxtest.SQL(st.Schema(), `SELECT coalesce(sum(attempts), 0) FROM {{schema}}.deliveries`)).Scan(&attempts); err != nil || attempts != 0 {
		t.Fatalf("cancelled sends counted as attempts: %d (%v)", attempts, err)
	}
}

func TestEndpointRateLimit(t *testing.T) {
	st := outboxtest.ParallelStore(t)
	rc := newReceiver(t, nil)
	ep := createEndpoint(t, st, rc, "")
	updateEndpoint(t, st, ep.ID, outbox.EndpointPatch{RateLimit: ptr(5)})
	startEngine(t, st, engineOpts{})
	insertSQL(t, st, "", "signup.created", 15, 15)
	got := rc.WaitAccepted(15, 20*time.Second)
	// A burst of 5, then 5 per second: the last arrives at least ~2s after
	// the first.
	if span := got[14].At.Sub(got[0].At); span < 1800*time.Millisecond {
		t.Fatalf("15 deliveries at 5/s took %v", span)
	}
}

func TestPrefetchKeepsTheEndpointCap(t *testing.T) {
	st := outboxtest.ParallelStore(t)
	var cur, peak atomic.Int64
	rc := newReceiver(t, func(w http.ResponseWriter, n int, r receipt) int {
		c := cur.Add(1)
		for p := peak.Load(); c > p && !peak.CompareAndSwap(p, c); p = peak.Load() {
		}
		time.Sleep(time.Millisecond) // the receiver's work, so requests overlap
		cur.Add(-1)
		return http.StatusNoContent
	})
	ep := createEndpoint(t, st, rc, "")
	updateEndpoint(t, st, ep.ID, outbox.EndpointPatch{MaxInFlight: ptr(3)})
	m := relay.NewMetrics(nil)
	startEngine(t, st, engineOpts{metrics: m})
	const n = 600
	insertSQL(t, st, "", "signup.created", n, n)
	rc.WaitAccepted(n, 60*time.Second)
	if p := peak.Load(); p > 3 {
		t.Fatalf("%d requests in flight to an endpoint with max_in_flight 3", p)
	}
	// Without prefetch every claim would hold at most 3 deliveries.
	var h dto.Metric
	if err := m.ClaimBatch.Write(&h); err != nil {
		t.Fatal(err)
	}
	if claims := h.GetHistogram().GetSampleCount(); claims > n/6 {
		t.Fatalf("%d claims for %d deliveries: claims did not hold more than the endpoint's cap", claims, n)
	}
}

// TestUnusableSecretWaitsNotSent checks that a delivery whose endpoint
// secret cannot be used is neither sent nor killed: it waits, with the
// reason as its last error and no attempt counted, while other endpoints
// go on; once the secret is fixed it is delivered.
func TestUnusableSecretWaitsNotSent(t *testing.T) {
	ctx := context.Background()
	st := outboxtest.ParallelStore(t)
	rc := newReceiver(t, nil)
	healthy := newReceiver(t, nil)
	ep := createEndpoint(t, st, rc, "")
	createEndpoint(t, st, healthy, "")
	for _, bad := range []string{"not-a-secret", "enc:v1:0badc0de:AAAA"} {
		if _, err := st.Pool().Exec(ctx, outboxtest.SQL(st.Schema(), `UPDATE {{schema}}.endpoints SET secret = $2 WHERE id = $1`), ep.ID, bad); err != nil {
			t.Fatal(err)
		}
		m := relay.NewMetrics(nil)
		e := startEngineStoppable(t, st, engineOpts{metrics: m})
		insertSQL(t, st, "", "signup.created", 3, 3)
		healthy.WaitAccepted(3, 10*time.Second)
		eventually(t, 10*time.Second, "deliveries put back", func() bool { return counterValue(t, m.Deferred) == 3 })
		e.stop()
		var pending, attempts int
		var lastError string
		if err := st.Pool().QueryRow(ctx, outboxtest.SQL(st.Schema(), `SELECT count(*) FILTER (WHERE state = 'pending' AND next_attempt_at > now()), sum(attempts), max(last_error)
			FROM {{schema}}.deliveries WHERE endpoint_id = $1`), ep.ID).Scan(&pending, &attempts, &lastError); err != nil {
			t.Fatal(err)
		}
		if pending != 3 || attempts != 0 || !strings.Contains(lastError, "cannot sign") {
			t.Fatalf("secret %q: %d waiting, %d attempts counted, last error %q; want 3 waiting, 0 attempts, the reason", bad, pending, attempts, lastError)
		}
		if n := len(rc.Accepted()); n != 0 {
			t.Fatalf("receiver got %d deliveries without a usable secret", n)
		}
		if _, err := st.Pool().Exec(ctx, outboxtest.SQL(st.Schema(), `DELETE FROM {{schema}}.deliveries WHERE endpoint_id = $1`), ep.ID); err != nil {
			t.Fatal(err)
		}
		healthy.Reset()
	}
	// Fixed: the waiting deliveries go out when they are due.
	insertSQL(t, st, "", "signup.created", 2, 2)
	if _, err := st.Pool().Exec(ctx, outboxtest.SQL(st.Schema(), `UPDATE {{schema}}.endpoints SET secret = 'not-a-secret' WHERE id = $1`), ep.ID); err != nil {
		t.Fatal(err)
	}
	m := relay.NewMetrics(nil)
	e := startEngineStoppable(t, st, engineOpts{metrics: m})
	eventually(t, 10*time.Second, "deliveries put back", func() bool { return counterValue(t, m.Deferred) == 2 })
	e.stop()
	if _, err := st.Pool().Exec(ctx, outboxtest.SQL(st.Schema(), `UPDATE {{schema}}.endpoints SET secret = $2 WHERE id = $1`), ep.ID, rc.Secret); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, outboxtest.SQL(st.Schema(), `UPDATE {{schema}}.deliveries SET next_attempt_at = now() WHERE endpoint_id = $1`), ep.ID); err != nil {
		t.Fatal(err)
	}
	startEngine(t, st, engineOpts{})
	rc.WaitAccepted(2, 10*time.Second)
}

// counterValue reads a counter.
func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestRefusedOutcomeFailsOnlyItself checks that an outcome the database
// refuses does not fail the outcomes recorded with it: they are recorded
// once and not sent again, and the refused one is recorded without the
// receiver's text.
func TestRefusedOutcomeFailsOnlyItself(t *testing.T) {
	ctx := context.Background()
	st := outboxtest.ParallelStore(t)
	poison := newReceiver(t, func(w http.ResponseWriter, n int, r receipt) int {
		_, _ = w.Write([]byte("refuse-me"))
		return http.StatusOK
	})
	healthy := newReceiver(t, nil)
	createEndpoint(t, st, poison, "", "poison")
	createEndpoint(t, st, healthy, "", "healthy")
	// A constraint stands for any value of a receiver's answer that the
	// database refuses.
	if _, err := st.Pool().Exec(ctx, outboxtest.SQL(st.Schema(), `ALTER TABLE {{schema}}.attempts
		ADD CONSTRAINT refuse CHECK (response_excerpt NOT LIKE '%refuse-me%')`)); err != nil {
		t.Fatal(err)
	}
	m := relay.NewMetrics(nil)
	startEngine(t, st, engineOpts{metrics: m, cfg: relay.Config{CompleteDelay: 50 * time.Millisecond}})
	insertSQL(t, st, "", "healthy", 200, 200)
	insertSQL(t, st, "", "poison", 3, 3)
	insertSQL(t, st, "", "healthy", 200, 200)
	eventually(t, 20*time.Second, "every delivery delivered", func() bool { return states(t, st)[outbox.StateDelivered] == 403 })
	healthy.WaitAccepted(400, time.Second)
	if n := len(healthy.Accepted()); n != 400 {
		t.Fatalf("healthy endpoint got %d requests for 400 events: outcomes were lost and sent again", n)
	}
	var stripped int
	if err := st.Pool().QueryRow(ctx, outboxtest.SQL(st.Schema(), `SELECT count(*) FROM {{schema}}.attempts
		WHERE response_excerpt = '' AND error LIKE '%could not be stored%'`)).Scan(&stripped); err != nil {
		t.Fatal(err)
	}
	if stripped != 3 || counterValue(t, m.Isolated.WithLabelValues("stripped")) != 3 {
		t.Fatalf("%d attempts recorded stripped (metric %v), want 3", stripped, counterValue(t, m.Isolated.WithLabelValues("stripped")))
	}
}

func TestHealthReportsALoopFailingTooLong(t *testing.T) {
	st := outboxtest.ParallelStore(t)
	e := startEngine(t, st, engineOpts{})
	eventually(t, 5*time.Second, "engine running", e.Running)
	if err := e.Health(); err != nil {
		t.Fatalf("healthy engine: %v", err)
	}
	// The schema disappears: the fan-out fails from now on.
	if _, err := st.Pool().Exec(context.Background(), outboxtest.SQL(st.Schema(), `ALTER TABLE {{schema}}.outbox RENAME TO gone`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "health error", func() bool {
		relay.BackdateFailures(e, relay.UnhealthyAfter)
		err := e.Health()
		return err != nil && strings.Contains(err.Error(), "failing for") && strings.Contains(err.Error(), "does not exist")
	})
}

// TestNewChecksTheLeaseAgainstTheSender checks the cross-field rule that
// used to live only in config: a lease must outlast the sender's timeout;
// a zero lease is derived from it.
func TestNewChecksTheLeaseAgainstTheSender(t *testing.T) {
	st, err := outbox.NewStore(nil, outbox.DefaultSchema)
	if err != nil {
		t.Fatal(err)
	}
	sender := relay.NewSender(relay.SenderConfig{Timeout: 10 * time.Second})
	defer sender.Close()
	if _, err := relay.New(relay.Config{Lease: 12 * time.Second}, st, sender, nil, zapNop(), nil); err == nil ||
		!strings.Contains(err.Error(), "must exceed the request timeout") {
		t.Fatalf("lease 12s with a 10s timeout: %v, want a refusal", err)
	}
	if _, err := relay.New(relay.Config{}, st, sender, nil, zapNop(), nil); err != nil {
		t.Fatalf("zero config: %v, want the lease derived from the timeout", err)
	}
	if _, err := relay.New(relay.Config{}, nil, sender, nil, zapNop(), nil); err == nil {
		t.Fatal("no store: accepted")
	}
	if got, want := relay.DefaultLease(10*time.Second), 50*time.Second; got != want {
		t.Fatalf("DefaultLease(10s) = %s, want %s", got, want)
	}
}
