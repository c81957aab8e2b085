package outbox

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// DefaultMaxPayloadBytes is the largest payload accepted by default: 256 KiB
// of JSON. The database enforces the same limit on the payload's text form,
// so it holds for plain SQL inserts too.
const DefaultMaxPayloadBytes = 256 << 10

// MaxIdempotencyKeyLen is the longest idempotency key accepted.
const MaxIdempotencyKeyLen = 255

// MaxOrderingKeyLen is the longest ordering key accepted (a CHECK holds it
// for plain SQL too): the key travels in a request header.
const MaxOrderingKeyLen = 255

// MaxEventTypeLen is the longest event type accepted.
const MaxEventTypeLen = 128

var eventTypePattern = regexp.MustCompile(`^[A-Za-z0-9_.\-]+$`)

// Sentinel validation errors, wrapped in *ValidationError; match with
// errors.Is.
var (
	ErrInvalidEventType      = errors.New("invalid event type")
	ErrInvalidPayload        = errors.New("payload is not valid JSON")
	ErrPayloadTooLarge       = errors.New("payload too large")
	ErrInvalidIdempotencyKey = errors.New("invalid idempotency key")
	ErrInvalidEndpointID     = errors.New("invalid endpoint id")
	ErrInvalidOrderingKey    = errors.New("invalid ordering key")
	ErrUnsupportedConnection = errors.New("unsupported database handle")
)

// ValidationError says which field of an event is wrong and why. Nothing is
// written when Enqueue returns one.
type ValidationError struct {
	Index  int    // position in the batch (0 for Enqueue)
	Field  string // "type", "payload", "idempotency_key", "endpoint_id", "ordering_key"
	Reason string
	Err    error // one of the Err* sentinels
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("event %d: %s: %s", e.Index, e.Field, e.Reason)
}

// Unwrap returns the sentinel error.
func (e *ValidationError) Unwrap() error { return e.Err }

// Event is what an application enqueues.
type Event struct {
	// Type is the event type, e.g. "signup.created": letters, digits and
	// "_ . -", 1–128 characters. Required.
	Type string
	// Tenant selects the endpoints (those of the same tenant). Optional.
	Tenant string
	// Payload is the event's data: any JSON value. Required.
	Payload json.RawMessage
	// EndpointID, when set, delivers the event to that endpoint only.
	EndpointID string
	// IdempotencyKey, when set, makes the enqueue idempotent per tenant: a
	// second event with the same key is not inserted.
	IdempotencyKey string
	// OrderingKey, when set, orders the event's deliveries: to each
	// endpoint, the events of one key are sent one at a time in the order
	// they were fanned out (see the README's Guarantees). It reaches the
	// receiver in the webhook-ordering-key header. At most
	// MaxOrderingKeyLen bytes.
	OrderingKey string
}

// Result says what happened to one enqueued event.
type Result struct {
	// ID is the event's id (also for a duplicate, when the earlier event is
	// visible to the calling transaction; 0 otherwise).
	ID int64
	// WebhookID is the webhook-id header value receivers will see.
	WebhookID string
	// Duplicate is true when an event with the same tenant and idempotency
	// key already existed and nothing was inserted.
	Duplicate bool
}

// Options tunes Enqueue.
type Options struct {
	// Schema is hookrelay's schema; DefaultSchema when empty.
	Schema string
	// MaxPayloadBytes limits the payload; DefaultMaxPayloadBytes when 0.
	MaxPayloadBytes int
}

// Validate checks ev the way Enqueue does, without writing anything.
func (ev Event) Validate(maxPayload int) error {
	if maxPayload <= 0 {
		maxPayload = DefaultMaxPayloadBytes
	}
	switch {
	case ev.Type == "":
		return &ValidationError{Field: "type", Reason: "must not be empty", Err: ErrInvalidEventType}
	case len(ev.Type) > MaxEventTypeLen:
		return &ValidationError{Field: "type", Reason: fmt.Sprintf("%d characters, at most %d allowed", len(ev.Type), MaxEventTypeLen), Err: ErrInvalidEventType}
	case !eventTypePattern.MatchString(ev.Type):
		return &ValidationError{Field: "type", Reason: fmt.Sprintf("%q: only letters, digits, '_', '.' and '-' are allowed", ev.Type), Err: ErrInvalidEventType}
	}
	switch {
	case len(ev.Payload) == 0:
		return &ValidationError{Field: "payload", Reason: "must not be empty (use {} or null)", Err: ErrInvalidPayload}
	case len(ev.Payload) > maxPayload:
		return &ValidationError{Field: "payload", Reason: fmt.Sprintf("%d bytes, at most %d allowed", len(ev.Payload), maxPayload), Err: ErrPayloadTooLarge}
	case !json.Valid(ev.Payload):
		return &ValidationError{Field: "payload", Reason: "is not valid JSON", Err: ErrInvalidPayload}
	}
	if len(ev.IdempotencyKey) > MaxIdempotencyKeyLen {
		return &ValidationError{Field: "idempotency_key", Reason: fmt.Sprintf("%d characters, at most %d allowed", len(ev.IdempotencyKey), MaxIdempotencyKeyLen), Err: ErrInvalidIdempotencyKey}
	}
	if len(ev.OrderingKey) > MaxOrderingKeyLen {
		return &ValidationError{Field: "ordering_key", Reason: fmt.Sprintf("%d bytes, at most %d allowed", len(ev.OrderingKey), MaxOrderingKeyLen), Err: ErrInvalidOrderingKey}
	}
	if ev.EndpointID != "" && !ValidID(ev.EndpointID) {
		return &ValidationError{Field: "endpoint_id", Reason: fmt.Sprintf("%q is not an endpoint id (a UUID)", ev.EndpointID), Err: ErrInvalidEndpointID}
	}
	return nil
}

var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// ValidID reports whether s has the form of an endpoint id (a UUID).
func ValidID(s string) bool { return uuidPattern.MatchString(s) }

// WebhookID returns the webhook-id for an event uid: "msg_" and the uid's
// 32 hex digits (no dots, stable for the life of the event).
func WebhookID(uid [16]byte) string {
	return "msg_" + hex.EncodeToString(uid[:])
}

// pgxDB is what pgx.Tx, *pgx.Conn, *pgxpool.Pool and *pgxpool.Conn offer.
type pgxDB interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// sqlDB is what database/sql's *sql.Tx, *sql.DB and *sql.Conn offer.
type sqlDB interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// rowSet is what pgx.Rows and database/sql's *sql.Rows both offer.
type rowSet interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// queryRows runs query on db, a pgxDB or an sqlDB (database/sql with pgx's
// stdlib driver, which hands the arguments to pgx as they are); the caller
// calls done when it has read the rows. Any other db is
// ErrUnsupportedConnection.
func queryRows(ctx context.Context, db any, query string, args ...any) (rows rowSet, done func(), err error) {
	switch db := db.(type) {
	case pgxDB:
		r, err := db.Query(ctx, query, args...)
		if err != nil {
			return nil, nil, err
		}
		return r, r.Close, nil
	case sqlDB:
		r, err := db.QueryContext(ctx, query, args...)
		if err != nil {
			return nil, nil, err
		}
		return r, func() { _ = r.Close() }, nil
	}
	return nil, nil, fmt.Errorf("%w: %T (use pgx.Tx, *pgx.Conn, *pgxpool.Pool or database/sql's *sql.Tx)", ErrUnsupportedConnection, db)
}

const enqueueSQL = `WITH ins AS (
    INSERT INTO {{schema}}.outbox (event_type, tenant, payload, endpoint_id, idempotency_key, ordering_key)
    SELECT t, tn, p::jsonb, nullif(e, '')::uuid, nullif(k, ''), nullif(o, '')
      FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) AS u(t, tn, p, e, k, o)
    ON CONFLICT DO NOTHING
    RETURNING id, uid, tenant, idempotency_key
)
SELECT id, uid, tenant, coalesce(idempotency_key, ''), false FROM ins
UNION ALL
SELECT o.id, o.uid, o.tenant, o.idempotency_key, true
  FROM {{schema}}.outbox o
  JOIN unnest($2::text[], $5::text[]) AS u(tn, k) ON o.tenant = u.tn AND o.idempotency_key = u.k
 WHERE u.k <> '' AND NOT EXISTS (SELECT 1 FROM ins WHERE ins.tenant = u.tn AND ins.idempotency_key = u.k)`

// Enqueue writes one event to the outbox through db, which should be the
// application's own transaction (pgx.Tx or database/sql's *sql.Tx) so the
// event exists exactly when the business change commits; a pool or
// connection works too (the insert then commits on its own). It validates
// the event first and writes nothing when it is invalid (*ValidationError),
// including a payload that does not match its type's schema in the
// event-type catalog (the error's Err is then a *SchemaError naming the
// failing path; plain-SQL inserts are not checked).
// A duplicate idempotency key is not an error: Result.Duplicate is set.
func Enqueue(ctx context.Context, db any, ev Event, opts ...Options) (Result, error) {
	res, err := EnqueueBatch(ctx, db, []Event{ev}, opts...)
	if err != nil {
		return Result{}, err
	}
	return res[0], nil
}

// EnqueueBatch writes events in one statement, with the same rules as
// Enqueue; results are in the order of events. If any event is invalid,
// nothing is written.
func EnqueueBatch(ctx context.Context, db any, events []Event, opts ...Options) ([]Result, error) {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.Schema == "" {
		o.Schema = DefaultSchema
	}
	if err := ValidSchema(o.Schema); err != nil {
		return nil, err
	}
	if len(events) == 0 {
		return nil, nil
	}
	n := len(events)
	types, tenants, payloads := make([]string, n), make([]string, n), make([]string, n)
	endpoints, keys, orderings := make([]string, n), make([]string, n), make([]string, n)
	for i, ev := range events {
		if err := ev.Validate(o.MaxPayloadBytes); err != nil {
			var ve *ValidationError
			if errors.As(err, &ve) {
				ve.Index = i
			}
			return nil, err
		}
		types[i], tenants[i], payloads[i] = ev.Type, ev.Tenant, string(ev.Payload)
		endpoints[i], keys[i], orderings[i] = ev.EndpointID, ev.IdempotencyKey, ev.OrderingKey
	}
	// Payloads of types with a schema in the catalog must match it; read
	// before anything is written, in the caller's transaction.
	if err := checkSchemas(ctx, db, o.Schema, events); err != nil {
		return nil, err
	}
	query := qualify(enqueueSQL, o.Schema)
	args := []any{types, tenants, payloads, endpoints, keys, orderings}

	type row struct {
		id        int64
		uid       [16]byte
		tenant    string
		key       string
		duplicate bool
	}
	var rows []row
	r, done, err := queryRows(ctx, db, query, args...)
	if errors.Is(err, ErrUnsupportedConnection) {
		return nil, err
	}
	if err != nil {
		return nil, enqueueError(err)
	}
	defer done()
	for r.Next() {
		var x row
		var uid pgtype.UUID // database/sql cannot scan a uuid into [16]byte
		if err := r.Scan(&x.id, &uid, &x.tenant, &x.key, &x.duplicate); err != nil {
			return nil, fmt.Errorf("enqueue: %w", err)
		}
		x.uid = uid.Bytes
		rows = append(rows, x)
	}
	if err := r.Err(); err != nil {
		return nil, enqueueError(err)
	}

	// Match rows back to events: keyed events by (tenant, key), the others
	// in order (the INSERT returns them in input order).
	results := make([]Result, n)
	byKey := map[[2]string]row{}
	var plain []row
	for _, r := range rows {
		if r.key != "" {
			byKey[[2]string{r.tenant, r.key}] = r
			continue
		}
		plain = append(plain, r)
	}
	seen := map[[2]string]bool{}
	for i, ev := range events {
		if ev.IdempotencyKey == "" {
			if len(plain) == 0 {
				return nil, fmt.Errorf("enqueue: database returned fewer rows than events")
			}
			r := plain[0]
			plain = plain[1:]
			results[i] = Result{ID: r.id, WebhookID: WebhookID(r.uid)}
			continue
		}
		k := [2]string{ev.Tenant, ev.IdempotencyKey}
		r, ok := byKey[k]
		switch {
		case !ok:
			results[i] = Result{Duplicate: true}
		case seen[k] || r.duplicate:
			results[i] = Result{ID: r.id, WebhookID: WebhookID(r.uid), Duplicate: true}
		default:
			results[i] = Result{ID: r.id, WebhookID: WebhookID(r.uid)}
		}
		seen[k] = true
	}
	return results, nil
}

// enqueueError turns the database's constraint errors into validation
// errors (the checks hold for plain SQL too).
func enqueueError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23514" {
		switch pgErr.ConstraintName {
		case "outbox_payload_size":
			return &ValidationError{Field: "payload", Reason: "its JSON text exceeds 262144 bytes", Err: ErrPayloadTooLarge}
		case "outbox_event_type_format":
			return &ValidationError{Field: "type", Reason: "rejected by the database", Err: ErrInvalidEventType}
		case "outbox_ordering_key_length":
			return &ValidationError{Field: "ordering_key", Reason: fmt.Sprintf("must be 1 to %d characters", MaxOrderingKeyLen), Err: ErrInvalidOrderingKey}
		}
	}
	if errors.As(err, &pgErr) && (pgErr.Code == "22P02" || pgErr.Code == "22P05" || pgErr.Code == "22021") {
		return &ValidationError{Field: "payload", Reason: "rejected by the database: " + pgErr.Message, Err: ErrInvalidPayload}
	}
	return fmt.Errorf("enqueue: %w", err)
}
