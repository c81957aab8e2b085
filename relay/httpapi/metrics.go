package httpapi

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/outbox"
)

// DefaultStatsInterval is how old the queue sample may get before a scrape
// refreshes it.
const DefaultStatsInterval = 5 * time.Second

// DefaultStatsTimeout bounds one refresh of the queue sample.
const DefaultStatsTimeout = 5 * time.Second

// QueueCollector reports the queue from a sample of the database that is
// refreshed at most every interval, by the scrape that finds it stale; a
// scrape arriving while that refresh runs waits for it instead of
// starting another, so any number of scrapes cost at most one query per
// interval per replica. The query's cost does not grow with the history
// (see outbox.Store.QueueStats).
//
//   - hookrelay_queue_depth{state}: deliveries by state; state is one of
//     pending (waiting for a first attempt, including held ones), retrying
//     (pending after at least one failure), in_flight, dead, delivered
//     (the last two until retention removes them). pending, retrying and
//     in_flight are exact; dead and delivered are exact up to
//     outbox.FinishedExactLimit finished deliveries and the planner's
//     estimate above (use hookrelay_deliveries_total for exact rates).
//   - hookrelay_oldest_pending_age_seconds: the lag, the longest any due
//     work has waited (an event not yet fanned out since its creation, or a
//     due delivery since it became due); deliveries held for a disabled
//     endpoint and retries not yet due do not count.
//   - hookrelay_outbox_undispatched: outbox events not yet fanned out.
//   - hookrelay_endpoints_disabled: disabled endpoints.
//   - hookrelay_ordering_keys_blocked: ordering keys a dead delivery holds
//     on endpoints with ordering_on_dead = block.
//   - hookrelay_queue_stats_up: 1 when the latest refresh succeeded, 0
//     when it failed or timed out (the gauges above are then absent).
//   - hookrelay_queue_stats_age_seconds: how old the last successful
//     sample is (at most about the interval while refreshes succeed).
//
// Labels are bounded: only state, with the five values above. The engine's
// own metrics (hookrelay_attempts_total, hookrelay_deliveries_total, ...)
// are in relay.Metrics.
type QueueCollector struct {
	store    *outbox.Store
	interval time.Duration
	timeout  time.Duration
	log      *zap.Logger

	mu         sync.Mutex
	sample     outbox.QueueStats
	sampledAt  time.Time     // when the last successful refresh started; zero before
	checkedAt  time.Time     // when the latest refresh (either outcome) started
	lastErr    error         // the latest refresh's error
	refreshing chan struct{} // closed when the running refresh ends; nil when none runs
	waiting    int           // scrapes waiting for another's refresh (tests)

	depth, age, undispatched, disabled, blocked, up, sampleAge *prometheus.Desc
}

// NewQueueCollector returns the collector: the sample is refreshed at most
// every interval (DefaultStatsInterval when <= 0), each refresh cut off
// after timeout (DefaultStatsTimeout when <= 0).
func NewQueueCollector(store *outbox.Store, interval, timeout time.Duration, log *zap.Logger) *QueueCollector {
	if interval <= 0 {
		interval = DefaultStatsInterval
	}
	if timeout <= 0 {
		timeout = DefaultStatsTimeout
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &QueueCollector{
		store:    store,
		interval: interval,
		timeout:  timeout,
		log:      log,
		depth: prometheus.NewDesc("hookrelay_queue_depth",
			"Deliveries by state (pending, retrying, in_flight, dead, delivered). pending, retrying and in_flight are exact; "+
				"dead and delivered are exact up to "+strconv.Itoa(outbox.FinishedExactLimit)+" finished deliveries and the query planner's "+
				"estimate above (use hookrelay_deliveries_total for exact rates). Sampled at most every "+interval.String()+".",
			[]string{"state"}, nil),
		age: prometheus.NewDesc("hookrelay_oldest_pending_age_seconds",
			"Longest time any due work (undispatched event or due delivery) has waited.", nil, nil),
		undispatched: prometheus.NewDesc("hookrelay_outbox_undispatched",
			"Outbox events not yet fanned out to their endpoints.", nil, nil),
		blocked: prometheus.NewDesc("hookrelay_ordering_keys_blocked",
			"Ordering keys held by a dead delivery on an endpoint with ordering_on_dead = block.", nil, nil),
		disabled: prometheus.NewDesc("hookrelay_endpoints_disabled",
			"Endpoints that are disabled.", nil, nil),
		up: prometheus.NewDesc("hookrelay_queue_stats_up",
			"1 if the latest refresh of the queue statistics succeeded, 0 if it failed or timed out (the queue gauges are then absent).", nil, nil),
		sampleAge: prometheus.NewDesc("hookrelay_queue_stats_age_seconds",
			"Age of the last successful sample of the queue statistics.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *QueueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.depth, c.age, c.undispatched, c.disabled, c.blocked, c.up, c.sampleAge} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *QueueCollector) Collect(ch chan<- prometheus.Metric) {
	q, at, err := c.current()
	if !at.IsZero() {
		ch <- prometheus.MustNewConstMetric(c.sampleAge, prometheus.GaugeValue, time.Since(at).Seconds())
	}
	if err != nil || at.IsZero() {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	for state, n := range map[string]int64{
		"pending": q.Pending, "retrying": q.Retrying, "in_flight": q.InFlight, "dead": q.Dead, "delivered": q.Delivered,
	} {
		ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(n), state)
	}
	ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, q.OldestPendingAge.Seconds())
	ch <- prometheus.MustNewConstMetric(c.undispatched, prometheus.GaugeValue, float64(q.Undispatched))
	ch <- prometheus.MustNewConstMetric(c.disabled, prometheus.GaugeValue, float64(q.EndpointsDisabled))
	ch <- prometheus.MustNewConstMetric(c.blocked, prometheus.GaugeValue, float64(q.BlockedKeys))
}

// current returns the sample to report, when it was taken (zero when
// never) and the latest refresh's error. When the latest refresh is older
// than the interval it refreshes first, or waits for the refresh another
// scrape is running.
func (c *QueueCollector) current() (outbox.QueueStats, time.Time, error) {
	c.mu.Lock()
	if c.refreshing == nil && (c.checkedAt.IsZero() || time.Since(c.checkedAt) >= c.interval) {
		done := make(chan struct{})
		c.refreshing = done
		c.mu.Unlock()
		c.refresh(done)
		c.mu.Lock()
	}
	if done := c.refreshing; done != nil {
		c.waiting++
		c.mu.Unlock()
		<-done // bounded by the refresh's timeout
		c.mu.Lock()
		c.waiting--
	}
	defer c.mu.Unlock()
	return c.sample, c.sampledAt, c.lastErr
}

// refresh runs one query and records its outcome; done is closed after.
func (c *QueueCollector) refresh(done chan struct{}) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	q, err := c.store.QueueStats(ctx)
	cancel()
	if err != nil {
		c.log.Warn("read queue statistics for metrics", zap.Error(err))
	}
	c.mu.Lock()
	c.checkedAt, c.lastErr = start, err
	if err == nil {
		c.sample, c.sampledAt = q, start
	}
	c.refreshing = nil
	c.mu.Unlock()
	close(done)
}
