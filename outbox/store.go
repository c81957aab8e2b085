package outbox

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sethvargo/go-retry"
)

// DefaultSchema is the schema hookrelay's tables live in unless
// HOOKRELAY_SCHEMA names another.
const DefaultSchema = "hookrelay"

// ErrNotFound is returned when a row asked for by id does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a write would break a uniqueness rule or a
// configured limit (for example too many endpoints for one tenant).
var ErrConflict = errors.New("conflict")

var schemaPattern = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// ValidSchema reports whether name can be used as hookrelay's schema: a
// lower-case SQL identifier of at most 63 bytes.
func ValidSchema(name string) error {
	if !schemaPattern.MatchString(name) {
		return fmt.Errorf("invalid schema name %q: use lower-case letters, digits and _ (at most 63, not starting with a digit)", name)
	}
	return nil
}

// Channel returns the NOTIFY channel the outbox trigger of schema signals:
// "<schema>_outbox", or a hashed name when that would be longer than
// PostgreSQL's 63-byte identifier limit.
func Channel(schema string) string {
	if len(schema)+len("_outbox") <= 63 {
		return schema + "_outbox"
	}
	h := fnv.New64a()
	h.Write([]byte(schema))
	return fmt.Sprintf("hookrelay_%016x_outbox", h.Sum64())
}

// Store runs hookrelay's queries against one schema through a pool.
type Store struct {
	pool   *pgxpool.Pool
	schema string
	q      queries
	codec  SecretCodec
	async  bool    // see AsyncCommit
	tenant *string // see ForTenant
}

// NewStore returns a Store for schema (which must pass [ValidSchema]).
func NewStore(pool *pgxpool.Pool, schema string) (*Store, error) {
	if err := ValidSchema(schema); err != nil {
		return nil, err
	}
	return &Store{pool: pool, schema: schema, q: newQueries(schema)}, nil
}

// AsyncCommit returns a copy of the store whose engine statements
// (Dispatch, DispatchClaim, Claim, Complete, Release) commit without waiting
// for their WAL record to reach disk: each runs with a transaction-local
// synchronous_commit = off, so it works through transaction-pooling proxies
// and leaves the pool's sessions as they are. These writes are bookkeeping
// that a database crash may roll back by a fraction of a second without
// losing work — a fan-out or a claim is redone, a recorded outcome is sent
// again with the same webhook-id — and they no longer wait on, or queue
// behind, the application's durable commits. Everything else the copy does
// (endpoint changes, enqueueing) stays synchronous.
func (s *Store) AsyncCommit() *Store {
	c := *s
	c.async = true
	return &c
}

// engineSettings are the transaction-local settings an engine statement
// (the fan-out, the claim, the outcome statement, the release of leases)
// runs with; being local to the statement's implicit transaction, they
// hold through transaction-pooling proxies and leave the pool's sessions
// as they are.
//
// JIT compilation is off: these statements run many times a second on a
// few hundred rows, and a misestimated cost above jit_above_cost would
// compile them anew on every call (~1 s each).
//
// PostgreSQL plans each statement once per session, a generic plan made
// with sequential scans off (plan_cache_mode = force_generic_plan,
// enable_seqscan = off), and runs that plan from then on. Left to choose
// (a generic plan after five calls if it costs no more than the custom
// ones so far), it went wrong for each of them:
//   - the claim was planned afresh on every call once deliveries were
//     waiting (its generic plan costed more than the custom ones): 2.9 ms
//     of planning for 0.5 ms of execution;
//   - the fan-out's custom plans trust the statistics for the undispatched
//     events, which are stale whenever a backlog has built up since the
//     last ANALYZE: they sorted the whole backlog on every call (drain
//     7,200 instead of 12,200 events/s), and a 250-event fan-out over a
//     200k backlog took 19–24 ms against 9 with the generic plan, which
//     walks the undispatched index in order. Each session also made five
//     custom plans before settling, ~7 ms each on a fresh connection: four
//     replicas, with four times the connections, spent 45 ms per 10k
//     deliveries planning the fan-out against 2 for one replica, and
//     their first backlog cost 20 % more PostgreSQL CPU per event than
//     one replica's (7 % with one plan per session);
//   - the outcome statement and the release find deliveries by primary
//     key, but a generic plan made while the tables were small read
//     deliveries sequentially and kept doing so as they grew: on a relay
//     started against an empty schema an outcome batch took 100–300 ms
//     instead of 5 at 200k deliveries. Planned on every call instead, the
//     outcome statement spent about 0.9 ms planning per call, 8 % of
//     PostgreSQL's time in a drain.
func engineSettings(async bool) string {
	sql := "SELECT set_config('jit', 'off', true), set_config('plan_cache_mode', 'force_generic_plan', true), set_config('enable_seqscan', 'off', true)"
	if async {
		sql += ", set_config('synchronous_commit', 'off', true)"
	}
	return sql
}

// engineQuery runs an engine statement with its settings (above): they and
// the statement go in one batch, which PostgreSQL runs as one implicit
// transaction, in one round trip.
func (s *Store) engineQuery(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return s.settingsQuery(ctx, engineSettings(s.async), sql, args...)
}

// settingsQuery runs sql after settings in one batch (see settingsBatch)
// and returns its rows; closing them closes the batch.
func (s *Store) settingsQuery(ctx context.Context, settings, sql string, args ...any) (pgx.Rows, error) {
	br, err := s.settingsBatch(ctx, settings, sql, args...)
	if err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		return nil, err
	}
	return &batchRows{Rows: rows, br: br}, nil
}

// engineExec is engineQuery for a statement without rows.
func (s *Store) engineExec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	br, err := s.engineBatch(ctx, sql, args...)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, err
}

// engineBatch sends the transaction-local settings and sql in one batch
// and reads the settings' result; sql's result is next.
func (s *Store) engineBatch(ctx context.Context, sql string, args ...any) (pgx.BatchResults, error) {
	return s.settingsBatch(ctx, engineSettings(s.async), sql, args...)
}

// settingsBatch sends settings (a SELECT of set_config(…, true) calls)
// and sql in one batch, one implicit transaction that the settings last
// for, and reads the settings' result; sql's result is next.
func (s *Store) settingsBatch(ctx context.Context, settings, sql string, args ...any) (pgx.BatchResults, error) {
	b := &pgx.Batch{}
	b.Queue(settings)
	b.Queue(sql, args...)
	br := s.pool.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		_ = br.Close()
		return nil, err
	}
	return br, nil
}

// batchRows are a batch's rows; closing them closes the batch.
type batchRows struct {
	pgx.Rows
	br     pgx.BatchResults
	closed bool
	err    error
}

// Next closes the batch after the last row, so Err reports how it ended
// (the commit included).
func (r *batchRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.Close()
	return false
}

func (r *batchRows) Close() {
	r.Rows.Close()
	if !r.closed {
		r.closed = true
		r.err = r.br.Close()
	}
}

func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}

// Schema returns the schema the store works in.
func (s *Store) Schema() string { return s.schema }

// Pool returns the pool the store runs on.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// qualify replaces {{schema}} in sql with the quoted schema identifier and
// {{channel}} with the quoted channel literal. The schema has been checked
// by ValidSchema; quoting is done by pgx all the same.
func qualify(sql, schema string) string {
	return strings.NewReplacer(
		"{{schema}}", pgx.Identifier{schema}.Sanitize(),
		"{{channel}}", "'"+strings.ReplaceAll(Channel(schema), "'", "''")+"'",
	).Replace(sql)
}

// IsRowError reports whether err is PostgreSQL refusing a value in the
// statement's data (a data exception, a constraint, a size limit) rather
// than the connection or the server failing: retrying the same statement
// would fail the same way, and a batch hitting one is split so the other
// rows go on.
func IsRowError(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || len(pgErr.Code) != 5 {
		return false
	}
	switch pgErr.Code[:2] {
	case "22", // data exception: invalid text, bad encoding, out of range
		"23", // integrity constraint violation
		"54": // program limit exceeded: a value too large
		return true
	}
	return false
}

// txRetries is how many more times inTx runs a transaction PostgreSQL
// aborted to break a deadlock or a serialization conflict.
const txRetries = 4

// inTx runs fn in a transaction, and again (up to txRetries more times,
// from 10 ms apart) when PostgreSQL aborted it as the victim of a deadlock
// or a serialization conflict. An operator's change that locks an endpoint
// and then its deliveries (disabling it, deleting it) can meet the
// engine's outcomes, which lock deliveries and then the endpoint; the
// engine retries its side, and so does this. fn must only assign what it
// returns, since it may run more than once.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	b := retry.WithMaxRetries(txRetries, retry.WithJitterPercent(20, retry.NewExponential(10*time.Millisecond)))
	return retry.Do(ctx, b, func(ctx context.Context) error {
		err := pgx.BeginFunc(ctx, s.pool, fn)
		if isTxConflict(err) {
			return retry.RetryableError(err)
		}
		return err
	})
}

// isTxConflict reports whether err is PostgreSQL aborting a transaction
// that may succeed when run again: deadlock_detected or
// serialization_failure.
func isTxConflict(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}

// translate maps driver errors to the package's errors at one boundary.
func translate(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "23505": // unique_violation
			return fmt.Errorf("%w: %s", ErrConflict, pgErr.Message)
		}
	}
	return err
}
