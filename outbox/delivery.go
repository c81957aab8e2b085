package outbox

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// Delivery states, as stored in deliveries.state.
const (
	StatePending   = "pending"
	StateInFlight  = "in_flight"
	StateDelivered = "delivered"
	StateDead      = "dead"
	StateCancelled = "cancelled"
)

// Claimed is a delivery leased to this relay, with everything needed to
// send it.
type Claimed struct {
	DeliveryID  int64
	LeaseToken  int64
	EventID     int64
	EndpointID  string
	Attempts    int // attempts recorded before this one
	WebhookID   string
	EventType   string
	Tenant      string
	Payload     []byte
	CreatedAt   time.Time
	URL         string
	Secrets     []string // current first, then old ones still in their rotation window
	MaxInFlight int      // the endpoint's own cap, 0 when it has none
	RateLimit   int      // the endpoint's requests per second, 0 when unlimited
	// OrderingKey is the event's ordering key ("" for none): the delivery
	// is the head of its (endpoint, key), the ones after it wait for its
	// outcome.
	OrderingKey string
	// SecretErr says why the endpoint's stored secrets could not be opened
	// (sealed without HOOKRELAY_SECRET_KEY, an unknown key, a tampered
	// value); Secrets is then nil and the delivery cannot be signed. Only
	// this delivery is affected: see Outcome.Deferred.
	SecretErr error
}

// ClaimParams bounds a claim.
type ClaimParams struct {
	// Limit is the most deliveries to claim.
	Limit int
	// Lease is how long the claim holds; it must exceed the request timeout.
	Lease time.Duration
	// PerEndpoint is the most deliveries claimed for an endpoint not in
	// Room (or its own max_in_flight when that is lower).
	PerEndpoint int
	// Room holds, per endpoint id, how many more deliveries this relay
	// will take for that endpoint; endpoints with no room are skipped.
	Room map[string]int
}

// NewLeaseToken returns a random lease token.
func NewLeaseToken() int64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("outbox: crypto/rand: %v", err))
	}
	return int64(binary.LittleEndian.Uint64(b[:]) >> 1)
}

// Dispatch fans out up to limit new outbox events in one statement: one
// pending delivery per subscribed endpoint (held while the endpoint is
// disabled), and marks the events dispatched. Events are claimed by state
// with SKIP LOCKED, so rows committed out of id order are never skipped and
// several relays can dispatch at once. It returns the number of events and
// deliveries created.
func (s *Store) Dispatch(ctx context.Context, limit int) (events, deliveries int, err error) {
	d, err := s.DispatchClaim(ctx, limit, ClaimParams{})
	return d.Events, d.Deliveries, err
}

// Dispatched is what DispatchClaim did.
type Dispatched struct {
	Events     int       // events fanned out
	Deliveries int       // deliveries created
	Claimed    []Claimed // new deliveries leased to the caller
	// Cut counts new deliveries left pending although their endpoint had
	// room: the overall claim limit was reached.
	Cut int
	// Waiting lists the enabled endpoints that got pending deliveries for
	// want of room.
	Waiting []string
	// KeyWaits counts keyed events left undispatched in the batch because
	// an earlier event of their key, due for fan-out, was outside it (in
	// another relay's fan-out): a delivery of a key must be numbered after
	// the key's earlier ones. They go in the next round.
	KeyWaits int
	// Unrouted lists the events fanned out to no endpoint because their
	// endpoint_id names none of the tenant's endpoints subscribed to the
	// type; the reason is stored in the event's dispatch_error.
	Unrouted []EventError
	// SetAside lists events the fan-out could not process (a value in the
	// row failed the statement): each keeps its place with the error in
	// dispatch_error and is tried again after DispatchRetryAfter, and the
	// rest of the batch went on without it.
	SetAside []EventError
}

// EventError is an outbox event with the error it met.
type EventError struct {
	EventID int64
	Error   string
	// Repeated is true when the event already carried this error (a set
	// aside event failing again): callers report each error once.
	Repeated bool
}

// DispatchRetryAfter is how long an event the fan-out set aside waits
// before it is tried again.
const DispatchRetryAfter = time.Minute

// DispatchClaim is Dispatch that also leases, in the same statement, up to
// claim.Limit of the deliveries it creates, within claim's per-endpoint
// room (see ClaimParams); they are returned ready to send. The others stay
// pending for Claim.
//
// The fan-out runs on a batch of events in one statement. When a value in
// one row makes that statement fail (a data or constraint error), the
// batch is retried in halves until the failing row is alone; that row is
// set aside (see Dispatched.SetAside) and every other row is fanned out,
// without leasing (the claimer picks the deliveries up).
func (s *Store) DispatchClaim(ctx context.Context, limit int, claim ClaimParams) (Dispatched, error) {
	d, err := s.dispatchClaim(ctx, s.q.dispatch, limit, claim)
	if err == nil || !IsRowError(err) {
		if err != nil {
			return d, fmt.Errorf("dispatch events: %w", err)
		}
		return d, nil
	}
	ids, lerr := s.undispatched(ctx, limit)
	if lerr != nil {
		return Dispatched{}, fmt.Errorf("dispatch events: %w (and listing the batch to isolate the row: %w)", err, lerr)
	}
	var all Dispatched
	if err := s.dispatchParts(ctx, ids, &all); err != nil {
		return all, fmt.Errorf("dispatch events: %w", err)
	}
	return all, nil
}

// dispatchParts fans out the events ids (without leasing), splitting the
// list on a row error until the failing event is alone, then sets it aside.
func (s *Store) dispatchParts(ctx context.Context, ids []int64, all *Dispatched) error {
	if len(ids) == 0 {
		return nil
	}
	d, err := s.dispatchClaim(ctx, s.q.dispatchOnly, len(ids), ClaimParams{}, ids)
	switch {
	case err == nil:
		all.Events += d.Events
		all.Deliveries += d.Deliveries
		all.Cut += d.Cut
		all.Waiting = append(all.Waiting, d.Waiting...)
		all.KeyWaits += d.KeyWaits
		all.Unrouted = append(all.Unrouted, d.Unrouted...)
		return nil
	case !IsRowError(err):
		return err
	case len(ids) == 1:
		msg := err.Error()
		var before string
		err := s.pool.QueryRow(ctx, s.q.setAside, ids[0], msg, DispatchRetryAfter.Seconds()).Scan(&before)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // fanned out by another relay meanwhile
		}
		if err != nil {
			return fmt.Errorf("set aside event %d: %w", ids[0], translate(err))
		}
		all.SetAside = append(all.SetAside, EventError{EventID: ids[0], Error: msg, Repeated: before == msg})
		return nil
	}
	half := len(ids) / 2
	if err := s.dispatchParts(ctx, ids[:half], all); err != nil {
		return err
	}
	return s.dispatchParts(ctx, ids[half:], all)
}

// undispatched lists up to limit events due for fan-out, in id order.
func (s *Store) undispatched(ctx context.Context, limit int) ([]int64, error) {
	rows, err := s.pool.Query(ctx, qualify(`SELECT id FROM {{schema}}.outbox
 WHERE dispatched_at IS NULL AND (dispatch_retry_at IS NULL OR dispatch_retry_at <= now())
 ORDER BY id LIMIT $1`, s.schema), limit)
	if err != nil {
		return nil, translate(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	return ids, translate(err)
}

// dispatchClaim runs one fan-out statement (sql is the dispatch query, or
// the one restricted to the events in only).
func (s *Store) dispatchClaim(ctx context.Context, sql string, limit int, claim ClaimParams, only ...[]int64) (Dispatched, error) {
	var d Dispatched
	token := NewLeaseToken()
	ids, rooms := claim.rooms()
	args := []any{limit, max(claim.Limit, 0), claim.PerEndpoint, ids, rooms, token, claim.Lease.Seconds()}
	if len(only) > 0 {
		args = append(args, only[0])
	}
	rows, err := s.engineQuery(ctx, sql, args...)
	if err != nil {
		return d, translate(err)
	}
	d.Claimed, err = scanClaimed(rows, token, func(c Claimed, x *dispatchCounts) bool {
		if c.DeliveryID != 0 {
			return true
		}
		d.Events, d.Deliveries, d.Cut, d.Waiting, d.KeyWaits = int(x.events), int(x.deliveries), int(x.cut), x.waiting, int(x.keyWaits)
		for i, id := range x.unroutedIDs {
			d.Unrouted = append(d.Unrouted, EventError{EventID: id, Error: x.unroutedErrs[i]})
		}
		return false
	})
	if err != nil {
		return d, err
	}
	s.openClaimed(d.Claimed)
	return d, nil
}

// rooms lists the room per endpoint for the claim statements.
func (p ClaimParams) rooms() (ids []string, rooms []int32) {
	ids, rooms = make([]string, 0, len(p.Room)), make([]int32, 0, len(p.Room))
	for id, n := range p.Room {
		ids = append(ids, id)
		rooms = append(rooms, int32(max(n, 0)))
	}
	return ids, rooms
}

// RetryShare is the most retries (and expired leases) one claim of limit
// deliveries takes, so a retry backlog cannot starve fresh events.
func RetryShare(limit int) int { return max(limit/4, 1) }

// Claim leases due deliveries (fresh ones, retries whose time has come and
// expired leases of crashed relays) in one statement with SKIP LOCKED.
// First attempts are interleaved with retries, so a retry backlog cannot
// starve fresh events, and no endpoint gets more than its room.
func (s *Store) Claim(ctx context.Context, p ClaimParams) ([]Claimed, error) {
	if p.Limit <= 0 {
		return nil, nil
	}
	token := NewLeaseToken()
	saturated := []string{}
	for id, n := range p.Room {
		if n <= 0 {
			saturated = append(saturated, id)
		}
	}
	roomIDs, rooms := p.rooms()
	retries := RetryShare(p.Limit)
	rows, err := s.engineQuery(ctx, s.q.claim,
		p.Limit, saturated, retries, p.PerEndpoint, roomIDs, rooms, token, p.Lease.Seconds())
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", translate(err))
	}
	out, err := scanClaimed(rows, token, nil)
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	s.openClaimed(out)
	return out, nil
}

// dispatchCounts are the columns dispatchSQL adds to each row, set in its
// last row.
type dispatchCounts struct {
	events, deliveries, cut int32
	waiting                 []string
	unroutedIDs             []int64
	unroutedErrs            []string
	keyWaits                int32
}

// scanClaimed reads claimed deliveries leased with token. With counts set,
// each row has dispatchSQL's columns too and is kept only if counts says so.
func scanClaimed(rows pgx.Rows, token int64, counts func(c Claimed, x *dispatchCounts) bool) ([]Claimed, error) {
	defer rows.Close()
	var out []Claimed
	// One row's destinations, reused for every row (built per row they
	// were a heap allocation each).
	var (
		c   Claimed
		uid [16]byte
		x   dispatchCounts
	)
	dest := []any{&c.DeliveryID, &c.EventID, &c.EndpointID, &c.Attempts, &uid, &c.EventType,
		&c.Tenant, &c.Payload, &c.CreatedAt, &c.URL, &c.Secrets, &c.MaxInFlight, &c.RateLimit, &c.OrderingKey}
	if counts != nil {
		dest = append(dest, &x.events, &x.deliveries, &x.cut, &x.waiting, &x.unroutedIDs, &x.unroutedErrs, &x.keyWaits)
	}
	for rows.Next() {
		c, x = Claimed{}, dispatchCounts{}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		if counts != nil && !counts(c, &x) {
			continue
		}
		c.LeaseToken = token
		c.WebhookID = WebhookID(uid)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, translate(err)
	}
	return out, nil
}

// openClaimed decrypts the secrets of claimed deliveries, once per
// distinct set of stored secrets in the batch (a batch usually holds many
// deliveries of few endpoints). A delivery whose secrets do not open gets
// SecretErr; the others are not affected.
func (s *Store) openClaimed(out []Claimed) {
	type opened struct {
		secrets []string
		err     error
	}
	seen := map[string]opened{}
	for i := range out {
		key := strings.Join(out[i].Secrets, "\x00")
		o, ok := seen[key]
		if !ok {
			o.secrets = out[i].Secrets
			if o.err = s.openSecrets(o.secrets); o.err != nil {
				o.secrets = nil
			}
			seen[key] = o
		}
		out[i].Secrets, out[i].SecretErr = o.secrets, o.err
	}
}

// Outcome is the result of one attempt, recorded by Complete.
type Outcome struct {
	DeliveryID int64
	LeaseToken int64
	EventID    int64
	EndpointID string
	Attempt    int    // 1-based number of this attempt
	State      string // StatePending (retry later), StateDelivered or StateDead
	// NextAttemptAt is when to try again (State pending).
	NextAttemptAt time.Time
	StartedAt     time.Time
	Duration      time.Duration
	StatusCode    int    // 0 when no response
	Result        string // attempt outcome: delivered, retry, dead, ...
	ErrorClass    string // e.g. timeout, connection_refused, http_status
	Error         string
	Response      string // capped response excerpt
	// Deferred marks a delivery that could not be prepared (its secret does
	// not open): it goes back to pending until NextAttemptAt with Error as
	// its last error, and nothing is counted: no attempt, no failure of the
	// endpoint.
	Deferred bool
}

// Bounds of the receiver-supplied and error text Complete stores.
const (
	MaxErrorBytes    = 2048
	MaxResponseBytes = 4096
)

// CleanText makes s storable in a PostgreSQL text column and bounded: NUL
// bytes and invalid UTF-8 become U+FFFD, and the result is cut to at most
// n bytes on a character boundary. Receivers' answers and error messages
// pass through it before they are stored or logged.
func CleanText(s string, n int) string {
	if strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s) {
		s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
	}
	return truncateUTF8(s, n)
}

// Complete records a batch of outcomes in one statement: an attempts row for
// each, and the delivery's new state guarded by its lease, so a delivery
// whose lease another relay took over is not overwritten. It also keeps the
// endpoints' success and failure counters, and releases the next delivery
// of each ordering key whose head finished.
func (s *Store) Complete(ctx context.Context, outs []Outcome) (c Completed, err error) {
	if len(outs) == 0 {
		return c, nil
	}
	n := len(outs)
	ids, tokens, events := make([]int64, n), make([]int64, n), make([]int64, n)
	endpoints, states, results, classes, errs, excerpts := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	next, started := make([]time.Time, n), make([]time.Time, n)
	attempts, durations, statuses := make([]int32, n), make([]int32, n), make([]int32, n)
	deferred := make([]bool, n)
	for i, o := range outs {
		ids[i], tokens[i], events[i], endpoints[i] = o.DeliveryID, o.LeaseToken, o.EventID, o.EndpointID
		states[i], results[i], classes[i] = o.State, CleanText(o.Result, 64), CleanText(o.ErrorClass, 64)
		errs[i], excerpts[i] = CleanText(o.Error, MaxErrorBytes), CleanText(o.Response, MaxResponseBytes)
		deferred[i] = o.Deferred
		next[i], started[i] = o.NextAttemptAt, o.StartedAt
		if next[i].IsZero() {
			next[i] = o.StartedAt
		}
		attempts[i], durations[i], statuses[i] = int32(o.Attempt), int32(o.Duration.Milliseconds()), int32(o.StatusCode)
	}
	rows, err := s.engineQuery(ctx, s.q.complete, ids, tokens, states, next, statuses, errs,
		events, endpoints, attempts, started, durations, results, classes, excerpts, deferred)
	if err != nil {
		return c, fmt.Errorf("record outcomes: %w", translate(err))
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var released int32
		if err := rows.Scan(&id, &released); err != nil {
			return c, fmt.Errorf("record outcomes: %w", err)
		}
		c.Applied = append(c.Applied, id)
		c.Released = int(released)
	}
	if err := rows.Err(); err != nil {
		return c, fmt.Errorf("record outcomes: %w", translate(err))
	}
	return c, nil
}

// Completed is what Complete did.
type Completed struct {
	// Applied lists the deliveries whose state was updated (the others'
	// leases had passed to another relay).
	Applied []int64
	// Released counts waiting deliveries made due because the delivery
	// before them in their ordering key finished.
	Released int
}

// Release returns leased deliveries to pending without counting an attempt
// (used on shutdown for work that was not sent). Guarded by the lease.
func (s *Store) Release(ctx context.Context, ids, tokens []int64) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	tag, err := s.engineExec(ctx, s.q.release, ids, tokens)
	if err != nil {
		return 0, fmt.Errorf("release leases: %w", translate(err))
	}
	return int(tag.RowsAffected()), nil
}

// DisableEndpoint disables an endpoint with a reason and holds its pending
// deliveries until it is enabled again. It reports whether the endpoint was
// enabled before.
func (s *Store) DisableEndpoint(ctx context.Context, id, reason string) (bool, error) {
	if !ValidID(id) {
		return false, ErrNotFound
	}
	var was bool
	err := s.pool.QueryRow(ctx, s.q.disable, id, reason).Scan(&was)
	if err != nil {
		return false, fmt.Errorf("disable endpoint %s: %w", id, translate(err))
	}
	return was, nil
}

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
