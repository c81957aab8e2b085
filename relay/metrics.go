package relay

import (
	"github.com/prometheus/client_golang/prometheus"
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
	m := &Metrics{
		Attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookrelay_attempts_total",
			Help: "HTTP delivery attempts by endpoint id and result (delivered, retry, dead).",
		}, []string{"endpoint_id", "outcome"}),
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookrelay_deliveries_total",
			Help: "Deliveries that reached a final state, by endpoint id and outcome (delivered, dead).",
		}, []string{"endpoint_id", "outcome"}),
		AttemptDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hookrelay_attempt_duration_seconds",
			Help:    "Duration of delivery attempts by result.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"outcome"}),
		Notifications: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookrelay_notifications_total",
			Help: "Outbox notifications received on the LISTEN connection.",
		}),
		Polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookrelay_polls_total",
			Help: "Fan-out rounds by trigger (timer, notify, idle, backlog).",
		}, []string{"trigger"}),
		ClaimBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hookrelay_claim_batch_size",
			Help:    "Deliveries leased per non-empty claim.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
		Dispatched: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookrelay_events_dispatched_total",
			Help: "Outbox events fanned out to their endpoints.",
		}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hookrelay_in_flight",
			Help: "Delivery requests being sent by this process now.",
		}),
		Queued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hookrelay_queued",
			Help: "Deliveries claimed by this process and waiting for a request slot of their endpoint.",
		}),
		LeasesLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookrelay_leases_lost_total",
			Help: "Attempt outcomes not applied because the delivery's lease had passed to another relay.",
		}),
		Deferred: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookrelay_deliveries_deferred_total",
			Help: "Deliveries put back unsent because the endpoint's signing secret could not be opened.",
		}),
		Unrouted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookrelay_events_unrouted_total",
			Help: "Events fanned out to no endpoint because their endpoint_id names none of the tenant's endpoints subscribed to the type.",
		}),
		SetAside: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookrelay_events_set_aside_total",
			Help: "Times an outbox row failed the fan-out and was set aside (with dispatch_error) so the rest could go on.",
		}),
		Isolated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookrelay_outcomes_isolated_total",
			Help: "Attempt outcomes that failed a batched write, by how they were then recorded (alone, stripped, dropped).",
		}, []string{"how"}),
	}
	if reg != nil {
		reg.MustRegister(m.Attempts, m.Deliveries, m.AttemptDuration, m.Notifications, m.Polls,
			m.ClaimBatch, m.Dispatched, m.InFlight, m.Queued, m.LeasesLost, m.Deferred, m.Unrouted,
			m.SetAside, m.Isolated)
	}
	return m
}
