package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/relay/relaytest"
)

const (
	demoLineDeadline = 90 * time.Second
	demoExitDeadline = 30 * time.Second
)

// demoProcess is a running `hookrelay demo` whose stdout is read line by line.
type demoProcess struct {
	cmd    *exec.Cmd
	lines  chan string
	stderr *relaytest.SyncBuffer
	mu     sync.Mutex
	out    strings.Builder // everything read so far, for failure messages
}

func startDemo(t *testing.T, bin string, args ...string) *demoProcess {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"demo"}, args...)...)
	// A clean environment: no database URL, so the demo starts its own.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &demoProcess{cmd: cmd, lines: make(chan string, 1024), stderr: &relaytest.SyncBuffer{}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil { // still running after a failure
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			p.lines <- sc.Text()
		}
	}()
	return p
}

func (p *demoProcess) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String() + "\nstderr:\n" + p.stderr.String()
}

// waitLine returns the first line containing substr, failing the test at
// the deadline or when the output ends.
func (p *demoProcess) waitLine(t *testing.T, substr string, deadline time.Duration) string {
	t.Helper()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				t.Fatalf("demo output ended before a line containing %q:\n%s", substr, p.output())
			}
			if strings.Contains(line, substr) {
				return line
			}
		case <-timer.C:
			t.Fatalf("no line containing %q within %v:\n%s", substr, deadline, p.output())
		}
	}
}

// waitLines waits until each of substrs appeared in some line, in any
// order.
func (p *demoProcess) waitLines(t *testing.T, deadline time.Duration, substrs ...string) {
	t.Helper()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	missing := map[string]bool{}
	for _, s := range substrs {
		missing[s] = true
	}
	for len(missing) > 0 {
		select {
		case line, ok := <-p.lines:
			if !ok {
				t.Fatalf("demo output ended before lines containing %v:\n%s", substrs, p.output())
			}
			for s := range missing {
				if strings.Contains(line, s) {
					delete(missing, s)
				}
			}
		case <-timer.C:
			t.Fatalf("no lines containing %v within %v:\n%s", substrs, deadline, p.output())
		}
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *demoProcess) wait(t *testing.T, deadline time.Duration) int {
	t.Helper()
	go func() {
		for range p.lines { // drain so the process never blocks on stdout
		}
	}()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatalf("wait: %v", err)
		}
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(deadline):
		_ = p.cmd.Process.Kill()
		t.Fatalf("demo did not exit within %v:\n%s", deadline, p.output())
		return -1
	}
}

// assertCleanedUp checks that dir is gone and that no process mentions it
// in its command line (the postmaster runs with -D <dir>/data).
func assertCleanedUp(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("PostgreSQL temp dir %s still exists (stat: %v)", dir, err)
	}
	cmdlines, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range cmdlines {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the process exited meanwhile
		}
		if bytes.Contains(b, []byte(dir)) {
			t.Errorf("process %s still runs with the data dir: %q", filepath.Dir(f), bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
		}
	}
}

func dataDir(t *testing.T, p *demoProcess) string {
	t.Helper()
	line := p.waitLine(t, "postgres data dir:", demoLineDeadline)
	dir := strings.TrimSpace(strings.TrimPrefix(line[strings.Index(line, "postgres data dir:"):], "postgres data dir:"))
	if !filepath.IsAbs(dir) {
		t.Fatalf("data dir %q from line %q is not absolute", dir, line)
	}
	return dir
}

func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and starts PostgreSQL")
	}
	bin := binPath // built by TestMain

	// Each way a demo is told to stop removes what it started.
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			p := startDemo(t, bin)
			dir := dataDir(t, p)
			if _, err := os.Stat(dir); err != nil {
				t.Fatalf("data dir while running: %v", err)
			}
			p.waitLines(t, demoLineDeadline, "verified", "press Ctrl-C")
			if err := p.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if code := p.wait(t, demoExitDeadline); code != 0 {
				t.Fatalf("exit code %d after %v, want 0:\n%s", code, sig, p.output())
			}
			assertCleanedUp(t, dir)
		})
	}

	// The banner's portal link signs in as the demo tenant, once.
	t.Run("portal link", func(t *testing.T) {
		p := startDemo(t, bin)
		line := p.waitLine(t, "portal        http", demoLineDeadline)
		link := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "portal"))
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar, Timeout: 10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Get(link)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("GET %s: %d, want 303 into the portal", link, resp.StatusCode)
		}
		u, _ := url.Parse(link)
		resp, err = c.Get(u.Scheme + "://" + u.Host + resp.Header.Get("Location"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "hookrelay demo receiver") {
			t.Fatalf("the portal's endpoints page: %d\n%s", resp.StatusCode, body)
		}
		if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		if code := p.wait(t, demoExitDeadline); code != 0 {
			t.Fatalf("exit code %d:\n%s", code, p.output())
		}
	})

	// hookrelay demo | head: once nobody reads its output, the next write
	// fails (EPIPE rather than a fatal SIGPIPE) and the demo cleans up.
	t.Run("closed stdout", func(t *testing.T) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "demo")
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
		cmd.Stdout = w
		stderr := &relaytest.SyncBuffer{}
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		w.Close() // the child has its own copy
		var waitErr error
		done := make(chan struct{}) // closed when the demo has exited; then waitErr is set
		go func() { waitErr = cmd.Wait(); close(done) }()
		t.Cleanup(func() {
			select {
			case <-done:
			default: // still running after a failure
				_ = cmd.Process.Kill()
				<-done
			}
		})

		// Read up to the last line of the banner, which names the referral
		// app: a signup there makes the demo write again after the close.
		var out strings.Builder
		var dir, appURL string
		lines := make(chan string)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(r)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		timer := time.NewTimer(demoLineDeadline)
		defer timer.Stop()
		for appURL == "" || !strings.Contains(out.String(), "receiver  ") {
			select {
			case line, ok := <-lines:
				if !ok {
					t.Fatalf("demo output ended early:\n%s\nstderr:\n%s", out.String(), stderr.String())
				}
				out.WriteString(line + "\n")
				if d, ok := strings.CutPrefix(line, "postgres data dir: "); ok {
					dir = d
				}
				if _, rest, ok := strings.Cut(line, "referral app  curl -X POST "); ok {
					appURL, _, _ = strings.Cut(rest, " ")
				}
			case <-timer.C:
				t.Fatalf("no banner within %v:\n%s\nstderr:\n%s", demoLineDeadline, out.String(), stderr.String())
			}
		}
		if dir == "" {
			t.Fatalf("no data dir line:\n%s", out.String())
		}
		r.Close()
		go func() {
			for range lines { // the reader goroutine ends on the closed pipe
			}
		}()
		resp, err := http.Post(appURL, "application/json", strings.NewReader(`{"email":"late@example.com"}`))
		if err == nil {
			resp.Body.Close()
		} // an error is fine: the demo may already be stopping

		select {
		case <-done:
			var exit *exec.ExitError
			if !errors.As(waitErr, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("demo ended with %v, want exit code 1 (not killed by SIGPIPE); stderr:\n%s", waitErr, stderr.String())
			}
		case <-time.After(demoExitDeadline):
			t.Fatalf("demo still runs %v after its stdout was closed; stderr:\n%s", demoExitDeadline, stderr.String())
		}
		if !strings.Contains(stderr.String(), "broken pipe") {
			t.Errorf("stderr does not say why the demo stopped:\n%s", stderr.String())
		}
		assertCleanedUp(t, dir)
	})

	t.Run("once", func(t *testing.T) {
		p := startDemo(t, bin, "--once", "--events", "4")
		dir := dataDir(t, p)
		// Four signups with the fourth reaching the goal: five events.
		for range 5 {
			p.waitLine(t, "✔ received and verified", demoLineDeadline)
		}
		p.waitLine(t, "all 5 events were delivered and verified", demoLineDeadline)
		if code := p.wait(t, demoExitDeadline); code != 0 {
			t.Fatalf("exit code %d, want 0:\n%s", code, p.output())
		}
		if n := strings.Count(p.output(), "→ sent"); n < 5 {
			t.Fatalf("%d \"→ sent\" lines from the relay, want one per delivery (5):\n%s", n, p.output())
		}
		assertCleanedUp(t, dir)
	})
}
