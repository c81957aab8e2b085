package sidecar

import (
	"context"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// DefaultGCPercent is the Go collector's target that tuneGC sets when GOGC
// is not in the environment. The relay's live heap is small (claimed
// deliveries and connection buffers, tens of MiB): collecting when the heap
// has grown by 300 % of it instead of Go's 100 % cut the relay's CPU per
// delivered event by about a fifth in hookbench's drain (0.66 → 0.51 s per
// 10k events) for about 9 MiB more resident memory (33 → 42 MiB).
const DefaultGCPercent = 300

// tuneGC sets the collector's target to DefaultGCPercent unless GOGC is
// set, which then wins as usual (GOMEMLIMIT applies either way). It is for
// processes that run the relay (hookrelay and hookbench): it changes a
// process-wide setting.
func tuneGC() {
	if _, ok := os.LookupEnv("GOGC"); !ok {
		debug.SetGCPercent(DefaultGCPercent)
	}
}

// Main is the body of a command that runs the relay (hookrelay,
// hookbench): it tunes the collector (tuneGC), runs run with the process's
// arguments and a context cancelled by SIGINT or SIGTERM, and exits with
// the code run returns.
func Main(run func(ctx context.Context, args []string, stdout, stderr io.Writer) int) {
	tuneGC()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
