package outbox

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// CancelDelivery gives up on a pending or dead delivery: it becomes
// cancelled (finished, never attempted again) and, when it was the head of
// its ordering key, the next delivery of the key becomes due. Cancelling
// the dead head of an endpoint that blocks on dead heads is how an
// operator lets the key go on without re-sending it. A delivery in flight,
// delivered or already cancelled is a *StateError.
func (s *Store) CancelDelivery(ctx context.Context, id int64) (Delivery, error) {
	return s.changeDelivery(ctx, "cancel", id, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, qualify(`WITH upd AS (
    UPDATE {{schema}}.deliveries
       SET state = 'cancelled', finished_at = now(), updated_at = now()
     WHERE id = $1
    RETURNING id, endpoint_id, ordering_key, state
), rel AS (
    `+releaseNextSQL+`
)
SELECT count(*) FROM rel`, s.schema), id)
		return err
	})
}

// blockedKeysSQL lists, per (endpoint, ordering key) that a dead delivery
// blocks (the endpoint's ordering_on_dead is block), the oldest dead
// delivery, its event and when it died. It reads the dead rows of the
// ordering index only; %s narrows them (e.g. to one endpoint) before the
// DISTINCT, or is "true".
const blockedKeysSQL = `SELECT DISTINCT ON (d.endpoint_id, d.ordering_key)
       d.endpoint_id, d.ordering_key, d.id, d.event_id, d.finished_at
  FROM {{schema}}.deliveries d
  JOIN {{schema}}.endpoints e ON e.id = d.endpoint_id AND e.ordering_on_dead = 'block'
 WHERE d.state = 'dead' AND d.ordering_key IS NOT NULL AND %s
 ORDER BY d.endpoint_id, d.ordering_key, d.id`

// blockedKeysAll is blockedKeysSQL over every endpoint (the metrics).
var blockedKeysAll = fmt.Sprintf(blockedKeysSQL, "true")

// BlockedKey is an ordering key a dead delivery holds: its later events
// wait until the delivery is retried or cancelled.
type BlockedKey struct {
	OrderingKey string    `json:"ordering_key"`
	DeliveryID  int64     `json:"delivery_id"`
	EventID     int64     `json:"event_id"`
	DeadAt      time.Time `json:"dead_at"`
}

// BlockedKeys lists the ordering keys of an endpoint that dead deliveries
// block (only an endpoint with ordering_on_dead = block has any), by key;
// a tenant-scoped store sees only its tenant's endpoints.
func (s *Store) BlockedKeys(ctx context.Context, endpointID string) ([]BlockedKey, error) {
	if !ValidID(endpointID) {
		return nil, ErrNotFound
	}
	rows, err := s.pool.Query(ctx, qualify(`SELECT ordering_key, id, event_id, coalesce(finished_at, now())
  FROM (`+fmt.Sprintf(blockedKeysSQL, `d.endpoint_id = $1 AND ($2::text IS NULL OR e.tenant = $2)`)+`) b
 ORDER BY ordering_key`, s.schema), endpointID, s.tenantArg())
	if err != nil {
		return nil, fmt.Errorf("blocked keys of endpoint %s: %w", endpointID, translate(err))
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (BlockedKey, error) {
		var k BlockedKey
		err := r.Scan(&k.OrderingKey, &k.DeliveryID, &k.EventID, &k.DeadAt)
		return k, err
	})
	if err != nil {
		return nil, fmt.Errorf("blocked keys of endpoint %s: %w", endpointID, translate(err))
	}
	return keys, nil
}
