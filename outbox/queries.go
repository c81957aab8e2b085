package outbox

import (
	"strconv"
	"strings"
)

// queries holds every statement with the schema filled in, built once per
// Store. Endpoint ids travel as text[] cast to uuid[] in SQL: pgx encodes Go
// strings as text without first trying (and failing) a uuid encoding.
type queries struct {
	dispatch, dispatchOnly, setAside, claim, complete, release, disable string
}

func newQueries(schema string) queries {
	return queries{
		dispatch:     qualify(strings.Replace(dispatchSQL, "{{only}}", "", 1), schema),
		dispatchOnly: qualify(strings.Replace(dispatchSQL, "{{only}}", dispatchOnlySQL, 1), schema),
		setAside:     qualify(setAsideSQL, schema),
		claim:        qualify(claimSQL, schema),
		complete:     qualify(completeSQL, schema),
		release:      qualify(releaseSQL, schema),
		disable:      qualify(disableSQL, schema),
	}
}

// dispatchSQL fans out a batch of events and, in the same statement, leases
// the new deliveries this relay has room for ($2 in all, per endpoint as
// for claimSQL), returning them ready to send: a fresh event then costs one
// statement and one row version fewer than a fan-out followed by a claim.
// The claimed rows come first; the last row carries the counts (delivery id
// 0): events, deliveries, deliveries left pending by the overall limit,
// and the endpoints left pending deliveries for want of room.
//
// A delivery of an event with an ordering_key is due only if it is the
// head of its (endpoint, key): the first of the batch for that pair, with
// no unfinished delivery of the pair before it (see waitsSQL). The others
// wait ('infinity') until the outcome of the one before releases them (see
// completeSQL). Deliveries are numbered in event order, which is the order
// per key; so a keyed event is left undispatched for the next round while
// an earlier event of its tenant and key, due for fan-out, is outside the
// batch (being fanned out by another relay, whose deliveries of it must
// be numbered first; see behind). hookbench names the statement by its
// opening (statementName in cmd/hookbench/diag.go).
var dispatchSQL = `WITH locked AS (
    SELECT id, tenant, event_type, endpoint_id, ordering_key
      FROM {{schema}}.outbox
     WHERE dispatched_at IS NULL {{only}}
       AND (dispatch_retry_at IS NULL OR dispatch_retry_at <= now())
     ORDER BY id
     LIMIT $1
       FOR UPDATE SKIP LOCKED
), behind AS MATERIALIZED (
    -- Due events of some key before the batch's last keyed event that are
    -- not in the batch: another relay holds them (SKIP LOCKED passed them
    -- by). Read once per batch through the undispatched index; a batch
    -- without keyed events reads nothing.
    SELECT o.id, o.tenant, o.ordering_key
      FROM {{schema}}.outbox o
     WHERE o.dispatched_at IS NULL AND o.ordering_key IS NOT NULL
       AND o.id < (SELECT max(id) FROM locked WHERE ordering_key IS NOT NULL)
       AND (o.dispatch_retry_at IS NULL OR o.dispatch_retry_at <= now())
       AND NOT EXISTS (SELECT 1 FROM locked l WHERE l.id = o.id)
), ev AS (
    SELECT l.* FROM locked l
     WHERE l.ordering_key IS NULL
        OR NOT EXISTS (SELECT 1 FROM behind b
                        WHERE b.tenant = l.tenant AND b.ordering_key = l.ordering_key AND b.id < l.id)
), eps AS MATERIALIZED (
    -- The endpoints of the batch's tenants, read through the tenant index:
    -- joined to ev directly, the planner hashes a scan of every endpoint,
    -- whose cost grows with all tenants' endpoints instead of the batch's.
    SELECT e.id, e.tenant, e.event_types, e.enabled, e.max_in_flight, e.ordering_on_dead
      FROM {{schema}}.endpoints e
     WHERE e.tenant = ANY ((SELECT array_agg(DISTINCT tenant) FROM ev)::text[])
), matched AS (
    SELECT ev.id AS event_id, e.id AS endpoint_id, e.enabled, ev.ordering_key, ev.event_type,
           ev.ordering_key IS NULL OR (
               row_number() OVER (PARTITION BY e.id, ev.ordering_key ORDER BY ev.id) = 1
               AND NOT EXISTS (SELECT 1 FROM {{schema}}.deliveries p
                                WHERE p.endpoint_id = e.id AND p.ordering_key = ev.ordering_key
                                  AND ` + unfinishedSQL("p", "e") + `)) AS head,
           coalesce(b.room, least(coalesce(e.max_in_flight, $3), $3)) AS room
      FROM ev
      JOIN eps e ON ` + matchSQL("ev") + `
      LEFT JOIN unnest($4::text[]::uuid[], $5::int[]) AS b(endpoint_id, room) ON b.endpoint_id = e.id
), pairs AS (
    SELECT event_id, endpoint_id, enabled, ordering_key, event_type, head,
           enabled AND head AND row_number() OVER (PARTITION BY endpoint_id, enabled AND head ORDER BY event_id)
               <= room AS fits
      FROM matched
), chosen AS (
    SELECT event_id, endpoint_id, enabled, ordering_key, event_type, head, fits,
           fits AND row_number() OVER (PARTITION BY fits ORDER BY event_id, endpoint_id) <= $2 AS lease
      FROM pairs
), ins AS (
    INSERT INTO {{schema}}.deliveries (event_id, endpoint_id, next_attempt_at, state, lease_token, lease_expires_at,
                                       ordering_key, event_type)
    SELECT event_id, endpoint_id, CASE WHEN enabled AND head THEN now() ELSE 'infinity'::timestamptz END,
           CASE WHEN lease THEN 'in_flight' ELSE 'pending' END,
           CASE WHEN lease THEN $6::bigint END,
           CASE WHEN lease THEN now() + make_interval(secs => $7) END,
           ordering_key, event_type
      FROM chosen
     ORDER BY event_id, endpoint_id
    ON CONFLICT (event_id, endpoint_id) DO NOTHING
    RETURNING id, event_id, endpoint_id, state, attempts, ordering_key
), upd AS (
    -- The count is computed per row (an index lookup) rather than by
    -- joining the inserted rows back, which the planner would do with a
    -- nested loop over both CTEs: quadratic in the batch size. id = ANY
    -- keeps the outbox on its primary key: joined to ev alone, it may be
    -- hashed from a scan of the whole backlog, once per batch.
    UPDATE {{schema}}.outbox o
       SET dispatched_at = now(), delivery_count = m.n, dispatch_retry_at = NULL,
           dispatch_error = CASE WHEN m.n = 0 AND o.endpoint_id IS NOT NULL THEN ` + unroutedSQL + ` END
      FROM ev, LATERAL (SELECT count(*)::int AS n FROM {{schema}}.endpoints e WHERE ` + matchSQL("ev") + `) m
     WHERE o.id = ANY ((SELECT array_agg(id) FROM ev)::bigint[]) AND o.id = ev.id
    RETURNING o.id, o.dispatch_error
)
SELECT i.id, i.event_id, i.endpoint_id::text, i.attempts, o.uid, o.event_type, o.tenant,
       convert_to(o.payload::text, 'UTF8'), o.created_at, e.url,
       ` + secretsSQL + `,
       coalesce(e.max_in_flight, 0), coalesce(e.rate_limit, 0), coalesce(i.ordering_key, ''),
       -1, -1, -1, '{}'::text[], '{}'::bigint[], '{}'::text[], -1
  FROM ins i
  JOIN {{schema}}.outbox o ON o.id = i.event_id
  JOIN {{schema}}.endpoints e ON e.id = i.endpoint_id
 WHERE i.state = 'in_flight'
UNION ALL
SELECT 0, 0, '', 0, '00000000-0000-0000-0000-000000000000'::uuid, '', '', ''::bytea, now(), '', '{}'::text[], 0, 0, '',
       (SELECT count(*) FROM upd)::int, (SELECT count(*) FROM ins)::int,
       (SELECT count(*) FROM chosen WHERE fits AND NOT lease)::int,
       (SELECT coalesce(array_agg(DISTINCT endpoint_id::text), '{}') FROM chosen WHERE enabled AND head AND NOT fits),
       (SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM upd WHERE dispatch_error IS NOT NULL),
       (SELECT coalesce(array_agg(dispatch_error ORDER BY id), '{}') FROM upd WHERE dispatch_error IS NOT NULL),
       ((SELECT count(*) FROM locked) - (SELECT count(*) FROM ev))::int`

// unfinishedSQL is the condition under which delivery d, of endpoint e,
// holds back the later deliveries of its ordering key: it is pending or in
// flight, or dead while the endpoint blocks on a dead head.
func unfinishedSQL(d, e string) string {
	return `(` + d + `.state IN ('pending', 'in_flight') OR (` + d + `.state = 'dead' AND ` + e + `.ordering_on_dead = 'block'))`
}

// waitsSQL is the condition under which delivery d must wait for an
// earlier delivery of its ordering key to the same endpoint. The claim
// checks it as a safety net: the fan-out and the outcomes keep waiting
// deliveries out of the due indexes already.
const waitsSQL = `d.ordering_key IS NOT NULL AND EXISTS (
        SELECT 1 FROM {{schema}}.deliveries p JOIN {{schema}}.endpoints pe ON pe.id = p.endpoint_id
         WHERE p.endpoint_id = d.endpoint_id AND p.ordering_key = d.ordering_key AND p.id < d.id
           AND (p.state IN ('pending', 'in_flight') OR (p.state = 'dead' AND pe.ordering_on_dead = 'block')))`

// matchSQL is the condition under which endpoint e receives event ev (an
// outbox row): same tenant, subscribed to the event's type (an empty filter
// subscribes to all), and, when the event names an endpoint_id, that
// endpoint. endpoint_id narrows the fan-out to one endpoint; it never adds
// one that the tenant and type would not select.
func matchSQL(ev string) string {
	return `e.tenant = ` + ev + `.tenant
            AND (cardinality(e.event_types) = 0 OR ` + ev + `.event_type = ANY (e.event_types))
            AND (` + ev + `.endpoint_id IS NULL OR e.id = ` + ev + `.endpoint_id)`
}

// unroutedSQL says why an outbox row o with an endpoint_id reached no
// endpoint. An endpoint of another tenant reads as no endpoint at all, so
// the message confirms nothing about other tenants.
const unroutedSQL = `coalesce((SELECT 'endpoint ' || t.id || ' is not subscribed to event type ' || o.event_type
                                FROM {{schema}}.endpoints t WHERE t.id = o.endpoint_id AND t.tenant = o.tenant),
                              'endpoint_id ' || o.endpoint_id || ' names no endpoint of tenant "' || o.tenant || '"')`

// dispatchOnlySQL restricts dispatchSQL to the events listed in $8: the
// fan-out of a batch that failed is retried in parts to set aside the row
// that failed it (see Store.DispatchClaim).
const dispatchOnlySQL = `AND id = ANY ($8::bigint[])`

// setAsideSQL marks events the fan-out cannot process: they keep their
// place, carry the error, and are tried again after $3 seconds. It returns
// each event's previous error, so a repeat of the same error is not
// reported again.
const setAsideSQL = `UPDATE {{schema}}.outbox o
   SET dispatch_error = $2, dispatch_retry_at = now() + make_interval(secs => $3)
  FROM (SELECT id, dispatch_error AS before FROM {{schema}}.outbox WHERE id = $1 FOR UPDATE) b
 WHERE o.id = b.id AND o.dispatched_at IS NULL
RETURNING coalesce(b.before, '')`

// secretsSQL lists an endpoint's (e) signing secrets: the current one
// first, then old ones still inside their rotation window.
const secretsSQL = `ARRAY[e.secret] || ARRAY(SELECT x->>'secret' FROM jsonb_array_elements(e.old_secrets) x
                                    WHERE (x->>'expires_at')::timestamptz > now())`

var claimSQL = `WITH lim AS (
    -- No more candidates than the endpoints could take: with few endpoints
    -- and a per-endpoint cap, ranking a full batch would be waste. The
    -- endpoints this relay asked about count for the room it asked; any
    -- other enabled endpoint for the cap $4, and no more of them are read
    -- than it takes to fill the limit, so the cost does not grow with the
    -- number of endpoints.
    SELECT least($1::int, k.room)::int AS first, least($3::int, k.room)::int AS retry
      FROM (SELECT (SELECT coalesce(sum(greatest(r, 0)), 0) FROM unnest($6::int[]) r)
                   + $4::int * (SELECT count(*) FROM (SELECT 1 FROM {{schema}}.endpoints e
                                                       WHERE e.enabled AND e.id <> ALL ($5::text[]::uuid[])
                                                       LIMIT $1) o) AS room
             OFFSET 0) k
), cand AS (
    ` + dueSQL(0, "d.state = 'pending' AND d.attempts = 0", "next_attempt_at", "(SELECT first FROM lim)") + `
    UNION ALL
    ` + dueSQL(1, "d.state = 'pending' AND d.attempts > 0", "next_attempt_at", "(SELECT retry FROM lim)") + `
    UNION ALL
    ` + dueSQL(1, "d.state = 'in_flight'", "lease_expires_at", "$3") + `
), room AS (
    -- What this relay will take per candidate's endpoint: the room it asked
    -- for, or the in-flight cap for an endpoint it has not asked about.
    -- id = ANY reads just those endpoints, by primary key.
    SELECT e.id, coalesce(b.room, least(coalesce(e.max_in_flight, $4), $4)) AS room
      FROM {{schema}}.endpoints e
      LEFT JOIN unnest($5::text[]::uuid[], $6::int[]) AS b(endpoint_id, room) ON b.endpoint_id = e.id
     WHERE e.id = ANY ((SELECT array_agg(DISTINCT endpoint_id) FROM cand)::uuid[]) AND e.enabled
), ranked AS (
    SELECT c.id,
           row_number() OVER (PARTITION BY c.endpoint_id ORDER BY c.due, c.id) AS rn,
           row_number() OVER (PARTITION BY c.kind ORDER BY c.due, c.id) AS turn,
           r.room
      FROM cand c
      JOIN room r ON r.id = c.endpoint_id
), locked AS (
    SELECT d.id
      FROM {{schema}}.deliveries d
      JOIN ranked r ON r.id = d.id
     WHERE r.rn <= r.room
       AND ((d.state = 'pending' AND d.next_attempt_at <= now())
            OR (d.state = 'in_flight' AND d.lease_expires_at <= now()))
     ORDER BY r.turn
     LIMIT $1
       FOR UPDATE OF d SKIP LOCKED
)
UPDATE {{schema}}.deliveries d
   SET state = 'in_flight', lease_token = $7,
       lease_expires_at = now() + make_interval(secs => $8), updated_at = now()
  FROM {{schema}}.outbox o, {{schema}}.endpoints e
 WHERE d.id IN (SELECT id FROM locked) AND o.id = d.event_id AND e.id = d.endpoint_id
RETURNING d.id, d.event_id, d.endpoint_id::text, d.attempts, o.uid, o.event_type, o.tenant,
          convert_to(o.payload::text, 'UTF8'), o.created_at, e.url,
          ` + secretsSQL + `,
          coalesce(e.max_in_flight, 0), coalesce(e.rate_limit, 0), coalesce(d.ordering_key, '')`

// dueSQL is one kind of claimSQL's candidates: the deliveries matching
// cond whose time column at has come, oldest first (the kind's partial
// index serves the order; id breaks ties), at most limit, skipping the
// endpoints with no room ($2) and the deliveries waiting for an earlier one
// of their ordering key. kind 0 is a first attempt, 1 a retry or an
// expired lease.
func dueSQL(kind int, cond, at, limit string) string {
	return `(SELECT d.id, d.endpoint_id, d.` + at + ` AS due, ` + strconv.Itoa(kind) + ` AS kind
       FROM {{schema}}.deliveries d
      WHERE ` + cond + ` AND d.` + at + ` <= now()
        AND d.endpoint_id <> ALL ($2::text[]::uuid[]) AND NOT (` + waitsSQL + `)
      ORDER BY d.` + at + `, d.id
      LIMIT ` + limit + `)`
}

// completeSQL records outcomes. A deferred outcome ($15) returns its
// delivery to pending with its error and counts nothing: no attempt row, no
// attempt, no failure of the endpoint.
const completeSQL = `WITH r AS (
    SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::timestamptz[], $5::int[], $6::text[], $15::bool[])
        AS r(id, token, state, next_at, status, err, deferred)
), upd AS (
    UPDATE {{schema}}.deliveries d
       SET state = r.state,
           attempts = d.attempts + CASE WHEN r.deferred THEN 0 ELSE 1 END,
           next_attempt_at = CASE WHEN r.state = 'pending' AND NOT e.enabled THEN 'infinity'::timestamptz
                                  ELSE r.next_at END,
           lease_token = NULL, lease_expires_at = NULL,
           last_status = CASE WHEN r.deferred THEN d.last_status ELSE nullif(r.status, 0) END,
           last_error = r.err,
           last_attempt_at = CASE WHEN r.deferred THEN d.last_attempt_at ELSE now() END,
           updated_at = now(),
           finished_at = CASE WHEN r.state IN ('delivered', 'dead') THEN now() END
      FROM r, {{schema}}.endpoints e
     -- id = ANY keeps the planner on the primary key: joining the unnested
     -- arrays alone, it guesses their size and may hash a sequential scan
     -- of the whole table instead. The lease token is set only while a
     -- delivery is in flight, so it also stands for the state.
     WHERE d.id = ANY ($1::bigint[]) AND d.id = r.id AND d.lease_token = r.token AND e.id = d.endpoint_id
    RETURNING d.id, d.endpoint_id, d.ordering_key, d.state
), rel AS (
    ` + releaseNextSQL + `
), att AS (
    INSERT INTO {{schema}}.attempts (delivery_id, event_id, endpoint_id, attempt, started_at,
                                     duration_ms, status_code, outcome, error_class, error, response_excerpt)
    SELECT a.id, a.event_id, a.endpoint_id, a.attempt, a.started, a.duration, nullif(a.status, 0),
           a.outcome, a.class, a.err, a.excerpt
      FROM unnest($1::bigint[], $7::bigint[], $8::text[]::uuid[], $9::int[], $10::timestamptz[], $11::int[],
                  $5::int[], $12::text[], $13::text[], $6::text[], $14::text[], $15::bool[])
        AS a(id, event_id, endpoint_id, attempt, started, duration, status, outcome, class, err, excerpt, deferred)
     WHERE NOT a.deferred
), ep AS (
    UPDATE {{schema}}.endpoints e
       SET last_success_at = CASE WHEN s.ok THEN now() ELSE e.last_success_at END,
           last_failure_at = CASE WHEN s.failed > 0 THEN now() ELSE e.last_failure_at END,
           consecutive_failures = CASE WHEN s.ok THEN 0 ELSE e.consecutive_failures + s.failed END
      FROM (SELECT endpoint_id, bool_or(state = 'delivered') AS ok,
                   count(*) FILTER (WHERE state <> 'delivered')::int AS failed
              FROM unnest($8::text[]::uuid[], $3::text[], $15::bool[]) AS x(endpoint_id, state, deferred)
             WHERE NOT x.deferred
             GROUP BY endpoint_id) s
     -- A success changes the row only when it ends a failure streak or the
     -- last one recorded is a second old: relays completing batches for
     -- one endpoint would otherwise all queue on its row lock.
     WHERE e.id = s.endpoint_id
       AND (s.failed > 0 OR e.consecutive_failures > 0 OR e.last_success_at IS NULL
            OR e.last_success_at < now() - interval '1 second')
)
SELECT id, (SELECT count(*) FROM rel)::int FROM upd`

// releaseNextSQL makes due the next waiting delivery of each ordering key
// whose head the rows of upd (id, endpoint_id, ordering_key, state)
// finished: delivered or cancelled, or dead unless the endpoint blocks on
// a dead head. Waiting deliveries of a disabled endpoint stay held.
const releaseNextSQL = `UPDATE {{schema}}.deliveries n
       SET next_attempt_at = now(), updated_at = now()
      FROM upd u
      JOIN {{schema}}.endpoints ue ON ue.id = u.endpoint_id
     WHERE u.ordering_key IS NOT NULL AND ue.enabled
       AND (u.state IN ('delivered', 'cancelled') OR (u.state = 'dead' AND ue.ordering_on_dead = 'skip'))
       AND n.id = (SELECT min(s.id) FROM {{schema}}.deliveries s
                    WHERE s.endpoint_id = u.endpoint_id AND s.ordering_key = u.ordering_key
                      AND s.id > u.id AND s.state = 'pending')
       AND n.next_attempt_at = 'infinity'
    RETURNING n.id`

const releaseSQL = `UPDATE {{schema}}.deliveries d
   SET state = 'pending', lease_token = NULL, lease_expires_at = NULL, updated_at = now(),
       next_attempt_at = CASE WHEN e.enabled THEN least(d.next_attempt_at, now()) ELSE 'infinity'::timestamptz END
  FROM unnest($1::bigint[], $2::bigint[]) AS r(id, token), {{schema}}.endpoints e
 WHERE d.id = ANY ($1::bigint[]) AND d.id = r.id AND d.lease_token = r.token AND e.id = d.endpoint_id`

const disableSQL = `WITH before AS (
    SELECT enabled FROM {{schema}}.endpoints WHERE id = $1 FOR UPDATE
), upd AS (
    UPDATE {{schema}}.endpoints
       SET enabled = false, disabled_reason = $2, disabled_at = now(), updated_at = now()
     WHERE id = $1
), held AS (
    UPDATE {{schema}}.deliveries
       SET next_attempt_at = 'infinity', updated_at = now()
     WHERE endpoint_id = $1 AND state = 'pending'
)
SELECT enabled FROM before`
