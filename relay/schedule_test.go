package relay

import (
	"context"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/outbox"
)

func testConfig(maxInFlight, perEndpoint int) Config {
	cfg := Config{MaxInFlight: maxInFlight, EndpointMaxInFlight: perEndpoint, Lease: 2 * time.Minute}
	cfg.defaults()
	return cfg
}

// testScheduler returns a scheduler with no store, sender or engine.
func testScheduler(maxInFlight, perEndpoint int) *scheduler {
	return newScheduler(testConfig(maxInFlight, perEndpoint), NewMetrics(nil))
}

// runnable reports how many endpoints have work a worker may take now.
func runnable(s *scheduler) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.runnable)
}

func claimedFor(endpoint string, ids ...int64) []outbox.Claimed {
	out := make([]outbox.Claimed, len(ids))
	for i, id := range ids {
		out[i] = outbox.Claimed{DeliveryID: id, EndpointID: endpoint, LeaseToken: 7}
	}
	return out
}

// nextNow takes the next job, failing if none is ready.
func nextNow(t *testing.T, s *scheduler) heldJob {
	t.Helper()
	got := make(chan heldJob, 1)
	go func() {
		if j, ok := s.next(); ok {
			got <- j
		}
	}()
	select {
	case j := <-got:
		return j
	case <-time.After(5 * time.Second):
		t.Fatal("no job ready")
		return heldJob{}
	}
}

func TestQueuesKeepTheCapAndTakeTurns(t *testing.T) {
	e := testScheduler(8, 2)
	e.hold(claimedFor("a", 1, 2, 3, 4), time.Now())
	e.hold(claimedFor("b", 10), time.Now())

	var order []int64
	for range 3 {
		order = append(order, nextNow(t, e).c.DeliveryID)
	}
	// a, then b in turn, then a's second slot; a's third must wait.
	if want := []int64{1, 10, 2}; !slices.Equal(order, want) {
		t.Fatalf("order %v, want %v", order, want)
	}
	if n := runnable(e); n != 0 {
		t.Fatalf("%d endpoints runnable while a has 2 in flight and b nothing queued", n)
	}
	e.finish("a", time.Millisecond, true)
	if id := nextNow(t, e).c.DeliveryID; id != 3 {
		t.Fatalf("after a slot freed got %d, want 3", id)
	}

	// Closing hands back what was not started.
	unsent := e.closeQueues()
	if len(unsent) != 1 || unsent[0].DeliveryID != 4 {
		t.Fatalf("given back %v, want delivery 4", unsent)
	}
	if _, ok := e.next(); ok {
		t.Fatal("a job after the queues closed")
	}
}

func TestHoldCapFollowsPace(t *testing.T) {
	q := &endpointQueue{cap: 16}
	if got := q.holdCap(512); got != 16 {
		t.Fatalf("unmeasured endpoint holds %d, want its cap 16", got)
	}
	q.pace = 2 * time.Second // a timing-out endpoint
	if got := q.holdCap(512); got != 24 {
		t.Fatalf("slow endpoint holds %d, want 24 (cap + a second's worth)", got)
	}
	q.pace = time.Millisecond
	if got := q.holdCap(512); got != 512 {
		t.Fatalf("fast endpoint holds %d, want the process limit 512", got)
	}
	q.rate = 10
	if got := q.holdCap(512); got != 26 {
		t.Fatalf("rate-limited endpoint holds %d, want 26 (cap + 10/s for a second)", got)
	}
}

func TestHeldPastDeadlineIsGivenBackUnsent(t *testing.T) {
	// A store without a pool and a sender to nowhere: deliver must neither
	// send nor record.
	store, err := outbox.NewStore(nil, outbox.DefaultSchema)
	if err != nil {
		t.Fatal(err)
	}
	sender := NewSender(SenderConfig{})
	defer sender.Close()
	e, err := New(testConfig(4, 4), store, sender, nil, zap.NewNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	e.sched.hold(claimedFor("a", 1), time.Now().Add(-2*time.Minute)) // claimed a lease ago
	j := nextNow(t, e.sched)
	e.deliver(context.Background(), j)
	select {
	case r := <-e.results:
		if !r.release || r.out.DeliveryID != 1 || r.out.LeaseToken != 7 {
			t.Fatalf("result %+v, want delivery 1 released under its lease", r)
		}
	default:
		t.Fatal("no result for the expired delivery")
	}
	if held := e.sched.heldNow(); held != 0 {
		t.Fatalf("%d still held", held)
	}
}

func TestSecretProblemNotedOncePerChange(t *testing.T) {
	s := testScheduler(4, 4)
	if !s.noteSecretProblem("a", "sealed") || s.noteSecretProblem("a", "sealed") {
		t.Fatal("the same problem should be new once, then known")
	}
	if !s.noteSecretProblem("a", "corrupt") {
		t.Fatal("a different problem is new")
	}
	// New secrets claimed for the endpoint: the problem may be fixed, so a
	// repeat is new again.
	c := claimedFor("a", 1)
	c[0].Secrets = []string{"whsec_new"}
	s.hold(c, time.Now())
	if !s.noteSecretProblem("a", "corrupt") {
		t.Fatal("after the secrets changed the problem should be reported again")
	}
}

// until polls cond until it holds, failing after a few seconds: the
// internal tests' relaytest.Eventually, which imports this package.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// Idle workers are woken one at a time, each waking the next while there
// is more to start, so every startable job starts and no more.
func TestIdleWorkersStartEveryStartableJob(t *testing.T) {
	s := testScheduler(4, 2) // at most 8 jobs taken and not recorded
	// Each worker takes one job and keeps it, as one sending would.
	const workers = 10
	got := make(chan int64, workers)
	for range workers {
		go func() {
			if j, ok := s.next(); ok {
				got <- j.c.DeliveryID
			}
		}()
	}
	idle := func(n int) func() bool {
		return func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.idle == n
		}
	}
	started := map[int64]bool{}
	take := func(n int) {
		t.Helper()
		for range n {
			select {
			case id := <-got:
				started[id] = true
			case <-time.After(5 * time.Second):
				t.Fatalf("%d of %d jobs started; started so far %v", len(started), n, started)
			}
		}
	}
	until(t, "every worker to wait", idle(workers))

	// One claim: a has two slots, b and c one job each, so four start.
	s.hold(append(append(claimedFor("a", 1, 2, 3), claimedFor("b", 10)...), claimedFor("c", 20)...), time.Now())
	take(4)
	until(t, "the workers with nothing to take to wait again", idle(workers-4))
	if started[3] {
		t.Fatal("a's third job started while its two slots were busy")
	}
	s.finish("a", time.Millisecond, true)
	take(1)
	if !started[3] {
		t.Fatalf("a's third job did not start when its slot freed: %v", started)
	}

	// Five jobs are taken and not recorded: three more may start, then
	// the rest wait for outcomes to be written.
	s.hold(append(append(claimedFor("d", 30), claimedFor("e", 40)...), claimedFor("f", 50, 51)...), time.Now())
	take(3)
	until(t, "the workers over the unrecorded limit to wait", idle(workers-8))
	if n := runnable(s); n != 1 {
		t.Fatalf("%d endpoints runnable, want f's second job waiting", n)
	}
	s.recorded(2)
	take(1)
	if len(started) != 9 {
		t.Fatalf("started %v, want all nine", started)
	}
	s.closeQueues()
	until(t, "the workers to stop", idle(0))
}

// A backlog's fan-out takes as many events as the room can lease as they
// come, counted in deliveries: an event for ten endpoints takes ten.
func TestBacklogBatchCountsDeliveriesPerEvent(t *testing.T) {
	cfg := testConfig(256, 16) // room 512, batch 500
	e := &Engine{cfg: cfg, sched: newScheduler(cfg, NewMetrics(nil))}
	ctx := context.Background()
	for _, c := range []struct {
		perEvent float64
		want     int
	}{
		{0, 500},   // nothing fanned out yet: one delivery an event
		{1, 500},   // the batch caps it
		{10, 51},   // 512 deliveries of room
		{2.5, 204}, // 512 / 2.5
		{1000, 1},  // never none
	} {
		if got := e.backlogBatch(ctx, c.perEvent); got != c.want {
			t.Errorf("with %v deliveries an event and room for 512: %d events, want %d", c.perEvent, got, c.want)
		}
	}
	// Half the room free is enough; a tenth of it waits for more, up to
	// a poll interval, then takes what there is, at least an eighth of a
	// batch's deliveries.
	e.sched.held = 460 // 52 free
	e.cfg.PollInterval = time.Millisecond
	if got := e.backlogBatch(ctx, 10); got != 6 {
		t.Errorf("with 52 deliveries of room and 10 an event: %d events, want 6 (an eighth of a batch, 62 deliveries)", got)
	}
}
