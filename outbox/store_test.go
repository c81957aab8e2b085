package outbox_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
)

func TestAsyncCommitOnlyForItsSessions(t *testing.T) {
	ctx := context.Background()
	cc, err := pgx.ParseConfig(outboxtest.Shared().URL())
	if err != nil {
		t.Fatal(err)
	}
	plain := cc.Copy()
	outbox.AsyncCommit(cc)
	// The test server may itself run with synchronous_commit off, so the
	// setting's source tells whether the session asked for it.
	for _, c := range []struct {
		cfg  *pgx.ConnConfig
		want bool
	}{{cc, true}, {plain, false}} {
		conn, err := pgx.ConnectConfig(ctx, c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		var setting, source string
		err = conn.QueryRow(ctx, "SELECT setting, source FROM pg_settings WHERE name = 'synchronous_commit'").Scan(&setting, &source)
		_ = conn.Close(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := setting == "off" && source == "client"; got != c.want {
			t.Errorf("synchronous_commit = %s (from %s), want off from the client: %t", setting, source, c.want)
		}
	}
}
