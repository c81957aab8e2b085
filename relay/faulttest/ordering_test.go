package faulttest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/relaytest"
)

// keyedReceiver checks the ordering guarantee from the receiver's side:
// when a request for event n of a key starts, events 0..n-1 of the key
// have all been answered with a 2xx already. It fails a share of requests
// (503, or no answer until the relay times out).
type keyedReceiver struct {
	*relaytest.Receiver

	mu         sync.Mutex
	failRate   float64
	hangRate   float64
	acked      map[string]map[int]bool // key → seq → answered 2xx
	firstOrder map[string][]int        // key → seqs in the order of their first 2xx
	violations []string
	requests   int
}

func newKeyedReceiver(t testing.TB, failRate, hangRate float64) *keyedReceiver {
	t.Helper()
	k := &keyedReceiver{Receiver: relaytest.NewReceiver(t), failRate: failRate, hangRate: hangRate,
		acked: map[string]map[int]bool{}, firstOrder: map[string][]int{}}
	k.Respond = k.respond
	return k
}

// respond checks a verified request against the guarantee and answers it.
func (k *keyedReceiver) respond(w http.ResponseWriter, r *http.Request, got relaytest.Receipt) int {
	var ev struct {
		Key string `json:"key"`
		Seq int    `json:"seq"`
	}
	if err := json.Unmarshal(got.Data, &ev); err != nil {
		return http.StatusBadRequest
	}
	key, seq := ev.Key, ev.Seq
	k.mu.Lock()
	k.requests++
	if h := got.Header.Get(relay.OrderingKeyHeader); h != relay.EncodeOrderingKey(key) {
		k.violations = append(k.violations, fmt.Sprintf("key %s: header %s = %q", key, relay.OrderingKeyHeader, h))
	}
	for before := range seq {
		if !k.acked[key][before] {
			k.violations = append(k.violations, fmt.Sprintf("key %s: event %d requested before event %d was acknowledged", key, seq, before))
			break
		}
	}
	roll := rand.Float64()
	hang, fail := roll < k.hangRate, roll < k.hangRate+k.failRate
	k.mu.Unlock()
	switch {
	case hang:
		<-r.Context().Done() // the relay times out; the server closes at the end of the test
		return http.StatusGatewayTimeout
	case fail:
		return http.StatusServiceUnavailable
	}
	k.mu.Lock()
	if k.acked[key] == nil {
		k.acked[key] = map[int]bool{}
	}
	if !k.acked[key][seq] {
		k.acked[key][seq] = true
		k.firstOrder[key] = append(k.firstOrder[key], seq)
	}
	k.mu.Unlock()
	return http.StatusNoContent
}

// TestFaultOrderingKeys runs two relays on keyed events while the receiver
// fails some requests (503 and timeouts), the endpoint is disabled and
// enabled again, and one relay is killed with SIGKILL and restarted: per
// key, no request for event n+1 starts before event n was acknowledged,
// and first receipts follow the events' order.
func TestFaultOrderingKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := outboxtest.Store(t)
	rc := newKeyedReceiver(t, 0.1, 0.02)
	ep, err := st.CreateEndpoint(ctx, outbox.EndpointInput{URL: rc.URL(), Secret: rc.Secret}, 0)
	if err != nil {
		t.Fatal(err)
	}
	env := relayEnv(outboxtest.Shared().URL(), st.Schema(), "HOOKRELAY_POLL_INTERVAL=100ms")
	a, _ := startRelay(t, env), startRelay(t, env)
	const keys, per = 20, 15
	enqueue := func(from, n int) {
		var evs []outbox.Event
		for seq := from; seq < from+n; seq++ {
			for k := range keys {
				key := fmt.Sprintf("participant:%d", k)
				evs = append(evs, outbox.Event{Type: "signup.position_changed", OrderingKey: key,
					Payload: []byte(fmt.Sprintf(`{"key":%q,"seq":%d}`, key, seq))})
			}
		}
		if _, err := outbox.EnqueueBatch(ctx, st.Pool(), evs, outbox.Options{Schema: st.Schema()}); err != nil {
			t.Fatal(err)
		}
	}
	delivered := outboxtest.SQL(st.Schema(), `SELECT count(*) FROM {{schema}}.deliveries WHERE state = 'delivered'`)
	t.Cleanup(func() {
		if t.Failed() {
			logUnfinished(t, st)
		}
	})
	enqueue(0, 5)
	eventually(t, 60*time.Second, "a first share delivered", func() bool { return count(st, delivered) >= keys*2 })
	a.kill() // SIGKILL mid-run: its leases expire and the other relay goes on
	enqueue(5, 5)
	off, on := false, true
	if _, err := st.UpdateEndpoint(ctx, ep.ID, outbox.EndpointPatch{Enabled: &off}); err != nil {
		t.Fatal(err)
	}
	startRelay(t, env) // the killed relay comes back
	enqueue(10, 5)
	if _, err := st.UpdateEndpoint(ctx, ep.ID, outbox.EndpointPatch{Enabled: &on}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 120*time.Second, "every event delivered", func() bool { return count(st, delivered) == keys*per })
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, v := range rc.violations[:min(len(rc.violations), 10)] {
		t.Error(v)
	}
	for k := range keys {
		key := fmt.Sprintf("participant:%d", k)
		got := rc.firstOrder[key]
		ok := len(got) == per
		for i := 0; ok && i < per; i++ {
			ok = got[i] == i
		}
		if !ok {
			t.Errorf("key %s: first receipts %v, want 0..%d in order", key, got, per-1)
		}
	}
	t.Logf("%d events over %d keys, %d requests (failures and re-sends included)", keys*per, keys, rc.requests)
}

// logUnfinished logs the events not fanned out and the deliveries not
// delivered, for a failed test.
func logUnfinished(t *testing.T, st *outbox.Store) {
	ctx := context.Background()
	for _, q := range []string{
		`SELECT format('event %s key %s: not fanned out (retry at %s, error %s)', id, ordering_key, dispatch_retry_at, dispatch_error)
		   FROM {{schema}}.outbox WHERE dispatched_at IS NULL ORDER BY id`,
		`SELECT format('delivery %s event %s key %s: %s, %s attempts, next attempt %s, lease until %s', id, event_id, ordering_key,
		               state, attempts, next_attempt_at, lease_expires_at)
		   FROM {{schema}}.deliveries WHERE state <> 'delivered' ORDER BY id`,
	} {
		rows, err := st.Pool().Query(ctx, outboxtest.SQL(st.Schema(), q))
		if err != nil {
			t.Log(err)
			return
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Log(err)
			return
		}
		for _, l := range lines[:min(len(lines), 40)] {
			t.Log(l)
		}
	}
}
