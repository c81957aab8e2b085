package outboxtest

import (
	"context"
	"testing"
)

func TestSQL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ schema, sql, want string }{
		{"t_abc", `SELECT count(*) FROM {{schema}}.outbox`, `SELECT count(*) FROM "t_abc".outbox`},
		{`we"ird`, `SELECT 1 FROM {{schema}}.attempts`, `SELECT 1 FROM "we""ird".attempts`},
		{"Mixed Case", `INSERT INTO {{schema}}.outbox SELECT * FROM {{schema}}.deliveries`, `INSERT INTO "Mixed Case".outbox SELECT * FROM "Mixed Case".deliveries`},
		{"a.b", `TRUNCATE {{schema}}.x`, `TRUNCATE "a.b".x`},
		{"t_abc", `SELECT '{{schem}}', $1`, `SELECT '{{schem}}', $1`},
	} {
		if got := SQL(tc.schema, tc.sql); got != tc.want {
			t.Errorf("SQL(%q, %q) = %q, want %q", tc.schema, tc.sql, got, tc.want)
		}
	}
}

// TestSQLRunsOnTheServer checks that the quoted odd name reaches the right
// schema on a real server.
func TestSQLRunsOnTheServer(t *testing.T) {
	t.Parallel()
	pool := Pool(t)
	schema := `we"ird ` + NewSchema(t)
	if _, err := pool.Exec(t.Context(), SQL(schema, `CREATE SCHEMA {{schema}}; CREATE TABLE {{schema}}.x (v int); INSERT INTO {{schema}}.x VALUES (7)`)); err != nil {
		t.Fatalf("create schema %q: %v", schema, err)
	}
	t.Cleanup(func() {
		if _, err := pool.Exec(context.Background(), SQL(schema, `DROP SCHEMA {{schema}} CASCADE`)); err != nil {
			t.Errorf("drop schema %q: %v", schema, err)
		}
	})
	var v int
	if err := pool.QueryRow(t.Context(), SQL(schema, `SELECT v FROM {{schema}}.x`)).Scan(&v); err != nil || v != 7 {
		t.Fatalf("SELECT v FROM %q.x = %d, %v; want 7", schema, v, err)
	}
}
