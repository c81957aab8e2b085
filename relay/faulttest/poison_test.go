package faulttest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
	"github.com/hookrelay/hookrelay/outbox/secretbox"
	"github.com/hookrelay/hookrelay/relay/relaytest"
)

// The poison cases: ordinary content that once stopped delivery for every
// tenant. Each case runs the real binary next to a healthy endpoint and
// asserts that the healthy one is not held back and that the odd input is
// delivered exactly or recorded once.

// dataOf returns the raw bytes of the "data" member of a webhook body.
func dataOf(t testing.TB, body []byte) json.RawMessage {
	t.Helper()
	var b struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatalf("body is not JSON: %v\n%q", err, body)
	}
	return b.Data
}

// sameJSON reports whether a and b parse to the same value.
func sameJSON(t testing.TB, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("not JSON: %v\n%q", err, a)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("not JSON: %v\n%q", err, b)
	}
	return reflect.DeepEqual(x, y)
}

// TestFaultPayloadsArriveAsWritten writes real-world payloads through plain
// SQL and through outbox.Enqueue, and checks that the receiver gets each
// one's data byte for byte as PostgreSQL stores it and equal in value to
// what was written; hookrelay's own hookrelay.delivery.dead event, whose
// last_error holds quotes, arrives too.
func TestFaultPayloadsArriveAsWritten(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := outboxtest.Store(t)
	rc := relaytest.NewReceiver(t)
	if _, err := st.CreateEndpoint(ctx, outbox.EndpointInput{Tenant: "acme", URL: rc.URL(), Secret: rc.Secret}, 0); err != nil {
		t.Fatal(err)
	}
	ops := relaytest.NewReceiver(t)
	if _, err := st.CreateEndpoint(ctx, outbox.EndpointInput{Tenant: "hookrelay", URL: ops.URL(), Secret: ops.Secret,
		EventTypes: []string{"hookrelay.delivery.dead"}}, 0); err != nil {
		t.Fatal(err)
	}
	// A refused endpoint: its delivery dies fast and the error text
	// (`Post "http://...": dial tcp ...: connection refused`) has quotes.
	refused := freeAddr(t)
	if _, err := st.CreateEndpoint(ctx, outbox.EndpointInput{Tenant: "dead", URL: "http://" + refused + "/hook",
		Secret: rc.Secret}, 0); err != nil {
		t.Fatal(err)
	}
	startRelay(t, relayEnv(outboxtest.Shared().URL(), st.Schema(), "HOOKRELAY_RETRY_SCHEDULE=100ms"))

	written := map[int64]string{}
	for i, p := range outboxtest.RealWorldPayloads {
		var id int64
		if i%2 == 0 {
			err := st.Pool().QueryRow(ctx, outboxtest.SQL(st.Schema(), `INSERT INTO {{schema}}.outbox (event_type, tenant, payload)
				VALUES ('signup.created', 'acme', $1) RETURNING id`), p).Scan(&id)
			if err != nil {
				t.Fatalf("insert %s: %v", p, err)
			}
		} else {
			res, err := outbox.Enqueue(ctx, st.Pool(), outbox.Event{Type: "signup.created", Tenant: "acme", Payload: json.RawMessage(p)},
				outbox.Options{Schema: st.Schema()})
			if err != nil {
				t.Fatalf("enqueue %s: %v", p, err)
			}
			id = res.ID
		}
		written[id] = p
	}
	if _, err := st.Pool().Exec(ctx, outboxtest.SQL(st.Schema(), `INSERT INTO {{schema}}.outbox (event_type, tenant, payload)
		VALUES ('signup.created', 'dead', '{}')`)); err != nil {
		t.Fatal(err)
	}

	eventually(t, 30*time.Second, "every payload received", func() bool { return rc.Unique() >= len(written) })
	for id, p := range written {
		var webhookID, stored string
		if err := st.Pool().QueryRow(ctx, outboxtest.SQL(st.Schema(), `SELECT 'msg_' || replace(uid::text, '-', ''), payload::text FROM {{schema}}.outbox WHERE id = $1`), id).Scan(&webhookID, &stored); err != nil {
			t.Fatal(err)
		}
		data := dataOf(t, rc.Body(webhookID))
		if string(data) != stored {
			t.Errorf("event %d: receiver got data %q, PostgreSQL stores %q", id, data, stored)
		}
		if !sameJSON(t, data, []byte(p)) {
			t.Errorf("event %d: receiver got %s, the application wrote %s", id, data, p)
		}
	}
	eventually(t, 30*time.Second, "the dead delivery's operational event", func() bool { return ops.Unique() >= 1 })
	body := ops.Accepted()[0].Body
	var dead struct {
		LastError string `json:"last_error"`
	}
	if err := json.Unmarshal(dataOf(t, body), &dead); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(dead.LastError, `"`) || !strings.Contains(dead.LastError, refused) {
		t.Errorf("hookrelay.delivery.dead last_error %q: want the refused endpoint's error, quotes included", dead.LastError)
	}
	_, dups, bad, _ := rc.Stats()
	if dups != 0 || bad != 0 {
		t.Errorf("%d duplicates, %d bad signatures", dups, bad)
	}
}

// hostile is a receiver that misbehaves in one way and counts requests.
type hostile struct {
	name     string
	srv      *httptest.Server
	requests atomic.Int64
}

func newHostile(t *testing.T, name string, h func(w http.ResponseWriter, r *http.Request, stop <-chan struct{})) *hostile {
	t.Helper()
	stop := make(chan struct{})
	x := &hostile{name: name}
	x.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		x.requests.Add(1)
		h(w, r, stop)
	}))
	t.Cleanup(func() {
		close(stop)
		x.srv.CloseClientConnections()
		x.srv.Close()
	})
	return x
}

func (x *hostile) count() int { return int(x.requests.Load()) }

// TestFaultHostileReceivers runs one hostile receiver of each kind (a NUL
// byte in the answer, invalid UTF-8, huge headers, an endless body, no
// answer at all) next to a healthy endpoint. The healthy endpoint drains
// with no re-send and before the first hostile request times out; each
// hostile event is attempted and recorded exactly once (the retry schedule
// is long), with what was stored readable.
func TestFaultHostileReceivers(t *testing.T) {
	const events = 2000
	const hostileTimeout = 10 * time.Second
	kinds := []struct {
		name   string
		handle func(w http.ResponseWriter, r *http.Request, stop <-chan struct{})
	}{
		{"nul_body", func(w http.ResponseWriter, r *http.Request, _ <-chan struct{}) {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte("bad\x00answer\x00"))
		}},
		{"nul_body_2xx", func(w http.ResponseWriter, r *http.Request, _ <-chan struct{}) {
			_, _ = w.Write([]byte("ok\x00"))
		}},
		{"invalid_utf8", func(w http.ResponseWriter, r *http.Request, _ <-chan struct{}) {
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte("caf\xe9 \xff\xfe \xc3"))
		}},
		{"huge_headers", func(w http.ResponseWriter, r *http.Request, _ <-chan struct{}) {
			for i := range 64 {
				w.Header().Set(fmt.Sprintf("X-Big-%d", i), strings.Repeat("h", 16<<10))
			}
			w.WriteHeader(http.StatusOK)
		}},
		{"endless_body", func(w http.ResponseWriter, r *http.Request, stop <-chan struct{}) {
			w.WriteHeader(http.StatusServiceUnavailable)
			chunk := bytes.Repeat([]byte("endless "), 1024)
			for {
				select {
				case <-stop:
					return
				case <-r.Context().Done():
					return
				default:
				}
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}},
		{"never_answers", func(w http.ResponseWriter, r *http.Request, stop <-chan struct{}) {
			select {
			case <-stop:
			case <-r.Context().Done():
			}
		}},
	}
	run := func(t *testing.T, withHostile bool) time.Duration {
		ctx := context.Background()
		st := outboxtest.Store(t)
		healthy := relaytest.NewReceiver(t)
		hep, err := st.CreateEndpoint(ctx, outbox.EndpointInput{Tenant: "healthy", URL: healthy.URL(), Secret: healthy.Secret}, 0)
		if err != nil {
			t.Fatal(err)
		}
		var hostiles []*hostile
		if withHostile {
			for _, k := range kinds {
				x := newHostile(t, k.name, k.handle)
				if _, err := st.CreateEndpoint(ctx, outbox.EndpointInput{Tenant: "hostile", URL: x.srv.URL + "/hook", Secret: healthy.Secret}, 0); err != nil {
					t.Fatal(err)
				}
				hostiles = append(hostiles, x)
			}
			// The hostile events first, so their answers land in the
			// same recording batches as the healthy ones.
			if _, err := st.Pool().Exec(ctx, outboxtest.SQL(st.Schema(), `INSERT INTO {{schema}}.outbox (event_type, tenant, payload)
				SELECT 'poison.test', 'hostile', jsonb_build_object('n', g) FROM generate_series(1, 5) g`)); err != nil {
				t.Fatal(err)
			}
		}
		// A request timeout far above the healthy drain's time, even on a
		// loaded machine: the healthy endpoint must finish before the
		// first hostile request could time out.
		startRelay(t, relayEnv(outboxtest.Shared().URL(), st.Schema(), "HOOKRELAY_RETRY_SCHEDULE=1h",
			"HOOKRELAY_REQUEST_TIMEOUT="+hostileTimeout.String(), "HOOKRELAY_LEASE_DURATION="+(3*hostileTimeout).String(),
			fmt.Sprintf("HOOKRELAY_ENDPOINT_MAX_IN_FLIGHT=%d", maxInFlight/2), "HOOKRELAY_POLL_INTERVAL=50ms"))
		start := time.Now()
		if _, err := st.Pool().Exec(ctx, outboxtest.SQL(st.Schema(), `INSERT INTO {{schema}}.outbox (event_type, tenant, payload)
			SELECT 'fault.test', 'healthy', jsonb_build_object('n', g, 'pad', repeat('x', 64)) FROM generate_series(1, $1) g`), events); err != nil {
			t.Fatal(err)
		}
		eventually(t, 90*time.Second, "the healthy endpoint received everything", func() bool { return healthy.Unique() >= events })
		_, _, _, last := healthy.Stats()
		d := last.Sub(start)
		if withHostile && d >= hostileTimeout {
			t.Errorf("the healthy endpoint drained in %v, longer than the hostile requests' timeout (%v): it waited for them", d, hostileTimeout)
		}
		q := outboxtest.SQL(st.Schema(), `SELECT count(*) FROM {{schema}}.deliveries WHERE state = 'delivered' AND endpoint_id = $1`)
		eventually(t, 30*time.Second, "the healthy deliveries recorded", func() bool { return count(st, q, hep.ID) == events })
		// Every hostile delivery has had its one attempt recorded.
		if withHostile {
			attempts := outboxtest.SQL(st.Schema(), `SELECT count(*) FROM {{schema}}.attempts a JOIN {{schema}}.endpoints e ON e.id = a.endpoint_id WHERE e.tenant = 'hostile'`)
			want := 5 * len(kinds)
			eventually(t, 30*time.Second, "the hostile attempts recorded", func() bool { return count(st, attempts) >= want })
			if n := count(st, attempts); n != want {
				t.Errorf("%d hostile attempts recorded, want %d (one per delivery)", n, want)
			}
			for _, x := range hostiles {
				if n := x.count(); n != 5 {
					t.Errorf("%s got %d requests for 5 events, want 5 (no re-sends)", x.name, n)
				}
			}
			rows, err := st.Pool().Query(ctx, outboxtest.SQL(st.Schema(), `SELECT e.url, a.outcome, a.error_class, a.response_excerpt, a.error FROM {{schema}}.attempts a
				JOIN {{schema}}.endpoints e ON e.id = a.endpoint_id WHERE e.tenant = 'hostile' ORDER BY e.url, a.id`))
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for rows.Next() {
				var url, outcome, class, excerpt, msg string
				if err := rows.Scan(&url, &outcome, &class, &excerpt, &msg); err != nil {
					t.Fatal(err)
				}
				if len(excerpt) > outbox.MaxResponseBytes || len(msg) > outbox.MaxErrorBytes {
					t.Errorf("%s: stored excerpt of %d bytes, error of %d: unbounded", url, len(excerpt), len(msg))
				}
				if !seen[url] {
					seen[url] = true
					t.Logf("%s: outcome %s class %q excerpt %.60q error %.80q", url, outcome, class, excerpt, msg)
				}
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
		}
		checkFigures(t, st, hep.ID, healthy, d, 0, "no crash (re-sends to the healthy endpoint)")
		return d
	}
	alone, with := aloneAndBeside(t, "with_hostile", run)
	if alone > 0 && with > 0 {
		t.Logf("healthy drain: alone %v, next to %d hostile receivers %v (ratio %.2f; hookbench measures isolation)",
			alone.Round(time.Millisecond), len(kinds), with.Round(time.Millisecond), with.Seconds()/alone.Seconds())
	}
}

// newKey returns a fresh HOOKRELAY_SECRET_KEY value.
func newKey(t testing.TB) string {
	t.Helper()
	k := make([]byte, secretbox.KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(k)
}

// TestFaultSealedSecrets covers secrets at rest: sealed secrets without
// their key, or with a key that opens none of them, stop start-up with a
// message naming HOOKRELAY_SECRET_KEY and change nothing; one tampered
// secret holds back only its own endpoint's deliveries.
func TestFaultSealedSecrets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := outboxtest.Store(t)
	key := newKey(t)
	box, err := secretbox.FromConfig(key)
	if err != nil {
		t.Fatal(err)
	}
	st.SetSecretCodec(box)
	good, tampered := relaytest.NewReceiver(t), relaytest.NewReceiver(t)
	goodEP, err := st.CreateEndpoint(ctx, outbox.EndpointInput{Tenant: "acme", URL: good.URL(), Secret: good.Secret}, 0)
	if err != nil {
		t.Fatal(err)
	}
	badEP, err := st.CreateEndpoint(ctx, outbox.EndpointInput{Tenant: "globex", URL: tampered.URL(), Secret: tampered.Secret}, 0)
	if err != nil {
		t.Fatal(err)
	}
	dbURL := outboxtest.Shared().URL()
	env := func(extra ...string) []string {
		return relayEnv(dbURL, st.Schema(), append([]string{"HOOKRELAY_LISTEN_ADDR=" + freeAddr(t)}, extra...)...)
	}
	before := checksum(t, st)
	for name, extra := range map[string][]string{
		"no_key":    nil,
		"wrong_key": {"HOOKRELAY_SECRET_KEY=" + newKey(t)},
	} {
		res := runBinary(t, env(extra...), "run")
		if res.Code != 2 || !strings.Contains(res.Stderr, "HOOKRELAY_SECRET_KEY") || !strings.Contains(res.Stderr, "sealed") {
			t.Errorf("%s: exit %d, want 2 with a message naming HOOKRELAY_SECRET_KEY and the sealed secrets:\n%s", name, res.Code, tail(res.Stderr, 2000))
		}
		if strings.Contains(res.Stderr, "plain text") {
			t.Errorf("%s: says secrets are in plain text, but they are sealed:\n%s", name, tail(res.Stderr, 2000))
		}
		if after := checksum(t, st); after != before {
			t.Errorf("%s: the refused start changed the database", name)
		}
	}

	// One secret altered in the table: the relay starts, says which
	// endpoint, and only that endpoint's deliveries wait.
	if _, err := st.Pool().Exec(ctx, outboxtest.SQL(st.Schema(), `UPDATE {{schema}}.endpoints SET secret = overlay(secret placing 'AAAA' from length(secret) - 8) WHERE id = $1`), badEP.ID); err != nil {
		t.Fatal(err)
	}
	p := startRelay(t, relayEnv(dbURL, st.Schema(), "HOOKRELAY_SECRET_KEY="+key))
	for _, tenant := range []string{"acme", "globex", "acme"} {
		for range 10 {
			if _, err := st.Pool().Exec(ctx, outboxtest.SQL(st.Schema(), `INSERT INTO {{schema}}.outbox (event_type, tenant, payload) VALUES ('t', $1, '{}')`), tenant); err != nil {
				t.Fatal(err)
			}
		}
	}
	eventually(t, 30*time.Second, "acme's deliveries", func() bool { return good.Unique() >= 20 })
	waiting := outboxtest.SQL(st.Schema(), `SELECT count(*) FROM {{schema}}.deliveries WHERE endpoint_id = $1 AND state = 'pending'
		AND attempts = 0 AND next_attempt_at > now() AND last_error LIKE 'cannot sign:%'`)
	eventually(t, 30*time.Second, "globex's deliveries waiting with the reason", func() bool { return count(st, waiting, badEP.ID) == 10 })
	if n := tampered.Unique(); n != 0 {
		t.Errorf("the tampered endpoint got %d deliveries", n)
	}
	// Nothing is held in flight waiting for a lease to expire: the good
	// endpoint's last outcomes are recorded within their batch delay.
	inFlight := outboxtest.SQL(st.Schema(), `SELECT count(*) FROM {{schema}}.deliveries WHERE state = 'in_flight'`)
	eventually(t, 5*time.Second, "no delivery left in flight", func() bool { return count(st, inFlight) == 0 })
	logs := p.logs.String()
	if !strings.Contains(logs, badEP.ID) || strings.Contains(logs, goodEP.ID+`","error`) {
		t.Errorf("start-up log does not name the tampered endpoint (or blames the good one):\n%s", tail(logs, 3000))
	}
	if n := strings.Count(logs, "signing secret cannot be used"); n > 1 {
		t.Errorf("the unusable secret was logged %d times for 10 deliveries, want once", n)
	}
}

// TestFaultEndpointIDAcrossTenants checks that an event naming another
// tenant's endpoint reaches nobody, over SQL and over HTTP.
func TestFaultEndpointIDAcrossTenants(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := outboxtest.Store(t)
	acme, globex := relaytest.NewReceiver(t), relaytest.NewReceiver(t)
	if _, err := st.CreateEndpoint(ctx, outbox.EndpointInput{Tenant: "acme", URL: acme.URL(), Secret: acme.Secret}, 0); err != nil {
		t.Fatal(err)
	}
	gep, err := st.CreateEndpoint(ctx, outbox.EndpointInput{Tenant: "globex", URL: globex.URL(), Secret: globex.Secret}, 0)
	if err != nil {
		t.Fatal(err)
	}
	const token = "fault-test-admin-token-0123456789abcdef"
	p := startRelay(t, relayEnv(outboxtest.Shared().URL(), st.Schema(), "HOOKRELAY_ADMIN_TOKEN="+token))
	var id int64
	if err := st.Pool().QueryRow(ctx, outboxtest.SQL(st.Schema(), `INSERT INTO {{schema}}.outbox (event_type, tenant, payload, endpoint_id)
		VALUES ('t', 'acme', '{"cross": true}', $1) RETURNING id`), gep.ID).Scan(&id); err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`{"type":"t","tenant":"acme","endpoint_id":%q,"payload":{}}`, gep.ID)
	req, err := http.NewRequest(http.MethodPost, p.base+"/v1/events", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(msg), "endpoint_id") {
		t.Errorf("POST /v1/events with another tenant's endpoint_id: %d %s, want 400 naming endpoint_id", resp.StatusCode, msg)
	}
	// A control event behind it shows the fan-out went past the row.
	if _, err := st.Pool().Exec(ctx, outboxtest.SQL(st.Schema(), `INSERT INTO {{schema}}.outbox (event_type, tenant, payload) VALUES ('t', 'acme', '{}')`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the control event", func() bool { return acme.Unique() == 1 })
	ev, err := st.GetEvent(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if ev.DispatchedAt == nil || !strings.Contains(ev.DispatchError, `names no endpoint of tenant "acme"`) {
		t.Errorf("cross-tenant event: dispatched_at %v dispatch_error %q", ev.DispatchedAt, ev.DispatchError)
	}
	if n := globex.Unique(); n != 0 {
		t.Errorf("globex's endpoint got %d of acme's events", n)
	}
}

// TestFaultHealthzBeforeDatabase starts the relay while its database is
// unreachable: /healthz answers 200 at once and /readyz 503 with the
// reason; when the database comes, the relay becomes ready and delivers.
func TestFaultHealthzBeforeDatabase(t *testing.T) {
	t.Parallel()
	st := outboxtest.Store(t)
	rc := relaytest.NewReceiver(t)
	addEndpoint(t, st, rc)
	insertEvents(t, st, 5)
	dbURL := outboxtest.Shared().URL()
	px := newProxy(t, hostPort(t, dbURL))
	px.setRefuse(true)
	addr := freeAddr(t)
	p := startRelayNoWait(t, append(relayEnv(viaProxy(t, dbURL, px.addr()), st.Schema()), "HOOKRELAY_LISTEN_ADDR="+addr))
	eventually(t, 15*time.Second, "/healthz answering", func() bool { return statusOf(p.base+"/healthz") == http.StatusOK })
	code, body := getBody(t, p.base+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "database unreachable") {
		t.Fatalf("/readyz while the database is unreachable: %d %s, want 503 naming the database", code, body)
	}
	px.setRefuse(false)
	eventually(t, 30*time.Second, "/readyz 200 once the database is back", func() bool { return p.ready() == http.StatusOK })
	eventually(t, 30*time.Second, "the events delivered", func() bool { return rc.Unique() == 5 })
}

// TestFaultProxyKeepsTheGuard sends through an outbound proxy
// (HOOKRELAY_HTTP_PROXY) to an endpoint on loopback while private
// destinations are not allowed: nothing reaches the proxy, and the
// deliveries fail as refused destinations.
func TestFaultProxyKeepsTheGuard(t *testing.T) {
	t.Parallel()
	st := outboxtest.Store(t)
	var proxied atomic.Int64
	proxySrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxied.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(proxySrv.Close)
	rc := relaytest.NewReceiver(t)
	epID := addEndpoint(t, st, rc) // stored directly: the CLI and API would refuse it
	insertEvents(t, st, 3)
	startRelay(t, relayEnv(outboxtest.Shared().URL(), st.Schema(), "HOOKRELAY_ALLOW_PRIVATE_DESTINATIONS=false",
		"HOOKRELAY_HTTP_PROXY="+proxySrv.URL, "HOOKRELAY_RETRY_SCHEDULE=1h"))
	refused := outboxtest.SQL(st.Schema(), `SELECT count(*) FROM {{schema}}.attempts WHERE endpoint_id = $1 AND error_class = 'destination_refused'`)
	eventually(t, 30*time.Second, "three refused attempts", func() bool { return count(st, refused, epID) == 3 })
	if n := proxied.Load(); n != 0 {
		t.Errorf("the proxy got %d requests for a refused destination", n)
	}
	if n := rc.Unique(); n != 0 {
		t.Errorf("the receiver got %d deliveries", n)
	}
}

// TestFaultHungEndpointOnASharedHost puts a hung endpoint and a healthy
// one on the same host and port (two paths of one server), as tenants'
// endpoints on one webhook provider are: the healthy endpoint drains
// before the first hung request could time out.
func TestFaultHungEndpointOnASharedHost(t *testing.T) {
	t.Parallel()
	const events, hungTimeout = 500, 10 * time.Second
	ctx := context.Background()
	st := outboxtest.Store(t)
	rc := relaytest.NewReceiver(t)
	rc.Respond = func(w http.ResponseWriter, r *http.Request, got relaytest.Receipt) int {
		if r.URL.Path == "/hang" {
			<-r.Context().Done()
			return http.StatusGatewayTimeout
		}
		return http.StatusNoContent
	}
	if _, err := st.CreateEndpoint(ctx, outbox.EndpointInput{Tenant: "hung", URL: "http://" + rc.Addr() + "/hang", Secret: rc.Secret}, 0); err != nil {
		t.Fatal(err)
	}
	healthy, err := st.CreateEndpoint(ctx, outbox.EndpointInput{Tenant: "healthy", URL: rc.URL(), Secret: rc.Secret}, 0)
	if err != nil {
		t.Fatal(err)
	}
	startRelay(t, relayEnv(outboxtest.Shared().URL(), st.Schema(), "HOOKRELAY_RETRY_SCHEDULE=1h",
		"HOOKRELAY_REQUEST_TIMEOUT="+hungTimeout.String(), "HOOKRELAY_LEASE_DURATION="+(3*hungTimeout).String(),
		// Each endpoint may use half the process's requests, as by default
		// (16 of 256) it may use a sixteenth.
		fmt.Sprintf("HOOKRELAY_ENDPOINT_MAX_IN_FLIGHT=%d", maxInFlight/2)))
	// The hung endpoint's events first, so its requests are in flight.
	for _, tenant := range []string{"hung", "healthy"} {
		if _, err := st.Pool().Exec(ctx, outboxtest.SQL(st.Schema(), `INSERT INTO {{schema}}.outbox (event_type, tenant, payload)
			SELECT 't', $1, jsonb_build_object('n', g) FROM generate_series(1, $2) g`), tenant, events); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	delivered := outboxtest.SQL(st.Schema(), `SELECT count(*) FROM {{schema}}.deliveries WHERE endpoint_id = $1 AND state = 'delivered'`)
	eventually(t, 60*time.Second, "the healthy endpoint's deliveries", func() bool { return count(st, delivered, healthy.ID) == events })
	if d := time.Since(start); d >= hungTimeout {
		t.Errorf("the healthy endpoint drained in %v, after the hung requests' timeout (%v): it waited for connections the hung endpoint held", d, hungTimeout)
	}
}
