package main

import (
	"net"
	"strings"
	"testing"
)

// TestDatabaseUnreachableSaysSoOnce: a database that refuses connections
// gives one line naming its address, without pgx's per-attempt report (a
// TLS attempt, then a plain one) or a repeated "migrate schema" prefix.
func TestDatabaseUnreachableSaysSoOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	env := []string{
		"PATH=/usr/bin:/bin",
		"HOOKRELAY_DATABASE_URL=postgres://u:pw@" + addr + "/db?connect_timeout=5",
	}
	want := "hookrelay: cannot connect to the database at " + addr + ": connection refused\n"
	for _, args := range [][]string{{"migrate"}, {"endpoints", "list"}} {
		res := hookrelay(t, env, args...)
		if res.Code != 1 {
			t.Fatalf("%v: want exit 1:\n%s", args, res)
		}
		if res.Stderr != want {
			t.Errorf("%v: stderr\n%q\nwant\n%q", args, res.Stderr, want)
		}
	}
	// HOOKRELAY_MIGRATE_ON_START=false: the check gives the same line.
	res := hookrelay(t, append(env, "HOOKRELAY_MIGRATE_ON_START=false"), "endpoints", "list")
	if !strings.HasSuffix(res.Stderr, ": connection refused\n") || strings.Count(res.Stderr, "\n") != 1 {
		t.Errorf("stderr %q, want one line", res.Stderr)
	}
}
