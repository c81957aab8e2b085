package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/relay/relaytest"
)

const (
	tourSection       = "A five-minute tour"
	tourBlockDeadline = 3 * time.Minute // the first blocks build binaries
	tourDeliveryWait  = time.Minute
)

// TestReadmeTour runs the README's five-minute tour as a reader pastes it:
// its ```sh blocks, in order, in one bash reading them from its standard
// input, at the repository root, against a throwaway database (through
// HOOKRELAY_DATABASE_URL, which the tour keeps when set) and on free ports
// (RELAY_PORT, RECEIVER_PORT). It passes when every block succeeds (the
// shell runs with set -euo pipefail), the tour's receiver prints a verified
// webhook for the test send and for the event the tour enqueues, and the
// clean-up block leaves no process listening.
func TestReadmeTour(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries and runs the README tour")
	}
	for _, tool := range []string{"bash", "curl", "psql", "awk"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the README tour needs %s on PATH (see the README's set-up section): %v", tool, err)
		}
	}
	blocks := tourBlocks(t)
	if last := blocks[len(blocks)-1]; !strings.Contains(last, "kill ") {
		t.Fatalf("the tour's last sh block should be its clean-up (kill ...), got:\n%s", last)
	}

	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	// The tour builds ./hookrelay at the root (ignored by git); remove it
	// afterwards unless it was there before.
	bin := filepath.Join(root, "hookrelay")
	if _, err := os.Stat(bin); errors.Is(err, os.ErrNotExist) {
		t.Cleanup(func() { _ = os.Remove(bin) })
	}

	relayPort, receiverPort := freePort(t), freePort(t)
	tmp := t.TempDir() // mktemp -d in the tour lands here
	env := []string{
		"HOOKRELAY_DATABASE_URL=" + relaytest.NewDatabase(t),
		"RELAY_PORT=" + strconv.Itoa(relayPort),
		"RECEIVER_PORT=" + strconv.Itoa(receiverPort),
		"TMPDIR=" + tmp,
	}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "HOOKRELAY_") || strings.HasPrefix(name, "PG") || name == "DATABASE_URL" ||
			name == "RELAY_PORT" || name == "RECEIVER_PORT" || name == "TMPDIR" {
			continue // the reader's shell has none of these
		}
		env = append(env, kv)
	}
	sh := startShell(t, root, env)

	// The whole transcript, and the relay's log, when something fails.
	report := func() string {
		var b strings.Builder
		b.WriteString("transcript:\n" + sh.transcript())
		logs, _ := filepath.Glob(filepath.Join(tmp, "*", "hookrelay.log"))
		for _, l := range logs {
			data, _ := os.ReadFile(l)
			fmt.Fprintf(&b, "\n%s:\n%s", l, data)
		}
		return b.String()
	}

	sh.send(t, "set -euo pipefail\n")
	for i, block := range blocks[:len(blocks)-1] {
		sh.run(t, i+1, block, tourBlockDeadline, report)
	}
	// The test send and the enqueued event both reach the receiver,
	// verified.
	for _, typ := range []string{"hookrelay.test", "signup.created"} {
		re := regexp.MustCompile(`^verified msg_[0-9a-z_]+ ` + regexp.QuoteMeta(typ) + `$`)
		if !sh.waitLine(re, tourDeliveryWait) {
			t.Fatalf("the tour's receiver printed no %q within %v\n%s", re, tourDeliveryWait, report())
		}
	}
	// GET /v1/events answered (curl --fail-with-body) with the event.
	if tr := sh.transcript(); !strings.Contains(tr, `"type":"signup.created"`) && !strings.Contains(tr, `"type": "signup.created"`) {
		t.Errorf("GET /v1/events output lacks the signup.created event\n%s", report())
	}

	sh.run(t, len(blocks), blocks[len(blocks)-1], tourBlockDeadline, report)
	if err := sh.close(time.Minute); err != nil {
		t.Fatalf("the tour's shell: %v\n%s", err, report())
	}
	for _, port := range []int{relayPort, receiverPort} {
		if conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second); err == nil {
			conn.Close()
			t.Errorf("port %d still accepts connections after the clean-up block\n%s", port, report())
		}
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "tmp.*")); len(left) > 0 {
		t.Errorf("the clean-up block left %v\n%s", left, report())
	}
}

// tourBlocks returns the ```sh blocks of the README's tour section.
func tourBlocks(t *testing.T) []string {
	t.Helper()
	section := readmeSection(t, tourSection)
	var blocks []string
	var cur *strings.Builder
	for line := range strings.Lines(section) {
		switch {
		case cur == nil && strings.TrimSpace(line) == "```sh":
			cur = &strings.Builder{}
		case cur != nil && strings.TrimSpace(line) == "```":
			blocks = append(blocks, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line)
		}
	}
	if cur != nil {
		t.Fatalf("an sh block of the tour is not closed")
	}
	if len(blocks) < 3 {
		t.Fatalf("the tour has %d sh blocks; want the set-up, the steps and a clean-up", len(blocks))
	}
	return blocks
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// shell is a bash reading commands from a pipe, as if they were pasted.
type shell struct {
	cmd   *exec.Cmd
	stdin *os.File
	done  chan struct{}    // closed when bash has exited; then wait is set
	wait  error            // cmd.Wait's result
	out   *relaytest.Lines // stdout and stderr, interleaved
}

func startShell(t *testing.T, dir string, env []string) *shell {
	t.Helper()
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash")
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, outW
	// Its own process group: the clean-up of a failed test stops bash and
	// whatever the tour left in the background, and nothing else.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start bash: %v", err)
	}
	inR.Close()
	outW.Close()
	sh := &shell{cmd: cmd, stdin: inW, done: make(chan struct{}), out: relaytest.ReadLines(outR)}
	go func() { sh.wait = cmd.Wait(); close(sh.done) }()
	t.Cleanup(func() {
		inW.Close()
		if !t.Failed() {
			<-sh.done // close waited for it already
			return
		}
		// A failed tour may have left bash or its background jobs (the
		// relay, the receiver) running: stop the group, and wait until it
		// is gone before the database is dropped under the relay.
		pgid := cmd.Process.Pid // == the group id (Setpgid)
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		deadline := time.Now().Add(45 * time.Second) // past run's 30s shutdown timeout
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for syscall.Kill(-pgid, 0) == nil {
			if time.Now().After(deadline) {
				t.Errorf("the tour's processes did not exit within 45s of SIGTERM; killing them")
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
				break
			}
			<-tick.C
		}
		<-sh.done
	})
	return sh
}

func (sh *shell) send(t *testing.T, text string) {
	t.Helper()
	if _, err := sh.stdin.WriteString(text); err != nil {
		t.Fatalf("write to the tour's shell: %v\ntranscript:\n%s", err, sh.transcript())
	}
}

// run sends block n and waits until the shell has run all of it.
func (sh *shell) run(t *testing.T, n int, block string, deadline time.Duration, report func() string) {
	t.Helper()
	marker := fmt.Sprintf("@@ tour block %d done", n)
	sh.send(t, block+"\necho '"+marker+"'\n")
	if !sh.waitLine(regexp.MustCompile("^"+regexp.QuoteMeta(marker)+"$"), deadline) {
		select {
		case <-sh.done:
			t.Fatalf("tour block %d failed (shell exited: %v):\n%s\n%s", n, sh.wait, block, report())
		default:
			t.Fatalf("tour block %d did not finish within %v:\n%s\n%s", n, deadline, block, report())
		}
	}
}

// waitLine reports whether a line matching re was printed within deadline
// while the shell still ran.
func (sh *shell) waitLine(re *regexp.Regexp, deadline time.Duration) bool {
	return sh.out.Wait(re, deadline, sh.done)
}

// close ends the shell's input and waits for it to exit.
func (sh *shell) close(deadline time.Duration) error {
	sh.stdin.Close()
	select {
	case <-sh.done:
		return sh.wait
	case <-time.After(deadline):
		return fmt.Errorf("bash still runs %v after its input ended", deadline)
	}
}

func (sh *shell) transcript() string { return sh.out.String() }
