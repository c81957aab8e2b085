package outbox

import (
	"errors"
	"fmt"
	"hash/fnv"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
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

// AsyncCommit makes the sessions of cc commit without waiting for their WAL
// record to reach disk (synchronous_commit off). It is meant for the relay
// engine's pool: its writes are bookkeeping that a database crash may roll
// back by a fraction of a second without losing work — an event's fan-out
// or a claim is redone, a recorded outcome is sent again with the same
// webhook-id — and they no longer wait on, or queue behind, the
// application's durable commits. Never use it for the application's inserts
// or for endpoint changes.
func AsyncCommit(cc *pgx.ConnConfig) {
	cc.RuntimeParams["synchronous_commit"] = "off"
}

// Store runs hookrelay's queries against one schema through a pool.
type Store struct {
	pool   *pgxpool.Pool
	schema string
	q      queries
	codec  SecretCodec
}

// NewStore returns a Store for schema (which must pass [ValidSchema]).
func NewStore(pool *pgxpool.Pool, schema string) (*Store, error) {
	if err := ValidSchema(schema); err != nil {
		return nil, err
	}
	return &Store{pool: pool, schema: schema, q: newQueries(schema)}, nil
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
