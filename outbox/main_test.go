package outbox_test

import (
	"context"
	"os"
	"testing"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
)

func TestMain(m *testing.M) { os.Exit(outboxtest.Main(m)) }

// newStore returns a context for a test's calls and a store on a fresh
// schema.
func newStore(tb testing.TB) (context.Context, *outbox.Store) {
	return context.Background(), outboxtest.Store(tb)
}

// parallelStore is newStore for a test that runs beside the others.
func parallelStore(t *testing.T) (context.Context, *outbox.Store) {
	return context.Background(), outboxtest.ParallelStore(t)
}
