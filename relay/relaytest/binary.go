package relaytest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookrelay/hookrelay/outbox/outboxtest"
)

// MainWithBinary is the TestMain of a package whose tests drive the
// hookrelay binary: it builds the binary into a temporary directory, sets
// *bin to its path, and runs the tests with one shared PostgreSQL server
// ([outboxtest.Main]); it returns the exit code.
//
//	func TestMain(m *testing.M) { os.Exit(relaytest.MainWithBinary(m, &binPath)) }
func MainWithBinary(m *testing.M, bin *string) int {
	dir, err := os.MkdirTemp("", "hookrelay-bin-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, "relaytest: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if *bin, err = BuildBinary(dir); err != nil {
		fmt.Fprintln(os.Stderr, "relaytest:", err)
		return 1
	}
	return outboxtest.Main(m)
}

// databaseTimeout bounds creating or dropping a database.
const databaseTimeout = 30 * time.Second

// NewDatabase creates a database of its own on the shared server (for a
// test that needs a whole database, such as one whose default schema is
// used) and returns its URL; the database is dropped, its connections
// closed, when tb ends.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	server := outboxtest.Shared().URL()
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	name := pgx.Identifier{"db_" + hex.EncodeToString(b[:])}
	exec := func(sql string) error {
		ctx, cancel := context.WithTimeout(context.Background(), databaseTimeout)
		defer cancel()
		conn, err := pgx.Connect(ctx, server)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := exec("CREATE DATABASE " + name.Sanitize()); err != nil {
		tb.Fatalf("relaytest: create database %s: %v", name[0], err)
	}
	tb.Cleanup(func() {
		if err := exec("DROP DATABASE IF EXISTS " + name.Sanitize() + " WITH (FORCE)"); err != nil {
			tb.Errorf("relaytest: drop database %s: %v", name[0], err)
		}
	})
	u, err := url.Parse(server)
	if err != nil {
		tb.Fatal(err)
	}
	u.Path = "/" + name[0]
	return u.String()
}
