package outbox

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The history lists (deliveries and attempts, filtered, newest first,
// cursor-paged) and endpoint health.
//
// The lists stay fast as history grows because each runs down an index in
// the order it returns, reading about a page of rows:
//
//   - a tenant's list (a tenant token, or ?tenant=) merges the lists of
//     the tenant's endpoints, each read down (endpoint_id, created_at, id)
//     for at most a page; a tenant has few endpoints, so that is a few
//     short index scans and a sort of a few pages;
//   - an endpoint's list reads that index directly, dead and cancelled
//     deliveries the small partial index of failed ones;
//   - the overall list reads (created_at, id).
//
// Filters are written into the statement only when set (the values stay
// parameters; a state is a literal from the fixed list so the planner can
// match the partial index), so each combination gets its own plan rather
// than one generic plan for all.

// ListDeliveries returns a page of deliveries, newest first by creation,
// and the cursor of the next page ("" at the end). A tenant-scoped store
// lists only its tenant's deliveries.
func (s *Store) ListDeliveries(ctx context.Context, f DeliveryFilter) ([]Delivery, string, error) {
	limit := pageLimit(f.Limit)
	if f.State != nil && !ValidDeliveryState(*f.State) {
		return nil, "", &FieldError{Field: "state", Reason: "must be one of pending, in_flight, delivered, dead, cancelled"}
	}
	if err := checkFilter(f.EndpointID, f.Since, f.Until); err != nil {
		return nil, "", err
	}
	q := &listQuery{}
	if f.State != nil {
		q.cond("d.state = '" + *f.State + "'") // one of the fixed states, checked above
	}
	if f.EventID != nil {
		q.cond("d.event_id = " + q.arg(*f.EventID))
	}
	tenants, err := q.history("d", "created_at", "d.event_type", f.EventType, f.Since, f.Until, f.After, s.tenant, f.Tenant)
	if err != nil {
		return nil, "", err
	}
	var econds []string
	if len(tenants) > 0 {
		econds = q.endpoints(tenants, f.EndpointID) // merge the tenant's endpoints' lists
	} else if f.EndpointID != nil {
		q.cond("d.endpoint_id = " + q.arg(*f.EndpointID) + "::uuid")
	}
	sql := `WITH page AS (` + q.newestFirst("d.id, d.created_at", "deliveries d", "created_at", econds, limit) + `)
SELECT ` + deliveryColumns + ` FROM ` + deliveryRows + `
 WHERE d.id = ANY (ARRAY(SELECT id FROM page))
 ORDER BY d.created_at DESC, d.id DESC`
	out, err := queryList(ctx, s, "list deliveries", sql, func(r pgx.CollectableRow) (Delivery, error) { return scanDelivery(r) }, q.args...)
	if err != nil {
		return nil, "", err
	}
	out, next := cutPage(out, limit, func(d Delivery) string { return encodeTimeIDCursor(d.CreatedAt, d.ID) })
	return out, next, nil
}

// Attempt outcomes an attempt list can filter on: the recorded ones, and
// AttemptsFailed for every attempt that did not deliver.
const AttemptsFailed = "failed"

// AttemptFilter selects attempts to list (newest first by start). One of
// EndpointID, DeliveryID or Tenant is needed unless the store is
// tenant-scoped.
type AttemptFilter struct {
	EndpointID *string
	DeliveryID *int64
	Tenant     *string
	EventType  *string
	// Outcome is delivered, retry, dead, or failed (anything but delivered).
	Outcome *string
	// Since and Until bound started_at: [Since, Until).
	Since, Until *time.Time
	// After is the cursor returned with the previous page ("" for the first).
	After string
	// Limit is the page size (default 50, at most 500).
	Limit int
}

// ListAttemptsFiltered returns a page of attempts across deliveries, newest
// first by start, and the cursor of the next page ("" at the end). A
// tenant-scoped store lists only its tenant's attempts.
func (s *Store) ListAttemptsFiltered(ctx context.Context, f AttemptFilter) ([]Attempt, string, error) {
	limit := pageLimit(f.Limit)
	if err := checkFilter(f.EndpointID, f.Since, f.Until); err != nil {
		return nil, "", err
	}
	q := &listQuery{}
	if f.Outcome != nil {
		switch *f.Outcome {
		case AttemptsFailed:
			q.cond("a.outcome <> 'delivered'")
		case "delivered", "retry", "dead":
			q.cond("a.outcome = '" + *f.Outcome + "'") // one of the fixed outcomes
		default:
			return nil, "", &FieldError{Field: "outcome", Reason: "must be one of delivered, retry, dead, failed"}
		}
	}
	if f.DeliveryID != nil {
		q.cond("a.delivery_id = " + q.arg(*f.DeliveryID))
	}
	tenants, err := q.history("a", "started_at", "", f.EventType, f.Since, f.Until, f.After, s.tenant, f.Tenant)
	if err != nil {
		return nil, "", err
	}
	const cols = `a.id, a.delivery_id, a.event_id, a.endpoint_id::text AS endpoint_id,
       a.attempt, a.started_at, a.duration_ms, a.status_code, a.outcome, a.error_class, a.error, a.response_excerpt`
	var econds []string
	switch {
	case f.DeliveryID == nil && (len(tenants) > 0 || f.EndpointID != nil):
		// Merge the endpoints' lists (one endpoint, or the tenant's).
		econds = q.endpoints(tenants, f.EndpointID)
	case f.DeliveryID != nil:
		if f.EndpointID != nil {
			q.cond("a.endpoint_id = " + q.arg(*f.EndpointID) + "::uuid")
		}
	default:
		return nil, "", &FieldError{Field: "endpoint_id", Reason: "an attempt list needs endpoint_id, delivery_id or tenant"}
	}
	// Each attempt of the page, not of every endpoint's list merged into
	// it, looks up its event, once.
	sql := `SELECT p.*, coalesce(o.event_type, ''), coalesce(o.test, false)
  FROM (` + q.newestFirst(cols, "attempts a", "started_at", econds, limit) + `) p
  LEFT JOIN {{schema}}.outbox o ON o.id = p.event_id
 ORDER BY p.started_at DESC, p.id DESC`
	out, err := queryList(ctx, s, "list attempts", sql, func(r pgx.CollectableRow) (Attempt, error) {
		var a Attempt
		err := r.Scan(&a.ID, &a.DeliveryID, &a.EventID, &a.EndpointID, &a.Attempt, &a.StartedAt,
			&a.DurationMS, &a.StatusCode, &a.Outcome, &a.ErrorClass, &a.Error, &a.Response, &a.EventType, &a.Test)
		return a, err
	}, q.args...)
	if err != nil {
		return nil, "", err
	}
	out, next := cutPage(out, limit, func(a Attempt) string { return encodeTimeIDCursor(a.StartedAt, a.ID) })
	return out, next, nil
}

// listQuery collects a list statement's conditions and parameters.
type listQuery struct {
	conds []string
	args  []any
}

func (q *listQuery) arg(v any) string {
	q.args = append(q.args, v)
	return "$" + strconv.Itoa(len(q.args))
}

func (q *listQuery) cond(c string) { q.conds = append(q.conds, c) }

// eventCond adds conditions on the event (alias o) of the row x (a
// delivery or an attempt) as one scalar subquery: a primary-key lookup per
// row read, which the planner cannot turn into a hash join over the whole
// outbox (as it may a join, when it misjudges the filter's selectivity).
func (q *listQuery) eventCond(x string, conds []string) {
	if len(conds) == 0 {
		return
	}
	q.cond("coalesce((SELECT " + strings.Join(conds, " AND ") + " FROM {{schema}}.outbox o WHERE o.id = " + x + ".event_id), false)")
}

func (q *listQuery) where() string {
	if len(q.conds) == 0 {
		return "true"
	}
	return strings.Join(q.conds, " AND ")
}

// history adds the filters the history lists share, on the rows of alias
// x ordered newest first by (x.at, x.id): the event's type, the range
// [since, until) of x.at, the rows after the cursor, and the tenants (the
// store's scope and the filter's), whose predicates' parameters it returns
// for the merge of their endpoints' lists. typeCopy names x's copy of its
// event's type, "" when x has none.
func (q *listQuery) history(x, at, typeCopy string, eventType *string, since, until *time.Time, after string, scope, tenant *string) ([]string, error) {
	var ocond []string // conditions on the row's event
	switch {
	case eventType != nil && typeCopy != "":
		// A row with the copy (a delivery since schema version 8) is
		// matched on it, a check on the row itself that PostgreSQL runs
		// before the event's lookup; so rows of other types read no
		// event, even for a tenant. A row written before has no copy and
		// is matched through its event.
		typ := q.arg(*eventType)
		q.cond("(" + typeCopy + " = " + typ + " OR " + typeCopy + " IS NULL)")
		ocond = append(ocond, "("+typeCopy+" IS NOT NULL OR o.event_type = "+typ+")")
	case eventType != nil:
		ocond = append(ocond, "o.event_type = "+q.arg(*eventType))
	}
	col := x + "." + at
	if since != nil {
		q.cond(col + " >= " + q.arg(*since))
	}
	if until != nil {
		q.cond(col + " < " + q.arg(*until))
	}
	if after != "" {
		t, id, err := decodeTimeIDCursor(after)
		if err != nil {
			return nil, err
		}
		q.cond("(" + col + ", " + x + ".id) < (" + q.arg(t) + "::timestamptz, " + q.arg(id) + "::bigint)")
	}
	tenants := q.tenants(scope, tenant)
	for _, n := range tenants {
		ocond = append(ocond, "o.tenant = "+n)
	}
	q.eventCond(x, ocond)
	return tenants, nil
}

// endpoints returns the conditions (alias e) on the endpoints whose lists
// a list merges: the tenants' (parameters from tenants) and the one named.
func (q *listQuery) endpoints(tenants []string, endpointID *string) []string {
	var econds []string
	for _, n := range tenants {
		econds = append(econds, "e.tenant = "+n)
	}
	if endpointID != nil {
		econds = append(econds, "e.id = "+q.arg(*endpointID)+"::uuid")
	}
	return econds
}

// newestFirst is the statement of a page of cols from table (with its
// alias, such as "attempts a"), newest first by (at, id), read with one
// row more than limit to tell whether a next page exists: merged from the
// lists of the endpoints matching econds, each read down its endpoint's
// index for at most a page, or, without econds, read directly.
func (q *listQuery) newestFirst(cols, table, at string, econds []string, limit int) string {
	x := table[strings.LastIndexByte(table, ' ')+1:]
	lim := q.arg(limit + 1)
	if len(econds) == 0 {
		return `SELECT ` + cols + ` FROM {{schema}}.` + table + `
 WHERE ` + q.where() + `
 ORDER BY ` + x + `.` + at + ` DESC, ` + x + `.id DESC LIMIT ` + lim
	}
	return `SELECT x.* FROM {{schema}}.endpoints e CROSS JOIN LATERAL (
    SELECT ` + cols + ` FROM {{schema}}.` + table + `
     WHERE ` + x + `.endpoint_id = e.id AND ` + q.where() + `
     ORDER BY ` + x + `.` + at + ` DESC, ` + x + `.id DESC LIMIT ` + lim + `) x
 WHERE ` + strings.Join(econds, " AND ") + `
 ORDER BY x.` + at + ` DESC, x.id DESC LIMIT ` + lim
}

// queryList runs the list statement sql (its {{schema}} qualified) and
// scans its rows; what names the list in errors. The list is empty, not
// nil, when no row matches.
//
// PostgreSQL's JIT is off for the statement, as for the engine's (see
// engineSettings). A list that walks many rows for a page (a rare event
// type over a long history) is estimated costly enough to be compiled
// (jit_above_cost), and compiling took 17–19 ms of a list that ran in
// 2–3 ms.
func queryList[T any](ctx context.Context, s *Store, what, sql string, scan pgx.RowToFunc[T], args ...any) ([]T, error) {
	rows, err := s.settingsQuery(ctx, "SELECT set_config('jit', 'off', true)", qualify(sql, s.schema), args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, translate(err))
	}
	out, err := pgx.CollectRows(rows, scan)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, translate(err))
	}
	if out == nil {
		out = []T{}
	}
	return out, nil
}

// cutPage cuts rows, read with one more than limit, to a page and returns
// the cursor of the next page (from the page's last row), "" at the end.
func cutPage[T any](rows []T, limit int, cursor func(T) string) ([]T, string) {
	if len(rows) <= limit {
		return rows, ""
	}
	rows = rows[:limit]
	return rows, cursor(rows[limit-1])
}

// tenants returns the parameters of the tenant predicates: the store's
// scope and the filter's tenant (both hold when both are set, so a scoped
// caller naming another tenant gets nothing).
func (q *listQuery) tenants(scope, filter *string) []string {
	var out []string
	if scope != nil {
		out = append(out, q.arg(*scope))
	}
	if filter != nil && (scope == nil || *filter != *scope) {
		out = append(out, q.arg(*filter))
	}
	return out
}

// checkFilter refuses what the history lists' filters share: an endpoint
// id that is not a UUID, and a range whose until is not after its since.
func checkFilter(endpointID *string, since, until *time.Time) error {
	if endpointID != nil && !ValidID(*endpointID) {
		return &FieldError{Field: "endpoint_id", Reason: "is not an endpoint id (a UUID)"}
	}
	if since != nil && until != nil && !until.After(*since) {
		return &FieldError{Field: "until", Reason: "must be after since"}
	}
	return nil
}

func encodeTimeIDCursor(t time.Time, id int64) string {
	return encodeCursor(t, strconv.FormatInt(id, 10))
}

func decodeTimeIDCursor(c string) (time.Time, int64, error) {
	t, ids, err := decodeCursor(c)
	if err != nil {
		return time.Time{}, 0, err
	}
	id, err := strconv.ParseInt(ids, 10, 64)
	if err != nil || id <= 0 {
		return time.Time{}, 0, ErrBadCursor
	}
	return t, id, nil
}

// HealthWindow is an endpoint's record over a recent window.
type HealthWindow struct {
	// Attempts counts the attempts started in the window (test sends
	// excluded), Succeeded those that delivered.
	Attempts  int `json:"attempts"`
	Succeeded int `json:"succeeded"`
	// SuccessRate is Succeeded/Attempts, nil without attempts.
	SuccessRate *float64 `json:"success_rate"`
	// P95LatencyMS is the 95th percentile of the attempts' durations, nil
	// without attempts.
	P95LatencyMS *int `json:"p95_latency_ms"`
	// Sampled is true when the window held more than HealthSample
	// attempts and the figures are those of the newest HealthSample.
	Sampled bool `json:"sampled,omitempty"`
}

// LastError is an endpoint's most recent failed attempt.
type LastError struct {
	At         time.Time `json:"at"`
	DeliveryID int64     `json:"delivery_id"`
	StatusCode *int      `json:"status_code,omitempty"`
	ErrorClass string    `json:"error_class,omitempty"`
	Error      string    `json:"error,omitempty"`
}

// EndpointHealth is how an endpoint has been doing.
type EndpointHealth struct {
	LastHour HealthWindow `json:"last_hour"`
	LastDay  HealthWindow `json:"last_day"`
	// LastError is nil when no attempt has failed.
	LastError *LastError `json:"last_error"`
}

// HealthSample caps the attempts a health window is computed from, so
// reading the health of a busy endpoint costs the same as a quiet one's.
const HealthSample = 10000

// EndpointHealth reads an endpoint's success rate and p95 latency over the
// last hour and day, and its last failed attempt; ErrNotFound for an
// unknown endpoint (or one of another tenant, for a scoped store).
func (s *Store) EndpointHealth(ctx context.Context, id string) (EndpointHealth, error) {
	if !ValidID(id) {
		return EndpointHealth{}, fmt.Errorf("endpoint %s: %w", id, ErrNotFound)
	}
	var h EndpointHealth
	var found bool
	var hourN, dayN int
	var hourP95, dayP95 *float64
	var le LastError
	var leAt *time.Time
	err := s.pool.QueryRow(ctx, qualify(`WITH e AS (
    SELECT id FROM {{schema}}.endpoints WHERE id = $1 AND ($2::text IS NULL OR tenant = $2)
), a AS (
    SELECT a.started_at, a.outcome, a.duration_ms
      FROM e JOIN {{schema}}.attempts a ON a.endpoint_id = e.id
     WHERE a.started_at > now() - interval '1 day'
       AND NOT EXISTS (SELECT 1 FROM {{schema}}.outbox o WHERE o.id = a.event_id AND o.test)
     ORDER BY a.started_at DESC
     LIMIT $3
), f AS (
    SELECT a.started_at, a.delivery_id, a.status_code, a.error_class, a.error
      FROM e JOIN {{schema}}.attempts a ON a.endpoint_id = e.id
     WHERE a.outcome <> 'delivered'
     ORDER BY a.started_at DESC, a.id DESC
     LIMIT 1
)
SELECT EXISTS (SELECT 1 FROM e),
       (SELECT count(*) FROM a WHERE started_at > now() - interval '1 hour')::int,
       (SELECT count(*) FROM a WHERE started_at > now() - interval '1 hour' AND outcome = 'delivered')::int,
       (SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) FROM a WHERE started_at > now() - interval '1 hour'),
       (SELECT count(*) FROM a)::int,
       (SELECT count(*) FROM a WHERE outcome = 'delivered')::int,
       (SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) FROM a),
       f.started_at, coalesce(f.delivery_id, 0), f.status_code, coalesce(f.error_class, ''), coalesce(f.error, '')
  FROM (SELECT 1) one LEFT JOIN f ON true`, s.schema), id, s.tenantArg(), HealthSample).Scan(
		&found, &hourN, &h.LastHour.Succeeded, &hourP95, &dayN, &h.LastDay.Succeeded, &dayP95,
		&leAt, &le.DeliveryID, &le.StatusCode, &le.ErrorClass, &le.Error)
	if err != nil {
		return EndpointHealth{}, fmt.Errorf("endpoint %s health: %w", id, translate(err))
	}
	if !found {
		return EndpointHealth{}, fmt.Errorf("endpoint %s: %w", id, ErrNotFound)
	}
	fill := func(w *HealthWindow, n int, p95 *float64, sampled bool) {
		w.Attempts = n
		w.Sampled = sampled
		if n > 0 {
			rate := float64(w.Succeeded) / float64(n)
			w.SuccessRate = &rate
		}
		if p95 != nil {
			ms := int(*p95 + 0.5)
			w.P95LatencyMS = &ms
		}
	}
	fill(&h.LastHour, hourN, hourP95, dayN >= HealthSample && hourN == dayN)
	fill(&h.LastDay, dayN, dayP95, dayN >= HealthSample)
	if leAt != nil {
		le.At = *leAt
		h.LastError = &le
	}
	return h, nil
}
