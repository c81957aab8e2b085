package httpapi

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/outbox"
)

// QueueCollector reports the queue read from the database on each scrape
// (one bounded query on the partial indexes, cut off after a timeout):
//
//   - hookrelay_queue_depth{state}: deliveries by state; state is one of
//     pending (waiting for a first attempt, including held ones), retrying
//     (pending after at least one failure), in_flight, dead, delivered
//     (the last two until retention removes them).
//   - hookrelay_oldest_pending_age_seconds: the lag, the longest any due
//     work has waited (an event not yet fanned out since its creation, or a
//     due delivery since it became due); deliveries held for a disabled
//     endpoint and retries not yet due do not count.
//   - hookrelay_outbox_undispatched: outbox events not yet fanned out.
//   - hookrelay_endpoints_disabled: disabled endpoints.
//   - hookrelay_queue_stats_up: 1 when the query succeeded, 0 when it failed
//     or timed out (the other queue metrics are then absent).
//
// Labels are bounded: only state, with the five values above. The engine's
// own metrics (hookrelay_attempts_total, hookrelay_deliveries_total, ...)
// are in relay.Metrics.
type QueueCollector struct {
	store   *outbox.Store
	timeout time.Duration
	log     *zap.Logger

	depth, age, undispatched, disabled, up *prometheus.Desc
}

// NewQueueCollector returns the collector; timeout bounds each scrape's
// query.
func NewQueueCollector(store *outbox.Store, timeout time.Duration, log *zap.Logger) *QueueCollector {
	return &QueueCollector{
		store:   store,
		timeout: timeout,
		log:     log,
		depth: prometheus.NewDesc("hookrelay_queue_depth",
			"Deliveries by state (pending, retrying, in_flight, dead, delivered).", []string{"state"}, nil),
		age: prometheus.NewDesc("hookrelay_oldest_pending_age_seconds",
			"Longest time any due work (undispatched event or due delivery) has waited.", nil, nil),
		undispatched: prometheus.NewDesc("hookrelay_outbox_undispatched",
			"Outbox events not yet fanned out to their endpoints.", nil, nil),
		disabled: prometheus.NewDesc("hookrelay_endpoints_disabled",
			"Endpoints that are disabled.", nil, nil),
		up: prometheus.NewDesc("hookrelay_queue_stats_up",
			"1 if the queue statistics could be read on this scrape, 0 otherwise.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *QueueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.depth, c.age, c.undispatched, c.disabled, c.up} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *QueueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	q, err := c.store.QueueStats(ctx)
	if err != nil {
		c.log.Warn("read queue statistics for metrics", zap.Error(err))
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
}
