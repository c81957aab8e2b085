package outbox

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migration is one embedded, versioned schema change.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations returns the embedded migrations in version order.
func Migrations() []Migration {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		panic(fmt.Sprintf("outbox: read embedded migrations: %v", err))
	}
	var out []Migration
	for _, e := range entries {
		name := e.Name()
		num, rest, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(name, ".sql") {
			panic(fmt.Sprintf("outbox: embedded migration %q is not named NNNN_name.sql", name))
		}
		body, err := migrationFiles.ReadFile("migrations/" + name)
		if err != nil {
			panic(fmt.Sprintf("outbox: read embedded migration %s: %v", name, err))
		}
		out = append(out, Migration{Version: v, Name: strings.TrimSuffix(rest, ".sql"), SQL: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out
}

// LatestVersion is the newest schema version this binary knows.
func LatestVersion() int {
	m := Migrations()
	return m[len(m)-1].Version
}

// SchemaTooNewError is returned when the database holds a schema version
// newer than this binary knows: an older binary must not run against it.
type SchemaTooNewError struct {
	Schema   string
	Database int // version found in the database
	Binary   int // newest version this binary knows
}

func (e *SchemaTooNewError) Error() string {
	return fmt.Sprintf("schema %q is at version %d but this hookrelay binary knows only up to version %d: upgrade hookrelay (refusing to run against a newer schema)",
		e.Schema, e.Database, e.Binary)
}

// SchemaOutdatedError is returned by [CheckSchema] when migrations are
// missing.
type SchemaOutdatedError struct {
	Schema   string
	Database int
	Binary   int
}

func (e *SchemaOutdatedError) Error() string {
	return fmt.Sprintf("schema %q is at version %d, this binary needs version %d: run `hookrelay migrate` (or set HOOKRELAY_MIGRATE_ON_START=true)",
		e.Schema, e.Database, e.Binary)
}

// MinServerVersion is the oldest PostgreSQL server_version_num hookrelay
// runs on: 13 has gen_random_uuid() built in, which the schema's defaults
// use (12 added plan_cache_mode, which the engine's statements set).
const MinServerVersion = 130000

// ServerTooOldError is returned by [Migrate] when the server is older than
// [MinServerVersion].
type ServerTooOldError struct {
	Version string // the server's server_version, such as "12.19"
}

func (e *ServerTooOldError) Error() string {
	return fmt.Sprintf("the database server is PostgreSQL %s; hookrelay needs PostgreSQL 13 or newer", e.Version)
}

// checkServer returns a *ServerTooOldError when the server db talks to is
// older than [MinServerVersion].
func checkServer(ctx context.Context, db queryRower) error {
	var num int
	var version string
	if err := db.QueryRow(ctx, "SELECT current_setting('server_version_num')::int, current_setting('server_version')").Scan(&num, &version); err != nil {
		return fmt.Errorf("read the server version: %w", err)
	}
	return serverVersionError(num, version)
}

// serverVersionError is the error for a server of server_version_num num
// and server_version version: nil when it is new enough.
func serverVersionError(num int, version string) error {
	if num < MinServerVersion {
		return &ServerTooOldError{Version: version}
	}
	return nil
}

// MigrateResult says what [Migrate] did.
type MigrateResult struct {
	From    int   // version before
	To      int   // version after
	Applied []int // versions applied by this call, empty when up to date
}

func lockKey(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("hookrelay:migrate:" + schema))
	return int64(h.Sum64())
}

// Migrate brings schema up to the newest version this binary knows. It runs
// in one transaction under an advisory lock, so concurrent callers are safe:
// one applies the migrations, the others wait and then find nothing to do.
// A schema newer than the binary is refused with *SchemaTooNewError, a
// server older than PostgreSQL 13 with *ServerTooOldError, a
// database that cannot be reached gives a *ConnectError, and other errors
// start with "migrate schema", naming the schema.
func Migrate(ctx context.Context, pool *pgxpool.Pool, schema string) (MigrateResult, error) {
	if err := ValidSchema(schema); err != nil {
		return MigrateResult{}, err
	}
	var res MigrateResult
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := checkServer(ctx, tx); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockKey(schema)); err != nil {
			return fmt.Errorf("take migration lock: %w", err)
		}
		if _, err := tx.Exec(ctx, qualify(`CREATE SCHEMA IF NOT EXISTS {{schema}};
CREATE TABLE IF NOT EXISTS {{schema}}.schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)`, schema)); err != nil {
			return fmt.Errorf("create migrations table: %w", err)
		}
		current, err := schemaVersion(ctx, tx, schema)
		if err != nil {
			return err
		}
		res.From, res.To = current, current
		latest := LatestVersion()
		if current > latest {
			return &SchemaTooNewError{Schema: schema, Database: current, Binary: latest}
		}
		for _, m := range Migrations() {
			if m.Version <= current {
				continue
			}
			if _, err := tx.Exec(ctx, qualify(m.SQL, schema)); err != nil {
				return fmt.Errorf("apply migration %04d_%s: %w", m.Version, m.Name, err)
			}
			if _, err := tx.Exec(ctx, qualify(`INSERT INTO {{schema}}.schema_migrations (version, name) VALUES ($1, $2)`, schema), m.Version, m.Name); err != nil {
				return fmt.Errorf("record migration %04d: %w", m.Version, err)
			}
			res.Applied = append(res.Applied, m.Version)
			res.To = m.Version
		}
		return nil
	})
	if err != nil {
		if ce := ExplainConnectError(err); ce != err {
			return res, ce
		}
		return res, fmt.Errorf("migrate schema %q: %w", schema, err)
	}
	return res, nil
}

type queryRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func schemaVersion(ctx context.Context, db queryRower, schema string) (int, error) {
	var v int
	err := db.QueryRow(ctx, qualify(`SELECT coalesce(max(version), 0) FROM {{schema}}.schema_migrations`, schema)).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// CheckSchema reports whether schema is exactly at the version this binary
// needs: nil, *SchemaOutdatedError or *SchemaTooNewError. A database that
// cannot be reached gives a *ConnectError; other errors name the schema.
func CheckSchema(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, pgx.Identifier{schema, "schema_migrations"}.Sanitize()).Scan(&exists); err != nil {
		if ce := ExplainConnectError(err); ce != err {
			return ce
		}
		return fmt.Errorf("check schema %q: %w", schema, err)
	}
	latest := LatestVersion()
	if !exists {
		return &SchemaOutdatedError{Schema: schema, Database: 0, Binary: latest}
	}
	v, err := schemaVersion(ctx, pool, schema)
	if err != nil {
		if ce := ExplainConnectError(err); ce != err {
			return ce
		}
		return fmt.Errorf("check schema %q: %w", schema, err)
	}
	switch {
	case v > latest:
		return &SchemaTooNewError{Schema: schema, Database: v, Binary: latest}
	case v < latest:
		return &SchemaOutdatedError{Schema: schema, Database: v, Binary: latest}
	}
	return nil
}

// IsSchemaError reports whether err says the schema version is wrong (as
// opposed to the database being unreachable).
func IsSchemaError(err error) bool {
	var tooNew *SchemaTooNewError
	var outdated *SchemaOutdatedError
	return errors.As(err, &tooNew) || errors.As(err, &outdated)
}

// ConnectError says in one line why the database could not be reached,
// e.g. "cannot connect to the database at db:5432: connection refused". pgx
// reports every attempt it made (with sslmode=prefer a TLS attempt, then a
// plain one, for each address), which repeats itself and shows a TLS line
// when the server is simply down; ConnectError keeps the attempt that says
// most (the server's own answer if there was one, else the last attempt).
type ConnectError struct {
	// Addr is host:port as configured; several are joined with ", ".
	Addr string
	// Cause is why, e.g. "connection refused" or the server's message.
	Cause string
	// Err is pgx's error.
	Err error
}

func (e *ConnectError) Error() string {
	return "cannot connect to the database at " + e.Addr + ": " + e.Cause
}

// Unwrap returns pgx's error.
func (e *ConnectError) Unwrap() error { return e.Err }

// ExplainConnectError returns a *ConnectError for an error that holds
// pgx's *pgconn.ConnectError, and err itself otherwise.
func ExplainConnectError(err error) error {
	var pce *pgconn.ConnectError
	if !errors.As(err, &pce) {
		return err
	}
	var ce *ConnectError
	if errors.As(err, &ce) {
		return ce
	}
	return &ConnectError{Addr: connectAddrs(pce.Config), Cause: connectCause(pce), Err: err}
}

// connectAddrs lists the configured addresses, the primary first.
func connectAddrs(c *pgconn.Config) string {
	if c == nil {
		return "(unknown address)"
	}
	addr := func(host string, port uint16) string {
		if strings.HasPrefix(host, "/") {
			return fmt.Sprintf("%s (socket, port %d)", host, port)
		}
		return net.JoinHostPort(host, strconv.Itoa(int(port)))
	}
	out := []string{addr(c.Host, c.Port)}
	for _, fb := range c.Fallbacks {
		if a := addr(fb.Host, fb.Port); !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return strings.Join(out, ", ")
}

// connectCause picks the attempt that says most and says it briefly.
func connectCause(pce *pgconn.ConnectError) string {
	attempts := []error{pce.Unwrap()}
	for e := pce.Unwrap(); e != nil; e = errors.Unwrap(e) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			attempts = j.Unwrap()
			break
		}
	}
	if len(attempts) == 0 {
		return "unknown error"
	}
	pick := attempts[len(attempts)-1]
	for _, a := range attempts {
		var pgErr *pgconn.PgError
		if errors.As(a, &pgErr) {
			pick = a
			break
		}
	}
	var (
		pgErr  *pgconn.PgError
		dnsErr *net.DNSError
		errno  syscall.Errno
		netErr net.Error
	)
	switch {
	case pick == nil:
		return "unknown error"
	case errors.As(pick, &pgErr):
		return fmt.Sprintf("%s: %s (SQLSTATE %s)", pgErr.Severity, pgErr.Message, pgErr.Code)
	case errors.Is(pick, context.Canceled):
		return "interrupted"
	case errors.Is(pick, context.DeadlineExceeded), errors.As(pick, &netErr) && netErr.Timeout():
		return "timed out (connect_timeout in the connection string sets the limit)"
	case errors.As(pick, &dnsErr):
		return fmt.Sprintf("cannot resolve %s: %s", dnsErr.Name, dnsErr.Err)
	case errors.As(pick, &errno):
		return errno.Error()
	}
	// pgx prefixes each attempt with "address (host): "; drop it.
	if inner := errors.Unwrap(pick); inner != nil {
		return inner.Error()
	}
	return pick.Error()
}
