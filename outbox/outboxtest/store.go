package outboxtest

import (
	"context"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/outbox"
)

// Store returns an [outbox.Store] on a fresh, migrated schema of the shared
// server (dropped when tb ends), with its own pool.
func Store(tb testing.TB) *outbox.Store {
	tb.Helper()
	schema := NewSchema(tb)
	pool := Pool(tb)
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
