package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
)

// storeOn opens a store on the test server's schema (migrated by a first
// command run).
func storeOn(t *testing.T, schema string) *outbox.Store {
	t.Helper()
	st, err := outbox.NewStore(outboxtest.Pool(t), schema)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func mustJSON(t *testing.T, res result, v any) {
	t.Helper()
	if res.Code != 0 {
		t.Fatalf("want exit 0:\n%s", res)
	}
	if err := json.Unmarshal([]byte(res.Stdout), v); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, res)
	}
}

func TestTokensCommands(t *testing.T) {
	schema := outboxtest.NewSchema(t)
	env := testEnv(schema)
	res := hookrelay(t, env, "tokens", "create", "--tenant", "acme", "--read-only", "--expires-in", "720h", "--description", "portal")
	if res.Code != 0 || !strings.Contains(res.Stdout, "hrt_") || !strings.Contains(res.Stdout, "shown once") || !strings.Contains(res.Stdout, "read-only") {
		t.Fatalf("tokens create:\n%s", res)
	}
	var tok outbox.Token
	mustJSON(t, hookrelay(t, env, "tokens", "create", "--tenant", "acme", "--output", "json"), &tok)
	if !strings.HasPrefix(tok.Value, "hrt_") || tok.ExpiresAt != nil || tok.ReadOnly {
		t.Fatalf("token = %+v", tok)
	}
	if got, err := storeOn(t, schema).Authenticate(context.Background(), tok.Value); err != nil || got.ID != tok.ID {
		t.Fatalf("the printed token does not authenticate: %+v, %v", got, err)
	}
	res = hookrelay(t, env, "tokens", "list", "--tenant", "acme")
	if res.Code != 0 || strings.Contains(res.Stdout, "hrt_") || strings.Count(res.Stdout, "acme") != 2 {
		t.Fatalf("tokens list (no values):\n%s", res)
	}
	res = hookrelay(t, env, "tokens", "revoke", tok.ID)
	if res.Code != 0 || !strings.Contains(res.Stdout, "revoked") {
		t.Fatalf("tokens revoke:\n%s", res)
	}
	if _, err := storeOn(t, schema).Authenticate(context.Background(), tok.Value); err == nil {
		t.Fatal("a revoked token still authenticates")
	}
	if res := hookrelay(t, env, "tokens", "list"); !strings.Contains(res.Stdout, "revoked") {
		t.Errorf("list does not show the revocation:\n%s", res)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"tokens", "create"}, exitUsage, "needs --tenant"},
		{[]string{"tokens", "create", "--tenant", "a", "--expires-in", "soon"}, exitUsage, "--expires-in"},
		{[]string{"tokens", "revoke", "00000000-0000-0000-0000-000000000000"}, exitFailure, "not found"},
		{[]string{"tokens", "revoke"}, exitUsage, "argument"},
		{[]string{"tokens", "frobnicate"}, exitUsage, "unknown tokens command"},
	} {
		if res := hookrelay(t, env, tc.args...); res.Code != tc.code || !strings.Contains(res.Stderr, tc.want) {
			t.Errorf("%v: want exit %d mentioning %q:\n%s", tc.args, tc.code, tc.want, res)
		}
	}
}

const catalogYAML = `
- name: signup.created
  description: Someone joined the waitlist.
  example: {email: ada@example.com, position: 42}
  schema:
    type: object
    required: [email]
    properties:
      email: {type: string}
      position: {type: integer}
- name: campaign.ended
  description: The campaign is over.
`

func TestEventTypesCommands(t *testing.T) {
	env := testEnv(outboxtest.NewSchema(t))
	dir := t.TempDir()
	file := filepath.Join(dir, "catalog.yaml")
	if err := os.WriteFile(file, []byte(catalogYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	res := hookrelay(t, env, "event-types", "apply", file)
	if res.Code != 0 || strings.Count(res.Stdout, "created\t") != 2 {
		t.Fatalf("apply:\n%s", res)
	}
	res = hookrelay(t, env, "event-types", "apply", file)
	if res.Code != 0 || strings.Count(res.Stdout, "unchanged\t") != 2 {
		t.Fatalf("apply again (idempotent):\n%s", res)
	}
	var list struct {
		EventTypes []outbox.EventType `json:"event_types"`
	}
	mustJSON(t, hookrelay(t, env, "event-types", "list", "--output", "json"), &list)
	if len(list.EventTypes) != 2 || list.EventTypes[1].Name != "signup.created" || !strings.Contains(string(list.EventTypes[1].Example), "ada@example.com") {
		t.Fatalf("list = %+v", list.EventTypes)
	}
	// JSON works too; a bad example is refused before anything is written.
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`[{"name": "x.new"}, {"name": "signup.created", "example": {"email": 5},
  "schema": {"type": "object", "properties": {"email": {"type": "string"}}}}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	if res := hookrelay(t, env, "event-types", "apply", bad); res.Code == 0 || !strings.Contains(res.Stderr, "/email") {
		t.Fatalf("apply of a bad example:\n%s", res)
	}
	if res := hookrelay(t, env, "event-types", "list"); strings.Contains(res.Stdout, "x.new") {
		t.Errorf("a refused apply wrote x.new:\n%s", res)
	}
	// The catalog now guards subscriptions.
	res = hookrelay(t, env, "endpoints", "create", "--url", "https://example.com/h", "--event-types", "signup.craeted")
	if res.Code != exitUsage || !strings.Contains(res.Stderr, `"signup.craeted"`) {
		t.Errorf("endpoint with a misspelt type:\n%s", res)
	}
}

func TestEventsAndDeliveriesCommands(t *testing.T) {
	schema := outboxtest.NewSchema(t)
	env := testEnv(schema, "HOOKRELAY_ALLOW_PRIVATE_DESTINATIONS=true")
	ep := decodeEndpoint(t, hookrelay(t, env, "endpoints", "create", "--url", "http://127.0.0.1:1/h", "--tenant", "acme", "--output", "json"))
	ctx := context.Background()
	st := storeOn(t, schema)
	res0, err := outbox.Enqueue(ctx, st.Pool(), outbox.Event{Type: "signup.created", Tenant: "acme", Payload: []byte(`{}`)}, outbox.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Dispatch(ctx, 10); err != nil {
		t.Fatal(err)
	}
	id := strconv.FormatInt(res0.ID, 10)

	res := hookrelay(t, env, "events", "trace", id)
	if res.Code != 0 || !strings.Contains(res.Stdout, ep.ID) || !strings.Contains(res.Stdout, "pending") {
		t.Fatalf("events trace:\n%s", res)
	}
	var page struct {
		Deliveries []outbox.Delivery `json:"deliveries"`
	}
	mustJSON(t, hookrelay(t, env, "deliveries", "list", "--endpoint", ep.ID, "--state", "pending", "--since", "1h", "--output", "json"), &page)
	if len(page.Deliveries) != 1 || page.Deliveries[0].EventType != "signup.created" {
		t.Fatalf("deliveries list = %+v", page.Deliveries)
	}
	d := strconv.FormatInt(page.Deliveries[0].ID, 10)
	if res := hookrelay(t, env, "deliveries", "get", d); res.Code != 0 || !strings.Contains(res.Stdout, "signup.created") || !strings.Contains(res.Stdout, "ATTEMPT") {
		t.Fatalf("deliveries get:\n%s", res)
	}
	if res := hookrelay(t, env, "deliveries", "retry", d); res.Code != 0 {
		t.Fatalf("deliveries retry:\n%s", res)
	}
	var rep outbox.ReplayResult
	mustJSON(t, hookrelay(t, env, "events", "replay", id, "--output", "json"), &rep)
	if len(rep.Deliveries) != 1 || rep.Deliveries[0].Replays != 1 {
		t.Fatalf("events replay = %+v", rep)
	}
	if res := hookrelay(t, env, "events", "trace", "999999"); res.Code != exitFailure || !strings.Contains(res.Stderr, "not found") {
		t.Errorf("trace of an unknown event:\n%s", res)
	}

	// A late endpoint gets the past event by backfill, once.
	late := decodeEndpoint(t, hookrelay(t, env, "endpoints", "create", "--url", "http://127.0.0.1:1/late", "--tenant", "acme", "--output", "json"))
	for _, want := range []int{1, 0} {
		var bf outbox.BackfillResult
		mustJSON(t, hookrelay(t, env, "endpoints", "backfill", late.ID, "--since", "1h", "--output", "json"), &bf)
		if bf.Created != want || bf.Matched != 1 {
			t.Fatalf("backfill = %+v, want %d created", bf, want)
		}
	}
	if res := hookrelay(t, env, "endpoints", "backfill", late.ID); res.Code != exitUsage || !strings.Contains(res.Stderr, "--since") {
		t.Errorf("backfill without --since:\n%s", res)
	}

	// The Test button's attempt is in the log, marked test.
	res = hookrelay(t, env, "endpoints", "test", ep.ID)
	if res.Code != exitFailure || !strings.Contains(res.Stdout, "marked test") {
		t.Fatalf("endpoints test of a refusing endpoint:\n%s", res)
	}
	mustJSON(t, hookrelay(t, env, "deliveries", "list", "--endpoint", ep.ID, "--state", "dead", "--output", "json"), &page)
	if len(page.Deliveries) != 1 || !page.Deliveries[0].Test {
		t.Fatalf("the test's delivery: %+v", page.Deliveries)
	}
}
