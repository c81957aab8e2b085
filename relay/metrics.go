package relay

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the engine's Prometheus instruments. Labels are bounded: the
// endpoint id (never its URL), the outcome and the error class.
type Metrics struct {
	// Attempts counts HTTP attempts by endpoint and result
	// (delivered, retry, dead).
	Attempts *prometheus.CounterVec
	// Deliveries counts deliveries that reached a final state, by endpoint
	// and state (delivered, dead).
	Deliveries *prometheus.CounterVec
	// AttemptDuration observes attempt durations by result.
	AttemptDuration *prometheus.HistogramVec
	// Notifications counts outbox notifications received.
	Notifications prometheus.Counter
	// Polls counts fetch cycles (dispatch + claim), by trigger.
	Polls *prometheus.CounterVec
	// ClaimBatch observes the size of each non-empty claim.
	ClaimBatch prometheus.Histogram
	// Dispatched counts events fanned out.
	Dispatched prometheus.Counter
	// InFlight is the number of requests being sent now.
	InFlight prometheus.Gauge
	// Queued is the number of claimed deliveries waiting for a request
	// slot of their endpoint.
	Queued prometheus.Gauge
	// LeasesLost counts outcomes not recorded because the lease had passed
	// to another relay.
	LeasesLost prometheus.Counter
	// Deferred counts deliveries put back unsent because they could not be
	// prepared (the endpoint's secret does not open).
	Deferred prometheus.Counter
	// Unrouted counts events fanned out to no endpoint because their
	// endpoint_id names none of the tenant's subscribed endpoints.
	Unrouted prometheus.Counter
	// SetAside counts events the fan-out could not process (set aside with
	// the error, tried again later), each time it happens.
	SetAside prometheus.Counter
	// Isolated counts outcomes that failed a batched write and were
	// recorded on their own, stripped of the receiver's text, or dropped.
	Isolated *prometheus.CounterVec
}

// NewMetrics creates the instruments and registers them with reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg) // nil: not registered
	counter := func(name, help string) prometheus.Counter {
		return f.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	counterVec := func(name, help string, labels ...string) *prometheus.CounterVec {
		return f.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	gauge := func(name, help string) prometheus.Gauge {
		return f.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	}
	return &Metrics{
		Attempts:   counterVec("hookrelay_attempts_total", "HTTP delivery attempts by endpoint id and result (delivered, retry, dead).", "endpoint_id", "outcome"),
		Deliveries: counterVec("hookrelay_deliveries_total", "Deliveries that reached a final state, by endpoint id and outcome (delivered, dead).", "endpoint_id", "outcome"),
		AttemptDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hookrelay_attempt_duration_seconds",
			Help:    "Duration of delivery attempts by result.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"outcome"}),
		Notifications: counter("hookrelay_notifications_total", "Outbox notifications received on the LISTEN connection."),
		Polls:         counterVec("hookrelay_polls_total", "Fan-out rounds by trigger (timer, notify, idle, backlog).", "trigger"),
		ClaimBatch: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "hookrelay_claim_batch_size",
			Help:    "Deliveries leased per non-empty claim.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
		Dispatched: counter("hookrelay_events_dispatched_total", "Outbox events fanned out to their endpoints."),
		InFlight:   gauge("hookrelay_in_flight", "Delivery requests being sent by this process now."),
		Queued:     gauge("hookrelay_queued", "Deliveries claimed by this process and waiting for a request slot of their endpoint."),
		LeasesLost: counter("hookrelay_leases_lost_total", "Attempt outcomes not applied because the delivery's lease had passed to another relay."),
		Deferred:   counter("hookrelay_deliveries_deferred_total", "Deliveries put back unsent because the endpoint's signing secret could not be opened."),
		Unrouted:   counter("hookrelay_events_unrouted_total", "Events fanned out to no endpoint because their endpoint_id names none of the tenant's endpoints subscribed to the type."),
		SetAside:   counter("hookrelay_events_set_aside_total", "Times an outbox row failed the fan-out and was set aside (with dispatch_error) so the rest could go on."),
		Isolated:   counterVec("hookrelay_outcomes_isolated_total", "Attempt outcomes that failed a batched write, by how they were then recorded (alone, stripped, dropped).", "how"),
	}
}
