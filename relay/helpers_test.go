package relay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/signature"
)

// receipt is one verified request seen by a receiver.
type receipt struct {
	ID        string
	Timestamp string
	Type      string
	Data      json.RawMessage
	At        time.Time
}

// receiver is a real HTTP endpoint that verifies every signature the way a
// customer would and records what it got.
type receiver struct {
	t         testing.TB
	srv       *httptest.Server
	secret    signature.Secret
	rawSecret string
	// respond decides the status (and may set headers); nil answers 204.
	respond func(w http.ResponseWriter, n int, r receipt) int
	// onRequest, if set before requests arrive, sees each request first.
	onRequest func(r *http.Request)

	mu      sync.Mutex
	got     []receipt
	bad     int
	byID    map[string]int
	changed chan struct{}
	conns   atomic.Int64 // connections accepted
}

func newReceiver(t testing.TB, respond func(w http.ResponseWriter, n int, r receipt) int) *receiver {
	t.Helper()
	raw, err := signature.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	sec, err := signature.ParseSecret(raw)
	if err != nil {
		t.Fatal(err)
	}
	rc := &receiver{t: t, secret: sec, respond: respond, byID: map[string]int{}, changed: make(chan struct{}, 1)}
	rc.srv = httptest.NewUnstartedServer(http.HandlerFunc(rc.serve))
	rc.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			rc.conns.Add(1)
		}
	}
	rc.srv.Start()
	t.Cleanup(rc.srv.Close)
	rc.rawSecret = raw
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	if rc.onRequest != nil {
		rc.onRequest(r)
	}
	body, _ := io.ReadAll(r.Body)
	if err := signature.Verify(r.Header, body, rc.secret, 5*time.Minute, time.Now()); err != nil {
		rc.mu.Lock()
		rc.bad++
		rc.mu.Unlock()
		rc.t.Errorf("receiver: bad signature: %v", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	var b struct {
		Type      string          `json:"type"`
		Timestamp string          `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		rc.t.Errorf("receiver: body is not JSON: %v", err)
	}
	rec := receipt{ID: r.Header.Get("webhook-id"), Timestamp: r.Header.Get("webhook-timestamp"), Type: b.Type, Data: b.Data, At: time.Now()}
	rc.mu.Lock()
	rc.byID[rec.ID]++
	n := rc.byID[rec.ID]
	rc.mu.Unlock()
	status := http.StatusNoContent
	if rc.respond != nil {
		status = rc.respond(w, n, rec)
	}
	if status >= 200 && status < 300 {
		rc.mu.Lock()
		rc.got = append(rc.got, rec)
		rc.mu.Unlock()
	}
	w.WriteHeader(status)
	select {
	case rc.changed <- struct{}{}:
	default:
	}
}

// reset forgets what the receiver got.
func (rc *receiver) reset() {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.got, rc.byID = nil, map[string]int{}
}

// accepted returns a copy of the accepted receipts.
func (rc *receiver) accepted() []receipt {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]receipt(nil), rc.got...)
}

// waitAccepted waits until at least n receipts were accepted.
func (rc *receiver) waitAccepted(n int, timeout time.Duration) []receipt {
	rc.t.Helper()
	deadline := time.After(timeout)
	for {
		if got := rc.accepted(); len(got) >= n {
			return got
		}
		select {
		case <-rc.changed:
		case <-deadline:
			rc.t.Fatalf("receiver got %d accepted deliveries, want %d within %v", len(rc.accepted()), n, timeout)
		}
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(timeout)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
	}
}

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
	e := relay.New(o.cfg, st, sender, o.wake, log, o.metrics)
	e.Listening = o.listening
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
func createEndpoint(t testing.TB, st *outbox.Store, rc *receiver, tenant string, types ...string) outbox.Endpoint {
	t.Helper()
	ep, err := st.CreateEndpoint(context.Background(), outbox.EndpointInput{
		Tenant: tenant, URL: rc.srv.URL + "/hook", EventTypes: types, Secret: rc.rawSecret,
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

// insertSQL inserts events with plain SQL, n per transaction.
func insertSQL(t testing.TB, st *outbox.Store, tenant, typ string, count, perTx int) {
	t.Helper()
	ctx := context.Background()
	q := `INSERT INTO ` + pgx.Identifier{st.Schema()}.Sanitize() + `.outbox (event_type, tenant, payload) VALUES ($1, $2, $3)`
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
	rows, err := st.Pool().Query(context.Background(), `SELECT state, count(*) FROM `+pgx.Identifier{st.Schema()}.Sanitize()+`.deliveries GROUP BY state`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			t.Fatal(err)
		}
		out[s] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// qualifiedTable is the quoted name of one of the store's tables.
func qualifiedTable(st *outbox.Store, table string) string {
	return pgx.Identifier{st.Schema(), table}.Sanitize()
}
