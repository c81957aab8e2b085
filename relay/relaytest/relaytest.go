// Package relaytest is the test kit the packages' tests share: a webhook
// receiver that verifies every signature the way a customer would, an
// endpoint service on a test store, a wait-until with a deadline, a thread-safe buffer for a process's output,
// and a runner for the hookrelay binary. It is for tests only (it imports
// testing); River's riversharedtest is the model.
package relaytest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/relay/signature"
)

// NewSecret returns a fresh whsec_ signing secret and its parsed form.
func NewSecret(tb testing.TB) (string, signature.Secret) {
	tb.Helper()
	raw, err := signature.GenerateSecret()
	if err != nil {
		tb.Fatal(err)
	}
	sec, err := signature.ParseSecret(raw)
	if err != nil {
		tb.Fatal(err)
	}
	return raw, sec
}

// pollEvery is how often Eventually checks its condition.
const pollEvery = 20 * time.Millisecond

// Eventually checks cond every few milliseconds until it holds, and fails
// the test naming what it waited for when timeout passes first.
func Eventually(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
	}
}

// SyncBuffer is a bytes.Buffer safe for one writer (a process's output)
// and concurrent readers.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Tail returns at most the last n bytes of s, marked when cut.
func Tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// BuildBinary builds the hookrelay command into dir and returns its path;
// for a TestMain, which has no testing.TB.
func BuildBinary(dir string) (string, error) {
	bin := filepath.Join(dir, "hookrelay")
	build := exec.Command("go", "build", "-o", bin, "github.com/hookrelay/hookrelay/cmd/hookrelay")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("build hookrelay: %w", err)
	}
	return bin, nil
}

// Result is one finished run of a binary.
type Result struct {
	Code           int
	Stdout, Stderr string
}

// String shows the exit code and both outputs, for failure messages.
func (r Result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
}

// runTimeout bounds one Run.
const runTimeout = 60 * time.Second

// Run runs bin with exactly env (nothing inherited) and args, waits for it
// to exit (at most a minute) and returns its exit code and output. A
// process that could not start or did not finish fails the test.
func Run(tb testing.TB, bin string, env []string, args ...string) Result {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := Result{Stdout: stdout.String(), Stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr) && ctx.Err() == nil:
		res.Code = exitErr.ExitCode()
	default:
		tb.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, res)
	}
	return res
}
