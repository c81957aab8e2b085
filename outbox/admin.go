package outbox

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// The queries of the admin API: reading events, deliveries and attempts,
// re-queueing deliveries, and the queue statistics behind the metrics.

// StoredEvent is an outbox event as the admin API shows it.
type StoredEvent struct {
	ID             int64           `json:"id"`
	WebhookID      string          `json:"webhook_id"`
	Type           string          `json:"type"`
	Tenant         string          `json:"tenant"`
	Payload        json.RawMessage `json:"payload"`
	EndpointID     string          `json:"endpoint_id,omitempty"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
	OrderingKey    string          `json:"ordering_key,omitempty"`
	CreatedAt      time.Time       `json:"created_at"`
	// DispatchedAt is when the event was fanned out (nil until then).
	DispatchedAt *time.Time `json:"dispatched_at,omitempty"`
	// DeliveryCount is the number of deliveries created at fan-out.
	DeliveryCount *int `json:"delivery_count,omitempty"`
	// DispatchError says why the event reached no endpoint (an endpoint_id
	// naming none of the tenant's endpoints subscribed to its type) or,
	// while DispatchedAt is nil, why the fan-out set it aside.
	DispatchError string `json:"dispatch_error,omitempty"`
	// Test marks a test send's event (Store.RecordTestSend).
	Test bool `json:"test,omitempty"`
}

// Delivery is one (event, endpoint) delivery as the admin API shows it.
type Delivery struct {
	ID         int64  `json:"id"`
	EventID    int64  `json:"event_id"`
	EndpointID string `json:"endpoint_id"`
	State      string `json:"state"`
	Attempts   int    `json:"attempts"`
	// NextAttemptAt is nil for a delivery held while its endpoint is
	// disabled.
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	// Held is true while the endpoint is disabled and the delivery waits.
	Held          bool       `json:"held"`
	LastStatus    *int       `json:"last_status,omitempty"`
	LastError     string     `json:"last_error,omitempty"`
	LastAttemptAt *time.Time `json:"last_attempt_at,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
	FinishedAt    *time.Time `json:"finished_at,omitempty"`
	// EventType, WebhookID and Tenant are the event's.
	EventType   string `json:"event_type"`
	WebhookID   string `json:"webhook_id"`
	Tenant      string `json:"tenant"`
	OrderingKey string `json:"ordering_key,omitempty"`
	// Test marks the delivery of a test send ("Test" button).
	Test bool `json:"test"`
	// Replays counts the replays of the delivery; ReplayedAt is when the
	// last one started a new attempt series (the attempts before it are
	// the earlier series).
	Replays    int        `json:"replays"`
	ReplayedAt *time.Time `json:"replayed_at,omitempty"`
}

// Attempt is one recorded HTTP try of a delivery.
type Attempt struct {
	ID         int64 `json:"id"`
	DeliveryID int64 `json:"delivery_id"`
	// EventID, EndpointID, EventType and Test (a test send's attempt) are
	// set in lists across deliveries (Store.ListAttemptsFiltered).
	EventID    int64     `json:"event_id,omitempty"`
	EndpointID string    `json:"endpoint_id,omitempty"`
	EventType  string    `json:"event_type,omitempty"`
	Test       bool      `json:"test,omitempty"`
	Attempt    int       `json:"attempt"`
	StartedAt  time.Time `json:"started_at"`
	DurationMS int       `json:"duration_ms"`
	StatusCode *int      `json:"status_code,omitempty"`
	Outcome    string    `json:"outcome"`
	ErrorClass string    `json:"error_class,omitempty"`
	Error      string    `json:"error,omitempty"`
	Response   string    `json:"response_excerpt,omitempty"`
}

// EventFilter selects events to list (newest first).
type EventFilter struct {
	Tenant *string
	Type   *string
	// Since and Until bound created_at: [Since, Until).
	Since, Until *time.Time
	// After is the cursor returned with the previous page ("" for the first).
	After string
	// Limit is the page size (default 50, at most 500).
	Limit int
}

// DeliveryFilter selects deliveries to list (newest first by creation).
type DeliveryFilter struct {
	State      *string
	EndpointID *string
	EventID    *int64
	// Tenant keeps one tenant's deliveries (a tenant-scoped store keeps
	// only its own whatever this says).
	Tenant *string
	// EventType keeps the deliveries of events of this type.
	EventType *string
	// Since and Until bound created_at: [Since, Until).
	Since, Until *time.Time
	// After is the cursor returned with the previous page ("" for the first).
	After string
	// Limit is the page size (default 50, at most 500).
	Limit int
}

// StateError is returned when a delivery is in a state that does not allow
// the operation (for example retrying one that was delivered). It matches
// ErrConflict.
type StateError struct {
	DeliveryID int64
	State      string
}

func (e *StateError) Error() string {
	return fmt.Sprintf("delivery %d is %s", e.DeliveryID, e.State)
}

// Unwrap makes the error match ErrConflict.
func (e *StateError) Unwrap() error { return ErrConflict }

// beforeID decodes an optional id cursor: nil for the first page.
func beforeID(after string) (*int64, error) {
	if after == "" {
		return nil, nil
	}
	id, err := DecodeIDCursor(after)
	if err != nil {
		return nil, err
	}
	return &id, nil
}

// EncodeIDCursor returns the opaque cursor for a page that ends at id.
func EncodeIDCursor(id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("i" + strconv.FormatInt(id, 10)))
}

// DecodeIDCursor parses a cursor made by EncodeIDCursor; anything else is
// ErrBadCursor.
func DecodeIDCursor(c string) (int64, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) < 2 || b[0] != 'i' || b[1] == '+' || b[1] == '-' {
		return 0, ErrBadCursor
	}
	id, err := strconv.ParseInt(string(b[1:]), 10, 64)
	if err != nil || id <= 0 {
		return 0, ErrBadCursor
	}
	return id, nil
}

// ValidDeliveryState reports whether s is a delivery state.
func ValidDeliveryState(s string) bool {
	switch s {
	case StatePending, StateInFlight, StateDelivered, StateDead, StateCancelled:
		return true
	}
	return false
}

const eventColumns = `id, uid, event_type, tenant, convert_to(payload::text, 'UTF8'), coalesce(endpoint_id::text, ''),
       coalesce(idempotency_key, ''), coalesce(ordering_key, ''), created_at, dispatched_at, delivery_count,
       coalesce(dispatch_error, ''), test`

func scanEvent(row pgx.Row) (StoredEvent, error) {
	var e StoredEvent
	var uid [16]byte
	var payload []byte
	err := row.Scan(&e.ID, &uid, &e.Type, &e.Tenant, &payload, &e.EndpointID, &e.IdempotencyKey,
		&e.OrderingKey, &e.CreatedAt, &e.DispatchedAt, &e.DeliveryCount, &e.DispatchError, &e.Test)
	e.WebhookID = WebhookID(uid)
	e.Payload = payload
	return e, err
}

// ListEvents returns a page of events newest first and the cursor of the
// next page ("" at the end). Keyset pagination on id keeps pages stable
// while events are added.
func (s *Store) ListEvents(ctx context.Context, f EventFilter) ([]StoredEvent, string, error) {
	limit := pageLimit(f.Limit)
	before, err := beforeID(f.After)
	if err != nil {
		return nil, "", err
	}
	out, err := queryList(ctx, s, "list events", `SELECT `+eventColumns+` FROM {{schema}}.outbox
 WHERE ($1::text IS NULL OR tenant = $1) AND ($2::text IS NULL OR event_type = $2)
   AND ($3::timestamptz IS NULL OR created_at >= $3) AND ($4::timestamptz IS NULL OR created_at < $4)
   AND ($5::bigint IS NULL OR id < $5) AND ($7::text IS NULL OR tenant = $7)
 ORDER BY id DESC
 LIMIT $6`, func(r pgx.CollectableRow) (StoredEvent, error) { return scanEvent(r) },
		f.Tenant, f.Type, f.Since, f.Until, before, limit+1, s.tenantArg())
	if err != nil {
		return nil, "", err
	}
	out, next := cutPage(out, limit, func(e StoredEvent) string { return EncodeIDCursor(e.ID) })
	return out, next, nil
}

// GetEvent returns one event or ErrNotFound.
func (s *Store) GetEvent(ctx context.Context, id int64) (StoredEvent, error) {
	e, err := scanEvent(s.pool.QueryRow(ctx, qualify(`SELECT `+eventColumns+` FROM {{schema}}.outbox
 WHERE id = $1 AND ($2::text IS NULL OR tenant = $2)`, s.schema), id, s.tenantArg()))
	if err != nil {
		return StoredEvent{}, fmt.Errorf("get event %d: %w", id, translate(err))
	}
	return e, nil
}

// deliveryColumns are the columns scanDelivery reads, from deliveryRows.
const deliveryColumns = `d.id, d.event_id, d.endpoint_id::text, d.state, d.attempts,
       CASE WHEN d.next_attempt_at = 'infinity' THEN NULL ELSE d.next_attempt_at END, d.next_attempt_at = 'infinity',
       d.last_status, d.last_error, d.last_attempt_at, d.created_at, d.updated_at, d.finished_at,
       coalesce(d.ordering_key, ''), d.replays, d.replayed_at,
       coalesce(o.event_type, ''), o.uid, coalesce(o.tenant, ''), coalesce(o.test, false)`

// deliveryRows joins each delivery (d) to its event (o), read once per
// delivery through the outbox's primary key.
const deliveryRows = `{{schema}}.deliveries d LEFT JOIN {{schema}}.outbox o ON o.id = d.event_id`

func scanDelivery(row pgx.Row) (Delivery, error) {
	var d Delivery
	var uid *[16]byte
	err := row.Scan(&d.ID, &d.EventID, &d.EndpointID, &d.State, &d.Attempts, &d.NextAttemptAt, &d.Held,
		&d.LastStatus, &d.LastError, &d.LastAttemptAt, &d.CreatedAt, &d.UpdatedAt, &d.FinishedAt,
		&d.OrderingKey, &d.Replays, &d.ReplayedAt, &d.EventType, &uid, &d.Tenant, &d.Test)
	if uid != nil {
		d.WebhookID = WebhookID(*uid)
	}
	return d, err
}

// deliveryInTenant is the tenant predicate of a query on deliveries (alias
// d; n is the tenant parameter's number): a delivery belongs to its
// event's tenant.
func deliveryInTenant(d string, n int) string {
	return fmt.Sprintf(`($%d::text IS NULL OR EXISTS (SELECT 1 FROM {{schema}}.outbox t WHERE t.id = %s.event_id AND t.tenant = $%d))`, n, d, n)
}

// EventDeliveries returns all deliveries of one event (one per endpoint),
// oldest first.
func (s *Store) EventDeliveries(ctx context.Context, eventID int64) ([]Delivery, error) {
	rows, err := s.pool.Query(ctx, qualify(`SELECT `+deliveryColumns+` FROM `+deliveryRows+`
 WHERE d.event_id = $1 AND `+deliveryInTenant("d", 2)+` ORDER BY d.id`, s.schema), eventID, s.tenantArg())
	if err != nil {
		return nil, fmt.Errorf("deliveries of event %d: %w", eventID, translate(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Delivery, error) { return scanDelivery(r) })
	if err != nil {
		return nil, fmt.Errorf("deliveries of event %d: %w", eventID, translate(err))
	}
	return out, nil
}

// GetDelivery returns one delivery or ErrNotFound.
func (s *Store) GetDelivery(ctx context.Context, id int64) (Delivery, error) {
	d, err := scanDelivery(s.pool.QueryRow(ctx, qualify(`SELECT `+deliveryColumns+` FROM `+deliveryRows+`
 WHERE d.id = $1 AND `+deliveryInTenant("d", 2), s.schema), id, s.tenantArg()))
	if err != nil {
		return Delivery{}, fmt.Errorf("get delivery %d: %w", id, translate(err))
	}
	return d, nil
}

// ListAttempts returns the attempts of a delivery in order, or ErrNotFound
// when the delivery does not exist.
func (s *Store) ListAttempts(ctx context.Context, deliveryID int64) ([]Attempt, error) {
	rows, err := s.pool.Query(ctx, qualify(`SELECT a.id, a.delivery_id, a.attempt, a.started_at, a.duration_ms,
       a.status_code, a.outcome, a.error_class, a.error, a.response_excerpt
  FROM {{schema}}.deliveries d
  LEFT JOIN {{schema}}.attempts a ON a.delivery_id = d.id
 WHERE d.id = $1 AND `+deliveryInTenant("d", 2)+`
 ORDER BY a.id`, s.schema), deliveryID, s.tenantArg())
	if err != nil {
		return nil, fmt.Errorf("attempts of delivery %d: %w", deliveryID, translate(err))
	}
	type row struct {
		id *int64
		a  Attempt
	}
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		var deliveryID *int64
		var attempt, duration *int
		var started *time.Time
		var outcome, class, errText, excerpt *string
		err := r.Scan(&x.id, &deliveryID, &attempt, &started, &duration, &x.a.StatusCode, &outcome, &class, &errText, &excerpt)
		if x.id != nil {
			x.a.ID, x.a.DeliveryID, x.a.Attempt, x.a.StartedAt, x.a.DurationMS = *x.id, *deliveryID, *attempt, *started, *duration
			x.a.Outcome, x.a.ErrorClass, x.a.Error, x.a.Response = *outcome, *class, *errText, *excerpt
		}
		return x, err
	})
	if err != nil {
		return nil, fmt.Errorf("attempts of delivery %d: %w", deliveryID, translate(err))
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("attempts of delivery %d: %w", deliveryID, ErrNotFound)
	}
	out := make([]Attempt, 0, len(all))
	for _, x := range all {
		if x.id != nil {
			out = append(out, x.a)
		}
	}
	return out, nil
}

// RetryDelivery re-queues a pending or dead delivery to be attempted now
// (held instead while its endpoint is disabled). Its attempt count is kept,
// so a dead delivery gets one more attempt. A delivered, in-flight or
// cancelled delivery is a *StateError.
func (s *Store) RetryDelivery(ctx context.Context, id int64) (Delivery, error) {
	return s.changeDelivery(ctx, "retry", id, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, qualify(`UPDATE {{schema}}.deliveries d
   SET state = 'pending', finished_at = NULL, updated_at = now(),
       next_attempt_at = CASE WHEN e.enabled THEN now() ELSE 'infinity'::timestamptz END
  FROM {{schema}}.endpoints e
 WHERE d.id = $1 AND e.id = d.endpoint_id`, s.schema), id)
		if err == nil && tag.RowsAffected() == 0 {
			return &StateError{DeliveryID: id, State: "of a deleted endpoint"}
		}
		return err
	})
}

// changeDelivery runs change on a pending or dead delivery (of the store's
// tenant) in a transaction that holds the row, and returns the delivery as
// changed. Another state is a *StateError; action names the operation in
// other errors.
func (s *Store) changeDelivery(ctx context.Context, action string, id int64, change func(tx pgx.Tx) error) (Delivery, error) {
	var d Delivery
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var state string
		if err := tx.QueryRow(ctx, qualify(`SELECT state FROM {{schema}}.deliveries d
 WHERE id = $1 AND `+deliveryInTenant("d", 2)+` FOR UPDATE`, s.schema), id, s.tenantArg()).Scan(&state); err != nil {
			return err
		}
		if state != StatePending && state != StateDead {
			return &StateError{DeliveryID: id, State: state}
		}
		if err := change(tx); err != nil {
			return err
		}
		var err error
		d, err = scanDelivery(tx.QueryRow(ctx, qualify(`SELECT `+deliveryColumns+` FROM `+deliveryRows+` WHERE d.id = $1`, s.schema), id))
		return err
	})
	if err != nil {
		var se *StateError
		if errors.As(err, &se) {
			return Delivery{}, err
		}
		return Delivery{}, fmt.Errorf("%s delivery %d: %w", action, id, translate(err))
	}
	return d, nil
}

// RecoverEndpoint re-queues an endpoint's failed deliveries created in
// [since, until): dead ones go back to pending, and pending ones waiting
// for a retry are made due now. Attempts are kept (a dead delivery gets
// one more try). While the endpoint is disabled they stay held until it is
// enabled. It returns how many deliveries were re-queued, or ErrNotFound
// for an unknown endpoint.
func (s *Store) RecoverEndpoint(ctx context.Context, endpointID string, since, until time.Time) (int, error) {
	if !ValidID(endpointID) {
		return 0, ErrNotFound
	}
	var n int
	var found bool
	err := s.pool.QueryRow(ctx, qualify(`WITH e AS (
    SELECT id, enabled FROM {{schema}}.endpoints WHERE id = $1 AND ($4::text IS NULL OR tenant = $4)
), upd AS (
    UPDATE {{schema}}.deliveries d
       SET state = 'pending', finished_at = NULL, updated_at = now(),
           next_attempt_at = CASE WHEN e.enabled THEN now() ELSE 'infinity'::timestamptz END
      FROM e
     WHERE d.endpoint_id = e.id AND d.created_at >= $2 AND d.created_at < $3
       AND (d.state = 'dead'
            OR (d.state = 'pending' AND d.attempts > 0 AND d.next_attempt_at > now()
                AND d.next_attempt_at <> 'infinity'))
    RETURNING d.id
)
SELECT EXISTS (SELECT 1 FROM e), (SELECT count(*) FROM upd)::int`, s.schema), endpointID, since, until, s.tenantArg()).Scan(&found, &n)
	if err != nil {
		return 0, fmt.Errorf("recover endpoint %s: %w", endpointID, translate(err))
	}
	if !found {
		return 0, fmt.Errorf("recover endpoint %s: %w", endpointID, ErrNotFound)
	}
	return n, nil
}

// QueueStats is a snapshot of the queue for the metrics.
type QueueStats struct {
	// Pending counts deliveries waiting for their first attempt (due, not
	// yet due, or held while their endpoint is disabled).
	Pending int64
	// Retrying counts pending deliveries that failed at least once.
	Retrying int64
	InFlight int64
	// Dead and Delivered count finished deliveries not yet removed by
	// retention: exactly while there are at most FinishedExactLimit
	// finished deliveries, as the query planner's estimate above (see
	// FinishedEstimated).
	Dead      int64
	Delivered int64
	// FinishedEstimated reports that Dead and Delivered are estimates.
	FinishedEstimated bool
	// Undispatched counts outbox events not yet fanned out.
	Undispatched int64
	// OldestPendingAge is the lag: the longest any due work has waited,
	// either an event not yet fanned out (since it was created) or a due
	// delivery (since it became due). Held deliveries do not count.
	OldestPendingAge time.Duration
	// EndpointsDisabled counts disabled endpoints.
	EndpointsDisabled int64
	// BlockedKeys counts the ordering keys held by a dead delivery on an
	// endpoint with ordering_on_dead = block.
	BlockedKeys int64
}

// FinishedExactLimit is how many finished deliveries QueueStats counts
// exactly. Above it, counting delivered and dead rows would read the
// whole history on every refresh (3M rows took seconds), so their numbers
// come from the planner's statistics instead, at a constant cost.
const FinishedExactLimit = 1000

// Each count of due or leased work uses a partial index (or the small
// endpoints table). Of the finished rows, the newest FinishedExactLimit+1
// ($1) at most are read, through the finished-rows index: when there are
// no more, the per-state counts are exact.
var queueStatsSQL = `SELECT
    (SELECT count(*) FROM {{schema}}.deliveries WHERE state = 'pending' AND attempts = 0),
    (SELECT count(*) FROM {{schema}}.deliveries WHERE state = 'pending' AND attempts > 0),
    (SELECT count(*) FROM {{schema}}.deliveries WHERE state = 'in_flight'),
    f.dead, f.delivered, f.n,
    (SELECT count(*) FROM {{schema}}.outbox WHERE dispatched_at IS NULL),
    greatest(0,
      extract(epoch FROM now() - (SELECT created_at FROM {{schema}}.outbox WHERE dispatched_at IS NULL
          ORDER BY id LIMIT 1)),
      extract(epoch FROM now() - (SELECT min(next_attempt_at) FROM {{schema}}.deliveries
          WHERE state = 'pending' AND attempts = 0 AND next_attempt_at <= now())),
      extract(epoch FROM now() - (SELECT min(next_attempt_at) FROM {{schema}}.deliveries
          WHERE state = 'pending' AND attempts > 0 AND next_attempt_at <= now()))
    )::float8,
    (SELECT count(*) FROM {{schema}}.endpoints WHERE NOT enabled),
    (SELECT count(*) FROM (` + blockedKeysAll + `) b)
  FROM (SELECT count(*) FILTER (WHERE state = 'dead') AS dead,
               count(*) FILTER (WHERE state = 'delivered') AS delivered,
               count(*) AS n
          FROM (SELECT state FROM {{schema}}.deliveries WHERE finished_at IS NOT NULL
                 ORDER BY finished_at DESC LIMIT $1) s) f`

// queueEstimateSQL asks the planner how many rows have a state (%s: a
// quoted literal): planning only, nothing is read but the statistics
// autovacuum keeps, scaled by the table's current size.
const queueEstimateSQL = `EXPLAIN (FORMAT JSON) SELECT 1 FROM {{schema}}.deliveries WHERE state = %s`

// QueueStats reads the queue snapshot: one statement, plus two planner
// estimates when there are more than FinishedExactLimit finished
// deliveries. Its cost does not grow with the history.
func (s *Store) QueueStats(ctx context.Context) (QueueStats, error) {
	var q QueueStats
	var age float64
	var finished int64
	err := s.pool.QueryRow(ctx, qualify(queueStatsSQL, s.schema), FinishedExactLimit+1).Scan(&q.Pending, &q.Retrying, &q.InFlight,
		&q.Dead, &q.Delivered, &finished, &q.Undispatched, &age, &q.EndpointsDisabled, &q.BlockedKeys)
	if err != nil {
		return QueueStats{}, fmt.Errorf("queue stats: %w", translate(err))
	}
	q.OldestPendingAge = time.Duration(age * float64(time.Second))
	if finished <= FinishedExactLimit {
		return q, nil
	}
	b := &pgx.Batch{}
	for _, state := range []string{"'dead'", "'delivered'"} {
		b.Queue(qualify(fmt.Sprintf(queueEstimateSQL, state), s.schema))
	}
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()
	for _, n := range []*int64{&q.Dead, &q.Delivered} {
		var plan []byte
		if err := br.QueryRow().Scan(&plan); err != nil {
			return QueueStats{}, fmt.Errorf("queue stats: estimate finished deliveries: %w", translate(err))
		}
		var p []struct {
			Plan struct {
				Rows float64 `json:"Plan Rows"`
			} `json:"Plan"`
		}
		if err := json.Unmarshal(plan, &p); err != nil || len(p) != 1 {
			return QueueStats{}, fmt.Errorf("queue stats: estimate finished deliveries: unexpected plan %.100q", plan)
		}
		*n = int64(p[0].Plan.Rows)
	}
	q.FinishedEstimated = true
	return q, nil
}
