package httpapi_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/signature"
)

// received is one request a test receiver got.
type received struct {
	header http.Header
	body   []byte
}

// receiver is a customer's endpoint: it records requests by webhook-id and
// answers status.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    map[string]received
	status int
}

func newReceiver(t *testing.T, status int) *receiver {
	rc := &receiver{got: map[string]received{}, status: status}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.got[r.Header.Get(signature.HeaderID)] = received{header: r.Header.Clone(), body: b}
		rc.mu.Unlock()
		w.WriteHeader(rc.status)
		_, _ = fmt.Fprint(w, "thanks")
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) wait(t *testing.T, webhookID string) received {
	t.Helper()
	var r received
	waitFor(t, "delivery of "+webhookID, func() bool {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		var ok bool
		r, ok = rc.got[webhookID]
		return ok
	})
	return r
}

func mustSecret(t *testing.T, s string) signature.Secret {
	t.Helper()
	sec, err := signature.ParseSecret(s)
	if err != nil {
		t.Fatal(err)
	}
	return sec
}

// verifying lists, for each v1 signature of r, which of secrets verify it
// alone.
func verifying(t *testing.T, r received, secrets ...string) [][]int {
	t.Helper()
	var out [][]int
	for _, sig := range strings.Fields(r.header.Get(signature.HeaderSignature)) {
		if !strings.HasPrefix(sig, "v1,") {
			continue
		}
		h := r.header.Clone()
		h.Set(signature.HeaderSignature, sig)
		var ok []int
		for i, s := range secrets {
			if signature.Verify(h, r.body, mustSecret(t, s), 5*time.Minute, time.Now()) == nil {
				ok = append(ok, i)
			}
		}
		out = append(out, ok)
	}
	return out
}

func (e *env) publish(t *testing.T, body map[string]any) string {
	t.Helper()
	var res struct {
		WebhookID string `json:"webhook_id"`
	}
	e.do("POST", "/v1/events", body).must(t, 202).json(t, &res)
	return res.WebhookID
}

func TestRotateSecretSignsWithBothDuringGrace(t *testing.T) {
	e := newEnv(t, nil)
	rc := newReceiver(t, 200)
	e.runEngine(relay.Policy{Schedule: []time.Duration{time.Second}}, nil)

	a := e.createEndpoint(map[string]any{"url": rc.srv.URL, "tenant": "a"})
	var rotated outbox.Endpoint
	e.do("POST", "/v1/endpoints/"+a.ID+"/rotate-secret", map[string]string{"grace": "1h"}).must(t, 200).json(t, &rotated)
	if rotated.Secret == a.Secret || rotated.Secret == "" {
		t.Fatalf("rotated secret %q", rotated.Secret)
	}
	got := verifying(t, rc.wait(t, e.publish(t, map[string]any{"type": "x", "tenant": "a", "payload": 1})), a.Secret, rotated.Secret)
	if fmt.Sprint(got) != "[[1] [0]]" {
		t.Errorf("during grace: signatures verify with secrets %v, want [[1] [0]] (new, then old)", got)
	}

	// After the grace window (moved into the past) only the new one signs.
	e.exec(`UPDATE {{schema}}.endpoints SET old_secrets = jsonb_build_array(jsonb_set(old_secrets->0, '{expires_at}', to_jsonb(now() - interval '1 second')))
  WHERE id = $1`, a.ID)
	got = verifying(t, rc.wait(t, e.publish(t, map[string]any{"type": "x", "tenant": "a", "payload": 2})), a.Secret, rotated.Secret)
	if fmt.Sprint(got) != "[[1]]" {
		t.Errorf("after grace: %v, want [[1]]", got)
	}

	// A given secret, grace "0s": the old one stops at once.
	b := e.createEndpoint(map[string]any{"url": rc.srv.URL, "tenant": "b"})
	given, _ := signature.GenerateSecret()
	e.do("POST", "/v1/endpoints/"+b.ID+"/rotate-secret", map[string]string{"grace": "0s", "secret": given}).must(t, 200).json(t, &rotated)
	if rotated.Secret != given {
		t.Errorf("rotated to %q, want the given secret", rotated.Secret)
	}
	got = verifying(t, rc.wait(t, e.publish(t, map[string]any{"type": "x", "tenant": "b", "payload": 3})), b.Secret, given)
	if fmt.Sprint(got) != "[[1]]" {
		t.Errorf("grace 0s: %v, want [[1]]", got)
	}

	for body, field := range map[string]string{
		`{"grace":"-1h"}`: "grace", `{"grace":"soon"}`: "grace", `{"grace":"10000h"}`: "grace",
		`{"secret":"nope"}`: "secret", `{"grace":1}`: "grace",
	} {
		r := e.do("POST", "/v1/endpoints/"+b.ID+"/rotate-secret", body).must(t, 400)
		if _, f := r.err(t); f != field {
			t.Errorf("%s: field %q", body, f)
		}
	}
	e.do("POST", "/v1/endpoints/00000000-0000-0000-0000-000000000001/rotate-secret", nil).must(t, 404)
}

func TestTestSend(t *testing.T) {
	e := newEnv(t, nil)
	rc := newReceiver(t, 200)
	ep := e.createEndpoint(map[string]any{"url": rc.srv.URL})
	var res relay.TestResult
	e.do("POST", "/v1/endpoints/"+ep.ID+"/test", nil).must(t, 200).json(t, &res)
	if !res.Delivered || res.StatusCode != 200 || res.Response != "thanks" {
		t.Errorf("result %+v", res)
	}
	got := rc.wait(t, res.WebhookID)
	if err := signature.Verify(got.header, got.body, mustSecret(t, ep.Secret), time.Minute, time.Now()); err != nil {
		t.Errorf("receiver cannot verify the test event: %v", err)
	}

	down := newReceiver(t, 503)
	ep2 := e.createEndpoint(map[string]any{"url": down.srv.URL})
	e.do("POST", "/v1/endpoints/"+ep2.ID+"/test", nil).must(t, 200).json(t, &res)
	if res.Delivered || res.StatusCode != 503 || res.Error == "" {
		t.Errorf("failed test result %+v", res)
	}
	e.do("POST", "/v1/endpoints/00000000-0000-0000-0000-000000000001/test", nil).must(t, 404)
}

func TestMetricsMatchDeliveries(t *testing.T) {
	e := newEnv(t, nil)
	ok, failing := newReceiver(t, 200), newReceiver(t, 500)
	e.runEngine(relay.Policy{Schedule: []time.Duration{10 * time.Millisecond}}, relay.NewMetrics(e.reg))
	e.createEndpoint(map[string]any{"url": ok.srv.URL, "tenant": "m"})
	e.createEndpoint(map[string]any{"url": failing.srv.URL, "tenant": "m"})
	const n = 6
	for i := range n {
		e.publish(t, map[string]any{"type": "x", "tenant": "m", "payload": i})
	}
	waitFor(t, "all deliveries finished", func() bool {
		return e.queryInt(`SELECT count(*) FROM {{schema}}.deliveries WHERE state IN ('delivered', 'dead')`) == 2*n
	})

	r := e.doAuth("GET", "/metrics", "", nil).must(t, 200)
	counters := map[string]float64{}
	gauges := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(string(r.body)))
	for sc.Scan() {
		line := sc.Text()
		name, rest, _ := strings.Cut(line, "{")
		labels, val, _ := strings.Cut(rest, "} ")
		v, _ := strconv.ParseFloat(val, 64)
		switch name {
		case "hookrelay_deliveries_total":
			_, outcome, _ := strings.Cut(labels, `outcome="`)
			counters[strings.TrimSuffix(outcome, `"`)] += v
		case "hookrelay_queue_depth":
			_, state, _ := strings.Cut(labels, `state="`)
			gauges[strings.TrimSuffix(state, `"`)] = v
		}
	}
	for _, state := range []string{"delivered", "dead"} {
		want := float64(e.queryInt(`SELECT count(*) FROM {{schema}}.deliveries WHERE state = $1`, state))
		if want != n || counters[state] != want || gauges[state] != want {
			t.Errorf("%s: table %v, hookrelay_deliveries_total %v, hookrelay_queue_depth %v", state, want, counters[state], gauges[state])
		}
	}
	for _, want := range []string{"hookrelay_oldest_pending_age_seconds 0", "hookrelay_endpoints_disabled 0",
		"hookrelay_outbox_undispatched 0", "hookrelay_queue_stats_up 1", `hookrelay_queue_depth{state="pending"} 0`, "go_goroutines"} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
}
