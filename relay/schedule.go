package relay

import (
	"slices"
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

// endpointQueue is one endpoint's claimed work; guarded by Engine.mu.
type endpointQueue struct {
	id       string
	queue    []heldJob
	sending  int
	cap      int           // requests in flight at most
	rate     int           // requests per second at most, 0 unlimited
	pace     time.Duration // moving average of attempt durations, 0 unmeasured
	runnable bool          // listed in Engine.runnable
	lastUsed time.Time
	// backlog: the last claim may have left work for this endpoint in the
	// database (it had no room, or took all the room it had), so the
	// claimer wants to hear when it has room again.
	backlog bool
	// The endpoint's secrets as last claimed, parsed once per change.
	rawSecrets []string
	secrets    []signature.Secret
	badKey     error
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
func (e *Engine) queueFor(id string) *endpointQueue {
	q, ok := e.queues[id]
	if !ok {
		q = &endpointQueue{id: id, cap: e.cfg.EndpointMaxInFlight, lastUsed: time.Now()}
		e.queues[id] = q
	}
	return q
}

// markRunnable lists q for the workers if it has work and a free slot;
// e.mu is held. It reports whether it did.
func (e *Engine) markRunnable(q *endpointQueue) bool {
	if q.runnable || len(q.queue) == 0 || q.sending >= q.cap {
		return false
	}
	q.runnable = true
	e.runnable = append(e.runnable, q)
	return true
}

// hold queues deliveries claimed by a statement sent at start for the
// workers. Held work is sent only in the first half of its lease, so a
// request started then ends (or times out) long before the lease does.
func (e *Engine) hold(claimed []outbox.Claimed, start time.Time) {
	if len(claimed) == 0 {
		return
	}
	e.metrics.ClaimBatch.Observe(float64(len(claimed)))
	deadline := start.Add(e.cfg.Lease / 2)
	now := time.Now()
	e.mu.Lock()
	for _, c := range claimed {
		q := e.queueFor(c.EndpointID)
		q.cap = e.cfg.EndpointMaxInFlight
		if c.MaxInFlight > 0 {
			q.cap = min(q.cap, c.MaxInFlight)
		}
		q.rate = c.RateLimit
		q.lastUsed = now
		if !slices.Equal(q.rawSecrets, c.Secrets) {
			q.rawSecrets = c.Secrets
			q.secrets, q.badKey = parseSecrets(c.Secrets)
			// A changed secret may have fixed the problem last logged.
			e.secretErrsMu.Lock()
			delete(e.secretErrs, c.EndpointID)
			e.secretErrsMu.Unlock()
		}
		q.queue = append(q.queue, heldJob{c: c, deadline: deadline, secrets: q.secrets, badKey: q.badKey})
		e.held++
		e.markRunnable(q)
	}
	e.mu.Unlock()
	e.metrics.Queued.Add(float64(len(claimed)))
	e.work.Broadcast()
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
func (e *Engine) next() (heldJob, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for {
		if e.closed {
			return heldJob{}, false
		}
		// Outcomes not yet written are what a crash would send again:
		// no new request while there are too many.
		for len(e.runnable) > 0 && e.unrecorded < 2*e.cfg.MaxInFlight {
			q := e.runnable[0]
			e.runnable[0] = nil
			e.runnable = e.runnable[1:]
			q.runnable = false
			if len(q.queue) == 0 || q.sending >= q.cap {
				continue
			}
			j := q.queue[0]
			q.queue[0] = heldJob{}
			q.queue = q.queue[1:]
			q.sending++
			e.unrecorded++
			e.markRunnable(q) // round robin: back of the line
			e.metrics.Queued.Dec()
			e.metrics.InFlight.Inc()
			return j, true
		}
		e.work.Wait()
	}
}

// finish frees the request slot of a finished attempt; sent is false for
// work given back unsent. It tells the claimer when an endpoint with work
// waiting in the database has room for a worthwhile claim: half of what it
// may hold, and enough room in the process.
func (e *Engine) finish(endpointID string, d time.Duration, sent bool) {
	e.mu.Lock()
	q := e.queues[endpointID]
	q.sending--
	e.held--
	if sent {
		q.observe(d)
	}
	q.lastUsed = time.Now()
	wake := e.markRunnable(q)
	low := q.backlog && q.held() <= q.holdCap(e.maxHeld)/2 && e.maxHeld-e.held >= e.minClaim()
	if low {
		q.backlog = false // the claim marks it again if it leaves work
	}
	spare := e.held <= e.maxHeld/2
	e.mu.Unlock()
	e.metrics.InFlight.Dec()
	if wake {
		e.work.Signal()
	}
	if low {
		select {
		case e.freed <- struct{}{}:
		default:
		}
	}
	if spare {
		select {
		case e.spare <- struct{}{}:
		default:
		}
	}
}

// noteWaiting marks endpoints a fan-out left pending deliveries for, having
// no room for them.
func (e *Engine) noteWaiting(ids []string) {
	if len(ids) == 0 {
		return
	}
	e.mu.Lock()
	for _, id := range ids {
		e.queueFor(id).backlog = true
	}
	e.mu.Unlock()
}

// noteBacklog marks the endpoints a claim may have left work for: those
// that had no room, those it gave all the room they had, and, when the
// claim was cut by its overall limit, all it gave any.
func (e *Engine) noteBacklog(rooms map[string]int, claimed []outbox.Claimed, cut bool) {
	got := map[string]int{}
	for _, c := range claimed {
		got[c.EndpointID]++
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for id, n := range rooms {
		if n <= 0 {
			e.queueFor(id).backlog = true
		}
	}
	for id, n := range got {
		room, known := rooms[id]
		q := e.queueFor(id)
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
func (e *Engine) recorded(n int) {
	if n == 0 {
		return
	}
	e.mu.Lock()
	e.unrecorded -= n
	e.mu.Unlock()
	e.work.Broadcast()
}

// rooms returns the room left in total and per known endpoint, forgetting
// endpoints idle for a while.
func (e *Engine) rooms() (int, map[string]int) {
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	room := make(map[string]int, len(e.queues))
	for id, q := range e.queues {
		if q.held() == 0 && now.Sub(q.lastUsed) > idleForget {
			delete(e.queues, id)
			continue
		}
		room[id] = q.holdCap(e.maxHeld) - q.held()
	}
	return e.maxHeld - e.held, room
}

// closeQueues stops the workers taking new work and returns what was held
// but not started, to be given back.
func (e *Engine) closeQueues() []outbox.Claimed {
	e.mu.Lock()
	var unsent []outbox.Claimed
	for _, q := range e.queues {
		for _, j := range q.queue {
			unsent = append(unsent, j.c)
		}
		e.held -= len(q.queue)
		q.queue = nil
	}
	e.runnable = nil
	e.closed = true
	e.mu.Unlock()
	e.metrics.Queued.Sub(float64(len(unsent)))
	e.work.Broadcast()
	return unsent
}

// heldNow is the number of deliveries claimed and not finished.
func (e *Engine) heldNow() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.held
}
