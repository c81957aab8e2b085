package relay

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sethvargo/go-retry"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/hookrelay/hookrelay/outbox"
)

// Engine defaults: what a zero Config field takes. config.Default uses
// the same constants for the HOOKRELAY_* variables that set them.
const (
	// DefaultBatchSize is the most events fanned out or deliveries claimed
	// per statement.
	DefaultBatchSize = 500
	// DefaultMaxInFlight caps requests in flight in one process.
	DefaultMaxInFlight = 256
	// DefaultEndpointMaxInFlight caps requests in flight to one endpoint
	// from one process.
	DefaultEndpointMaxInFlight = 16
	// DefaultPollInterval is the time between polls when no notification
	// arrives (jittered by ±10%).
	DefaultPollInterval = time.Second
	// DefaultShutdownTimeout bounds how long in-flight requests may finish
	// after Run's context ends.
	DefaultShutdownTimeout = 30 * time.Second

	// MinLeaseMargin is how much a claim's lease must exceed the sender's
	// request timeout, so an attempt ends before its lease expires.
	MinLeaseMargin = 5 * time.Second
	// derivedLeaseMargin is what DefaultLease adds to twice the request
	// timeout.
	derivedLeaseMargin = 30 * time.Second
	// defaultCompleteBatch and defaultCompleteDelay batch the recording of
	// outcomes.
	defaultCompleteBatch = 512
	defaultCompleteDelay = 2 * time.Millisecond
)

// Config tunes the engine. Zero values take the defaults noted.
type Config struct {
	// BatchSize is the most events fanned out or deliveries claimed per
	// statement (DefaultBatchSize, 500).
	BatchSize int
	// MaxInFlight caps requests in flight in this process
	// (DefaultMaxInFlight, 256); the process holds at most twice as many
	// claimed deliveries.
	MaxInFlight int
	// EndpointMaxInFlight caps requests in flight to one endpoint
	// (DefaultEndpointMaxInFlight, 16). A fast endpoint may have more
	// claimed and waiting (see prefetchWindow).
	EndpointMaxInFlight int
	// PollInterval is the time between polls when no notification arrives
	// (DefaultPollInterval, 1s, jittered by ±10%).
	PollInterval time.Duration
	// Lease is how long a claim holds a delivery; it must exceed the
	// sender's request timeout by more than MinLeaseMargin (default
	// DefaultLease of the sender's timeout).
	Lease time.Duration
	// ShutdownTimeout bounds how long in-flight requests may finish after
	// Run's context ends (DefaultShutdownTimeout, 30s); the rest are
	// cancelled and released.
	ShutdownTimeout time.Duration
	// Policy schedules retries; an empty Policy.Schedule takes
	// DefaultRetrySchedule.
	Policy Policy
	// CompleteBatch is the most outcomes recorded per statement
	// (default 512); CompleteDelay how long the first waits for company
	// (default 2ms).
	CompleteBatch int
	CompleteDelay time.Duration

	// Listening, if set, reports whether notifications can arrive (the
	// LISTEN connection is up); only then does the dispatcher ask the
	// database to send them.
	Listening func() bool
	// OnDisabled, if set, is called after an endpoint is disabled because
	// it answered 410 Gone.
	OnDisabled func(ctx context.Context, endpointID, reason string)
	// OnDead, if set, is called for each delivery that became dead (after
	// it was recorded).
	OnDead func(ctx context.Context, o outbox.Outcome)
}

// DefaultLease is the claim lease for a request timeout: twice the timeout
// plus 30s, so a claim outlives its slowest attempt with room to record it.
func DefaultLease(requestTimeout time.Duration) time.Duration {
	return 2*requestTimeout + derivedLeaseMargin
}

func (c *Config) defaults() {
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.EndpointMaxInFlight <= 0 {
		c.EndpointMaxInFlight = DefaultEndpointMaxInFlight
	}
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if len(c.Policy.Schedule) == 0 {
		c.Policy.Schedule = DefaultRetrySchedule()
	}
	if c.CompleteBatch <= 0 {
		c.CompleteBatch = defaultCompleteBatch
	}
	if c.CompleteDelay <= 0 {
		c.CompleteDelay = defaultCompleteDelay
	}
}

// Engine fans out outbox events and delivers them. Create it with New and
// start it with Run; one Engine per process, any number of processes per
// database.
type Engine struct {
	cfg     Config
	store   *outbox.Store
	sender  *Sender
	log     *zap.Logger
	metrics *Metrics
	wake    <-chan struct{}

	id      string // this relay's row in the relays table
	running atomic.Bool
	// failing holds, per loop (fan-out, claim), when its current streak
	// of failures began (unix nanoseconds, 0 while it succeeds); see Health.
	dispatchFailing, claimFailing atomic.Int64
	lastDispatchErr, lastClaimErr atomic.Pointer[error]
	done                          chan struct{}
	hooks                         sync.WaitGroup // OnDead calls in progress

	limitersMu sync.Mutex
	limiters   map[string]*rate.Limiter

	// claimMu makes the fan-out's claim and the claimer take turns, so
	// both see the room the other left.
	claimMu sync.Mutex

	sched   *scheduler // claimed work, per endpoint (schedule.go)
	results chan result
	// released wakes the claimer when recorded outcomes made the next
	// delivery of an ordering key due.
	released chan struct{}
}

// result is a finished attempt on its way to the completer; release marks
// work not sent (returned to pending, not counted); taken marks the result
// of a job a worker took (see scheduler.unrecorded).
type result struct {
	out     outbox.Outcome
	release bool
	taken   bool
}

// New returns an engine, or an error when a required part is missing or
// the lease does not outlast the sender's request timeout. Zero Config
// fields take their defaults. wake delivers notification hints (nil: poll
// only); metrics may be nil.
func New(cfg Config, store *outbox.Store, sender *Sender, wake <-chan struct{}, log *zap.Logger, metrics *Metrics) (*Engine, error) {
	switch {
	case store == nil:
		return nil, errors.New("relay: New needs a store")
	case sender == nil:
		return nil, errors.New("relay: New needs a sender")
	case log == nil:
		return nil, errors.New("relay: New needs a logger")
	}
	cfg.defaults()
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease(sender.timeout)
	}
	if cfg.Lease <= sender.timeout+MinLeaseMargin {
		return nil, fmt.Errorf("relay: the lease (%s) must exceed the request timeout (%s) by more than %s, so an attempt ends before its lease expires",
			cfg.Lease, sender.timeout, MinLeaseMargin)
	}
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	return &Engine{
		cfg:      cfg,
		store:    store,
		sender:   sender,
		log:      log,
		metrics:  metrics,
		wake:     wake,
		id:       fmt.Sprintf("relay-%016x", outbox.NewLeaseToken()),
		done:     make(chan struct{}),
		limiters: map[string]*rate.Limiter{},
		sched:    newScheduler(cfg, metrics),
		results:  make(chan result, cfg.MaxInFlight+cfg.CompleteBatch),
		released: make(chan struct{}, 1),
	}, nil
}

// Running reports whether the engine is claiming work (false before Run,
// while shutting down and after).
func (e *Engine) Running() bool { return e.running.Load() }

// UnhealthyAfter is how long the fan-out or the claim may fail without a
// break before Health reports the engine unhealthy (and /readyz answers 503).
const UnhealthyAfter = 30 * time.Second

// Health returns nil while the engine works, or an error naming the loop
// that has failed without a break for longer than UnhealthyAfter, since
// when, and its last error.
func (e *Engine) Health() error {
	now := time.Now()
	for _, l := range []struct {
		name  string
		since *atomic.Int64
		last  *atomic.Pointer[error]
	}{{"fan-out", &e.dispatchFailing, &e.lastDispatchErr}, {"claim", &e.claimFailing, &e.lastClaimErr}} {
		since := l.since.Load()
		if since == 0 {
			continue
		}
		start := time.Unix(0, since)
		if d := now.Sub(start); d > UnhealthyAfter {
			msg := fmt.Sprintf("%s failing for %s (since %s)", l.name, d.Round(time.Second), start.UTC().Format(time.RFC3339))
			if p := l.last.Load(); p != nil {
				return fmt.Errorf("%s: %w", msg, *p)
			}
			return errors.New(msg)
		}
	}
	return nil
}

// noteLoop records the outcome of one round of a loop for Health.
func noteLoop(since *atomic.Int64, last *atomic.Pointer[error], err error) {
	if err == nil {
		since.Store(0)
		return
	}
	last.Store(&err)
	since.CompareAndSwap(0, time.Now().UnixNano())
}

// Done is closed when Run has returned.
func (e *Engine) Done() <-chan struct{} { return e.done }

// Run works until ctx ends, then stops claiming, lets in-flight requests
// finish for up to ShutdownTimeout, cancels and releases the rest, records
// every outcome and returns nil.
func (e *Engine) Run(ctx context.Context) error {
	defer close(e.done)
	// sendCtx outlives ctx: in-flight requests may finish during shutdown.
	sendCtx, cancelSends := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSends()

	var workers sync.WaitGroup
	completerDone := make(chan struct{})
	go func() {
		defer close(completerDone)
		e.complete()
	}()

	// Long-lived workers: a goroutine per delivery would grow a fresh stack
	// for every request.
	workers.Add(e.cfg.MaxInFlight)
	for range e.cfg.MaxInFlight {
		go func() {
			defer workers.Done()
			for {
				j, ok := e.sched.next()
				if !ok {
					return
				}
				e.deliver(sendCtx, j)
			}
		}()
	}

	e.running.Store(true)
	e.fetchLoop(ctx)
	e.running.Store(false)
	// Claimed work not started yet goes back to pending at once.
	for _, c := range e.sched.closeQueues() {
		e.results <- result{out: outbox.Outcome{DeliveryID: c.DeliveryID, LeaseToken: c.LeaseToken}, release: true}
	}

	// Shutdown: wait for in-flight work, then cancel what is left.
	idle := make(chan struct{})
	go func() { workers.Wait(); close(idle) }()
	t := time.NewTimer(e.cfg.ShutdownTimeout)
	select {
	case <-idle:
	case <-t.C:
		e.log.Warn("shutdown timeout reached, cancelling in-flight deliveries", zap.Int("in_flight", e.sched.heldNow()))
		cancelSends()
		<-idle
	}
	t.Stop()
	close(e.results)
	<-completerDone
	e.hooks.Wait()
	e.log.Info("engine stopped")
	return nil
}

func jittered(d time.Duration) time.Duration {
	return d - d/10 + time.Duration(rand.Int64N(int64(d)/5+1))
}

// fetchLoop runs the dispatcher (fan-out of new events) and the claimer
// (leasing due deliveries) side by side until ctx ends, so a long fan-out
// of a backlog never leaves the workers idle.
func (e *Engine) fetchLoop(ctx context.Context) {
	dispatched := make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Go(func() { e.dispatchLoop(ctx, dispatched) })
	e.claimLoop(ctx, dispatched)
	wg.Wait()
}

// Timeouts of the engine's own database work.
const (
	// statementTimeout bounds a fan-out or claim statement; it runs past
	// shutdown (see claim) but not forever.
	statementTimeout = 30 * time.Second
	// bookkeepingTimeout bounds one-off writes: disabling an endpoint,
	// releasing leases, forgetting this relay's idle mark.
	bookkeepingTimeout = 10 * time.Second
	// leaseMargin is how long before its leases expire the recorder gives
	// up on a batch (it is then sent again by whoever claims it).
	leaseMargin = 5 * time.Second
	// loopBackoffCap caps the back-off of a failing fan-out or claim loop.
	loopBackoffCap = 10 * time.Second
)

func errBackoff() retry.Backoff {
	return retry.WithJitterPercent(20, retry.WithCappedDuration(loopBackoffCap, retry.NewExponential(100*time.Millisecond)))
}

// trigger is what started a fan-out round (the polls metric's label).
type trigger string

const (
	triggerTimer   trigger = "timer"   // the poll timer
	triggerNotify  trigger = "notify"  // a notification
	triggerIdle    trigger = "idle"    // a last look after marking the relay idle
	triggerBacklog trigger = "backlog" // the previous round was full
)

// resetTimer makes t fire after d.
func resetTimer(t *time.Timer, d time.Duration) {
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
	t.Reset(d)
}

// Wake-up modes of the dispatcher. Idle, it waits for notifications and
// the poll timer, and has told the database so (the outbox trigger only
// notifies while some relay is idle). When notifications come faster than
// busyWakeRate it turns busy: it stops the notifications (each one
// serialises the application's commits) and polls every busyPoll instead,
// until nothing has arrived for busyLinger. Half of busyPoll is the mean
// wait of a commit for its fan-out: at 1,000 events/s 3 ms against 5 ms
// took the binary's commit → receipt p50 from 4.7–6.5 to 4.0 ms for 13 %
// more relay CPU (2.6 against 2.3 s per 10k events; 2 ms: 2.7–3.2 ms for
// 2.7–3.1 s), measured with hookbench --scenarios latency_binary.
const (
	busyWakeRate   = 20                     // wakes within busyWakeWindow that make the dispatcher busy
	busyWakeWindow = 100 * time.Millisecond // the window busyWakeRate counts in
	busyPoll       = 3 * time.Millisecond
	busyLinger     = 500 * time.Millisecond
	idleHeartbeat  = 10 * time.Second
)

// dispatchLoop fans out new events on every notification and poll, in
// batches until none are left, and tells the claimer after each batch that
// created deliveries.
func (e *Engine) dispatchLoop(ctx context.Context, dispatched chan<- struct{}) {
	backoff := errBackoff()
	poll := time.NewTimer(0)
	defer poll.Stop()
	trigger := triggerTimer
	var (
		busy       bool      // polling fast, notifications off
		markedIdle bool      // the database knows this relay is idle
		markedAt   time.Time // when the idle mark was last written
		lastWork   time.Time // when a fan-out last found events
		wakes      []time.Time
		perEvent   float64 // deliveries per event fanned out, a moving average
	)
	defer func() {
		if markedIdle {
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
			defer cancel()
			_ = e.store.ForgetRelay(fctx, e.id)
		}
	}()
	setIdle := func(idle bool) {
		if err := e.store.SetIdle(ctx, e.id, idle); err != nil {
			if ctx.Err() == nil {
				e.log.Warn("could not record the relay's wake-up mode", zap.Error(err))
			}
			return
		}
		markedIdle, markedAt = idle, time.Now()
	}
	for {
		if ctx.Err() != nil {
			return
		}
		full := false
		wait := jittered(e.cfg.PollInterval)
		limit := e.cfg.BatchSize
		if trigger == triggerBacklog {
			limit = e.backlogBatch(ctx, perEvent)
		}
		d, err := e.dispatch(ctx, limit)
		events, deliveries := d.Events, d.Deliveries
		e.metrics.Polls.WithLabelValues(string(trigger)).Inc()
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			noteLoop(&e.dispatchFailing, &e.lastDispatchErr, err)
			wait, _ = backoff.Next()
			e.log.Error("fan-out failed", zap.Error(err), zap.Duration("retry_in", wait))
		default:
			noteLoop(&e.dispatchFailing, &e.lastDispatchErr, nil)
			backoff = errBackoff()
			if events > 0 {
				r := float64(deliveries) / float64(events)
				if perEvent == 0 {
					perEvent = r
				}
				perEvent = (perEvent + r) / 2
				lastWork = time.Now()
				e.metrics.Dispatched.Add(float64(events))
				e.log.Debug("fanned out events", zap.Int("events", events), zap.Int("deliveries", deliveries))
			}
			if d.Cut > 0 {
				// Some that had room were left for the claimer by the
				// overall limit; those for endpoints without room wake it
				// when they have some (noteWaiting).
				select {
				case dispatched <- struct{}{}:
				default:
				}
			}
			full = events == limit
		}
		if ctx.Err() != nil {
			return
		}
		if full {
			trigger = triggerBacklog
			continue
		}
		listening := e.cfg.Listening != nil && e.cfg.Listening()
		switch {
		case err != nil:
		case d.KeyWaits > 0:
			// Another relay is fanning out earlier events of these keys;
			// its statement commits in moments.
			wait = busyPoll
		case busy && time.Since(lastWork) < busyLinger:
			wait = busyPoll
		case listening && (!markedIdle || time.Since(markedAt) > idleHeartbeat):
			// Going (or staying) idle: say so, then look once more, since
			// a commit whose trigger ran before the mark sent nothing.
			busy = false
			wasIdle := markedIdle
			setIdle(true)
			if !wasIdle {
				trigger = triggerIdle
				continue
			}
		default:
			busy = false
		}
		resetTimer(poll, wait)
		select {
		case <-ctx.Done():
			return
		case <-e.wake:
			trigger = triggerNotify
			e.metrics.Notifications.Inc()
			now := time.Now()
			wakes = append(wakes, now)
			for len(wakes) > 0 && now.Sub(wakes[0]) > busyWakeWindow {
				wakes = wakes[1:]
			}
			if !busy && len(wakes) >= busyWakeRate {
				busy, lastWork, wakes = true, now, wakes[:0]
				setIdle(false)
			}
		case <-poll.C:
			trigger = triggerTimer
		}
	}
}

// backlogBatch sizes the next fan-out of a backlog. Events fanned out while
// this relay has no room become pending deliveries that a claim must lease
// later, an extra row version each; so it waits (up to a poll interval)
// until half the room is free and fans out about as many events as it can
// then lease, at least an eighth of a batch: the room, in deliveries,
// divided by perEvent, the deliveries an event has lately made (an event
// for ten endpoints makes ten). Room is per process: a slow endpoint holds
// only its own few slots and never makes the fan-out wait.
func (e *Engine) backlogBatch(ctx context.Context, perEvent float64) int {
	events := func(deliveries int) int { return max(int(float64(deliveries)/max(perEvent, 1)), 1) }
	want := max(min(e.cfg.BatchSize, e.sched.maxHeld)/2, 1)
	t := time.NewTimer(e.cfg.PollInterval)
	defer t.Stop()
	for {
		room := e.sched.maxHeld - e.sched.heldNow()
		if room >= want {
			return max(min(events(room), e.cfg.BatchSize), events(e.cfg.BatchSize/8))
		}
		select {
		case <-ctx.Done():
			return e.cfg.BatchSize
		case <-t.C:
			return max(events(room), events(e.cfg.BatchSize/8))
		case <-e.sched.spare:
		}
	}
}

// dispatch fans out up to limit events and leases as many of the new
// deliveries as there is room for, queueing them for the workers.
func (e *Engine) dispatch(ctx context.Context, limit int) (outbox.Dispatched, error) {
	e.claimMu.Lock()
	defer e.claimMu.Unlock()
	room, rooms := e.sched.rooms()
	// Not cut off by shutdown, like a claim (see claim).
	qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), statementTimeout)
	defer cancel()
	start := time.Now()
	d, err := e.store.DispatchClaim(qctx, limit, outbox.ClaimParams{
		Limit:       max(min(room, e.cfg.BatchSize), 0),
		Lease:       e.cfg.Lease,
		PerEndpoint: e.cfg.EndpointMaxInFlight,
		Room:        rooms,
	})
	if err != nil {
		return d, err
	}
	e.sched.hold(d.Claimed, start)
	e.sched.noteWaiting(d.Waiting)
	e.reportDispatchErrors(d)
	return d, nil
}

// reportDispatchErrors logs each event the fan-out could not route or had
// to set aside, once per event and error, and counts them.
func (e *Engine) reportDispatchErrors(d outbox.Dispatched) {
	for _, u := range d.Unrouted {
		e.metrics.Unrouted.Inc()
		e.log.Warn("event reached no endpoint: its endpoint_id names none of the tenant's endpoints subscribed to its type",
			zap.Int64("event_id", u.EventID), zap.String("error", u.Error))
	}
	for _, a := range d.SetAside {
		e.metrics.SetAside.Inc()
		if a.Repeated {
			continue
		}
		e.log.Error("event could not be fanned out; set aside, the others go on",
			zap.Int64("event_id", a.EventID), zap.String("error", a.Error),
			zap.Duration("retry_in", outbox.DispatchRetryAfter))
	}
}

// claimLoop leases due deliveries whenever there is room: after a fan-out,
// when capacity frees up while work is waiting, and on a jittered poll
// (retries coming due, expired leases of crashed relays).
func (e *Engine) claimLoop(ctx context.Context, dispatched <-chan struct{}) {
	backoff := errBackoff()
	poll := time.NewTimer(0)
	defer poll.Stop()
	for {
		again, err := e.claim(ctx)
		wait := jittered(e.cfg.PollInterval)
		// An endpoint with work waiting in the database that has room
		// again wakes the claimer, except while it backs off an error.
		freed := e.sched.freed
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			noteLoop(&e.claimFailing, &e.lastClaimErr, err)
			wait, _ = backoff.Next()
			e.log.Error("claim failed", zap.Error(err), zap.Duration("retry_in", wait))
			freed = nil
		} else {
			noteLoop(&e.claimFailing, &e.lastClaimErr, nil)
			backoff = errBackoff()
		}
		if again {
			if ctx.Err() != nil {
				return
			}
			continue
		}
		resetTimer(poll, wait)
		select {
		case <-ctx.Done():
			return
		case <-dispatched:
		case <-poll.C:
		case <-freed:
		case <-e.released:
		}
	}
}

// claim leases as many due deliveries as there is room for and queues them
// for the workers. It reports whether to claim again at once (a full claim
// with room left).
func (e *Engine) claim(ctx context.Context) (bool, error) {
	e.claimMu.Lock()
	defer e.claimMu.Unlock()
	room, rooms := e.sched.rooms()
	limit := min(room, e.cfg.BatchSize)
	if limit < e.sched.minClaim {
		// Too little room for a worthwhile claim: wait for capacity.
		return false, nil
	}
	if ctx.Err() != nil {
		return false, nil
	}
	// The claim must not be cut off by shutdown: a claim that commits on
	// the server after the client gave up would hold leases nobody sends.
	qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), statementTimeout)
	defer cancel()
	start := time.Now()
	claimed, err := e.store.Claim(qctx, outbox.ClaimParams{
		Limit:       limit,
		Lease:       e.cfg.Lease,
		PerEndpoint: e.cfg.EndpointMaxInFlight,
		Room:        rooms,
	})
	if err != nil {
		return false, err
	}
	e.sched.hold(claimed, start)
	// Work may be waiting behind endpoints with no room left: claim again
	// when one of them has room (not whenever any endpoint frees a slot,
	// which would rescan that waiting work for nothing).
	// A claim takes at most a quarter of its limit in retries (so they
	// cannot starve fresh events); when that share is filled, more may be
	// due: go on while there is room.
	retries := 0
	for _, c := range claimed {
		if c.Attempts > 0 {
			retries++
		}
	}
	full := len(claimed) == limit
	retryFull := retries >= outbox.RetryShare(limit)
	e.sched.noteBacklog(rooms, claimed, full || retryFull)
	return (full && limit < room) || (retryFull && room-len(claimed) >= e.sched.minClaim), nil
}

// deliver sends one claimed delivery and hands its outcome to the
// completer; one held past its deadline is given back unsent.
func (e *Engine) deliver(ctx context.Context, j heldJob) {
	c := j.c
	var took time.Duration
	sent := false
	defer func() { e.sched.finish(c.EndpointID, took, sent) }()
	if time.Now().After(j.deadline) {
		e.log.Debug("claimed delivery waited too long, giving it back", zap.Int64("delivery_id", c.DeliveryID))
		e.results <- result{out: outbox.Outcome{DeliveryID: c.DeliveryID, LeaseToken: c.LeaseToken}, release: true, taken: true}
		return
	}
	attempt := c.Attempts + 1
	secrets := j.secrets
	if c.RateLimit > 0 {
		if err := e.limiter(c.EndpointID, c.RateLimit).Wait(ctx); err != nil {
			// Shutdown while waiting for the endpoint's rate: not sent.
			e.results <- result{out: outbox.Outcome{DeliveryID: c.DeliveryID, LeaseToken: c.LeaseToken}, release: true, taken: true}
			return
		}
	}
	if c.SecretErr != nil || len(secrets) == 0 {
		e.deferDelivery(c, attempt, j.secretProblem())
		return
	}
	resp := e.sender.Send(ctx, Message{
		URL:       c.URL,
		WebhookID: c.WebhookID,
		EventType: c.EventType,
		Payload:   c.Payload,
		Timestamp: c.CreatedAt,
		Secrets:   secrets,
		// The key of the head of its (endpoint, key): see outbox.Claimed.
		OrderingKey: c.OrderingKey,
	})
	v := Classify(resp.StatusCode, resp.Header, resp.Err, time.Now())
	took, sent = resp.Duration, true
	out := outbox.Outcome{
		DeliveryID: c.DeliveryID,
		LeaseToken: c.LeaseToken,
		EventID:    c.EventID,
		EndpointID: c.EndpointID,
		Attempt:    attempt,
		StartedAt:  resp.StartedAt,
		Duration:   resp.Duration,
		StatusCode: resp.StatusCode,
		ErrorClass: v.Class,
		// The receiver's bytes are made storable here, so the outcome is
		// the same in the database, the logs and the operational events.
		Response: outbox.CleanText(resp.Excerpt, outbox.MaxResponseBytes),
	}
	if resp.Err != nil {
		out.Error = outbox.CleanText(resp.Err.Error(), outbox.MaxErrorBytes)
	} else if !v.Delivered {
		out.Error = "HTTP " + strconv.Itoa(resp.StatusCode)
	}
	if v.Class == ClassCancelled && ctx.Err() != nil {
		// Shutdown cancelled the request: give the delivery back untouched.
		e.results <- result{out: out, release: true, taken: true}
		return
	}
	switch {
	case v.Delivered:
		out.State, out.Result = outbox.StateDelivered, ResultDelivered
	case v.Final:
		out.State, out.Result = outbox.StateDead, ResultDead
	default:
		if d, ok := e.cfg.Policy.Next(attempt, v.RetryAfter); ok {
			out.State, out.Result = outbox.StatePending, ResultRetry
			out.NextAttemptAt = time.Now().Add(d)
		} else {
			out.State, out.Result = outbox.StateDead, ResultDead
		}
	}
	e.metrics.Attempts.WithLabelValues(c.EndpointID, out.Result).Inc()
	e.metrics.AttemptDuration.WithLabelValues(out.Result).Observe(resp.Duration.Seconds())
	fields := []zap.Field{
		zap.Int64("event_id", c.EventID),
		zap.String("webhook_id", c.WebhookID),
		zap.Int64("delivery_id", c.DeliveryID),
		zap.String("endpoint_id", c.EndpointID),
		zap.String("event_type", c.EventType),
		zap.Int("attempt", attempt),
		zap.Int("status_code", resp.StatusCode),
		zap.String("outcome", out.Result),
		zap.Int64("duration_ms", resp.Duration.Milliseconds()),
	}
	if out.State == outbox.StatePending {
		fields = append(fields, zap.Time("next_attempt_at", out.NextAttemptAt))
	}
	if v.Class != "" {
		fields = append(fields, zap.String("error_class", v.Class), zap.String("error", out.Error))
	}
	if v.Delivered {
		// Successes are counted by the metrics and recorded in the
		// attempts table; a log line each would cost more than the
		// delivery's own bookkeeping at thousands per second.
		e.log.Debug("delivery attempt", fields...)
	} else {
		e.log.Warn("delivery attempt", fields...)
	}
	if v.DisableEndpoint {
		e.disable(c.EndpointID, "endpoint answered 410 Gone")
	}
	e.results <- result{out: out, taken: true}
}

// SecretRetryAfter is how long a delivery whose endpoint secret cannot be
// opened waits before it is tried again (by then the key may have been
// supplied or the secret rotated).
const SecretRetryAfter = time.Minute

// ResultDeferred is the result of a delivery put back unsent because it
// could not be prepared; no attempt is recorded.
const ResultDeferred = "deferred"

// ClassSecretUnavailable is the error class of a delivery put back because
// its endpoint's signing secret could not be opened.
const ClassSecretUnavailable = "secret_unavailable"

// secretProblem says why the job has no usable signing secret.
func (j heldJob) secretProblem() error {
	switch {
	case j.c.SecretErr != nil:
		return j.c.SecretErr
	case j.badKey != nil:
		return j.badKey
	}
	return errors.New("the endpoint has no signing secret")
}

// deferDelivery puts back a delivery that cannot be signed, unsent and
// uncounted, until SecretRetryAfter; the cause is stored as its last error
// and logged once per endpoint and cause, not per delivery or retry.
func (e *Engine) deferDelivery(c outbox.Claimed, attempt int, cause error) {
	msg := "cannot sign: " + cause.Error()
	e.metrics.Deferred.Inc()
	if e.sched.noteSecretProblem(c.EndpointID, msg) {
		e.log.Error("endpoint's signing secret cannot be used; its deliveries wait and are tried again",
			zap.String("endpoint_id", c.EndpointID), zap.String("error_class", ClassSecretUnavailable),
			zap.Error(cause), zap.Duration("retry_in", SecretRetryAfter))
	}
	now := time.Now()
	e.results <- result{taken: true, out: outbox.Outcome{
		DeliveryID:    c.DeliveryID,
		LeaseToken:    c.LeaseToken,
		EventID:       c.EventID,
		EndpointID:    c.EndpointID,
		Attempt:       attempt,
		State:         outbox.StatePending,
		Result:        ResultDeferred,
		Deferred:      true,
		NextAttemptAt: now.Add(SecretRetryAfter),
		StartedAt:     now,
		ErrorClass:    ClassSecretUnavailable,
		Error:         msg,
	}}
}

// limiter returns the endpoint's rate limiter (requests per second, burst
// of one second's worth), updating it when the endpoint's limit changed.
func (e *Engine) limiter(endpointID string, perSecond int) *rate.Limiter {
	e.limitersMu.Lock()
	defer e.limitersMu.Unlock()
	l, ok := e.limiters[endpointID]
	if !ok {
		l = rate.NewLimiter(rate.Limit(perSecond), perSecond)
		e.limiters[endpointID] = l
	} else if l.Limit() != rate.Limit(perSecond) {
		l.SetLimit(rate.Limit(perSecond))
		l.SetBurst(perSecond)
	}
	return l
}

func (e *Engine) disable(endpointID, reason string) {
	ctx, cancel := context.WithTimeout(context.Background(), bookkeepingTimeout)
	defer cancel()
	was, err := e.store.DisableEndpoint(ctx, endpointID, reason)
	if err != nil {
		e.log.Error("disable endpoint", zap.String("endpoint_id", endpointID), zap.Error(err))
		return
	}
	if was {
		e.log.Warn("endpoint disabled", zap.String("endpoint_id", endpointID), zap.String("reason", reason))
		if e.cfg.OnDisabled != nil {
			e.cfg.OnDisabled(ctx, endpointID, reason)
		}
	}
}

// complete records outcomes in batches until e.results is closed.
func (e *Engine) complete() {
	batch := make([]outbox.Outcome, 0, e.cfg.CompleteBatch)
	var releaseIDs, releaseTokens []int64
	taken := 0
	flush := func() {
		if len(batch) > 0 {
			e.record(batch)
			batch = batch[:0]
		}
		if len(releaseIDs) > 0 {
			e.releaseLeases(releaseIDs, releaseTokens)
			releaseIDs, releaseTokens = releaseIDs[:0], releaseTokens[:0]
		}
		e.sched.recorded(taken)
		taken = 0
	}
	add := func(r result) {
		if r.taken {
			taken++
		}
		if r.release {
			releaseIDs = append(releaseIDs, r.out.DeliveryID)
			releaseTokens = append(releaseTokens, r.out.LeaseToken)
			return
		}
		batch = append(batch, r.out)
	}
	for {
		r, ok := <-e.results
		if !ok {
			flush()
			return
		}
		add(r)
		timer := time.NewTimer(e.cfg.CompleteDelay)
	gather:
		for len(batch)+len(releaseIDs) < e.cfg.CompleteBatch {
			select {
			case r, ok := <-e.results:
				if !ok {
					timer.Stop()
					flush()
					return
				}
				add(r)
			case <-timer.C:
				break gather
			}
		}
		timer.Stop()
		flush()
	}
}

// record writes a batch of outcomes, retrying briefly on failure. If it
// still fails the leases expire and the deliveries are sent again (at least
// once, never lost). A value that the database refuses fails only its own
// outcome: the batch is split until that outcome is alone (see
// completeIsolated).
func (e *Engine) record(batch []outbox.Outcome) {
	// Keep trying while the leases hold: an outcome given up on is sent
	// again (a duplicate) once its lease expires.
	ctx, cancel := context.WithTimeout(context.Background(), max(e.cfg.Lease-leaseMargin, leaseMargin))
	defer cancel()
	done, err := e.completeIsolated(ctx, batch)
	applied := done.Applied
	if done.Released > 0 {
		// The next deliveries of some ordering keys are due now.
		select {
		case e.released <- struct{}{}:
		default:
		}
	}
	if err != nil {
		e.log.Error("record outcomes failed until the leases ran out; the deliveries will be sent again",
			zap.Int("outcomes", len(batch)), zap.Error(err))
		return
	}
	if lost := len(batch) - len(applied); lost > 0 {
		e.metrics.LeasesLost.Add(float64(lost))
		e.log.Warn("outcomes not applied: lease passed to another relay", zap.Int("count", lost))
	}
	ok := make(map[int64]bool, len(applied))
	for _, id := range applied {
		ok[id] = true
	}
	for _, o := range batch {
		if !ok[o.DeliveryID] {
			continue
		}
		switch o.State {
		case outbox.StateDelivered, outbox.StateDead:
			e.metrics.Deliveries.WithLabelValues(o.EndpointID, o.State).Inc()
		}
		if o.State == outbox.StateDead && e.cfg.OnDead != nil {
			// Off the completer's path: a slow hook must not hold up the
			// recording of other outcomes.
			e.hooks.Go(func() {
				hctx, cancel := context.WithTimeout(context.Background(), hookTimeout)
				defer cancel()
				e.cfg.OnDead(hctx, o)
			})
		}
	}
}

// completeIsolated records batch, retrying while the database is
// unreachable. When the database refuses a value (outbox.IsRowError) the
// batch is split in halves, so the outcome at fault is found alone; it is
// then recorded without the receiver's text, and if even that is refused
// it is dropped (its lease expires and it is sent again) with a log line.
// The outcomes around it are recorded as usual.
func (e *Engine) completeIsolated(ctx context.Context, batch []outbox.Outcome) (outbox.Completed, error) {
	done, err := e.completeRetrying(ctx, batch)
	if err == nil || !outbox.IsRowError(err) {
		return done, err
	}
	if len(batch) > 1 {
		half := len(batch) / 2
		a, err := e.completeIsolated(ctx, batch[:half])
		if err != nil {
			return a, err
		}
		b, err := e.completeIsolated(ctx, batch[half:])
		return outbox.Completed{Applied: append(a.Applied, b.Applied...), Released: a.Released + b.Released}, err
	}
	o := batch[0]
	fields := []zap.Field{zap.Int64("delivery_id", o.DeliveryID), zap.String("endpoint_id", o.EndpointID), zap.Error(err)}
	o.Response = ""
	o.Error = "(the attempt's error text could not be stored: " + outbox.CleanText(err.Error(), 200) + ")"
	done, err = e.completeRetrying(ctx, []outbox.Outcome{o})
	if err == nil {
		e.metrics.Isolated.WithLabelValues("stripped").Inc()
		e.log.Warn("outcome refused by the database; recorded without the receiver's text", fields...)
		return done, nil
	}
	if outbox.IsRowError(err) {
		e.metrics.Isolated.WithLabelValues("dropped").Inc()
		e.log.Error("outcome refused by the database even without the receiver's text; "+
			"the delivery will be sent again when its lease expires", fields...)
		return outbox.Completed{}, nil
	}
	return outbox.Completed{}, err
}

// completeRetrying runs one Complete, retrying with back-off on errors
// other than a refused value (which would fail again).
func (e *Engine) completeRetrying(ctx context.Context, batch []outbox.Outcome) (outbox.Completed, error) {
	b := retry.WithJitterPercent(20, retry.WithCappedDuration(2*time.Second, retry.NewExponential(100*time.Millisecond)))
	var done outbox.Completed
	err := retry.Do(ctx, b, func(ctx context.Context) error {
		var err error
		done, err = e.store.Complete(ctx, batch)
		switch {
		case err == nil:
			return nil
		case outbox.IsRowError(err):
			return err
		}
		e.log.Warn("record outcomes failed, retrying", zap.Int("outcomes", len(batch)), zap.Error(err))
		return retry.RetryableError(err)
	})
	return done, err
}

// hookTimeout bounds one OnDead call.
const hookTimeout = 10 * time.Second

func (e *Engine) releaseLeases(ids, tokens []int64) {
	ctx, cancel := context.WithTimeout(context.Background(), bookkeepingTimeout)
	defer cancel()
	n, err := e.store.Release(ctx, ids, tokens)
	if err != nil && !errors.Is(err, context.Canceled) {
		e.log.Error("release leases failed; they expire on their own", zap.Int("count", len(ids)), zap.Error(err))
		return
	}
	e.log.Info("released leases of unsent deliveries", zap.Int("count", n))
}
