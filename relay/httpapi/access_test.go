package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/relay/httpapi"
	"github.com/hookrelay/hookrelay/relay/relaytest"
)

// The tokens of the matrix, in its column order.
const (
	colAdmin = iota
	colA     // tenant a, read-write
	colARO   // tenant a, read-only
	colB     // tenant b
	colExp   // tenant a, expired
	colRev   // tenant a, revoked
	nCols
)

var colNames = [nCols]string{"admin", "A", "A read-only", "B", "expired", "revoked"}

// matrix is every /v1 route with the status each token gets. Paths name
// tenant a's objects ({ep} endpoint, {ev} event, {dl} its dead delivery,
// {tok} a token, {et} a catalog entry), made afresh for every cell, so B
// asks for another tenant's ids. Expired and revoked tokens get 401
// everywhere.
var matrix = []struct {
	method, path string
	body         string
	status       [4]int // admin, A, A read-only, B
}{
	{"GET", "/v1/openapi.json", "", [4]int{200, 200, 200, 200}},
	{"GET", "/v1/endpoints", "", [4]int{200, 200, 200, 200}},
	{"POST", "/v1/endpoints", `{"url": "https://a.test/new", "tenant": "a"}`, [4]int{201, 201, 403, 403}},
	{"GET", "/v1/endpoints/{ep}", "", [4]int{200, 200, 200, 404}},
	{"PATCH", "/v1/endpoints/{ep}", `{"description": "x"}`, [4]int{200, 200, 403, 404}},
	{"DELETE", "/v1/endpoints/{ep}", "", [4]int{204, 204, 403, 404}},
	{"POST", "/v1/endpoints/{ep}/rotate-secret", "", [4]int{200, 200, 403, 404}},
	{"POST", "/v1/endpoints/{ep}/test", "", [4]int{200, 200, 403, 404}},
	{"POST", "/v1/endpoints/{ep}/recover", `{"since": "2000-01-01T00:00:00Z"}`, [4]int{200, 200, 403, 404}},
	{"POST", "/v1/endpoints/{ep}/backfill", `{"since": "2000-01-01T00:00:00Z"}`, [4]int{200, 200, 403, 404}},
	{"GET", "/v1/endpoints/{ep}/blocked-keys", "", [4]int{200, 200, 200, 404}},
	{"GET", "/v1/events", "", [4]int{200, 200, 200, 200}},
	{"POST", "/v1/events", `{"type": "signup.created", "tenant": "a", "payload": {}}`, [4]int{202, 403, 403, 403}},
	{"GET", "/v1/events/{ev}", "", [4]int{200, 200, 200, 404}},
	{"GET", "/v1/events/{ev}/trace", "", [4]int{200, 200, 200, 404}},
	{"POST", "/v1/events/{ev}/replay", "", [4]int{200, 200, 403, 404}},
	{"GET", "/v1/deliveries", "", [4]int{200, 200, 200, 200}},
	{"GET", "/v1/deliveries/{dl}", "", [4]int{200, 200, 200, 404}},
	{"GET", "/v1/deliveries/{dl}/attempts", "", [4]int{200, 200, 200, 404}},
	{"POST", "/v1/deliveries/{dl}/retry", "", [4]int{200, 200, 403, 404}},
	{"POST", "/v1/deliveries/{dl}/cancel", "", [4]int{200, 200, 403, 404}},
	{"GET", "/v1/attempts?tenant=a", "", [4]int{200, 200, 200, 200}},
	{"POST", "/v1/tokens", `{"tenant": "a", "expires_in": "1h"}`, [4]int{201, 403, 403, 403}},
	{"GET", "/v1/tokens", "", [4]int{200, 403, 403, 403}},
	{"DELETE", "/v1/tokens/{tok}", "", [4]int{200, 403, 403, 403}},
	{"GET", "/v1/event-types", "", [4]int{200, 200, 200, 200}},
	{"GET", "/v1/event-types/{et}", "", [4]int{200, 200, 200, 200}},
	{"PUT", "/v1/event-types/{et}", `{"description": "x"}`, [4]int{200, 403, 403, 403}},
	{"DELETE", "/v1/event-types/{et}", "", [4]int{204, 403, 403, 403}},
	{"POST", "/v1/portal/sessions", `{"tenant": "a"}`, [4]int{201, 201, 403, 403}},
}

// TestRouteTokenMatrix runs every /v1 route with each kind of token and
// checks the status against the matrix; a route without a row fails it.
func TestRouteTokenMatrix(t *testing.T) {
	logs := &relaytest.SyncBuffer{}
	logger := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(logs), zap.DebugLevel))
	e := newEnv(t, func(o *httpapi.Options) { o.Log = logger; withPortal(t, o) })
	ctx := context.Background()
	st := e.Store

	// Every route has a row, and every row a route.
	routes := httpapi.RouteAccess()
	var rows []string
	for _, m := range matrix {
		rows = append(rows, m.method+" "+strings.SplitN(m.path, "?", 2)[0])
	}
	for rt := range routes {
		pattern := rt
		for _, p := range []string{"{id}", "{name}"} {
			pattern = strings.ReplaceAll(pattern, p, "*")
		}
		found := slices.ContainsFunc(rows, func(r string) bool { return placeholders(r) == pattern })
		if !found {
			t.Errorf("route %s has no row in the matrix", rt)
		}
	}
	if len(rows) != len(routes) {
		t.Errorf("the matrix has %d rows for %d routes", len(rows), len(routes))
	}

	// The tokens.
	var values [nCols]string
	for col, in := range map[int]outbox.TokenInput{
		colA: {Tenant: "a"}, colARO: {Tenant: "a", ReadOnly: true}, colB: {Tenant: "b"},
		colExp: {Tenant: "a", ExpiresIn: time.Hour}, colRev: {Tenant: "a"},
	} {
		tok, err := st.CreateToken(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		values[col] = tok.Value
		switch col {
		case colExp:
			e.exec(`UPDATE {{schema}}.tokens SET expires_at = now() - interval '1 second' WHERE id = $1`, tok.ID)
		case colRev:
			if _, err := st.RevokeToken(ctx, tok.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	values[colAdmin] = e.token
	// Tenant b has an endpoint and an event of its own.
	if _, err := st.CreateEndpoint(ctx, outbox.EndpointInput{Tenant: "b", URL: "https://b.test/h", Secret: relaytestSecret(t)}, 0); err != nil {
		t.Fatal(err)
	}

	var n atomic.Int64
	for _, m := range matrix {
		for col := range nCols {
			want := http.StatusUnauthorized
			if col < 4 {
				want = m.status[col]
			}
			ids := seed(t, e, n.Add(1))
			path := strings.NewReplacer("{ep}", ids.ep, "{ev}", ids.ev, "{dl}", ids.dl, "{tok}", ids.tok, "{et}", ids.et).Replace(m.path)
			var body any
			if m.body != "" {
				body = m.body
			}
			got := e.doAuth(m.method, path, "Bearer "+values[col], body)
			if got.status != want {
				t.Errorf("%s %s with the %s token: %d, want %d: %s", m.method, m.path, colNames[col], got.status, want, got.body)
			}
		}
	}

	// A B-token list shows B's rows only.
	var eps struct{ Endpoints []outbox.Endpoint }
	e.doAuth("GET", "/v1/endpoints", "Bearer "+values[colB], nil).must(t, 200).json(t, &eps)
	if len(eps.Endpoints) != 1 || eps.Endpoints[0].Tenant != "b" {
		t.Errorf("tenant b's endpoint list: %+v", eps.Endpoints)
	}
	// No token value in any log line.
	for col, v := range values {
		if col != colAdmin && strings.Contains(logs.String(), strings.TrimPrefix(v, "hrt_")) {
			t.Errorf("the %s token appears in the logs", colNames[col])
		}
	}
}

// placeholders turns the ids of a matrix path into the route's wildcards.
func placeholders(r string) string {
	for _, p := range []string{"{ep}", "{ev}", "{dl}", "{tok}", "{et}"} {
		r = strings.ReplaceAll(r, p, "*")
	}
	return r
}

func relaytestSecret(t *testing.T) string {
	s, _ := relaytest.NewSecret(t)
	return s
}

// seeded are tenant a's objects for one matrix cell.
type seeded struct{ ep, ev, dl, tok, et string }

// seed makes tenant a's objects: an endpoint that refuses connections, an
// event fanned out to it whose delivery is dead, a token and a catalog
// entry.
func seed(t *testing.T, e *env, n int64) seeded {
	t.Helper()
	ctx := context.Background()
	st := e.Store
	ep, err := st.CreateEndpoint(ctx, outbox.EndpointInput{Tenant: "a", URL: "http://127.0.0.1:1/h", Secret: relaytestSecret(t)}, 0)
	if err != nil {
		t.Fatal(err)
	}
	res, err := outbox.Enqueue(ctx, st.Pool(), outbox.Event{Type: "signup.created", Tenant: "a", EndpointID: ep.ID, Payload: []byte(`{}`)},
		outbox.Options{Schema: st.Schema()})
	if err != nil {
		t.Fatal(err)
	}
	d, err := st.DispatchClaim(ctx, 100, outbox.ClaimParams{Limit: 100, Lease: time.Minute, PerEndpoint: 100})
	if err != nil {
		t.Fatal(err)
	}
	var outs []outbox.Outcome
	var dl int64
	for _, c := range d.Claimed {
		if c.EventID == res.ID {
			dl = c.DeliveryID
		}
		outs = append(outs, outbox.Outcome{DeliveryID: c.DeliveryID, LeaseToken: c.LeaseToken, EventID: c.EventID, EndpointID: c.EndpointID,
			Attempt: 1, State: outbox.StateDead, StartedAt: time.Now(), Result: "dead", ErrorClass: "connection_refused", Error: "refused"})
	}
	if _, err := st.Complete(ctx, outs); err != nil || dl == 0 {
		t.Fatalf("complete: %v (delivery %d)", err, dl)
	}
	tok, err := st.CreateToken(ctx, outbox.TokenInput{Tenant: "a"})
	if err != nil {
		t.Fatal(err)
	}
	et := fmt.Sprintf("matrix.t%d", n)
	if _, _, err := st.PutEventType(ctx, outbox.EventType{Name: et}); err != nil {
		t.Fatal(err)
	}
	return seeded{ep: ep.ID, ev: strconv.FormatInt(res.ID, 10), dl: strconv.FormatInt(dl, 10), tok: tok.ID, et: et}
}

// TestRevokedTokenRefusedOnEveryReplica revokes a token through one
// replica's API; the other replica refuses it on the next request.
func TestRevokedTokenRefusedOnEveryReplica(t *testing.T) {
	t.Parallel()
	one := newEnv(t, nil)
	two := newEnvOn(t, one.Store)
	var tok outbox.Token
	one.do("POST", "/v1/tokens", map[string]any{"tenant": "acme", "read_only": true, "description": "portal"}).must(t, 201).json(t, &tok)
	if !strings.HasPrefix(tok.Value, "hrt_") || tok.ExpiresAt != nil || !tok.ReadOnly {
		t.Fatalf("created token %+v", tok)
	}
	two.doAuth("GET", "/v1/endpoints", "Bearer "+tok.Value, nil).must(t, 200)
	var list struct{ Tokens []outbox.Token }
	one.do("GET", "/v1/tokens?tenant=acme", nil).must(t, 200).json(t, &list)
	if len(list.Tokens) != 1 || list.Tokens[0].Value != "" {
		t.Fatalf("token list %+v: want one token without its value", list.Tokens)
	}
	one.do("DELETE", "/v1/tokens/"+tok.ID, nil).must(t, 200)
	r := two.doAuth("GET", "/v1/endpoints", "Bearer "+tok.Value, nil).must(t, 401)
	if code, _ := r.err(t); code != "unauthorized" {
		t.Errorf("revoked token: code %q", code)
	}
}

// newEnvOn is a second API (another replica) on the store of an env.
func newEnvOn(t *testing.T, store *outbox.Store) *env {
	t.Helper()
	return newAPI(t, store, nil, nil)
}
