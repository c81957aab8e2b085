package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/endpoint"
	"github.com/hookrelay/hookrelay/relay/httpapi"
	"github.com/hookrelay/hookrelay/relay/relaytest"
)

func TestMain(m *testing.M) { os.Exit(outboxtest.Main(m)) }

const token = "test-admin-token"

// env is one API under test.
type env struct {
	relaytest.Front
	token string // the admin token
	reg   *prometheus.Registry
	t     *testing.T
}

// newEnv is an API on a fresh schema; mod (when not nil) changes its
// options.
func newEnv(t *testing.T, mod func(*httpapi.Options)) *env {
	t.Helper()
	return newAPI(t, nil, mod, nil)
}

// newEnvWith is newEnv with the endpoint service's configuration changed
// by emod too.
func newEnvWith(t *testing.T, mod func(*httpapi.Options), emod func(*endpoint.Config)) *env {
	t.Helper()
	return newAPI(t, nil, mod, emod)
}

// newAPI is an API on store (nil: a fresh schema; another env's store: a
// second replica), its options changed by mod and its endpoint service's
// configuration by emod (either may be nil).
func newAPI(t *testing.T, store *outbox.Store, mod func(*httpapi.Options), emod func(*endpoint.Config)) *env {
	t.Helper()
	e := &env{t: t, reg: prometheus.NewRegistry()}
	e.Front = relaytest.NewFront(t, relaytest.FrontConfig{Store: store, Endpoints: emod,
		Handler: func(st *outbox.Store, svc *endpoint.Service) (http.Handler, error) {
			o := httpapi.Options{
				Store: st, Endpoints: svc, AdminToken: token, Gatherer: e.reg, Registerer: e.reg,
				Log: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)),
			}
			if mod != nil {
				mod(&o)
			}
			e.token = o.AdminToken
			return httpapi.New(o)
		}})
	return e
}

// resp is a decoded answer.
type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// errorBody returns the error code and field of an error answer.
func (r resp) err(t *testing.T) (code, field string) {
	t.Helper()
	var b struct {
		Error struct{ Code, Message, Field string } `json:"error"`
	}
	r.json(t, &b)
	if b.Error.Code == "" || b.Error.Message == "" {
		t.Fatalf("not the error shape: %s", r.body)
	}
	return b.Error.Code, b.Error.Field
}

// do sends a request with the admin token; body may be nil, a string or a
// value to encode.
func (e *env) do(method, path string, body any) resp {
	e.t.Helper()
	return e.doAuth(method, path, "Bearer "+e.token, body)
}

func (e *env) doAuth(method, path, auth string, body any) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, e.Server.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := e.Server.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

// must checks the status.
func (r resp) must(t *testing.T, status int) resp {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	return r
}

// createEndpoint creates an endpoint through the API.
func (e *env) createEndpoint(body map[string]any) outbox.Endpoint {
	e.t.Helper()
	var ep outbox.Endpoint
	e.do("POST", "/v1/endpoints", body).must(e.t, http.StatusCreated).json(e.t, &ep)
	return ep
}

// exec runs SQL, with {{schema}} replaced by the env's quoted schema.
func (e *env) exec(sql string, args ...any) {
	e.t.Helper()
	sql = outboxtest.SQL(e.Store.Schema(), sql)
	if _, err := e.Store.Pool().Exec(context.Background(), sql, args...); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
}

// queryInt runs a one-integer query, with {{schema}} replaced by the env's
// quoted schema.
func (e *env) queryInt(sql string, args ...any) int {
	e.t.Helper()
	var n int
	sql = outboxtest.SQL(e.Store.Schema(), sql)
	if err := e.Store.Pool().QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// waitFor polls cond until it holds, failing the test after 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	relaytest.Eventually(t, 20*time.Second, what, cond)
}

// runEngine runs a relay engine on e's store until the test ends.
func (e *env) runEngine(policy relay.Policy, metrics *relay.Metrics) {
	e.t.Helper()
	sender := relay.NewSender(relay.SenderConfig{Timeout: 5 * time.Second})
	eng, err := relay.New(relay.Config{PollInterval: 20 * time.Millisecond, Policy: policy}, e.Store, sender, nil, zap.NewNop(), metrics)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = eng.Run(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		<-eng.Done()
		sender.Close()
	})
}
