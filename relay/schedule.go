package relay

import (
	"slices"
	"sync"
	"time"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/relay/signature"
)

// Claimed work waits in one queue per endpoint until the endpoint has a free
// request slot, and workers take from the endpoints in turn. A claim may
// lease more deliveries for an endpoint than may be in flight to it
// (prefetch): a fast endpoint is then fed by a few large claims rather than
// by one small claim per freed slot, which is what bounds the drain rate
// against PostgreSQL. Held work stays bounded so it is sent well within its
// lease: an endpoint holds at most its in-flight cap plus what it sends in
// prefetchWindow at its recent pace (and its rate limit), so an endpoint
// not measured yet, or a slow one, holds no more than its cap.
const (
	prefetchWindow = time.Second
	// idleForget is how long an endpoint with nothing held keeps its
	// measured pace.
	idleForget = time.Minute
)

// heldJob is a claimed delivery and the time after which it is no longer
// sent (half its lease after the claim began) but given back.
type heldJob struct {
	c        outbox.Claimed
	deadline time.Time
	secrets  []signature.Secret // c.Secrets parsed; empty when none parses
	badKey   error              // why a secret did not parse
}

// scheduler owns the claimed work of one engine: the per-endpoint queues,
// the request slots, and the counts that bound what the process holds. It
// has its own lock and signals; the engine's loops call its methods, and it
// needs neither the store nor the sender, so it is tested on its own.
type scheduler struct {
	perEndpoint int // requests in flight per endpoint unless its own cap is lower
	maxInFlight int // requests in flight in the process
	lease       time.Duration
	minClaim    int      // the least room worth a claim statement
	metrics     *Metrics // ClaimBatch, Queued and InFlight

	mu       sync.Mutex
	work     *sync.Cond // signalled when a worker may take a job
	idle     int        // workers waiting on work
	queues   map[string]*endpointQueue
	runnable []*endpointQueue
	held     int // claimed and not finished, at most maxHeld
	maxHeld  int
	// unrecorded counts jobs taken by workers whose outcome is not written
	// yet; at most 2×maxInFlight, so a crash re-sends no more than that.
	unrecorded int
	closed     bool

	freed chan struct{} // an endpoint with work waiting has room for a worthwhile claim
	spare chan struct{} // half the process's room is free
}

// newScheduler returns the scheduler of an engine configured by cfg (with
// its defaults applied).
func newScheduler(cfg Config, metrics *Metrics) *scheduler {
	s := &scheduler{
		perEndpoint: cfg.EndpointMaxInFlight,
		maxInFlight: cfg.MaxInFlight,
		lease:       cfg.Lease,
		minClaim:    max(min(cfg.BatchSize, cfg.MaxInFlight)/8, 1),
		metrics:     metrics,
		queues:      map[string]*endpointQueue{},
		maxHeld:     2 * cfg.MaxInFlight,
		freed:       make(chan struct{}, 1),
		spare:       make(chan struct{}, 1),
	}
	s.work = sync.NewCond(&s.mu)
	return s
}

// endpointQueue is one endpoint's claimed work; guarded by scheduler.mu.
type endpointQueue struct {
	id       string
	queue    []heldJob
	sending  int
	cap      int           // requests in flight at most
	rate     int           // requests per second at most, 0 unlimited
	pace     time.Duration // moving average of attempt durations, 0 unmeasured
	runnable bool          // listed in Engins.runnable
	lastUsed time.Time
	// backlog: the last claim may have left work for this endpoint in the
	// database (it had no room, or took all the room it had), so the
	// claimer wants to hear when it has room again.
	backlog bool
	// The endpoint's secrets as last claimed, parsed once per change, and
	// the secret problem last logged for it (see noteSecretProblem).
	rawSecrets    []string
	secrets       []signature.Secret
	badKey        error
	loggedProblem string
}

func (q *endpointQueue) held() int { return len(q.queue) + q.sending }

// holdCap is how many deliveries the endpoint may hold (queued and in
// flight), at most maxHeld.
func (q *endpointQueue) holdCap(maxHeld int) int {
	n := q.cap
	if q.pace > 0 {
		extra := float64(q.cap) * float64(prefetchWindow) / float64(q.pace)
		if q.rate > 0 {
			extra = min(extra, float64(q.rate)*prefetchWindow.Seconds())
		}
		n += int(min(extra, float64(maxHeld)))
	}
	return min(n, maxHeld)
}

// observe folds an attempt's duration into the endpoint's pace.
func (q *endpointQueue) observe(d time.Duration) {
	d = max(d, 50*time.Microsecond)
	if q.pace == 0 {
		q.pace = d
		return
	}
	q.pace += (d - q.pace) / 5
}

// queueFor returns the endpoint's queue, creating it; e.mu is held.
func (s *scheduler) queueFor(id string) *endpointQueue {
	q, ok := s.queues[id]
	if !ok {
		q = &endpointQueue{id: id, cap: s.perEndpoint, lastUsed: time.Now()}
		s.queues[id] = q
	}
	return q
}

// markRunnable lists q for the workers if it has work and a free slot;
// e.mu is held. It reports whether it did.
func (s *scheduler) markRunnable(q *endpointQueue) bool {
	if q.runnable || len(q.queue) == 0 || q.sending >= q.cap {
		return false
	}
	q.runnable = true
	s.runnable = append(s.runnable, q)
	return true
}

// hold queues deliveries claimed by a statement sent at start for the
// workers. Held work is sent only in the first half of its lease, so a
// request started then ends (or times out) long before the lease does.
func (s *scheduler) hold(claimed []outbox.Claimed, start time.Time) {
	if len(claimed) == 0 {
		return
	}
	s.metrics.ClaimBatch.Observe(float64(len(claimed)))
	deadline := start.Add(s.lease / 2)
	now := time.Now()
	s.mu.Lock()
	for _, c := range claimed {
		q := s.queueFor(c.EndpointID)
		q.cap = s.perEndpoint
		if c.MaxInFlight > 0 {
			q.cap = min(q.cap, c.MaxInFlight)
		}
		q.rate = c.RateLimit
		q.lastUsed = now
		if !slices.Equal(q.rawSecrets, c.Secrets) {
			q.rawSecrets = c.Secrets
			q.secrets, q.badKey = parseSecrets(c.Secrets)
			q.loggedProblem = "" // a changed secret may have fixed it
		}
		q.queue = append(q.queue, heldJob{c: c, deadline: deadline, secrets: q.secrets, badKey: q.badKey})
		s.held++
		s.markRunnable(q)
	}
	wake := s.startable()
	s.mu.Unlock()
	s.metrics.Queued.Add(float64(len(claimed)))
	if wake {
		s.work.Signal()
	}
}

// startable reports whether a waiting worker could take a job now; s.mu is
// held. Workers are woken one at a time: each that takes a job wakes the
// next while there is more to take, so a claim of a few jobs does not wake
// every idle worker (hundreds of them) only for most to wait again.
func (s *scheduler) startable() bool {
	return s.idle > 0 && len(s.runnable) > 0 && s.unrecorded < 2*s.maxInFlight
}

// parseSecrets parses the secrets that parse and remembers why one did not.
func parseSecrets(raw []string) ([]signature.Secret, error) {
	secrets := make([]signature.Secret, 0, len(raw))
	var bad error
	for _, s := range raw {
		sec, err := signature.ParseSecret(s)
		if err != nil {
			bad = err
			continue
		}
		secrets = append(secrets, sec)
	}
	return secrets, bad
}

// next blocks until a delivery may be sent and returns it, or returns false
// once the queues are closed.
func (s *scheduler) next() (heldJob, bool) {
	s.mu.Lock()
	for {
		if s.closed {
			s.mu.Unlock()
			return heldJob{}, false
		}
		// Outcomes not yet written are what a crash would send again:
		// no new request while there are too many.
		for len(s.runnable) > 0 && s.unrecorded < 2*s.maxInFlight {
			q := s.runnable[0]
			s.runnable[0] = nil
			s.runnable = s.runnable[1:]
			q.runnable = false
			if len(q.queue) == 0 || q.sending >= q.cap {
				continue
			}
			j := q.queue[0]
			q.queue[0] = heldJob{}
			q.queue = q.queue[1:]
			q.sending++
			s.unrecorded++
			s.markRunnable(q) // round robin: back of the line
			wake := s.startable()
			s.mu.Unlock()
			if wake {
				s.work.Signal()
			}
			s.metrics.Queued.Dec()
			s.metrics.InFlight.Inc()
			return j, true
		}
		s.idle++
		s.work.Wait()
		s.idle--
	}
}

// finish frees the request slot of a finished attempt; sent is false for
// work given back unsent. It tells the claimer when an endpoint with work
// waiting in the database has room for a worthwhile claim: half of what it
// may hold, and enough room in the process.
func (s *scheduler) finish(endpointID string, d time.Duration, sent bool) {
	s.mu.Lock()
	q := s.queues[endpointID]
	q.sending--
	s.held--
	if sent {
		q.observe(d)
	}
	q.lastUsed = time.Now()
	s.markRunnable(q)
	wake := s.startable()
	low := q.backlog && q.held() <= q.holdCap(s.maxHeld)/2 && s.maxHeld-s.held >= s.minClaim
	if low {
		q.backlog = false // the claim marks it again if it leaves work
	}
	spare := s.held <= s.maxHeld/2
	s.mu.Unlock()
	s.metrics.InFlight.Dec()
	if wake {
		s.work.Signal()
	}
	if low {
		select {
		case s.freed <- struct{}{}:
		default:
		}
	}
	if spare {
		select {
		case s.spare <- struct{}{}:
		default:
		}
	}
}

// noteWaiting marks endpoints a fan-out left pending deliveries for, having
// no room for them.
func (s *scheduler) noteWaiting(ids []string) {
	if len(ids) == 0 {
		return
	}
	s.mu.Lock()
	for _, id := range ids {
		s.queueFor(id).backlog = true
	}
	s.mu.Unlock()
}

// noteBacklog marks the endpoints a claim may have left work for: those
// that had no room, those it gave all the room they had, and, when the
// claim was cut by its overall limit, all it gave any.
func (s *scheduler) noteBacklog(rooms map[string]int, claimed []outbox.Claimed, cut bool) {
	got := map[string]int{}
	for _, c := range claimed {
		got[c.EndpointID]++
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, n := range rooms {
		if n <= 0 {
			s.queueFor(id).backlog = true
		}
	}
	for id, n := range got {
		room, known := rooms[id]
		q := s.queueFor(id)
		if !known {
			room = q.cap // an endpoint the claim did not know gets its cap
		}
		if n >= room || cut {
			q.backlog = true
		}
	}
}

// recorded tells the workers that n taken jobs have their outcome written
// (or given up on).
func (s *scheduler) recorded(n int) {
	if n == 0 {
		return
	}
	s.mu.Lock()
	s.unrecorded -= n
	wake := s.startable()
	s.mu.Unlock()
	if wake {
		s.work.Signal()
	}
}

// rooms returns the room left in total and per known endpoint, forgetting
// endpoints idle for a while.
func (s *scheduler) rooms() (int, map[string]int) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	room := make(map[string]int, len(s.queues))
	for id, q := range s.queues {
		if q.held() == 0 && now.Sub(q.lastUsed) > idleForget {
			delete(s.queues, id)
			continue
		}
		room[id] = q.holdCap(s.maxHeld) - q.held()
	}
	return s.maxHeld - s.held, room
}

// closeQueues stops the workers taking new work and returns what was held
// but not started, to be given back.
func (s *scheduler) closeQueues() []outbox.Claimed {
	s.mu.Lock()
	var unsent []outbox.Claimed
	for _, q := range s.queues {
		for _, j := range q.queue {
			unsent = append(unsent, j.c)
		}
		s.held -= len(q.queue)
		q.queue = nil
	}
	s.runnable = nil
	s.closed = true
	s.mu.Unlock()
	s.metrics.Queued.Sub(float64(len(unsent)))
	s.work.Broadcast()
	return unsent
}

// heldNow is the number of deliveries claimed and not finished.
func (s *scheduler) heldNow() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held
}

// noteSecretProblem records msg as the endpoint's secret problem and
// reports whether it is new (not the one last noted since the endpoint's
// secrets last changed), so each problem is logged once.
func (s *scheduler) noteSecretProblem(endpointID, msg string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queueFor(endpointID)
	if q.loggedProblem == msg {
		return false
	}
	q.loggedProblem = msg
	return true
}
