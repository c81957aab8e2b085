package relay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
	"github.com/hookrelay/hookrelay/outbox/secretbox"
	"github.com/hookrelay/hookrelay/relay"
)

func mustExec(t testing.TB, st *outbox.Store, q string, args ...any) {
	t.Helper()
	if _, err := st.Pool().Exec(context.Background(), outboxtest.SQL(st.Schema(), q), args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func count(t testing.TB, st *outbox.Store, q string, args ...any) int {
	t.Helper()
	var n int
	if err := st.Pool().QueryRow(context.Background(), outboxtest.SQL(st.Schema(), q), args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// history inserts one event aged age (dispatched unless undispatched) with
// one delivery per state given (to distinct endpoints), each with two
// attempts; finished deliveries finished age ago. It returns the event id.
func history(t testing.TB, st *outbox.Store, age time.Duration, dispatched bool, deliveryStates ...string) int64 {
	t.Helper()
	ctx := context.Background()
	var id int64
	err := st.Pool().QueryRow(ctx, outboxtest.SQL(st.Schema(), `INSERT INTO {{schema}}.outbox (event_type, payload, created_at, dispatched_at)
 VALUES ('signup.created', '{}', now() - make_interval(secs => $1), CASE WHEN $2 THEN now() - make_interval(secs => $1) END) RETURNING id`),
		age.Seconds(), dispatched).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	for _, state := range deliveryStates {
		mustExec(t, st, `WITH d AS (
  INSERT INTO {{schema}}.deliveries (event_id, endpoint_id, state, attempts, finished_at, lease_token, lease_expires_at)
  VALUES ($1, gen_random_uuid(), $2, 2,
          CASE WHEN $2 IN ('delivered', 'dead', 'cancelled') THEN now() - make_interval(secs => $3) END,
          CASE WHEN $2 = 'in_flight' THEN 1 END, CASE WHEN $2 = 'in_flight' THEN now() + interval '1 minute' END)
  RETURNING id, event_id, endpoint_id)
INSERT INTO {{schema}}.attempts (delivery_id, event_id, endpoint_id, attempt, started_at, duration_ms, outcome)
SELECT id, event_id, endpoint_id, n, now() - make_interval(secs => $3), 5, 'retry' FROM d, generate_series(1, 2) n`, id, state, age.Seconds())
	}
	return id
}

func TestRetentionDeletesOnlyOldFinishedHistory(t *testing.T) {
	st := outboxtest.Store(t)
	const day = 24 * time.Hour
	old := 40 * day
	var gone, kept []int64
	for range 5 { // more than one purge batch
		gone = append(gone, history(t, st, old, true, "delivered", "dead", "cancelled"))
	}
	gone = append(gone, history(t, st, old, true)) // fanned out to nobody
	kept = append(kept,
		history(t, st, old, true, "delivered", "pending"), // unfinished delivery keeps the event
		history(t, st, old, true, "in_flight"),            // leased work
		history(t, st, old, false),                        // not dispatched yet
		history(t, st, 2*day, true, "delivered", "dead"),  // recent
		history(t, st, old, true, "pending", "pending"),   // retries still due
	)

	m := &relay.Maintenance{Store: st, Retention: 30 * day, PurgeBatch: 4}
	res, err := m.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := outbox.Purged{Events: 6, Deliveries: 16, Attempts: 32}
	if res.Skipped || !res.Retention || res.Purged != want {
		t.Errorf("sweep = %+v, want retention purging %+v", res, want)
	}
	for _, id := range gone {
		if n := count(t, st, `SELECT count(*) FROM {{schema}}.outbox WHERE id = $1`, id); n != 0 {
			t.Errorf("old finished event %d was kept", id)
		}
	}
	for _, id := range kept {
		if n := count(t, st, `SELECT count(*) FROM {{schema}}.outbox WHERE id = $1`, id); n != 1 {
			t.Errorf("event %d was deleted", id)
		}
	}
	// What is left: 1 pending + 1 in_flight + 2 recent + 2 pending.
	if got := states(t, st); got["pending"] != 3 || got["in_flight"] != 1 || got["delivered"] != 1 || got["dead"] != 1 || got["cancelled"] != 0 {
		t.Errorf("deliveries left by state = %v", got)
	}
	if n := count(t, st, `SELECT count(*) FROM {{schema}}.attempts a WHERE NOT EXISTS (SELECT 1 FROM {{schema}}.deliveries d WHERE d.id = a.delivery_id)`); n != 0 {
		t.Errorf("%d attempts of deleted deliveries left", n)
	}
	if n := count(t, st, `SELECT count(*) FROM {{schema}}.attempts`); n != 12 {
		t.Errorf("attempts left = %d, want 12 (two for each of the 6 deliveries kept)", n)
	}

	// Not due again within RetentionInterval; retention off does nothing.
	res, err = m.Sweep(context.Background())
	if err != nil || res.Retention {
		t.Errorf("second sweep = %+v, %v; want no retention pass yet", res, err)
	}
	off := &relay.Maintenance{Store: st}
	if res, err := off.Sweep(context.Background()); err != nil || res.Retention {
		t.Errorf("sweep with retention 0 = %+v, %v; want no retention pass", res, err)
	}
}

func TestMaintenanceLockSkipsSecondSweep(t *testing.T) {
	st := outboxtest.Store(t)
	ctx := context.Background()
	history(t, st, 40*24*time.Hour, true, "delivered")
	holding, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		ran, err := st.TryMaintenance(ctx, func(context.Context) error {
			close(holding)
			<-release
			return nil
		})
		if err == nil && !ran {
			err = fmt.Errorf("first TryMaintenance did not get the lock")
		}
		done <- err
	}()
	<-holding

	// Another replica (its own pool) tries while the lock is held.
	other, err := outbox.NewStore(outboxtest.Pool(t), st.Schema())
	if err != nil {
		t.Fatal(err)
	}
	m := &relay.Maintenance{Store: other, Retention: 30 * 24 * time.Hour, DisableAfter: time.Hour, DisableAfterFailures: 1}
	res, err := m.Sweep(ctx)
	if err != nil || !res.Skipped || res.Retention || res.Purged != (outbox.Purged{}) {
		t.Errorf("sweep while locked = %+v, %v; want skipped and nothing done", res, err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	res, err = m.Sweep(ctx)
	if err != nil || res.Skipped || res.Purged.Deliveries != 1 {
		t.Errorf("sweep after release = %+v, %v; want it to run and delete 1 delivery", res, err)
	}
}

// opsEvents returns the operational events in st's outbox, oldest first.
func opsEvents(t testing.TB, st *outbox.Store) []outbox.StoredEvent {
	t.Helper()
	rows, err := st.Pool().Query(context.Background(), outboxtest.SQL(st.Schema(), `SELECT event_type, tenant, payload FROM {{schema}}.outbox
 WHERE event_type LIKE 'hookrelay.%' ORDER BY id`))
	if err != nil {
		t.Fatal(err)
	}
	evs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (outbox.StoredEvent, error) {
		var e outbox.StoredEvent
		err := r.Scan(&e.Type, &e.Tenant, &e.Payload)
		return e, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestAutoDisable(t *testing.T) {
	st := outboxtest.Store(t)
	ctx := context.Background()
	mk := func(failures int, lastSuccessAgo, createdAgo time.Duration, never bool) string {
		ep, err := st.CreateEndpoint(ctx, outbox.EndpointInput{URL: "https://example.com/h", Secret: "whsec_" + strings.Repeat("QUJD", 8), Tenant: "acme"}, 0)
		if err != nil {
			t.Fatal(err)
		}
		mustExec(t, st, `UPDATE {{schema}}.endpoints SET consecutive_failures = $2,
  last_success_at = CASE WHEN $5 THEN NULL ELSE now() - make_interval(secs => $3) END,
  created_at = now() - make_interval(secs => $4) WHERE id = $1`, ep.ID, failures, lastSuccessAgo.Seconds(), createdAgo.Seconds(), never)
		return ep.ID
	}
	const day = 24 * time.Hour
	stale := mk(12, 6*day, 30*day, false)
	staleNever := mk(10, 0, 6*day, true)
	fewFailures := mk(9, 6*day, 30*day, false)
	recentSuccess := mk(50, 4*day, 30*day, false)
	newNever := mk(50, 0, 4*day, true)
	// A pending delivery of the stale endpoint is held, not lost.
	ev := history(t, st, time.Minute, true)
	mustExec(t, st, `INSERT INTO {{schema}}.deliveries (event_id, endpoint_id) VALUES ($1, $2)`, ev, stale)

	ops := relay.NewOpsEvents(st, "ops", zapNop())
	m := &relay.Maintenance{Store: st, DisableAfter: 5 * day, DisableAfterFailures: 10, OnDisabled: ops.OnDisabled}
	res, err := m.Sweep(ctx)
	if err != nil || res.Disabled != 2 {
		t.Fatalf("sweep = %+v, %v; want 2 endpoints disabled", res, err)
	}
	for id, want := range map[string]bool{stale: false, staleNever: false, fewFailures: true, recentSuccess: true, newNever: true} {
		ep, err := st.GetEndpoint(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if ep.Enabled != want {
			t.Errorf("endpoint %s enabled = %v, want %v", id, ep.Enabled, want)
		}
		if !want && !strings.HasPrefix(ep.DisabledReason, "auto-disabled: no successful delivery for 120h0m0s and ") {
			t.Errorf("disabled reason = %q", ep.DisabledReason)
		}
	}
	if n := count(t, st, `SELECT count(*) FROM {{schema}}.deliveries WHERE endpoint_id = $1 AND state = 'pending' AND next_attempt_at = 'infinity'`, stale); n != 1 {
		t.Errorf("held deliveries of the disabled endpoint = %d, want 1", n)
	}
	evs := opsEvents(t, st)
	if len(evs) != 2 {
		t.Fatalf("operational events = %d, want 2", len(evs))
	}
	seen := map[string]bool{}
	for _, e := range evs {
		var p relay.EndpointDisabledPayload
		if err := json.Unmarshal(e.Payload, &p); err != nil {
			t.Fatal(err)
		}
		seen[p.EndpointID] = true
		if e.Type != relay.EventEndpointDisabled || e.Tenant != "ops" || p.Tenant != "acme" || p.DisabledAt.IsZero() ||
			!strings.HasPrefix(p.Reason, "auto-disabled") {
			t.Errorf("event = %s %s %s", e.Type, e.Tenant, e.Payload)
		}
	}
	if !seen[stale] || !seen[staleNever] {
		t.Errorf("events for %v, want %s and %s", seen, stale, staleNever)
	}
	// A second sweep has nothing left to do.
	if res, err := m.Sweep(ctx); err != nil || res.Disabled != 0 {
		t.Errorf("second sweep = %+v, %v", res, err)
	}
}

func TestOpsEventsOnDeadAndGone(t *testing.T) {
	st := outboxtest.Store(t)
	gone := newReceiver(t, func(http.ResponseWriter, int, receipt) int { return http.StatusGone })
	failing := newReceiver(t, func(http.ResponseWriter, int, receipt) int { return http.StatusInternalServerError })
	opsRc := newReceiver(t, func(http.ResponseWriter, int, receipt) int { return http.StatusInternalServerError })
	goneEp := createEndpoint(t, st, gone, "acme", "a.gone")
	failEp := createEndpoint(t, st, failing, "acme", "a.fail")
	// The operator's endpoint fails too: its dead hookrelay.* deliveries
	// must not produce more events.
	createEndpoint(t, st, opsRc, "ops")

	ops := relay.NewOpsEvents(st, "ops", zapNop())
	e, err := relay.New(relay.Config{PollInterval: 50 * time.Millisecond, Lease: 20 * time.Second, ShutdownTimeout: 5 * time.Second,
		Policy:     relay.Policy{Schedule: []time.Duration{10 * time.Millisecond}},
		OnDisabled: ops.OnDisabled, OnDead: ops.OnDead},
		st, relay.NewSender(relay.SenderConfig{Timeout: 5 * time.Second}), nil, zapNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	}
	defer stop()
	insertSQL(t, st, "acme", "a.gone", 1, 1)
	insertSQL(t, st, "acme", "a.fail", 1, 1)

	// Expect: endpoint disabled (410, which also kills that delivery), the
	// other delivery dead (500 twice), and the ops endpoint's deliveries of
	// those three events dying without echo.
	eventually(t, 20*time.Second, "operational deliveries to die", func() bool {
		return count(t, st, `SELECT count(*) FROM {{schema}}.deliveries d JOIN {{schema}}.outbox o ON o.id = d.event_id
 WHERE o.event_type LIKE 'hookrelay.%' AND d.state = 'dead'`) == 3
	})
	stop() // every OnDead call has returned
	evs := opsEvents(t, st)
	byType := map[string][]json.RawMessage{}
	for _, ev := range evs {
		if ev.Tenant != "ops" {
			t.Errorf("event %s for tenant %q, want ops", ev.Type, ev.Tenant)
		}
		byType[ev.Type] = append(byType[ev.Type], ev.Payload)
	}
	if len(evs) != 3 || len(byType[relay.EventEndpointDisabled]) != 1 || len(byType[relay.EventDeliveryDead]) != 2 {
		t.Fatalf("operational events = %v, want 1 disabled and 2 dead", byType)
	}
	var dis relay.EndpointDisabledPayload
	if err := json.Unmarshal(byType[relay.EventEndpointDisabled][0], &dis); err != nil || dis.EndpointID != goneEp.ID ||
		!strings.Contains(dis.Reason, "410") || dis.Tenant != "acme" {
		t.Errorf("disabled event = %s (%v)", byType[relay.EventEndpointDisabled][0], err)
	}
	dead := map[string]relay.DeliveryDeadPayload{}
	for _, raw := range byType[relay.EventDeliveryDead] {
		var p relay.DeliveryDeadPayload
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatal(err)
		}
		dead[p.EndpointID] = p
	}
	if p := dead[failEp.ID]; p.EventType != "a.fail" || p.Attempts != 2 || p.StatusCode != 500 ||
		!strings.HasPrefix(p.WebhookID, "msg_") || p.Tenant != "acme" || p.DeliveryID == 0 || p.LastError == "" {
		t.Errorf("dead event for the failing endpoint = %+v", p)
	}
	if p := dead[goneEp.ID]; p.EventType != "a.gone" || p.Attempts != 1 || p.StatusCode != 410 {
		t.Errorf("dead event for the gone endpoint = %+v", p)
	}
}

func TestDeliveryWithSealedSecrets(t *testing.T) {
	st := outboxtest.Store(t)
	box, err := secretbox.New(bytes.Repeat([]byte{9}, secretbox.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	st.SetSecretCodec(box)
	rc := newReceiver(t, nil)
	ep := createEndpoint(t, st, rc, "acme")
	// The database holds only ciphertext.
	var stored string
	if err := st.Pool().QueryRow(context.Background(), outboxtest.SQL(st.Schema(), `SELECT secret FROM {{schema}}.endpoints WHERE id = $1`), ep.ID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	raw := strings.TrimPrefix(rc.Secret, "whsec_")
	if strings.Contains(stored, raw) || !strings.HasPrefix(stored, secretbox.Prefix+box.CurrentKeyID()+":") {
		t.Fatalf("stored secret %q is not sealed with the box", stored)
	}
	if n := count(t, st, `SELECT count(*) FROM {{schema}}.endpoints WHERE strpos(secret || old_secrets::text, $1) > 0`, raw); n != 0 {
		t.Fatal("the plain secret is in the endpoints table")
	}
	startEngine(t, st, engineOpts{})
	insertSQL(t, st, "acme", "signup.created", 3, 3)
	got := rc.WaitAccepted(3, 20*time.Second)
	if len(got) != 3 {
		t.Errorf("accepted %d, want 3", len(got))
	}
	// The receiver verified every signature against the plain secret; it
	// fails the test on a bad one.
}
