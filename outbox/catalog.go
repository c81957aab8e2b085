package outbox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// The event-type catalog: the types endpoints may subscribe to (once the
// catalog is not empty), each with a description, an example that test
// sends carry, and optionally a JSON Schema that Enqueue and POST
// /v1/events check payloads against. Plain-SQL inserts into the outbox are
// not checked.

// EventType is one entry of the catalog.
type EventType struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Example is a realistic payload, sent by test sends of this type.
	Example json.RawMessage `json:"example,omitempty"`
	// Schema, when set, is a JSON Schema (draft 2020-12 unless it says
	// otherwise) every payload of this type must match.
	Schema json.RawMessage `json:"schema,omitempty"`
	// Deprecated types stay valid; the portal shows them as deprecated.
	Deprecated bool      `json:"deprecated"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// MaxSchemaBytes bounds an event type's schema and example.
const MaxSchemaBytes = 64 << 10

// Validate checks the entry: its name, description, that the schema
// compiles and that the example matches it.
func (et EventType) Validate() error {
	if et.Name == "" || len(et.Name) > MaxEventTypeLen || !eventTypePattern.MatchString(et.Name) {
		return &FieldError{Field: "name", Reason: fmt.Sprintf("%q is not an event type: 1–%d letters, digits, '_', '.' or '-'", et.Name, MaxEventTypeLen)}
	}
	if err := validateText("description", et.Description, MaxDescriptionLen); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		v    json.RawMessage
	}{{"example", et.Example}, {"schema", et.Schema}} {
		if len(f.v) > MaxSchemaBytes {
			return &FieldError{Field: f.name, Reason: fmt.Sprintf("is %d bytes, at most %d allowed", len(f.v), MaxSchemaBytes)}
		}
		if len(f.v) > 0 && !json.Valid(f.v) {
			return &FieldError{Field: f.name, Reason: "is not valid JSON"}
		}
	}
	if len(et.Schema) == 0 {
		return nil
	}
	sch, err := compileSchema(et.Schema)
	if err != nil {
		return &FieldError{Field: "schema", Reason: err.Error()}
	}
	if len(et.Example) > 0 {
		if reason := validateAgainst(sch, et.Example); reason != "" {
			return &FieldError{Field: "example", Reason: "does not match the schema: " + reason}
		}
	}
	return nil
}

// isNull reports whether a raw JSON value is absent or null.
func isNull(v json.RawMessage) bool {
	return len(bytes.TrimSpace(v)) == 0 || string(bytes.TrimSpace(v)) == "null"
}

const eventTypeColumns = `name, description, convert_to(example::text, 'UTF8'), convert_to(schema::text, 'UTF8'),
       deprecated, created_at, updated_at`

func scanEventType(row pgx.Row) (EventType, error) {
	var et EventType
	var example, schema []byte
	err := row.Scan(&et.Name, &et.Description, &example, &schema, &et.Deprecated, &et.CreatedAt, &et.UpdatedAt)
	if example != nil {
		et.Example = example
	}
	if schema != nil {
		et.Schema = schema
	}
	return et, err
}

// PutEventType creates or replaces a catalog entry (idempotent) and
// reports whether it was created.
func (s *Store) PutEventType(ctx context.Context, et EventType) (EventType, bool, error) {
	if isNull(et.Example) {
		et.Example = nil
	}
	if isNull(et.Schema) {
		et.Schema = nil
	}
	if err := et.Validate(); err != nil {
		return EventType{}, false, err
	}
	var created bool
	row := s.pool.QueryRow(ctx, qualify(`INSERT INTO {{schema}}.event_types AS t (name, description, example, schema, deprecated)
VALUES ($1, $2, $3::text::jsonb, $4::text::jsonb, $5)
ON CONFLICT (name) DO UPDATE SET description = EXCLUDED.description, example = EXCLUDED.example,
    schema = EXCLUDED.schema, deprecated = EXCLUDED.deprecated,
    updated_at = CASE WHEN (t.description, t.example, t.schema, t.deprecated)
                           IS NOT DISTINCT FROM (EXCLUDED.description, EXCLUDED.example, EXCLUDED.schema, EXCLUDED.deprecated)
                      THEN t.updated_at ELSE now() END
RETURNING `+eventTypeColumns+`, xmax = 0`, s.schema), et.Name, et.Description, rawArg(et.Example), rawArg(et.Schema), et.Deprecated)
	var out EventType
	var example, schema []byte
	err := row.Scan(&out.Name, &out.Description, &example, &schema, &out.Deprecated, &out.CreatedAt, &out.UpdatedAt, &created)
	if err != nil {
		return EventType{}, false, fmt.Errorf("put event type %s: %w", et.Name, translate(err))
	}
	if example != nil {
		out.Example = example
	}
	if schema != nil {
		out.Schema = schema
	}
	return out, created, nil
}

func rawArg(v json.RawMessage) *string {
	if v == nil {
		return nil
	}
	s := string(v)
	return &s
}

// GetEventType returns one catalog entry or ErrNotFound.
func (s *Store) GetEventType(ctx context.Context, name string) (EventType, error) {
	et, err := scanEventType(s.pool.QueryRow(ctx, qualify(`SELECT `+eventTypeColumns+` FROM {{schema}}.event_types WHERE name = $1`, s.schema), name))
	if err != nil {
		return EventType{}, fmt.Errorf("event type %q: %w", name, translate(err))
	}
	return et, nil
}

// ListEventTypes returns the catalog by name.
func (s *Store) ListEventTypes(ctx context.Context) ([]EventType, error) {
	return queryList(ctx, s, "list event types", `SELECT `+eventTypeColumns+` FROM {{schema}}.event_types ORDER BY name`,
		func(r pgx.CollectableRow) (EventType, error) { return scanEventType(r) })
}

// DeleteEventType removes a catalog entry, or returns ErrNotFound.
// Endpoints subscribed to it keep their subscription.
func (s *Store) DeleteEventType(ctx context.Context, name string) error {
	tag, err := s.pool.Exec(ctx, qualify(`DELETE FROM {{schema}}.event_types WHERE name = $1`, s.schema), name)
	if err != nil {
		return fmt.Errorf("delete event type %q: %w", name, translate(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("event type %q: %w", name, ErrNotFound)
	}
	return nil
}

// UnknownEventTypes returns those of types that are not in the catalog,
// or nothing while the catalog is empty (every type is then allowed).
func (s *Store) UnknownEventTypes(ctx context.Context, types []string) ([]string, error) {
	if len(types) == 0 {
		return nil, nil
	}
	var unknown []string
	err := s.pool.QueryRow(ctx, qualify(`SELECT CASE WHEN EXISTS (SELECT 1 FROM {{schema}}.event_types)
    THEN ARRAY(SELECT t FROM unnest($1::text[]) WITH ORDINALITY AS u(t, n)
                WHERE NOT EXISTS (SELECT 1 FROM {{schema}}.event_types c WHERE c.name = u.t) ORDER BY n)
    ELSE '{}'::text[] END`, s.schema), types).Scan(&unknown)
	if err != nil {
		return nil, fmt.Errorf("check event types: %w", translate(err))
	}
	return unknown, nil
}

// SchemaError is a payload that does not match its event type's schema.
type SchemaError struct {
	EventType string
	// Path is the JSON pointer of the first failing value ("" for the
	// payload itself) and Reason what is wrong with it.
	Path   string
	Reason string
	// More counts further failing values.
	More int
}

func (e *SchemaError) Error() string {
	path := e.Path
	if path == "" {
		path = "/"
	}
	msg := fmt.Sprintf("does not match the schema of event type %q: at %s: %s", e.EventType, path, e.Reason)
	if e.More > 0 {
		msg += fmt.Sprintf(" (and %d more)", e.More)
	}
	return msg
}

// payloadSchemas reads the schemas of the given event types, by type
// (types without a schema are absent), through db (a pgxDB or sqlDB).
func payloadSchemas(ctx context.Context, db any, schema string, types []string) (map[string][]byte, error) {
	query := qualify(`SELECT name, convert_to(schema::text, 'UTF8') FROM {{schema}}.event_types
 WHERE name = ANY ($1::text[]) AND schema IS NOT NULL`, schema)
	rows, done, err := queryRows(ctx, db, query, types)
	if errors.Is(err, ErrUnsupportedConnection) {
		return nil, nil // EnqueueBatch reports the unsupported handle
	}
	if err != nil {
		return nil, err
	}
	defer done()
	out := map[string][]byte{}
	for rows.Next() {
		var name string
		var sch []byte
		if err := rows.Scan(&name, &sch); err != nil {
			return nil, err
		}
		out[name] = sch
	}
	return out, rows.Err()
}

// checkSchemas validates each event's payload against its type's schema
// in the catalog, reading the catalog through db. The first event that
// fails gives a *ValidationError (field "payload") wrapping a
// *SchemaError.
func checkSchemas(ctx context.Context, db any, schema string, events []Event) error {
	types := make([]string, 0, len(events))
	seen := map[string]bool{}
	for _, ev := range events {
		if !seen[ev.Type] {
			seen[ev.Type] = true
			types = append(types, ev.Type)
		}
	}
	schemas, err := payloadSchemas(ctx, db, schema, types)
	if err != nil {
		return fmt.Errorf("enqueue: read event-type schemas: %w", err)
	}
	if len(schemas) == 0 {
		return nil
	}
	for i, ev := range events {
		raw, ok := schemas[ev.Type]
		if !ok {
			continue
		}
		if err := ValidatePayload(ev.Type, raw, ev.Payload); err != nil {
			se := &SchemaError{}
			errors.As(err, &se)
			return &ValidationError{Index: i, Field: "payload", Reason: err.Error(), Err: se}
		}
	}
	return nil
}

// ValidatePayload checks payload against a JSON Schema (the catalog's
// schema of eventType): nil, or a *SchemaError naming the first failing
// path. A schema that does not compile is an error too.
func ValidatePayload(eventType string, schema, payload []byte) error {
	sch, err := compileSchema(schema)
	if err != nil {
		return fmt.Errorf("the schema of event type %q does not compile: %w", eventType, err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	if err != nil {
		return &SchemaError{EventType: eventType, Reason: "is not valid JSON"}
	}
	err = sch.Validate(inst)
	if err == nil {
		return nil
	}
	se := &SchemaError{EventType: eventType, Reason: err.Error()}
	var ve *jsonschema.ValidationError
	if errors.As(err, &ve) {
		out := ve.BasicOutput()
		var leaves []jsonschema.OutputUnit
		for _, u := range out.Errors {
			if u.Error != nil {
				leaves = append(leaves, u)
			}
		}
		sort.SliceStable(leaves, func(i, j int) bool { return leaves[i].InstanceLocation < leaves[j].InstanceLocation })
		if len(leaves) > 0 {
			se.Path, se.Reason, se.More = leaves[0].InstanceLocation, leaves[0].Error.String(), len(leaves)-1
		}
	}
	return se
}

// validateAgainst returns why v does not match sch ("" when it does).
func validateAgainst(sch *jsonschema.Schema, v []byte) string {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(v))
	if err != nil {
		return "is not valid JSON"
	}
	if err := sch.Validate(inst); err != nil {
		var ve *jsonschema.ValidationError
		if errors.As(err, &ve) {
			for _, u := range ve.BasicOutput().Errors {
				if u.Error != nil {
					loc := u.InstanceLocation
					if loc == "" {
						loc = "/"
					}
					return "at " + loc + ": " + u.Error.String()
				}
			}
		}
		return err.Error()
	}
	return ""
}

// schemaCache keeps compiled schemas by the hash of their text, so
// Enqueue compiles a schema once per process, not once per event.
var schemaCache struct {
	sync.Mutex
	m map[[32]byte]*jsonschema.Schema
}

// maxCachedSchemas bounds schemaCache; it is emptied when full.
const maxCachedSchemas = 512

// compileSchema compiles a JSON Schema document. References are resolved
// inside the document only: nothing is loaded from files or the network.
func compileSchema(raw []byte) (*jsonschema.Schema, error) {
	key := sha256.Sum256(raw)
	schemaCache.Lock()
	sch, ok := schemaCache.m[key]
	schemaCache.Unlock()
	if ok {
		return sch, nil
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, errors.New("is not valid JSON")
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(jsonschema.SchemeURLLoader{}) // no file or network access
	c.AssertFormat()
	const loc = "urn:hookrelay:schema"
	if err := c.AddResource(loc, doc); err != nil {
		return nil, err
	}
	sch, err = c.Compile(loc)
	if err != nil {
		return nil, errors.New(strings.ReplaceAll(err.Error(), loc, "schema"))
	}
	schemaCache.Lock()
	if schemaCache.m == nil || len(schemaCache.m) >= maxCachedSchemas {
		schemaCache.m = map[[32]byte]*jsonschema.Schema{}
	}
	schemaCache.m[key] = sch
	schemaCache.Unlock()
	return sch, nil
}
