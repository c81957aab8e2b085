package relay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
	"github.com/hookrelay/hookrelay/relay"
)

// keyedEvent is the payload of the ordering tests: the key and the event's
// place in it.
type keyedEvent struct {
	Key string `json:"key"`
	Seq int    `json:"seq"`
}

// orderChecker is a receiver's view of keyed deliveries: per key, the
// sequence numbers in the order their first 2xx was sent, and any overlap
// (a request of a key arriving while another of the key is unanswered).
type orderChecker struct {
	t        testing.TB
	mu       sync.Mutex
	open     map[string]int // requests of the key being answered
	done     map[string][]int
	seen     map[string]map[int]bool
	overlaps int
}

func newOrderChecker(t testing.TB) *orderChecker {
	return &orderChecker{t: t, open: map[string]int{}, done: map[string][]int{}, seen: map[string]map[int]bool{}}
}

// begin records a request's arrival; end its answer (ok: a 2xx).
func (o *orderChecker) begin(r receipt) keyedEvent {
	var ev keyedEvent
	if err := json.Unmarshal(r.Data, &ev); err != nil {
		o.t.Errorf("payload %s: %v", r.Data, err)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.open[ev.Key] > 0 {
		o.overlaps++
		o.t.Errorf("key %s: event %d requested while an earlier request of the key was unanswered", ev.Key, ev.Seq)
	}
	o.open[ev.Key]++
	return ev
}

func (o *orderChecker) end(ev keyedEvent, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.open[ev.Key]--
	if !ok {
		return
	}
	if o.seen[ev.Key] == nil {
		o.seen[ev.Key] = map[int]bool{}
	}
	if !o.seen[ev.Key][ev.Seq] {
		o.seen[ev.Key][ev.Seq] = true
		o.done[ev.Key] = append(o.done[ev.Key], ev.Seq)
	}
}

// check asserts that every key's first receipts are 0, 1, 2, ... n-1.
func (o *orderChecker) check(keys []string, n int) {
	o.t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, k := range keys {
		got := o.done[k]
		if len(got) != n {
			o.t.Errorf("key %s: %d events received, want %d", k, len(got), n)
			continue
		}
		for i, s := range got {
			if s != i {
				o.t.Errorf("key %s: first receipts in order %v, want 0..%d", k, got, n-1)
				break
			}
		}
	}
}

func enqueueKeyed(t testing.TB, st *outbox.Store, typ, key string, from, n int) {
	t.Helper()
	evs := make([]outbox.Event, n)
	for i := range evs {
		evs[i] = outbox.Event{Type: typ, OrderingKey: key, Payload: []byte(fmt.Sprintf(`{"key":%q,"seq":%d}`, key, from+i))}
	}
	if _, err := outbox.EnqueueBatch(context.Background(), st.Pool(), evs, outbox.Options{Schema: st.Schema()}); err != nil {
		t.Fatal(err)
	}
}

// TestOrderingPerKeyUnderFailures sends keyed events to an endpoint that
// fails the first attempt of every third event: per key, no request starts before the one
// before it was answered with a 2xx, first receipts follow event order,
// and the header carries the key.
func TestOrderingPerKeyUnderFailures(t *testing.T) {
	st := outboxtest.ParallelStore(t)
	oc := newOrderChecker(t)
	var mu sync.Mutex
	var headerErr error
	rc := newReceiver(t, func(w http.ResponseWriter, n int, r receipt) int {
		if h := r.Header.Get(relay.OrderingKeyHeader); h != relay.EncodeOrderingKey(mustKey(r.Data)) {
			mu.Lock()
			headerErr = fmt.Errorf("%s = %q for key %q", relay.OrderingKeyHeader, h, mustKey(r.Data))
			mu.Unlock()
		}
		ev := oc.begin(r)
		// The first attempt of every third event fails.
		fail := ev.Seq%3 == 0 && n == 1
		oc.end(ev, !fail)
		if fail {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	})
	createEndpoint(t, st, rc, "")
	startEngine(t, st, engineOpts{cfg: relay.Config{Policy: relay.Policy{Schedule: []time.Duration{10 * time.Millisecond}}}})
	keys := []string{"a", "b", "c", "d"}
	const per = 25
	for round := 0; round < per; round += 5 {
		for _, k := range keys {
			enqueueKeyed(t, st, "t", k, round, 5)
		}
	}
	eventually(t, 60*time.Second, "every keyed event delivered", func() bool {
		return states(t, st)[outbox.StateDelivered] == len(keys)*per
	})
	oc.check(keys, per)
	mu.Lock()
	defer mu.Unlock()
	if headerErr != nil {
		t.Error(headerErr)
	}
}

// TestOrderingBlockedKeyHoldsOnlyItself checks that a key whose head keeps
// failing holds back only that key: other keys and unkeyed events of the
// same endpoint are delivered meanwhile.
func TestOrderingBlockedKeyHoldsOnlyItself(t *testing.T) {
	st := outboxtest.ParallelStore(t)
	rc := newReceiver(t, func(w http.ResponseWriter, n int, r receipt) int {
		var ev keyedEvent
		_ = json.Unmarshal(r.Data, &ev)
		if ev.Key == "stuck" {
			return http.StatusInternalServerError
		}
		return http.StatusNoContent
	})
	createEndpoint(t, st, rc, "")
	startEngine(t, st, engineOpts{cfg: relay.Config{Policy: relay.Policy{Schedule: []time.Duration{50 * time.Millisecond, time.Hour}}}})
	enqueueKeyed(t, st, "t", "stuck", 0, 20)
	for i := range 10 {
		enqueueKeyed(t, st, "t", "free-"+strconv.Itoa(i), 0, 10)
	}
	enqueueKeyed(t, st, "t", "", 0, 50)
	got := rc.WaitAccepted(150, 30*time.Second)
	for _, r := range got {
		var ev keyedEvent
		_ = json.Unmarshal(r.Data, &ev)
		if ev.Key == "stuck" {
			t.Fatalf("a stuck event was accepted: %s", r.Data)
		}
	}
	// The stuck key's head is retrying; the 19 behind it wait.
	var waiting int
	if err := st.Pool().QueryRow(context.Background(), outboxtest.SQL(st.Schema(), `SELECT count(*) FROM {{schema}}.deliveries WHERE ordering_key = 'stuck' AND state = 'pending' AND next_attempt_at = 'infinity'`)).Scan(&waiting); err != nil {
		t.Fatal(err)
	}
	if waiting != 19 {
		t.Fatalf("%d deliveries of the stuck key wait, want 19", waiting)
	}
}

// mustKey is the "key" of a keyed test payload.
func mustKey(data []byte) string {
	var ev keyedEvent
	_ = json.Unmarshal(data, &ev)
	return ev.Key
}
