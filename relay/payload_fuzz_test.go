package relay_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
	"github.com/hookrelay/hookrelay/relay"
)

// FuzzPayloadThroughRelay enqueues payloads through outbox.Enqueue and a
// running engine, and checks that the receiver gets data equal, byte for
// byte, to the JSON PostgreSQL stores and, parsed, to what was written. An
// input that is valid JSON is the payload itself; any other string is
// wrapped as {"s": <string>}. Payloads PostgreSQL refuses (\u0000) must be
// refused by Enqueue with a validation error and never stop the engine.
func FuzzPayloadThroughRelay(f *testing.F) {
	for _, p := range outboxtest.RealWorldPayloads {
		f.Add(p)
	}
	f.Add("line1\nline2")
	f.Add(`say "hi" C:\Users`)
	f.Add("\xff\xfe not UTF-8")
	f.Add(`{"nul": "\u0000"}`)
	st := outboxtest.Store(f)
	rc := newReceiver(f, nil)
	createEndpoint(f, st, rc, "fuzz")
	startEngine(f, st, engineOpts{cfg: outboxPollFast()})
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, s string) {
		payload := []byte(s)
		if !json.Valid(payload) {
			payload, _ = json.Marshal(map[string]string{"s": s})
		}
		res, err := outbox.Enqueue(ctx, st.Pool(), outbox.Event{Type: "fuzz.payload", Tenant: "fuzz", Payload: payload},
			outbox.Options{Schema: st.Schema()})
		var ve *outbox.ValidationError
		if errors.As(err, &ve) {
			// \u0000, or nesting too deep for jsonb: refused before
			// anything is written, as it should be.
			return
		}
		if err != nil {
			t.Fatalf("enqueue %q: %v", payload, err)
		}
		var stored string
		if err := st.Pool().QueryRow(ctx, outboxtest.SQL(st.Schema(), `SELECT payload::text FROM {{schema}}.outbox WHERE id = $1`),
			res.ID).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		var got receipt
		eventually(t, 10*time.Second, "the payload's delivery", func() bool {
			for _, r := range rc.Accepted() {
				if r.ID == res.WebhookID {
					got = r
					return true
				}
			}
			return false
		})
		if string(got.Data) != stored {
			t.Fatalf("receiver got data %q, PostgreSQL stores %q", got.Data, stored)
		}
		var x, y any
		if err := json.Unmarshal(got.Data, &x); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(payload, &y); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(x, y) {
			t.Fatalf("receiver got %s, the application wrote %s", got.Data, payload)
		}
	})
}

// outboxPollFast polls often, so each fuzz input is delivered quickly.
func outboxPollFast() relay.Config { return relay.Config{PollInterval: 10 * time.Millisecond} }
