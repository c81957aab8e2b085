package relay_test

import (
	"os"
	"testing"

	"github.com/hookrelay/hookrelay/outbox/outboxtest"
)

func TestMain(m *testing.M) { os.Exit(outboxtest.Main(m)) }
