package outbox_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
)

func TestAsyncCommitIsTransactionLocal(t *testing.T) {
	ctx := context.Background()
	// One connection with synchronous_commit on (the test server's
	// default may be off), so every query below runs on the same session.
	pc, err := pgxpool.ParseConfig(outboxtest.Shared().URL())
	if err != nil {
		t.Fatal(err)
	}
	pc.MaxConns = 1
	pc.ConnConfig.RuntimeParams["synchronous_commit"] = "on"
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	plain, err := outbox.NewStore(pool, outboxtest.NewSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	setting := func(st *outbox.Store) string {
		t.Helper()
		rows, err := st.EngineQuery(ctx, "SELECT current_setting('synchronous_commit')")
		if err != nil {
			t.Fatal(err)
		}
		v, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if got := setting(plain.AsyncCommit()); got != "off" {
		t.Errorf("async store's statement ran with synchronous_commit %s, want off", got)
	}
	if got := setting(plain); got != "on" {
		t.Errorf("after an async statement the session has synchronous_commit %s, want on", got)
	}
}
