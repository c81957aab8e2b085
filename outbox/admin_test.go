package outbox_test

import (
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/outbox"
)

func TestQueueStats(t *testing.T) {
	ctx, st := parallelStore(t)
	ep := createEndpoint(t, st, outbox.EndpointInput{URL: "https://a.test"})
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := st.Pool().Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	s := `"` + st.Schema() + `"`
	exec(`INSERT INTO `+s+`.deliveries (event_id, endpoint_id, state, attempts, next_attempt_at, finished_at, lease_expires_at) VALUES
  (1, $1, 'pending', 0, now() - interval '90 seconds', NULL, NULL),   -- overdue first attempt: the lag
  (2, $1, 'pending', 0, 'infinity', NULL, NULL),                      -- held: not lag
  (3, $1, 'pending', 2, now() + interval '1 hour', NULL, NULL),       -- retry not yet due
  (4, $1, 'in_flight', 1, now(), NULL, now() + interval '1 minute'),
  (5, $1, 'dead', 3, now(), now(), NULL),
  (6, $1, 'delivered', 1, now(), now(), NULL),
  (7, $1, 'delivered', 1, now(), now(), NULL)`, ep.ID)
	exec(`INSERT INTO ` + s + `.outbox (event_type, payload, created_at) VALUES ('a', '{}', now() - interval '30 seconds')`)
	if _, err := st.DisableEndpoint(ctx, ep.ID, "test"); err != nil {
		t.Fatal(err)
	}
	// Disabling held the overdue row too; make it due again by hand.
	exec(`UPDATE ` + s + `.deliveries SET next_attempt_at = now() - interval '90 seconds' WHERE event_id = 1`)

	q, err := st.QueueStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if q.Pending != 2 || q.Retrying != 1 || q.InFlight != 1 || q.Dead != 1 || q.Delivered != 2 || q.Undispatched != 1 || q.EndpointsDisabled != 1 {
		t.Errorf("stats %+v", q)
	}
	if q.OldestPendingAge < 89*time.Second || q.OldestPendingAge > 5*time.Minute {
		t.Errorf("oldest pending age %v, want about 90s", q.OldestPendingAge)
	}
}

func TestIDCursor(t *testing.T) {
	for _, id := range []int64{1, 42, 1 << 62} {
		got, err := outbox.DecodeIDCursor(outbox.EncodeIDCursor(id))
		if err != nil || got != id {
			t.Errorf("%d: round trip %d, %v", id, got, err)
		}
	}
	for _, bad := range []string{"", "x", "aQ", "aTA", "aS0x", "aSsx", "%%"} {
		if _, err := outbox.DecodeIDCursor(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
