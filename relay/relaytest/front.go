package relaytest

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
	"github.com/hookrelay/hookrelay/relay/endpoint"
)

// Front is what the tests of a front end (the admin API, the portal)
// stand on: a store, the endpoint service on it, and the front's handler
// served on a loopback httptest server until the test ends.
type Front struct {
	Store     *outbox.Store
	Endpoints *endpoint.Service
	Server    *httptest.Server
}

// FrontConfig says how NewFront builds a Front.
type FrontConfig struct {
	// Store is the store to stand on; nil: a fresh, migrated schema of
	// the shared server ([outboxtest.Store]). Another Front's store makes
	// a second replica.
	Store *outbox.Store
	// Endpoints, when not nil, changes the endpoint service's
	// configuration (see [Endpoints]).
	Endpoints func(*endpoint.Config)
	// Handler makes the front's handler on the store and the service.
	Handler func(*outbox.Store, *endpoint.Service) (http.Handler, error)
}

// NewFront builds a Front as c says; an error from c.Handler fails the
// test.
func NewFront(tb testing.TB, c FrontConfig) Front {
	tb.Helper()
	f := Front{Store: c.Store}
	if f.Store == nil {
		f.Store = outboxtest.Store(tb)
	}
	f.Endpoints = Endpoints(tb, f.Store, c.Endpoints)
	h, err := c.Handler(f.Store, f.Endpoints)
	if err != nil {
		tb.Fatalf("relaytest: the front's handler: %v", err)
	}
	f.Server = httptest.NewServer(h)
	tb.Cleanup(f.Server.Close)
	return f
}
