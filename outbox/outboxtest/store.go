package outboxtest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/pgcluster"
)

// Store returns an [outbox.Store] on a fresh, migrated schema of the shared
// server (dropped when tb ends), with its own pool.
func Store(tb testing.TB) *outbox.Store {
	tb.Helper()
	return StoreOn(tb, Pool(tb), NewSchema(tb))
}

// ParallelStore marks t parallel and returns Store(t): the start of a test
// that, on a schema of its own, runs beside the others.
func ParallelStore(t *testing.T) *outbox.Store {
	t.Helper()
	t.Parallel()
	return Store(t)
}

// StoreOn migrates schema on pool and returns an [outbox.Store] on it: for
// a server other than the shared one (see [Server]).
func StoreOn(tb testing.TB, pool *pgxpool.Pool, schema string) *outbox.Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := outbox.Migrate(ctx, pool, schema); err != nil {
		tb.Fatalf("outboxtest: migrate %s: %v", schema, err)
	}
	st, err := outbox.NewStore(pool, schema)
	if err != nil {
		tb.Fatalf("outboxtest: %v", err)
	}
	return st
}

// Server starts a PostgreSQL server of tb's own (opts with ForceLocal,
// logging to tb), stopped when tb ends: for a test that restarts, stops or
// reconfigures its database.
func Server(tb testing.TB, opts pgcluster.Options) *pgcluster.Server {
	tb.Helper()
	opts.ForceLocal = true
	opts.Logf = tb.Logf
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // initdb included
	defer cancel()
	srv, err := pgcluster.Start(ctx, opts)
	if err != nil {
		tb.Fatalf("outboxtest: start PostgreSQL: %v", err)
	}
	tb.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			tb.Errorf("outboxtest: stop PostgreSQL: %v", err)
		}
	})
	return srv
}

// Counts runs sql, a query of (key, count) rows such as a GROUP BY on a
// text column, on st's pool and returns the counts by key.
func Counts(tb testing.TB, st *outbox.Store, sql string, args ...any) map[string]int {
	tb.Helper()
	rows, err := st.Pool().Query(context.Background(), sql, args...)
	if err != nil {
		tb.Fatalf("outboxtest: %s: %v", sql, err)
	}
	out := map[string]int{}
	var key string
	var n int
	if _, err := pgx.ForEachRow(rows, []any{&key, &n}, func() error { out[key] = n; return nil }); err != nil {
		tb.Fatalf("outboxtest: %s: %v", sql, err)
	}
	return out
}
