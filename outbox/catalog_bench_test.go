package outbox_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
)

// BenchmarkEnqueueSchemaCheck measures what the event-type catalog adds to
// one outbox.Enqueue (its own transaction, on the test server): a plain
// SQL insert as the baseline, Enqueue with an empty catalog (the catalog
// read finds nothing), and Enqueue of a type whose payload is checked
// against a JSON Schema.
//
//	go test -run '^$' -bench EnqueueSchemaCheck -benchtime 3s ./outbox
func BenchmarkEnqueueSchemaCheck(b *testing.B) {
	ctx := context.Background()
	st, opts := enqueueStore(b)
	payload := []byte(`{"email": "ada@example.com", "referrer": {"position": 42}}`)
	b.Run("plain-sql-insert", func(b *testing.B) {
		q := outboxtest.SQL(st.Schema(), `INSERT INTO {{schema}}.outbox (event_type, tenant, payload) VALUES ($1, $2, $3)`)
		for b.Loop() {
			if _, err := st.Pool().Exec(ctx, q, "signup.created", "acme", string(payload)); err != nil {
				b.Fatal(err)
			}
		}
	})
	ev := outbox.Event{Type: "signup.created", Tenant: "acme", Payload: payload}
	b.Run("enqueue/empty-catalog", func(b *testing.B) {
		for b.Loop() {
			if _, err := outbox.Enqueue(ctx, st.Pool(), ev, opts); err != nil {
				b.Fatal(err)
			}
		}
	})
	if _, _, err := st.PutEventType(ctx, outbox.EventType{Name: "signup.created", Schema: json.RawMessage(signupSchema)}); err != nil {
		b.Fatal(err)
	}
	b.Run("enqueue/schema", func(b *testing.B) {
		for b.Loop() {
			if _, err := outbox.Enqueue(ctx, st.Pool(), ev, opts); err != nil {
				b.Fatal(err)
			}
		}
	})
}
