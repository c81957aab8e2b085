package outboxtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookrelay/hookrelay/outbox/pgcluster"
)

// maxIdentifierLen is PostgreSQL's NAMEDATALEN-1.
const maxIdentifierLen = 63

// cleanupTimeout bounds the DROP SCHEMA a test's cleanup runs.
const cleanupTimeout = 30 * time.Second

// shared is the server started by Main.
var shared atomic.Pointer[pgcluster.Server]

// Main starts one shared server for a test binary, runs the tests, stops the
// server and returns the exit code:
//
//	func TestMain(m *testing.M) { os.Exit(outboxtest.Main(m)) }
//
// If the server cannot be started it prints why (with install help) to
// stderr and returns 1; it never skips.
func Main(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*pgcluster.ReadyTimeout)
	srv, err := pgcluster.Start(ctx, pgcluster.Options{})
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "outboxtest: cannot start PostgreSQL for tests: %v\n", err)
		return 1
	}
	shared.Store(srv)
	code := m.Run()
	shared.Store(nil)
	if err := srv.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "outboxtest: stop PostgreSQL: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Shared returns the server started by Main. It panics if the test binary's
// TestMain does not call Main.
func Shared() *pgcluster.Server {
	srv := shared.Load()
	if srv == nil {
		panic("outboxtest: no shared server; add `func TestMain(m *testing.M) { os.Exit(outboxtest.Main(m)) }` to the package's tests")
	}
	return srv
}

// NewSchema returns a fresh, unique schema name for tb on the shared server
// (lower case, at most 63 bytes, matching ^[a-z_][a-z0-9_]*$) and registers
// a cleanup that drops the schema with CASCADE if it exists. It does not
// create the schema; the caller's migration does.
func NewSchema(tb testing.TB) string {
	tb.Helper()
	srv := Shared()
	name := schemaName(tb.Name())
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		conn, err := pgx.Connect(ctx, srv.URL())
		if err != nil {
			tb.Errorf("outboxtest: drop schema %s: connect: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE"); err != nil {
			tb.Errorf("outboxtest: drop schema %s: %v", name, err)
		}
	})
	return name
}

// Pool returns a connection pool on the shared server, closed when tb's
// test ends.
func Pool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	pool, err := pgxpool.New(context.Background(), Shared().URL())
	if err != nil {
		tb.Fatalf("outboxtest: open pool: %v", err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

// schemaName builds "t_<sanitized test name>_<random hex>" within
// PostgreSQL's identifier limit.
func schemaName(testName string) string {
	var b strings.Builder
	lastUnderscore := true // drops leading and repeated underscores
	for _, r := range strings.ToLower(testName) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			lastUnderscore = false
		} else if !lastUnderscore {
			b.WriteByte('_')
			lastUnderscore = true
		}
	}
	var rnd [5]byte
	_, _ = rand.Read(rnd[:]) // crypto/rand.Read never fails
	suffix := "_" + hex.EncodeToString(rnd[:])
	body := strings.TrimRight(b.String(), "_")
	if limit := maxIdentifierLen - len("t_") - len(suffix); len(body) > limit {
		body = strings.TrimRight(body[:limit], "_")
	}
	if body == "" {
		return "t" + suffix
	}
	return "t_" + body + suffix
}
