package relay_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/relaytest"
)

// receipt is one verified request seen by a receiver.
type receipt = relaytest.Receipt

// newReceiver starts a verifying receiver (relaytest.Receiver); respond,
// when not nil, decides each status from the request's arrival count for
// its webhook-id and what arrived.
func newReceiver(t testing.TB, respond func(w http.ResponseWriter, n int, r receipt) int) *relaytest.Receiver {
	t.Helper()
	rc := relaytest.NewReceiver(t)
	if respond != nil {
		rc.Respond = func(w http.ResponseWriter, _ *http.Request, got receipt) int { return respond(w, got.N, got) }
	}
	return rc
}

// eventually polls cond until it holds or the deadline passes.
var eventually = relaytest.Eventually

type engineOpts struct {
	cfg       relay.Config
	wake      <-chan struct{}
	listening func() bool
	log       *zap.Logger
	metrics   *relay.Metrics
}

// startEngine runs an engine on st until the test ends.
func startEngine(t testing.TB, st *outbox.Store, o engineOpts) *relay.Engine {
	t.Helper()
	return startEngineStoppable(t, st, o).Engine
}

// runningEngine is an engine started by startEngineStoppable.
type runningEngine struct {
	*relay.Engine
	stop func() // stops the engine and waits for it (idempotent)
}

// startEngineStoppable runs an engine on st until stop is called or the
// test ends.
func startEngineStoppable(t testing.TB, st *outbox.Store, o engineOpts) runningEngine {
	t.Helper()
	if o.cfg.PollInterval == 0 {
		o.cfg.PollInterval = 50 * time.Millisecond
	}
	if o.cfg.Policy.Schedule == nil {
		o.cfg.Policy.Schedule = []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond}
	}
	if o.cfg.ShutdownTimeout == 0 {
		o.cfg.ShutdownTimeout = 5 * time.Second
	}
	if o.cfg.Lease == 0 {
		o.cfg.Lease = 20 * time.Second
	}
	log := o.log
	if log == nil {
		log = zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	}
	sender := relay.NewSender(relay.SenderConfig{Timeout: 5 * time.Second})
	o.cfg.Listening = o.listening
	e, err := relay.New(o.cfg, st, sender, o.wake, log, o.metrics)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("engine: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("engine did not stop")
			}
			sender.Close()
		})
	}
	t.Cleanup(stop)
	return runningEngine{Engine: e, stop: stop}
}

// createEndpoint adds an endpoint for rc.
func createEndpoint(t testing.TB, st *outbox.Store, rc *relaytest.Receiver, tenant string, types ...string) outbox.Endpoint {
	t.Helper()
	ep, err := st.CreateEndpoint(context.Background(), outbox.EndpointInput{
		Tenant: tenant, URL: rc.URL(), EventTypes: types, Secret: rc.Secret,
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

// updateEndpoint applies patch to endpoint id.
func updateEndpoint(t testing.TB, st *outbox.Store, id string, patch outbox.EndpointPatch) {
	t.Helper()
	if _, err := st.UpdateEndpoint(context.Background(), id, patch); err != nil {
		t.Fatal(err)
	}
}

// ptr returns a pointer to v, for patches.
func ptr[T any](v T) *T { return &v }

// insertSQL inserts events with plain SQL, n per transaction.
func insertSQL(t testing.TB, st *outbox.Store, tenant, typ string, count, perTx int) {
	t.Helper()
	ctx := context.Background()
	q := outboxtest.SQL(st.Schema(), `INSERT INTO {{schema}}.outbox (event_type, tenant, payload) VALUES ($1, $2, $3)`)
	for i := 0; i < count; {
		tx, err := st.Pool().Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < perTx && i < count; j++ {
			if _, err := tx.Exec(ctx, q, typ, tenant, fmt.Sprintf(`{"n":%d}`, i)); err != nil {
				_ = tx.Rollback(ctx)
				t.Fatal(err)
			}
			i++
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// states counts deliveries by state.
func states(t testing.TB, st *outbox.Store) map[string]int {
	t.Helper()
	return outboxtest.Counts(t, st, outboxtest.SQL(st.Schema(), `SELECT state, count(*) FROM {{schema}}.deliveries GROUP BY state`))
}

// acceptedOnce waits until rc accepted n deliveries and fails unless they
// are of n distinct events.
func acceptedOnce(t testing.TB, rc *relaytest.Receiver, n int, timeout time.Duration) {
	t.Helper()
	got := rc.WaitAccepted(n, timeout)
	ids := map[string]bool{}
	for _, r := range got {
		ids[r.ID] = true
	}
	if len(ids) != n {
		t.Fatalf("distinct events delivered = %d (of %d accepted), want %d", len(ids), len(got), n)
	}
}

// startListener runs a listener on schema's channel of the server at url
// until stop is called or tb ends.
func startListener(tb testing.TB, url, schema string) (l *outbox.Listener, stop func()) {
	tb.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		tb.Fatal(err)
	}
	l = outbox.NewListener(cfg, schema, zapNop())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = l.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	tb.Cleanup(stop)
	return l, stop
}
