package outbox_test

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
)

func TestMain(m *testing.M) { os.Exit(outboxtest.Main(m)) }

// newStore returns a context for a test's calls and a store on a fresh
// schema.
func newStore(tb testing.TB) (context.Context, *outbox.Store) {
	return context.Background(), outboxtest.Store(tb)
}

// parallelStore is newStore for a test that runs beside the others.
func parallelStore(t *testing.T) (context.Context, *outbox.Store) {
	return context.Background(), outboxtest.ParallelStore(t)
}

// sessionPool is a pool of one connection to the shared test server, so
// that every statement runs on one session (its settings, prepared
// statements and statistics); params are the session's settings. The pool
// is closed when the test ends.
func sessionPool(t *testing.T, params map[string]string) *pgxpool.Pool {
	t.Helper()
	pc, err := pgxpool.ParseConfig(outboxtest.Shared().URL())
	if err != nil {
		t.Fatal(err)
	}
	pc.MaxConns = 1
	for k, v := range params {
		pc.ConnConfig.RuntimeParams[k] = v
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// sessionStore is a store on a new schema over a pool of one session (see
// sessionPool), returned with the pool and the schema's name for the
// test's own SQL and statistics.
func sessionStore(t *testing.T, params map[string]string) (*pgxpool.Pool, string, *outbox.Store) {
	t.Helper()
	pool := sessionPool(t, params)
	schema := outboxtest.NewSchema(t)
	return pool, schema, outboxtest.StoreOn(t, pool, schema)
}

// sessionStat flushes the pending statistics of pool's session and reads
// one number from the statistics views with sql.
func sessionStat(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int64 {
	t.Helper()
	ctx := context.Background()
	if _, err := pool.Exec(ctx, "SELECT pg_stat_force_next_flush()"); err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := pool.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// indexEntriesRead is how many entries of table's indexes pool's session
// has read, its statistics flushed first.
func indexEntriesRead(t *testing.T, pool *pgxpool.Pool, schema, table string) int64 {
	t.Helper()
	return sessionStat(t, pool, "SELECT coalesce(sum(idx_tup_read), 0)::bigint FROM pg_stat_user_indexes WHERE relid = $1::regclass",
		pgx.Identifier{schema, table}.Sanitize())
}

// seqScans is how many sequential scans of schema's tables have been made.
func seqScans(t *testing.T, pool *pgxpool.Pool, schema string, tables ...string) int64 {
	t.Helper()
	names := make([]string, len(tables))
	for i, table := range tables {
		names[i] = pgx.Identifier{schema, table}.Sanitize()
	}
	return sessionStat(t, pool, "SELECT coalesce(sum(seq_scan), 0)::bigint FROM pg_stat_user_tables WHERE relid = ANY ($1::regclass[])", names)
}

// seed runs sql (its {{schema}} replaced by schema) on pool, failing the
// test on an error.
func seed(t *testing.T, pool *pgxpool.Pool, schema, sql string, args ...any) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), outboxtest.SQL(schema, sql), args...); err != nil {
		t.Fatalf("seed: %v", err)
	}
}

// analyze runs ANALYZE on table, so PostgreSQL plans with its seeded rows.
func analyze(t *testing.T, pool *pgxpool.Pool, schema, table string) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), "ANALYZE "+pgx.Identifier{schema, table}.Sanitize()); err != nil {
		t.Fatal(err)
	}
}
