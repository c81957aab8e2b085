package outbox_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
)

// wantRows fails t unless table of st holds want rows.
func wantRows(t *testing.T, st *outbox.Store, table string, want int) {
	t.Helper()
	var n int
	if err := st.Pool().QueryRow(context.Background(), outboxtest.SQL(st.Schema(), `SELECT count(*) FROM {{schema}}.`+table)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != want {
		t.Errorf("%s rows = %d, want %d", table, n, want)
	}
}

// enqueueStore is a store on a fresh schema and the Options that enqueue
// into it.
func enqueueStore(tb testing.TB) (*outbox.Store, outbox.Options) {
	st := outboxtest.Store(tb)
	return st, outbox.Options{Schema: st.Schema()}
}

// listen opens a second connection listening on the store's channel, as an
// idle relay does (the trigger notifies only while a relay is idle).
func listen(t *testing.T, st *outbox.Store) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	if err := st.SetIdle(ctx, "test-relay", true); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, outboxtest.Shared().URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{outbox.Channel(st.Schema())}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	return conn
}

// notifications counts the notifications that arrive until none has come
// for quiet.
func notifications(t *testing.T, conn *pgx.Conn, quiet time.Duration) int {
	t.Helper()
	n := 0
	for {
		ctx, cancel := context.WithTimeout(context.Background(), quiet)
		err := conn.PgConn().WaitForNotification(ctx)
		cancel()
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return n
			}
			t.Fatal(err)
		}
		n++
	}
}

// TestEnqueueInTransaction: what an application enqueues in its
// transaction (one at a time and in batches) exists, and wakes an idle
// relay once, only if the transaction commits.
func TestEnqueueInTransaction(t *testing.T) {
	cases := []struct {
		name        string
		end         func(pgx.Tx, context.Context) error
		rows, notes int
	}{
		{"rolled back leaves nothing", pgx.Tx.Rollback, 0, 0},
		{"committed notifies once", pgx.Tx.Commit, 1000, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			st := outboxtest.Store(t)
			l := listen(t, st)
			tx, err := st.Pool().Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)
			// 1,000 rows in one transaction, through several statements.
			for i := 0; i < 10; i++ {
				if _, err := outbox.Enqueue(ctx, tx, outbox.Event{Type: "signup.created", Payload: json.RawMessage(`{"n":1}`)}, outbox.Options{Schema: st.Schema()}); err != nil {
					t.Fatal(err)
				}
			}
			events := make([]outbox.Event, 495)
			for i := range events {
				events[i] = outbox.Event{Type: "signup.created", Tenant: "acme", Payload: json.RawMessage(`{"i":1}`)}
			}
			for i := 0; i < 2; i++ {
				if _, err := outbox.EnqueueBatch(ctx, tx, events, outbox.Options{Schema: st.Schema()}); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.end(tx, ctx); err != nil {
				t.Fatal(err)
			}
			wantRows(t, st, "outbox", c.rows)
			if n := notifications(t, l, 500*time.Millisecond); n != c.notes {
				t.Fatalf("notifications = %d, want exactly %d", n, c.notes)
			}
		})
	}
}

// TestPlainSQLInsertNotifies: an insert in plain SQL, as an app in any
// language would write it, wakes an idle relay too.
func TestPlainSQLInsertNotifies(t *testing.T) {
	st := outboxtest.Store(t)
	l := listen(t, st)
	if _, err := st.Pool().Exec(context.Background(), outboxtest.SQL(st.Schema(), `INSERT INTO {{schema}}.outbox (event_type, tenant, payload) VALUES ($1, $2, $3)`),
		"signup.created", "acme", `{"plain":true}`); err != nil {
		t.Fatal(err)
	}
	if n := notifications(t, l, 500*time.Millisecond); n != 1 {
		t.Fatalf("notifications after plain insert = %d, want 1", n)
	}
}

func TestEnqueueValidation(t *testing.T) {
	ctx := context.Background()
	st := outboxtest.Store(t)
	opts := outbox.Options{Schema: st.Schema(), MaxPayloadBytes: 1024}
	ok := json.RawMessage(`{}`)
	cases := []struct {
		name  string
		ev    outbox.Event
		field string
		want  error
	}{
		{"empty type", outbox.Event{Payload: ok}, "type", outbox.ErrInvalidEventType},
		{"space in type", outbox.Event{Type: "signup created", Payload: ok}, "type", outbox.ErrInvalidEventType},
		{"slash in type", outbox.Event{Type: "signup/created", Payload: ok}, "type", outbox.ErrInvalidEventType},
		{"type too long", outbox.Event{Type: strings.Repeat("a", 129), Payload: ok}, "type", outbox.ErrInvalidEventType},
		{"empty payload", outbox.Event{Type: "a"}, "payload", outbox.ErrInvalidPayload},
		{"invalid json", outbox.Event{Type: "a", Payload: json.RawMessage(`{"a":`)}, "payload", outbox.ErrInvalidPayload},
		{"too large", outbox.Event{Type: "a", Payload: json.RawMessage(`"` + strings.Repeat("x", 2000) + `"`)}, "payload", outbox.ErrPayloadTooLarge},
		{"key too long", outbox.Event{Type: "a", Payload: ok, IdempotencyKey: strings.Repeat("k", 256)}, "idempotency_key", outbox.ErrInvalidIdempotencyKey},
		{"bad endpoint id", outbox.Event{Type: "a", Payload: ok, EndpointID: "nope"}, "endpoint_id", outbox.ErrInvalidEndpointID},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := outbox.Enqueue(ctx, st.Pool(), c.ev, opts)
			var ve *outbox.ValidationError
			if !errors.As(err, &ve) || ve.Field != c.field || !errors.Is(err, c.want) {
				t.Fatalf("Enqueue = %v, want ValidationError on %s wrapping %v", err, c.field, c.want)
			}
		})
	}
	// A bad event in a batch writes nothing of the batch.
	_, err := outbox.EnqueueBatch(ctx, st.Pool(), []outbox.Event{{Type: "ok", Payload: ok}, {Type: "", Payload: ok}}, opts)
	var ve *outbox.ValidationError
	if !errors.As(err, &ve) || ve.Index != 1 {
		t.Fatalf("batch error = %v, want index 1", err)
	}
	wantRows(t, st, "outbox", 0)
}

func TestPlainSQLConstraints(t *testing.T) {
	ctx := context.Background()
	st := outboxtest.Store(t)
	ins := outboxtest.SQL(st.Schema(), `INSERT INTO {{schema}}.outbox (event_type, tenant, payload) VALUES ($1, $2, $3)`)
	if _, err := st.Pool().Exec(ctx, ins, "", "", `{}`); err == nil {
		t.Error("empty event type accepted by SQL")
	}
	big := `"` + strings.Repeat("x", 300<<10) + `"`
	if _, err := st.Pool().Exec(ctx, ins, "a", "", big); err == nil {
		t.Error("oversized payload accepted by SQL")
	}
	// Through Enqueue with a raised Go limit, the database's limit still
	// answers with a typed error.
	_, err := outbox.Enqueue(ctx, st.Pool(), outbox.Event{Type: "a", Payload: json.RawMessage(big)}, outbox.Options{Schema: st.Schema(), MaxPayloadBytes: 1 << 20})
	if !errors.Is(err, outbox.ErrPayloadTooLarge) {
		t.Errorf("Enqueue of an oversized payload = %v", err)
	}
	wantRows(t, st, "outbox", 0)
}

func TestEnqueueIdempotencyKey(t *testing.T) {
	ctx := context.Background()
	st, opts := enqueueStore(t)
	ev := outbox.Event{Type: "signup.created", Tenant: "acme", Payload: json.RawMessage(`{"a":1}`), IdempotencyKey: "signup-42"}
	first, err := outbox.Enqueue(ctx, st.Pool(), ev, opts)
	if err != nil || first.Duplicate || first.ID == 0 || !strings.HasPrefix(first.WebhookID, "msg_") || strings.Contains(first.WebhookID, ".") {
		t.Fatalf("first = %+v, %v", first, err)
	}
	second, err := outbox.Enqueue(ctx, st.Pool(), ev, opts)
	if err != nil || !second.Duplicate || second.ID != first.ID || second.WebhookID != first.WebhookID {
		t.Fatalf("second = %+v, %v; want duplicate of %+v", second, err, first)
	}
	// Same key, other tenant: a new event.
	other := ev
	other.Tenant = "globex"
	third, err := outbox.Enqueue(ctx, st.Pool(), other, opts)
	if err != nil || third.Duplicate {
		t.Fatalf("other tenant = %+v, %v", third, err)
	}
	// Duplicates inside one batch.
	res, err := outbox.EnqueueBatch(ctx, st.Pool(), []outbox.Event{
		{Type: "a", Payload: json.RawMessage(`1`), IdempotencyKey: "b1"},
		{Type: "a", Payload: json.RawMessage(`2`)},
		{Type: "a", Payload: json.RawMessage(`3`), IdempotencyKey: "b1"},
		ev,
	}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Duplicate || !res[2].Duplicate || res[1].Duplicate || !res[3].Duplicate || res[3].ID != first.ID || res[2].ID != res[0].ID {
		t.Fatalf("batch results = %+v", res)
	}
	wantRows(t, st, "outbox", 4)
}

func TestEnqueueThroughPgxTxAndSQLTx(t *testing.T) {
	ctx := context.Background()
	st, opts := enqueueStore(t)
	// pgx.Tx next to a business write.
	tx, err := st.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := outbox.Enqueue(ctx, tx, outbox.Event{Type: "referral.created", Payload: json.RawMessage(`{"via":"pgx"}`)}, opts); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// database/sql through pgx's stdlib driver.
	db := stdlib.OpenDBFromPool(st.Pool())
	defer db.Close()
	stx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stx.Rollback()
	res, err := outbox.EnqueueBatch(ctx, stx, []outbox.Event{
		{Type: "referral.created", Payload: json.RawMessage(`{"via":"sql","q":"a \"quoted\" \\ value, {x}"}`), IdempotencyKey: `k"1`},
		{Type: "referral.created", Payload: json.RawMessage(`{"via":"sql"}`), IdempotencyKey: `k"1`},
	}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Duplicate || !res[1].Duplicate || res[0].ID == 0 {
		t.Fatalf("sql results = %+v", res)
	}
	if err := stx.Commit(); err != nil {
		t.Fatal(err)
	}
	var payload string
	if err := st.Pool().QueryRow(ctx, outboxtest.SQL(st.Schema(), `SELECT payload->>'q' FROM {{schema}}.outbox WHERE id = $1`), res[0].ID).Scan(&payload); err != nil {
		t.Fatal(err)
	}
	if payload != `a "quoted" \ value, {x}` {
		t.Fatalf("payload round trip = %q", payload)
	}
	// Unsupported handles are refused.
	if _, err := outbox.Enqueue(ctx, "not a db", outbox.Event{Type: "a", Payload: json.RawMessage(`{}`)}, opts); !errors.Is(err, outbox.ErrUnsupportedConnection) {
		t.Fatalf("Enqueue(string) = %v", err)
	}
	var _ *sql.Tx = stx
}

func TestNoNotificationWhileNoRelayIsIdle(t *testing.T) {
	ctx := context.Background()
	st := outboxtest.Store(t)
	l := listen(t, st)
	// The relay is busy (polling): inserts must not pay for a NOTIFY.
	if err := st.SetIdle(ctx, "test-relay", false); err != nil {
		t.Fatal(err)
	}
	if _, err := outbox.Enqueue(ctx, st.Pool(), outbox.Event{Type: "a", Payload: json.RawMessage(`{}`)}, outbox.Options{Schema: st.Schema()}); err != nil {
		t.Fatal(err)
	}
	if n := notifications(t, l, 300*time.Millisecond); n != 0 {
		t.Fatalf("notifications while busy = %d, want 0", n)
	}
	// A stale idle mark (a crashed relay) does not count either.
	if _, err := st.Pool().Exec(ctx, outboxtest.SQL(st.Schema(), `UPDATE {{schema}}.relays SET idle = true, seen_at = now() - interval '1 minute'`)); err != nil {
		t.Fatal(err)
	}
	if _, err := outbox.Enqueue(ctx, st.Pool(), outbox.Event{Type: "a", Payload: json.RawMessage(`{}`)}, outbox.Options{Schema: st.Schema()}); err != nil {
		t.Fatal(err)
	}
	if n := notifications(t, l, 300*time.Millisecond); n != 0 {
		t.Fatalf("notifications with a stale idle mark = %d, want 0", n)
	}
}
