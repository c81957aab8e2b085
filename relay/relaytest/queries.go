package relaytest

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
)

// Queries counts the statements a pool runs (a pgx.QueryTracer).
type Queries struct {
	match string
	n     atomic.Int64
}

// TraceQueryStart counts the statement when its SQL contains the match.
func (q *Queries) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.Contains(d.SQL, q.match) {
		q.n.Add(1)
	}
	return ctx
}

// TraceQueryEnd does nothing.
func (q *Queries) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// Count returns how many statements were counted so far.
func (q *Queries) Count() int64 { return q.n.Load() }

// CountedStore returns a store on schema of the shared server (""; a
// fresh one, migrated through the store's pool) through a pool of its own
// (closed when tb ends), and the count of the statements that pool runs
// whose SQL contains match ("" counts every statement).
func CountedStore(tb testing.TB, schema, match string) (*outbox.Store, *Queries) {
	tb.Helper()
	fresh := schema == ""
	if fresh {
		schema = outboxtest.NewSchema(tb)
	}
	pc, err := pgxpool.ParseConfig(outboxtest.Shared().URL())
	if err != nil {
		tb.Fatal(err)
	}
	q := &Queries{match: match}
	pc.ConnConfig.Tracer = q
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		tb.Fatalf("relaytest: open pool: %v", err)
	}
	tb.Cleanup(pool.Close)
	if fresh {
		if _, err := outbox.Migrate(context.Background(), pool, schema); err != nil {
			tb.Fatalf("relaytest: migrate %s: %v", schema, err)
		}
	}
	st, err := outbox.NewStore(pool, schema)
	if err != nil {
		tb.Fatalf("relaytest: %v", err)
	}
	return st, q
}
