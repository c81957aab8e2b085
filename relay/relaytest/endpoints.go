package relaytest

import (
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/endpoint"
)

// Endpoints returns an endpoint service on st whose test sends go through
// a sender with a 5 s timeout that may reach any address (test receivers
// listen on loopback), closed when the test ends. mod, when not nil,
// changes the configuration before the service is made.
func Endpoints(tb testing.TB, st *outbox.Store, mod func(*endpoint.Config)) *endpoint.Service {
	tb.Helper()
	sender := relay.NewSender(relay.SenderConfig{Timeout: 5 * time.Second})
	tb.Cleanup(sender.Close)
	c := endpoint.Config{Store: st, Sender: sender}
	if mod != nil {
		mod(&c)
	}
	svc, err := endpoint.New(c)
	if err != nil {
		tb.Fatalf("endpoint.New: %v", err)
	}
	return svc
}
