package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Test sends, replays and backfills: the ways a delivery is made other
// than the fan-out.

// TestSend is a test send ("Test" button) to record once it was sent.
type TestSend struct {
	EndpointID string
	// UID is the event's uid; its webhook-id is WebhookID(UID).
	UID       [16]byte
	EventType string
	Payload   []byte
	StartedAt time.Time
	Duration  time.Duration
	// StatusCode is 0 when there was no response.
	StatusCode int
	Delivered  bool
	ErrorClass string
	Error      string
	Response   string
}

// RecordTestSend records a test send like any other delivery: an event
// (marked test, already fanned out to this endpoint only), its delivery
// (delivered, or dead: a test is tried once) and the attempt. The
// endpoint's failure counters are left alone. It returns the event and
// delivery ids, or ErrNotFound when the endpoint is gone (or of another
// tenant, for a scoped store).
func (s *Store) RecordTestSend(ctx context.Context, t TestSend) (eventID, deliveryID int64, err error) {
	if !ValidID(t.EndpointID) {
		return 0, 0, fmt.Errorf("endpoint %s: %w", t.EndpointID, ErrNotFound)
	}
	state, outcome := StateDead, "dead"
	if t.Delivered {
		state, outcome = StateDelivered, "delivered"
	}
	err = s.pool.QueryRow(ctx, qualify(`WITH e AS (
    SELECT id, tenant FROM {{schema}}.endpoints WHERE id = $1 AND ($2::text IS NULL OR tenant = $2)
), ev AS (
    INSERT INTO {{schema}}.outbox (uid, event_type, tenant, payload, endpoint_id, test, created_at, dispatched_at, delivery_count)
    SELECT $3, $4, e.tenant, $5::text::jsonb, e.id, true, $6, now(), 1 FROM e
    RETURNING id, endpoint_id
), d AS (
    INSERT INTO {{schema}}.deliveries (event_id, endpoint_id, state, attempts, next_attempt_at, last_status, last_error,
                                       last_attempt_at, created_at, finished_at, event_type)
    SELECT ev.id, ev.endpoint_id, $7, 1, $6, nullif($8, 0), $9, now(), $6, now(), $4 FROM ev
    RETURNING id, event_id, endpoint_id
), a AS (
    INSERT INTO {{schema}}.attempts (delivery_id, event_id, endpoint_id, attempt, started_at, duration_ms, status_code,
                                     outcome, error_class, error, response_excerpt)
    SELECT d.id, d.event_id, d.endpoint_id, 1, $6, $10, nullif($8, 0), $11, $12, $9, $13 FROM d
)
SELECT event_id, id FROM d`, s.schema),
		t.EndpointID, s.tenantArg(), t.UID, t.EventType, string(t.Payload), t.StartedAt, state, t.StatusCode,
		CleanText(t.Error, MaxErrorBytes), int32(t.Duration.Milliseconds()), outcome, CleanText(t.ErrorClass, 64),
		CleanText(t.Response, MaxResponseBytes)).Scan(&eventID, &deliveryID)
	if err != nil {
		return 0, 0, fmt.Errorf("record test send to endpoint %s: %w", t.EndpointID, translate(err))
	}
	return eventID, deliveryID, nil
}

// ReplayResult says what ReplayEvent did.
type ReplayResult struct {
	EventID   int64  `json:"event_id"`
	WebhookID string `json:"webhook_id"`
	// Deliveries are the deliveries sent again (held, not sent, while
	// their endpoint is disabled), as they are after the replay.
	Deliveries []Delivery `json:"deliveries"`
	// Skipped are deliveries left alone, with why.
	Skipped []ReplaySkip `json:"skipped"`
}

// ReplaySkip is a delivery a replay left alone.
type ReplaySkip struct {
	DeliveryID int64  `json:"delivery_id"`
	EndpointID string `json:"endpoint_id"`
	Reason     string `json:"reason"`
}

// ErrNotDispatched is returned when replaying an event not fanned out yet:
// its deliveries do not exist, and the fan-out will send it.
var ErrNotDispatched = errors.New("the event has not been fanned out yet; it will be delivered without a replay")

// ReplayEvent sends an event again to the endpoints it was delivered to
// (or to endpointID only), whatever the state of their deliveries, with
// the same webhook-id.
//
// A replay starts a new attempt series on the existing delivery: it goes
// back to pending with no attempts counted (so it gets the full retry
// schedule), its earlier attempts stay in the log, and Replays and
// ReplayedAt record the replay. Keeping the delivery keeps its place in its
// ordering key (deliveries of a key go out in delivery id order): a
// replayed event of a key is sent before the key's later deliveries that
// are still pending, which wait for it; one already in flight is not
// stopped, so the replay may overlap with it. A delivery in flight is
// skipped (it is being sent), and so is one whose endpoint was deleted.
//
// With endpointID naming an endpoint of the event's tenant that has no
// delivery of it (created after the event, or subscribed later), a
// delivery is created, provided the endpoint is subscribed to the type
// and the event is not targeted at another endpoint (*FieldError
// otherwise).
func (s *Store) ReplayEvent(ctx context.Context, eventID int64, endpointID string) (ReplayResult, error) {
	if endpointID != "" && !ValidID(endpointID) {
		return ReplayResult{}, &FieldError{Field: "endpoint_id", Reason: "is not an endpoint id (a UUID)"}
	}
	var res ReplayResult
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var uid [16]byte
		var tenant, eventType string
		var target *string
		var dispatched bool
		err := tx.QueryRow(ctx, qualify(`SELECT uid, tenant, event_type, endpoint_id::text, dispatched_at IS NOT NULL
  FROM {{schema}}.outbox WHERE id = $1 AND ($2::text IS NULL OR tenant = $2) FOR UPDATE`, s.schema),
			eventID, s.tenantArg()).Scan(&uid, &tenant, &eventType, &target, &dispatched)
		if err != nil {
			return err
		}
		res.EventID, res.WebhookID = eventID, WebhookID(uid)
		if !dispatched {
			return ErrNotDispatched
		}
		if endpointID != "" {
			if err := s.replayCreate(ctx, tx, eventID, endpointID, tenant, eventType, target); err != nil {
				return err
			}
		}
		// Skipped first: in flight, or of a deleted endpoint.
		rows, err := tx.Query(ctx, qualify(`SELECT d.id, d.endpoint_id::text,
       CASE WHEN e.id IS NULL THEN 'endpoint deleted' ELSE 'in flight: being sent now' END
  FROM {{schema}}.deliveries d LEFT JOIN {{schema}}.endpoints e ON e.id = d.endpoint_id
 WHERE d.event_id = $1 AND ($2::uuid IS NULL OR d.endpoint_id = $2) AND (e.id IS NULL OR d.state = 'in_flight')
 ORDER BY d.id`, s.schema), eventID, nullIfEmpty(endpointID))
		if err != nil {
			return err
		}
		res.Skipped, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (ReplaySkip, error) {
			var k ReplaySkip
			err := r.Scan(&k.DeliveryID, &k.EndpointID, &k.Reason)
			return k, err
		})
		if err != nil {
			return err
		}
		// A replayed delivery of a key waits (next_attempt_at 'infinity')
		// while an earlier delivery of the key is unfinished; that one's
		// outcome releases it, as for any waiting delivery.
		rows, err = tx.Query(ctx, qualify(`UPDATE {{schema}}.deliveries d
   SET state = 'pending', attempts = 0, replays = d.replays + 1, replayed_at = now(),
       next_attempt_at = CASE WHEN NOT e.enabled OR (`+waitsSQL+`) THEN 'infinity'::timestamptz ELSE now() END,
       lease_token = NULL, lease_expires_at = NULL, finished_at = NULL, last_error = '', updated_at = now()
  FROM {{schema}}.endpoints e
 WHERE d.event_id = $1 AND e.id = d.endpoint_id AND ($2::uuid IS NULL OR d.endpoint_id = $2)
   AND d.state <> 'in_flight'
RETURNING d.id`, s.schema), eventID, nullIfEmpty(endpointID))
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return err
		}
		rows, err = tx.Query(ctx, qualify(`SELECT `+deliveryColumns+` FROM `+deliveryRows+` WHERE d.id = ANY ($1::bigint[]) ORDER BY d.id`, s.schema), ids)
		if err != nil {
			return err
		}
		res.Deliveries, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Delivery, error) { return scanDelivery(r) })
		return err
	})
	if err != nil {
		var fe *FieldError
		if errors.As(err, &fe) || errors.Is(err, ErrNotDispatched) {
			return ReplayResult{}, err
		}
		return ReplayResult{}, fmt.Errorf("replay event %d: %w", eventID, translate(err))
	}
	if res.Deliveries == nil {
		res.Deliveries = []Delivery{}
	}
	if res.Skipped == nil {
		res.Skipped = []ReplaySkip{}
	}
	return res, nil
}

// replayCreate makes the delivery of event eventID to endpointID when it
// has none, after checking that the endpoint may receive it. The new
// delivery is then reset by the replay's update like the others.
func (s *Store) replayCreate(ctx context.Context, tx pgx.Tx, eventID int64, endpointID, tenant, eventType string, target *string) error {
	var types []string
	err := tx.QueryRow(ctx, qualify(`SELECT event_types FROM {{schema}}.endpoints WHERE id = $1 AND tenant = $2`, s.schema),
		endpointID, tenant).Scan(&types)
	if errors.Is(err, pgx.ErrNoRows) {
		return &FieldError{Field: "endpoint_id", Reason: "names no endpoint of the event's tenant"}
	}
	if err != nil {
		return err
	}
	switch {
	case target != nil && *target != endpointID:
		return &FieldError{Field: "endpoint_id", Reason: fmt.Sprintf("the event was sent to endpoint %s only (its endpoint_id)", *target)}
	case len(types) > 0 && !contains(types, eventType):
		return &FieldError{Field: "endpoint_id", Reason: fmt.Sprintf("the endpoint is not subscribed to event type %q", eventType)}
	}
	// Created finished, so the update below starts its series like any
	// replayed delivery's (and orders it after the key's earlier ones).
	_, err = tx.Exec(ctx, qualify(`INSERT INTO {{schema}}.deliveries (event_id, endpoint_id, state, next_attempt_at, finished_at, ordering_key, event_type)
SELECT o.id, $2, 'cancelled', now(), now(), o.ordering_key, o.event_type FROM {{schema}}.outbox o WHERE o.id = $1
ON CONFLICT (event_id, endpoint_id) DO NOTHING`, s.schema), eventID, endpointID)
	return err
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// BackfillInput says which past events a backfill sends.
type BackfillInput struct {
	// Since and Until bound the events' created_at: [Since, Until); Until
	// defaults to now.
	Since time.Time
	Until *time.Time
	// EventTypes, when not empty, keeps events of these types (within the
	// endpoint's own subscription).
	EventTypes []string
}

// BackfillResult says what Backfill did.
type BackfillResult struct {
	// Matched counts the events in the range the endpoint receives.
	Matched int `json:"matched"`
	// Created counts the deliveries created; the others existed already
	// (the endpoint had them, or an earlier backfill made them).
	Created int `json:"created"`
}

// Backfill sends past events of the endpoint's tenant to the endpoint: one
// delivery per event in the range that the endpoint would have received
// (its tenant, its subscription, not targeted at another endpoint, already
// fanned out; test sends excluded) and that it has no delivery of yet.
// Running it again creates nothing new. Deliveries of a keyed event are
// ordered within the backfill by event id and after the key's deliveries
// the endpoint already has; while the endpoint is disabled they are held.
// ErrNotFound for an unknown endpoint (or one of another tenant, for a
// scoped store).
func (s *Store) Backfill(ctx context.Context, endpointID string, in BackfillInput) (BackfillResult, error) {
	if !ValidID(endpointID) {
		return BackfillResult{}, fmt.Errorf("endpoint %s: %w", endpointID, ErrNotFound)
	}
	until := time.Now()
	if in.Until != nil {
		until = *in.Until
	}
	if !until.After(in.Since) {
		return BackfillResult{}, &FieldError{Field: "until", Reason: "must be after since"}
	}
	if err := ValidateEventTypes(in.EventTypes); err != nil {
		return BackfillResult{}, err
	}
	var types []string
	if len(in.EventTypes) > 0 {
		types = in.EventTypes
	}
	var found bool
	var res BackfillResult
	err := s.pool.QueryRow(ctx, qualify(`WITH e AS (
    SELECT id, tenant, event_types, enabled, ordering_on_dead FROM {{schema}}.endpoints
     WHERE id = $1 AND ($2::text IS NULL OR tenant = $2)
), ev AS (
    SELECT o.id, o.ordering_key, o.event_type, EXISTS (SELECT 1 FROM {{schema}}.deliveries x WHERE x.event_id = o.id AND x.endpoint_id = e.id) AS has
      FROM e JOIN {{schema}}.outbox o ON o.tenant = e.tenant
     WHERE o.created_at >= $3 AND o.created_at < $4
       AND o.dispatched_at IS NOT NULL AND NOT o.test
       AND (o.endpoint_id IS NULL OR o.endpoint_id = e.id)
       AND (cardinality(e.event_types) = 0 OR o.event_type = ANY (e.event_types))
       AND ($5::text[] IS NULL OR o.event_type = ANY ($5))
), ins AS (
    INSERT INTO {{schema}}.deliveries (event_id, endpoint_id, next_attempt_at, ordering_key, event_type)
    SELECT ev.id, e.id,
           CASE WHEN NOT e.enabled THEN 'infinity'::timestamptz
                WHEN ev.ordering_key IS NULL THEN now()
                WHEN row_number() OVER (PARTITION BY ev.ordering_key ORDER BY ev.id) = 1
                     AND NOT EXISTS (SELECT 1 FROM {{schema}}.deliveries p
                                      WHERE p.endpoint_id = e.id AND p.ordering_key = ev.ordering_key
                                        AND `+unfinishedSQL("p", "e")+`) THEN now()
                ELSE 'infinity'::timestamptz END,
           ev.ordering_key, ev.event_type
      FROM ev, e
     WHERE NOT ev.has
     ORDER BY ev.id
    ON CONFLICT (event_id, endpoint_id) DO NOTHING
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM e), (SELECT count(*) FROM ev)::int, (SELECT count(*) FROM ins)::int`, s.schema),
		endpointID, s.tenantArg(), in.Since, until, types).Scan(&found, &res.Matched, &res.Created)
	if err != nil {
		return BackfillResult{}, fmt.Errorf("backfill endpoint %s: %w", endpointID, translate(err))
	}
	if !found {
		return BackfillResult{}, fmt.Errorf("endpoint %s: %w", endpointID, ErrNotFound)
	}
	return res, nil
}
