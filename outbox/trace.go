package outbox

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Why an endpoint of the event's tenant has no delivery of it, or why its
// delivery waits (TraceEndpoint.Reason).
const (
	// TraceTypeNotSubscribed: the endpoint's event types leave the
	// event's type out.
	TraceTypeNotSubscribed = "event_type_not_subscribed"
	// TraceTargetedElsewhere: the event names another endpoint
	// (endpoint_id), or is a test send to another endpoint.
	TraceTargetedElsewhere = "targeted_at_another_endpoint"
	// TraceCreatedAfter: the endpoint was created after the event was
	// fanned out (a backfill sends it).
	TraceCreatedAfter = "endpoint_created_after_event"
	// TraceChangedAfter: the endpoint matches the event now, but did not
	// when the event was fanned out (its event types changed since).
	TraceChangedAfter = "subscription_changed_after_event"
	// TraceNotDispatched: the event has not been fanned out yet.
	TraceNotDispatched = "event_not_fanned_out_yet"
	// TraceDisabled: the delivery exists but is held while the endpoint
	// is disabled.
	TraceDisabled = "endpoint_disabled"
	// TraceEndpointDeleted: the delivery's endpoint has been deleted.
	TraceEndpointDeleted = "endpoint_deleted"
)

// Trace answers "where is my event?": for each endpoint of the event's
// tenant, whether the event reached it and, if not, why.
type Trace struct {
	Event     StoredEvent     `json:"event"`
	Endpoints []TraceEndpoint `json:"endpoints"`
}

// TraceEndpoint is one endpoint's part of a trace.
type TraceEndpoint struct {
	EndpointID string `json:"endpoint_id"`
	URL        string `json:"url,omitempty"`
	Enabled    bool   `json:"enabled"`
	// Matched is true when the event has a delivery to the endpoint.
	Matched bool `json:"matched"`
	// Reason is one of the Trace* codes, Detail says it in a sentence.
	Reason string `json:"reason,omitempty"`
	Detail string `json:"detail,omitempty"`
	// Delivery and Attempts are the delivery of the event to the endpoint
	// and every attempt (all series, oldest first), when Matched.
	Delivery *Delivery `json:"delivery,omitempty"`
	Attempts []Attempt `json:"attempts,omitempty"`
}

// maxTraceEndpoints bounds the endpoints a trace lists.
const maxTraceEndpoints = 1000

// TraceEvent explains what became of an event at each endpoint of its
// tenant; ErrNotFound for an unknown event (or one of another tenant, for
// a scoped store).
func (s *Store) TraceEvent(ctx context.Context, eventID int64) (Trace, error) {
	ev, err := s.GetEvent(ctx, eventID)
	if err != nil {
		return Trace{}, err
	}
	ds, err := s.EventDeliveries(ctx, eventID)
	if err != nil {
		return Trace{}, err
	}
	attempts, err := s.deliveryAttempts(ctx, ds)
	if err != nil {
		return Trace{}, err
	}
	var eps []Endpoint
	filter := EndpointFilter{Tenant: &ev.Tenant, Limit: 500}
	for len(eps) < maxTraceEndpoints {
		page, next, err := s.ListEndpoints(ctx, filter)
		if err != nil {
			return Trace{}, fmt.Errorf("trace event %d: %w", eventID, err)
		}
		eps = append(eps, page...)
		if next == "" {
			break
		}
		filter.After = next
	}
	byEndpoint := map[string]*Delivery{}
	for i := range ds {
		byEndpoint[ds[i].EndpointID] = &ds[i]
	}
	t := Trace{Event: ev, Endpoints: []TraceEndpoint{}}
	seen := map[string]bool{}
	for _, e := range eps {
		seen[e.ID] = true
		te := TraceEndpoint{EndpointID: e.ID, URL: e.URL, Enabled: e.Enabled}
		if d := byEndpoint[e.ID]; d != nil {
			te.Matched, te.Delivery, te.Attempts = true, d, attempts[d.ID]
			if d.Held && !e.Enabled {
				te.Reason = TraceDisabled
				te.Detail = "the endpoint is disabled" + since(e.DisabledAt) + reasonText(e.DisabledReason) +
					"; the delivery is held and goes out when it is enabled again"
			}
		} else {
			te.Reason, te.Detail = unmatched(ev, e)
		}
		t.Endpoints = append(t.Endpoints, te)
	}
	for i := range ds {
		if d := &ds[i]; !seen[d.EndpointID] {
			t.Endpoints = append(t.Endpoints, TraceEndpoint{
				EndpointID: d.EndpointID, Matched: true, Delivery: d, Attempts: attempts[d.ID],
				Reason: TraceEndpointDeleted, Detail: "the endpoint has been deleted since",
			})
		}
	}
	return t, nil
}

// unmatched says why endpoint e has no delivery of event ev.
func unmatched(ev StoredEvent, e Endpoint) (reason, detail string) {
	switch {
	case ev.EndpointID != "" && ev.EndpointID != e.ID:
		return TraceTargetedElsewhere, fmt.Sprintf("the event was sent to endpoint %s only (its endpoint_id)", ev.EndpointID)
	case len(e.EventTypes) > 0 && !slices.Contains(e.EventTypes, ev.Type):
		return TraceTypeNotSubscribed, fmt.Sprintf("the endpoint is subscribed to %s, not to %s", strings.Join(e.EventTypes, ", "), ev.Type)
	case ev.DispatchedAt == nil:
		detail := "the event waits for the fan-out"
		if ev.DispatchError != "" {
			detail += "; the last fan-out attempt failed: " + ev.DispatchError
		}
		return TraceNotDispatched, detail
	case e.CreatedAt.After(*ev.DispatchedAt):
		return TraceCreatedAfter, fmt.Sprintf("the endpoint was created at %s, after the event was fanned out at %s; a backfill sends it",
			e.CreatedAt.UTC().Format(time.RFC3339), ev.DispatchedAt.UTC().Format(time.RFC3339))
	}
	return TraceChangedAfter, fmt.Sprintf("the endpoint did not receive this type when the event was fanned out at %s (its event types were changed at %s); a replay to it sends it",
		ev.DispatchedAt.UTC().Format(time.RFC3339), e.UpdatedAt.UTC().Format(time.RFC3339))
}

func since(t *time.Time) string {
	if t == nil {
		return ""
	}
	return " since " + t.UTC().Format(time.RFC3339)
}

func reasonText(r string) string {
	if r == "" {
		return ""
	}
	return " (" + r + ")"
}

// deliveryAttempts reads the attempts of deliveries, by delivery, oldest
// first.
func (s *Store) deliveryAttempts(ctx context.Context, ds []Delivery) (map[int64][]Attempt, error) {
	out := map[int64][]Attempt{}
	if len(ds) == 0 {
		return out, nil
	}
	ids := make([]int64, len(ds))
	for i, d := range ds {
		ids[i] = d.ID
	}
	rows, err := s.pool.Query(ctx, qualify(`SELECT a.id, a.delivery_id, a.attempt, a.started_at, a.duration_ms,
       a.status_code, a.outcome, a.error_class, a.error, a.response_excerpt
  FROM {{schema}}.attempts a
 WHERE a.delivery_id = ANY ($1::bigint[])
   AND ($2::text IS NULL OR EXISTS (SELECT 1 FROM {{schema}}.outbox t WHERE t.id = a.event_id AND t.tenant = $2))
 ORDER BY a.id`, s.schema), ids, s.tenantArg())
	if err != nil {
		return nil, fmt.Errorf("read attempts: %w", translate(err))
	}
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Attempt, error) {
		var a Attempt
		err := r.Scan(&a.ID, &a.DeliveryID, &a.Attempt, &a.StartedAt, &a.DurationMS, &a.StatusCode, &a.Outcome,
			&a.ErrorClass, &a.Error, &a.Response)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("read attempts: %w", translate(err))
	}
	for _, a := range all {
		out[a.DeliveryID] = append(out[a.DeliveryID], a)
	}
	return out, nil
}
