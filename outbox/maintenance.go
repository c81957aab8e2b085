package outbox

import (
	"context"
	"fmt"
	"time"
)

// StaleEndpoint is an enabled endpoint that qualifies for auto-disable.
type StaleEndpoint struct {
	ID                  string
	ConsecutiveFailures int
	// LastSuccessAt is nil when the endpoint never had a success.
	LastSuccessAt *time.Time
}

// StaleEndpoints returns up to limit enabled endpoints with at least
// failures consecutive failed attempts and no success for longer than
// after (counting from their creation when they never had one).
func (s *Store) StaleEndpoints(ctx context.Context, failures int, after time.Duration, limit int) ([]StaleEndpoint, error) {
	rows, err := s.pool.Query(ctx, qualify(`SELECT id::text, consecutive_failures, last_success_at
  FROM {{schema}}.endpoints
 WHERE enabled AND consecutive_failures >= $1
   AND coalesce(last_success_at, created_at) < now() - make_interval(secs => $2)
 ORDER BY id
 LIMIT $3`, s.schema), failures, after.Seconds(), limit)
	if err != nil {
		return nil, fmt.Errorf("find stale endpoints: %w", translate(err))
	}
	defer rows.Close()
	var out []StaleEndpoint
	for rows.Next() {
		var e StaleEndpoint
		if err := rows.Scan(&e.ID, &e.ConsecutiveFailures, &e.LastSuccessAt); err != nil {
			return nil, fmt.Errorf("find stale endpoints: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find stale endpoints: %w", translate(err))
	}
	return out, nil
}

// EventHeader is an event's identity without its payload.
type EventHeader struct {
	ID        int64
	WebhookID string
	Type      string
	Tenant    string
}

// GetEventHeader returns the identity of event id, or ErrNotFound.
func (s *Store) GetEventHeader(ctx context.Context, id int64) (EventHeader, error) {
	h := EventHeader{ID: id}
	var uid [16]byte
	err := s.pool.QueryRow(ctx, qualify(`SELECT uid, event_type, tenant FROM {{schema}}.outbox WHERE id = $1`, s.schema), id).
		Scan(&uid, &h.Type, &h.Tenant)
	if err != nil {
		return EventHeader{}, fmt.Errorf("get event %d: %w", id, translate(err))
	}
	h.WebhookID = WebhookID(uid)
	return h, nil
}

// TryMaintenance runs fn while holding this schema's maintenance lock (a
// session-level advisory lock on a dedicated pool connection), so that
// only one replica maintains the schema at a time. When another session
// holds the lock it returns false at once without calling fn. The lock is
// released when fn returns; if the release cannot be confirmed the
// connection is closed, which releases it too.
func (s *Store) TryMaintenance(ctx context.Context, fn func(ctx context.Context) error) (ran bool, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return false, fmt.Errorf("maintenance lock: acquire connection: %w", err)
	}
	key := "hookrelay-maintenance/" + s.schema
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1, 11))`, key).Scan(&got); err != nil {
		conn.Release()
		return false, fmt.Errorf("maintenance lock: %w", err)
	}
	if !got {
		conn.Release()
		return false, nil
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		var released bool
		if uerr := conn.QueryRow(uctx, `SELECT pg_advisory_unlock(hashtextextended($1, 11))`, key).Scan(&released); uerr != nil || !released {
			// Closing the session is the sure way to drop a session lock.
			_ = conn.Conn().Close(uctx)
		}
		conn.Release()
	}()
	return true, fn(ctx)
}

// Purged counts the rows one retention batch deleted.
type Purged struct {
	Attempts   int
	Deliveries int
	Events     int
}

// PurgeDeliveries deletes up to limit finished deliveries (delivered, dead
// or cancelled) that finished before cutoff, with their attempts, in one
// short transaction. Pending and in-flight deliveries are never touched.
func (s *Store) PurgeDeliveries(ctx context.Context, cutoff time.Time, limit int) (Purged, error) {
	var p Purged
	err := s.pool.QueryRow(ctx, qualify(`WITH d AS (
    SELECT id FROM {{schema}}.deliveries
     WHERE finished_at IS NOT NULL AND finished_at < $1
       AND state IN ('delivered', 'dead', 'cancelled')
     ORDER BY finished_at
     LIMIT $2
       FOR UPDATE SKIP LOCKED
), a AS (
    DELETE FROM {{schema}}.attempts WHERE delivery_id IN (SELECT id FROM d) RETURNING 1
), del AS (
    DELETE FROM {{schema}}.deliveries WHERE id IN (SELECT id FROM d) RETURNING 1
)
SELECT (SELECT count(*) FROM a), (SELECT count(*) FROM del)`, s.schema), cutoff, limit).Scan(&p.Attempts, &p.Deliveries)
	if err != nil {
		return Purged{}, fmt.Errorf("purge deliveries: %w", translate(err))
	}
	return p, nil
}

// PurgeEvents deletes up to limit events created and dispatched before
// cutoff that have no deliveries left (PurgeDeliveries removes the
// finished ones first), in one short transaction. Undispatched events and
// events with any remaining delivery are never touched.
func (s *Store) PurgeEvents(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	tag, err := s.pool.Exec(ctx, qualify(`DELETE FROM {{schema}}.outbox WHERE id IN (
    SELECT o.id FROM {{schema}}.outbox o
     WHERE o.created_at < $1 AND o.dispatched_at IS NOT NULL AND o.dispatched_at < $1
       AND NOT EXISTS (SELECT 1 FROM {{schema}}.deliveries d WHERE d.event_id = o.id)
     ORDER BY o.id -- oldest first, by the primary key (no index on created_at: it would tax every insert)
     LIMIT $2
       FOR UPDATE SKIP LOCKED)`, s.schema), cutoff, limit)
	if err != nil {
		return 0, fmt.Errorf("purge events: %w", translate(err))
	}
	return int(tag.RowsAffected()), nil
}
