package faulttest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
	"github.com/hookrelay/hookrelay/relay/relaytest"
)

// runBinary runs hookrelay with env and args and waits (at most 60s).
func runBinary(t *testing.T, env []string, args ...string) relaytest.Result {
	t.Helper()
	return relaytest.Run(t, binPath, env, args...)
}

// checksum fingerprints every table of the schema and the list of schemas
// named like it.
func checksum(t *testing.T, st *outbox.Store) string {
	t.Helper()
	var parts []string
	for _, table := range []string{"endpoints", "outbox", "deliveries", "attempts", "schema_migrations"} {
		var n int
		var sum string
		err := st.Pool().QueryRow(context.Background(), outboxtest.SQL(st.Schema(), `SELECT count(*), coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') FROM {{schema}}.`+table+` x`)).Scan(&n, &sum)
		if err != nil {
			t.Fatalf("checksum %s: %v", table, err)
		}
		parts = append(parts, fmt.Sprintf("%s:%d:%s", table, n, sum))
	}
	return strings.Join(parts, " ")
}

// eventsChecksum fingerprints the events themselves (not the relay's
// bookkeeping), for checks made while a relay is delivering them.
func eventsChecksum(t *testing.T, st *outbox.Store) string {
	t.Helper()
	var n int
	var sum string
	err := st.Pool().QueryRow(context.Background(), outboxtest.SQL(st.Schema(), `SELECT count(*), coalesce(md5(string_agg(concat_ws(':', id, uid, event_type, tenant, payload::text), '|' ORDER BY id)), '')
		FROM {{schema}}.outbox`)).Scan(&n, &sum)
	if err != nil {
		t.Fatalf("checksum events: %v", err)
	}
	return fmt.Sprintf("%d:%s", n, sum)
}

// TestFaultBadInput feeds bad configuration, endpoint URLs, payloads and a
// too-new schema: each is a clear error and nothing stored changes.
func TestFaultBadInput(t *testing.T) {
	t.Parallel()
	st := outboxtest.Store(t)
	dbURL := outboxtest.Shared().URL()
	rc := relaytest.NewReceiver(t)
	addEndpoint(t, st, rc)
	insertEvents(t, st, 25)
	env := func(extra ...string) []string { return relayEnv(dbURL, st.Schema(), extra...) }
	before := checksum(t, st)
	unchanged := func(t *testing.T, what string) {
		t.Helper()
		if after := checksum(t, st); after != before {
			t.Errorf("%s changed the database:\nbefore %s\nafter  %s", what, before, after)
		}
	}

	t.Run("env", func(t *testing.T) {
		for _, c := range []struct{ name, value string }{
			{"HOOKRELAY_POLL_INTERVAL", "soon"},
			{"HOOKRELAY_POLL_INTERVAL", "-1s"},
			{"HOOKRELAY_REQUEST_TIMEOUT", "0s"},
			{"HOOKRELAY_LEASE_DURATION", "3s"}, // must exceed REQUEST_TIMEOUT+5s
			{"HOOKRELAY_RETRY_SCHEDULE", "1s,,x"},
			{"HOOKRELAY_MAX_IN_FLIGHT", "-4"},
			{"HOOKRELAY_MAX_IN_FLIGHT", "lots"},
			{"HOOKRELAY_ENDPOINT_MAX_IN_FLIGHT", "0"},
			{"HOOKRELAY_ALLOW_PRIVATE_DESTINATIONS", "maybe"},
			{"HOOKRELAY_LOG_LEVEL", "loud"},
			{"HOOKRELAY_SCHEMA", `bad"; DROP TABLE x; --`},
			{"HOOKRELAY_DATABASE_URL", "postgres://[::1"},
			{"HOOKRELAY_SHUTDOWN_TIMEOUT", "forever"},
			{"HOOKRELAY_LISTEN_ADDR", "nope"},
		} {
			t.Run(c.name+"="+c.value, func(t *testing.T) {
				for _, args := range [][]string{{"run"}, {"migrate"}} {
					res := runBinary(t, env(c.name+"="+c.value), args...)
					if res.Code != 2 {
						t.Errorf("%s: exit %d, want 2\nstderr:\n%s", args[0], res.Code, res.Stderr)
					}
					if !strings.Contains(res.Stderr, c.name) {
						t.Errorf("%s: stderr does not name %s:\n%s", args[0], c.name, res.Stderr)
					}
				}
				unchanged(t, c.name+"="+c.value)
			})
		}
	})

	t.Run("endpoint_url", func(t *testing.T) {
		for _, u := range []string{
			"ftp://x",
			"http://user:pw@host/",
			"http://",
			"https://exa mple.com",
			"http://ex\u0430mple.com", // Cyrillic а
			"javascript:alert(1)",
			"",
		} {
			t.Run(u, func(t *testing.T) {
				res := runBinary(t, env(), "endpoints", "create", "--url", u, "--output", "json")
				if res.Code != 2 {
					t.Errorf("exit %d, want 2\nstdout:\n%s\nstderr:\n%s", res.Code, res.Stdout, res.Stderr)
				}
				if !strings.Contains(strings.ToLower(res.Stderr), "url") {
					t.Errorf("stderr does not name url:\n%s", res.Stderr)
				}
				unchanged(t, "endpoints create --url "+u)
			})
		}
	})

	t.Run("payload_sql", func(t *testing.T) {
		for _, c := range []struct{ name, sql string }{
			{"oversized", outboxtest.SQL(st.Schema(), `INSERT INTO {{schema}}.outbox (event_type, payload) VALUES ('big.one', jsonb_build_object('x', repeat('a', 300*1024)))`)},
			{"invalid_json", outboxtest.SQL(st.Schema(), `INSERT INTO {{schema}}.outbox (event_type, payload) VALUES ('bad.one', '{"a":')`)},
			{"bad_event_type", outboxtest.SQL(st.Schema(), `INSERT INTO {{schema}}.outbox (event_type, payload) VALUES ('no spaces allowed', '{}')`)},
		} {
			t.Run(c.name, func(t *testing.T) {
				_, err := st.Pool().Exec(context.Background(), c.sql)
				if err == nil {
					t.Fatalf("insert succeeded, want an SQL error")
				}
				t.Logf("SQL error: %v", err)
				unchanged(t, c.name+" insert")
			})
		}
	})

	t.Run("payload_http", func(t *testing.T) {
		const token = "fault-test-admin-token-0123456789abcdef"
		p := startRelay(t, env("HOOKRELAY_ADMIN_TOKEN="+token))
		// The relay delivers the stored events meanwhile, so compare the
		// events, not the bookkeeping.
		events := eventsChecksum(t, st)
		for _, c := range []struct {
			name string
			body []byte
		}{
			{"oversized", []byte(`{"type":"big.one","payload":{"x":"` + strings.Repeat("a", 300*1024) + `"}}`)},
			{"invalid_json", []byte(`{"type":"bad.one","payload":{"a":`)},
			{"payload_not_object", []byte(`{"type":"bad.one","payload":"\u0000"}`)},
			{"bad_event_type", []byte(`{"type":"no spaces allowed","payload":{}}`)},
		} {
			t.Run(c.name, func(t *testing.T) {
				req, err := http.NewRequest(http.MethodPost, p.base+"/v1/events", bytes.NewReader(c.body))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				var msg json.RawMessage
				_ = json.NewDecoder(resp.Body).Decode(&msg)
				_ = resp.Body.Close()
				t.Logf("HTTP %d %s", resp.StatusCode, tail(string(msg), 300))
				if resp.StatusCode < 400 || resp.StatusCode >= 500 {
					t.Errorf("status %d, want a 4xx", resp.StatusCode)
				}
				if after := eventsChecksum(t, st); after != events {
					t.Errorf("POST /v1/events with %s changed the stored events: %s → %s", c.name, events, after)
				}
			})
		}
		// A graceful stop: a killed relay's last statement may still
		// commit on the server after the process is gone, which would
		// change the database under the next case's checksum.
		p.signal(syscall.SIGTERM)
		if _, ok := p.wait(30 * time.Second); !ok {
			t.Fatal("hookrelay did not stop within 30s of SIGTERM")
		}
		before = checksum(t, st)
	})

	t.Run("schema_too_new", func(t *testing.T) {
		if _, err := st.Pool().Exec(context.Background(), outboxtest.SQL(st.Schema(), `INSERT INTO {{schema}}.schema_migrations (version, name) VALUES (9999, 'from_the_future')`)); err != nil {
			t.Fatal(err)
		}
		before = checksum(t, st)
		for _, args := range [][]string{{"run"}, {"migrate"}} {
			res := runBinary(t, env("HOOKRELAY_LISTEN_ADDR="+freeAddr(t)), args...)
			if res.Code != 1 {
				t.Errorf("%s: exit %d, want 1\nstderr:\n%s", args[0], res.Code, tail(res.Stderr, 2000))
			}
			if !strings.Contains(res.Stderr, "9999") || !strings.Contains(res.Stderr, "upgrade hookrelay") {
				t.Errorf("%s: stderr does not explain the too-new schema:\n%s", args[0], tail(res.Stderr, 2000))
			}
			unchanged(t, args[0]+" against a newer schema")
		}
	})
}
