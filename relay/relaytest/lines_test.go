package relaytest_test

import (
	"io"
	"regexp"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/relay/relaytest"
)

// TestLinesWait: Wait finds a line printed before or during the wait, and
// gives up when the input ends, when stop is closed, or at the timeout.
func TestLinesWait(t *testing.T) {
	r, w := io.Pipe()
	defer w.Close()
	lines := relaytest.ReadLines(r)
	if _, err := io.WriteString(w, "starting\nlistening on 127.0.0.1:80\n"); err != nil {
		t.Fatal(err)
	}
	if !lines.Wait(regexp.MustCompile(`^listening on `), 10*time.Second, nil) {
		t.Fatalf("no listening line in %q", lines)
	}
	go func() { _, _ = io.WriteString(w, "ready\n") }()
	if !lines.Wait(regexp.MustCompile(`^ready$`), 10*time.Second, nil) {
		t.Fatalf("no ready line in %q", lines)
	}
	if lines.Wait(regexp.MustCompile(`^never$`), 50*time.Millisecond, nil) {
		t.Fatal("found a line never printed")
	}
	stop := make(chan struct{})
	close(stop)
	if lines.Wait(regexp.MustCompile(`^never$`), time.Minute, stop) {
		t.Fatal("found a line never printed")
	}
	if got, want := lines.String(), "starting\nlistening on 127.0.0.1:80\nready\n"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	w.Close()
	if lines.Wait(regexp.MustCompile(`^never$`), time.Minute, nil) {
		t.Fatal("found a line never printed")
	}
}
