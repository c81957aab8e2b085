package outbox_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
)

const signupSchema = `{"type": "object", "required": ["email"],
  "properties": {"email": {"type": "string", "format": "email"},
                 "referrer": {"type": "object", "properties": {"position": {"type": "integer"}}}}}`

func TestEventTypeCatalog(t *testing.T) {
	ctx, st := parallelStore(t)

	// Empty catalog: every type is allowed.
	if unknown, err := st.UnknownEventTypes(ctx, []string{"anything"}); err != nil || len(unknown) != 0 {
		t.Fatalf("UnknownEventTypes with an empty catalog = %v, %v", unknown, err)
	}
	et := outbox.EventType{Name: "signup.created", Description: "A signup", Example: json.RawMessage(`{"email":"ada@example.com"}`),
		Schema: json.RawMessage(signupSchema)}
	got, created, err := st.PutEventType(ctx, et)
	if err != nil || !created || got.Name != et.Name || got.CreatedAt.IsZero() {
		t.Fatalf("PutEventType = %+v, %v, %v", got, created, err)
	}
	again, created, err := st.PutEventType(ctx, et)
	if err != nil || created || !again.UpdatedAt.Equal(got.UpdatedAt) {
		t.Fatalf("PutEventType again = %+v, created %v, %v; want unchanged", again, created, err)
	}
	if _, _, err := st.PutEventType(ctx, outbox.EventType{Name: "campaign.ended", Deprecated: true}); err != nil {
		t.Fatal(err)
	}
	list, err := st.ListEventTypes(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "campaign.ended" || !list[0].Deprecated || string(list[1].Example) == "" {
		t.Fatalf("ListEventTypes = %+v, %v", list, err)
	}
	unknown, err := st.UnknownEventTypes(ctx, []string{"signup.created", "signup.craeted", "campaign.ended"})
	if err != nil || !slices.Equal(unknown, []string{"signup.craeted"}) {
		t.Fatalf("UnknownEventTypes = %v, %v; want [signup.craeted]", unknown, err)
	}
	if err := st.DeleteEventType(ctx, "campaign.ended"); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteEventType(ctx, "campaign.ended"); !errors.Is(err, outbox.ErrNotFound) {
		t.Fatalf("DeleteEventType twice = %v, want ErrNotFound", err)
	}
	if _, err := st.GetEventType(ctx, "campaign.ended"); !errors.Is(err, outbox.ErrNotFound) {
		t.Fatalf("GetEventType(deleted) = %v", err)
	}

	for _, tc := range []struct {
		name  string
		et    outbox.EventType
		field string
		want  string
	}{
		{"bad name", outbox.EventType{Name: "no spaces"}, "name", "not an event type"},
		{"schema not JSON", outbox.EventType{Name: "a", Schema: json.RawMessage(`{`)}, "schema", "not valid JSON"},
		{"schema does not compile", outbox.EventType{Name: "a", Schema: json.RawMessage(`{"type": 5}`)}, "schema", ""},
		{"schema refers to a file", outbox.EventType{Name: "a", Schema: json.RawMessage(`{"$ref": "file:///etc/passwd"}`)}, "schema", ""},
		{"example against schema", outbox.EventType{Name: "a", Schema: json.RawMessage(signupSchema), Example: json.RawMessage(`{"email": 5}`)}, "example", "at /email"},
	} {
		_, _, err := st.PutEventType(ctx, tc.et)
		var fe *outbox.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(fe.Reason, tc.want) {
			t.Errorf("%s: PutEventType = %v, want a field error on %s containing %q", tc.name, err, tc.field, tc.want)
		}
	}
}

// TestEnqueueRefusesPayloadAgainstSchema enqueues in the application's
// transaction, which also wrote a business row: a payload that does not
// match its type's schema is refused before anything is written, and the
// rolled-back transaction leaves neither row.
func TestEnqueueRefusesPayloadAgainstSchema(t *testing.T) {
	ctx, st := parallelStore(t)
	if _, _, err := st.PutEventType(ctx, outbox.EventType{Name: "signup.created", Schema: json.RawMessage(signupSchema)}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, outboxtest.SQL(st.Schema(), `CREATE TABLE {{schema}}.signups (email text)`)); err != nil {
		t.Fatal(err)
	}
	opts := outbox.Options{Schema: st.Schema()}

	tx, err := st.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, outboxtest.SQL(st.Schema(), `INSERT INTO {{schema}}.signups VALUES ('ada@example.com')`)); err != nil {
		t.Fatal(err)
	}
	_, err = outbox.Enqueue(ctx, tx, outbox.Event{Type: "signup.created", Payload: []byte(`{"email": "ada@example.com", "referrer": {"position": "first"}}`)}, opts)
	var ve *outbox.ValidationError
	var se *outbox.SchemaError
	if !errors.As(err, &ve) || ve.Field != "payload" || !errors.As(err, &se) || se.Path != "/referrer/position" ||
		!strings.Contains(err.Error(), "/referrer/position") {
		t.Fatalf("Enqueue(bad payload) = %v; want a payload validation error naming /referrer/position", err)
	}
	// Nothing was written by Enqueue: the transaction is still usable and
	// the outbox holds no row inside it.
	var n int
	if err := tx.QueryRow(ctx, outboxtest.SQL(st.Schema(), `SELECT count(*) FROM {{schema}}.outbox`)).Scan(&n); err != nil || n != 0 {
		t.Fatalf("outbox rows inside the transaction: %d, %v; want 0", n, err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	wantRows(t, st, "outbox", 0) // after the rollback
	if err := st.Pool().QueryRow(ctx, outboxtest.SQL(st.Schema(), `SELECT count(*) FROM {{schema}}.signups`)).Scan(&n); err != nil || n != 0 {
		t.Errorf("business rows after the rollback: %d, %v; want 0", n, err)
	}

	// A batch: the failing event's index is named.
	_, err = outbox.EnqueueBatch(ctx, st.Pool(), []outbox.Event{
		{Type: "other", Payload: []byte(`"no schema"`)},
		{Type: "signup.created", Payload: []byte(`{"email": "ada@example.com"}`)},
		{Type: "signup.created", Payload: []byte(`{}`)},
	}, opts)
	if !errors.As(err, &ve) || ve.Index != 2 || !strings.Contains(err.Error(), "email") {
		t.Fatalf("EnqueueBatch = %v; want event 2 refused for the missing email", err)
	}
	wantRows(t, st, "outbox", 0) // the refused batch wrote nothing
	// Matching payloads, and types without a schema, go in.
	if _, err := outbox.EnqueueBatch(ctx, st.Pool(), []outbox.Event{
		{Type: "other", Payload: []byte(`"no schema"`)},
		{Type: "signup.created", Payload: []byte(`{"email": "ada@example.com", "referrer": {"position": 3}}`)},
	}, opts); err != nil {
		t.Fatalf("EnqueueBatch(valid) = %v", err)
	}
	// Plain SQL is not checked.
	if _, err := st.Pool().Exec(ctx, outboxtest.SQL(st.Schema(), `INSERT INTO {{schema}}.outbox (event_type, payload) VALUES ('signup.created', '{}')`)); err != nil {
		t.Fatalf("plain SQL insert: %v", err)
	}
}
