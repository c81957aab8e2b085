package outbox_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
)

func TestMigrateFreshThenNoop(t *testing.T) {
	ctx := context.Background()
	pool := outboxtest.Pool(t)
	schema := outboxtest.NewSchema(t)

	if err := outbox.CheckSchema(ctx, pool, schema); !outbox.IsSchemaError(err) {
		t.Fatalf("CheckSchema before migrate = %v, want a schema error", err)
	}
	res, err := outbox.Migrate(ctx, pool, schema)
	if err != nil {
		t.Fatal(err)
	}
	if res.From != 0 || res.To != outbox.LatestVersion() || len(res.Applied) != len(outbox.Migrations()) {
		t.Fatalf("first migrate = %+v", res)
	}
	for _, table := range []string{"endpoints", "outbox", "deliveries", "attempts", "schema_migrations"} {
		var ok bool
		if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, outboxtest.SQL(schema, `{{schema}}.`+table)).Scan(&ok); err != nil || !ok {
			t.Errorf("table %s missing (err %v)", table, err)
		}
	}
	res, err = outbox.Migrate(ctx, pool, schema)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Applied) != 0 || res.From != res.To {
		t.Fatalf("second migrate applied %v", res.Applied)
	}
	if err := outbox.CheckSchema(ctx, pool, schema); err != nil {
		t.Fatalf("CheckSchema after migrate: %v", err)
	}
}

func TestMigrateConcurrent(t *testing.T) {
	ctx := context.Background()
	pool := outboxtest.Pool(t)
	schema := outboxtest.NewSchema(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	applied := make([]int, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := outbox.Migrate(ctx, pool, schema)
			errs[i], applied[i] = err, len(res.Applied)
		}()
	}
	wg.Wait()
	total := 0
	for i, err := range errs {
		if err != nil {
			t.Fatalf("migrate %d: %v", i, err)
		}
		total += applied[i]
	}
	if total != len(outbox.Migrations()) {
		t.Fatalf("migrations applied %d times in all, want %d (once)", total, len(outbox.Migrations()))
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname = $1`, schema).Scan(&n); err != nil || n != 1 {
		t.Fatalf("schemas named %s: %d (err %v)", schema, n, err)
	}
}

func TestMigrateRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	st := outboxtest.Store(t)
	pool := st.Pool()
	if _, err := pool.Exec(ctx, outboxtest.SQL(st.Schema(), `INSERT INTO {{schema}}.schema_migrations (version, name) VALUES (9999, 'from_the_future')`)); err != nil {
		t.Fatal(err)
	}
	_, err := outbox.Migrate(ctx, pool, st.Schema())
	var tooNew *outbox.SchemaTooNewError
	if !errors.As(err, &tooNew) || tooNew.Database != 9999 || tooNew.Binary != outbox.LatestVersion() {
		t.Fatalf("Migrate = %v, want *SchemaTooNewError", err)
	}
	if err := outbox.CheckSchema(ctx, pool, st.Schema()); !errors.As(err, &tooNew) {
		t.Fatalf("CheckSchema = %v, want *SchemaTooNewError", err)
	}
	// Nothing stored was touched.
	var n int
	if err := pool.QueryRow(ctx, outboxtest.SQL(st.Schema(), `SELECT count(*) FROM {{schema}}.outbox`)).Scan(&n); err != nil {
		t.Fatalf("outbox table unusable after refusal: %v", err)
	}
}

// TestServerVersionIsChecked checks the minimum server version: the test
// server passes, and an older one is named in the error.
func TestServerVersionIsChecked(t *testing.T) {
	var num int
	if err := outboxtest.Pool(t).QueryRow(context.Background(), "SELECT current_setting('server_version_num')::int").Scan(&num); err != nil {
		t.Fatal(err)
	}
	if err := outbox.ServerVersionError(num, "test server"); err != nil {
		t.Errorf("the test server (server_version_num %d): %v", num, err)
	}
	for _, v := range []struct {
		num     int
		version string
		ok      bool
	}{{120019, "12.19", false}, {96024, "9.6.24", false}, {130000, "13.0", true}, {170002, "17.2 (Debian 17.2-1)", true}} {
		err := outbox.ServerVersionError(v.num, v.version)
		var tooOld *outbox.ServerTooOldError
		switch {
		case v.ok && err != nil:
			t.Errorf("PostgreSQL %s: %v, want no error", v.version, err)
		case !v.ok && (!errors.As(err, &tooOld) || !strings.Contains(err.Error(), "PostgreSQL "+v.version+"; hookrelay needs PostgreSQL 13 or newer")):
			t.Errorf("PostgreSQL %s: %v, want a *ServerTooOldError naming the version and the minimum", v.version, err)
		}
	}
}

func TestMigrateRejectsBadSchemaName(t *testing.T) {
	pool := outboxtest.Pool(t)
	for _, name := range []string{"", "Upper", "a-b", `x"; DROP TABLE y; --`, "1abc"} {
		if _, err := outbox.Migrate(context.Background(), pool, name); err == nil {
			t.Errorf("Migrate(%q) succeeded", name)
		}
	}
}

func TestConnectErrorsSayWhatHappened(t *testing.T) {
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	// A server that accepts connections and never answers.
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan []net.Conn, 1)
	go func() {
		var conns []net.Conn
		for {
			c, err := mute.Accept()
			if err != nil {
				accepted <- conns
				return
			}
			conns = append(conns, c)
		}
	}()
	defer func() {
		mute.Close()
		for _, c := range <-accepted {
			c.Close()
		}
	}()

	shared, err := url.Parse(outboxtest.Shared().URL())
	if err != nil || shared.Host == "" {
		t.Skipf("shared server URL is not a URL: %v", err)
	}
	noDB := *shared
	noDB.Path = "/hookrelay_no_such_database"
	q := noDB.Query()
	q.Set("sslmode", "prefer") // a TLS attempt, refused, then a plain one
	noDB.RawQuery = q.Encode()

	tests := []struct {
		name, dsn, want string
	}{
		// pgx tries twice (TLS, then plain) and reports both.
		{"refused", "postgres://u:pw@" + closed + "/db?connect_timeout=5",
			"cannot connect to the database at " + closed + ": connection refused"},
		{"server answers", noDB.String(),
			"cannot connect to the database at " + shared.Host + `: FATAL: database "hookrelay_no_such_database" does not exist (SQLSTATE 3D000)`},
		{"silent server", "postgres://u:pw@" + mute.Addr().String() + "/db?connect_timeout=1&sslmode=disable",
			"cannot connect to the database at " + mute.Addr().String() + ": timed out"},
		{"unknown host", "postgres://u:pw@no-such-host.invalid:5432/db?connect_timeout=5",
			"cannot connect to the database at no-such-host.invalid:5432: cannot resolve no-such-host.invalid: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool, err := pgxpool.New(ctx, tt.dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			_, migErr := outbox.Migrate(ctx, pool, "hookrelay")
			checkErr := outbox.CheckSchema(ctx, pool, "hookrelay")
			for _, err := range []error{migErr, checkErr} {
				var ce *outbox.ConnectError
				if !errors.As(err, &ce) {
					t.Fatalf("err = %v (%T), want a *outbox.ConnectError", err, err)
				}
				msg := err.Error()
				if !strings.HasPrefix(msg, tt.want) || strings.Contains(msg, "\n") ||
					strings.Contains(strings.ToLower(msg), "tls") || strings.Contains(msg, "schema") {
					t.Fatalf("message %q, want one line starting %q without TLS or schema noise", msg, tt.want)
				}
				if strings.Contains(msg, "pw") {
					t.Fatalf("message shows the password: %q", msg)
				}
				var pce *pgconn.ConnectError
				if !errors.As(err, &pce) {
					t.Fatal("pgx's error is no longer reachable with errors.As")
				}
			}
		})
	}
	if err := outbox.ExplainConnectError(outbox.ErrNotFound); err != outbox.ErrNotFound {
		t.Fatalf("ExplainConnectError changed an unrelated error: %v", err)
	}
}
