package outbox

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// CancelDelivery gives up on a pending or dead delivery: it becomes
// cancelled (finished, never attempted again) and, when it was the head of
// its ordering key, the next delivery of the key becomes due. Cancelling
// the dead head of an endpoint that blocks on dead heads is how an
// operator lets the key go on without re-sending it. A delivery in flight,
// delivered or already cancelled is a *StateError.
func (s *Store) CancelDelivery(ctx context.Context, id int64) (Delivery, error) {
	var d Delivery
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var state string
		if err := tx.QueryRow(ctx, qualify(`SELECT state FROM {{schema}}.deliveries d
 WHERE id = $1 AND `+deliveryInTenant("d", 2)+` FOR UPDATE`, s.schema), id, s.tenantArg()).Scan(&state); err != nil {
			return err
		}
		if state != StatePending && state != StateDead {
			return &StateError{DeliveryID: id, State: state}
		}
		if _, err := tx.Exec(ctx, qualify(`WITH upd AS (
    UPDATE {{schema}}.deliveries
       SET state = 'cancelled', finished_at = now(), updated_at = now()
     WHERE id = $1
    RETURNING id, endpoint_id, ordering_key, state
), rel AS (
    `+releaseNextSQL+`
)
SELECT count(*) FROM rel`, s.schema), id); err != nil {
			return err
		}
		var err error
		d, err = scanDelivery(tx.QueryRow(ctx, qualify(`SELECT `+deliveryColumns+` FROM {{schema}}.deliveries WHERE id = $1`, s.schema), id))
		return err
	})
	if err != nil {
		var se *StateError
		if errors.As(err, &se) {
			return Delivery{}, err
		}
		return Delivery{}, fmt.Errorf("cancel delivery %d: %w", id, translate(err))
	}
	return d, nil
}
