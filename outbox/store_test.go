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
	setting := func(st *outbox.Store, name string) string {
		t.Helper()
		rows, err := st.EngineQuery(ctx, "SELECT current_setting($1)", name)
		if err != nil {
			t.Fatal(err)
		}
		v, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	session := func(name string) string {
		t.Helper()
		var v string
		if err := pool.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	// Each engine statement runs with its settings; the session keeps its
	// own: the async store's statement first, then the plain store's.
	for _, tc := range []struct {
		store             *outbox.Store
		name              string
		inEngine, session string
	}{
		{plain.AsyncCommit(), "synchronous_commit", "off", "on"},
		{plain.AsyncCommit(), "plan_cache_mode", "force_generic_plan", "auto"},
		{plain, "synchronous_commit", "on", "on"},
		{plain, "plan_cache_mode", "force_generic_plan", "auto"},
	} {
		if got := setting(tc.store, tc.name); got != tc.inEngine {
			t.Errorf("engine statement (async %v) ran with %s %s, want %s", tc.store != plain, tc.name, got, tc.inEngine)
		}
		if got := session(tc.name); got != tc.session {
			t.Errorf("after an engine statement the session has %s %s, want %s", tc.name, got, tc.session)
		}
	}
}
