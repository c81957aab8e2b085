package receivers_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/relaytest"
	"github.com/hookrelay/hookrelay/relay/signature"
)

// startTimeout bounds how long a receiver may take to start listening.
const startTimeout = 20 * time.Second

// receiver describes how to start one example receiver.
type receiver struct {
	name    string
	binary  string   // interpreter that must be on PATH
	install string   // what to install when binary is missing
	args    []string // arguments, relative to the receiver's directory
	dir     string
	// prepare checks prerequisites beyond the interpreter.
	prepare func(t *testing.T)
}

func TestReceivers(t *testing.T) {
	receivers := []receiver{
		{
			name:    "node",
			binary:  "node",
			install: "Node.js 18 or newer (e.g. `apt-get install nodejs npm`)",
			args:    []string{"index.js"},
			dir:     "node",
			prepare: func(t *testing.T) {
				if _, err := os.Stat(filepath.Join("node", "node_modules", "standardwebhooks")); err == nil {
					return
				}
				// Install the locked dependencies, as a user following the
				// example's README would.
				npm, err := exec.LookPath("npm")
				if err != nil {
					t.Fatalf("the Node receiver's dependencies are not installed and npm is missing: install npm (e.g. `apt-get install npm`) or run `npm ci --prefix examples/receivers/node`")
				}
				cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
				cmd.Dir = "node"
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("npm ci in examples/receivers/node failed: %v\n%s", err, out)
				}
			},
		},
		{
			name:    "python",
			binary:  "python3",
			install: "Python 3.8 or newer (e.g. `apt-get install python3`)",
			args:    []string{"-u", "receiver.py"},
			dir:     "python",
		},
	}
	for _, rc := range receivers {
		t.Run(rc.name, func(t *testing.T) {
			t.Parallel()
			testReceiver(t, rc)
		})
	}
}

func testReceiver(t *testing.T, rc receiver) {
	bin, err := exec.LookPath(rc.binary)
	if err != nil {
		t.Fatalf("%s is not on PATH; install %s to run the %s receiver test: %v", rc.binary, rc.install, rc.name, err)
	}
	if rc.prepare != nil {
		rc.prepare(t)
	}
	secretText, secret := relaytest.NewSecret(t)
	_, wrong := relaytest.NewSecret(t)

	p := startReceiver(t, bin, rc, secretText)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sender := relay.NewSender(relay.SenderConfig{Timeout: 5 * time.Second})
	defer sender.Close()
	url := "http://" + p.addr + "/webhooks"
	run := fmt.Sprintf("%s_%d", rc.name, time.Now().UnixNano())
	message := func(id string, secrets ...signature.Secret) relay.Message {
		return relay.Message{
			URL:       url,
			WebhookID: id,
			EventType: "referral.reward_reached",
			Payload:   []byte(`{"user_id":42,"note":"héllo \u2713"}`),
			Timestamp: time.Now(),
			Secrets:   secrets,
		}
	}

	sends := []struct {
		name     string
		msg      relay.Message
		wantCode func(int) bool
		want     string
	}{
		{"first delivery", message("evt_"+run+"_a", secret), is2xx, "2xx"},
		{"redelivery, same webhook-id", message("evt_"+run+"_a", secret), is2xx, "2xx"},
		{"rotation: wrong and right secret", message("evt_"+run+"_r", wrong, secret), is2xx, "2xx"},
		{"wrong secret", message("evt_"+run+"_w", wrong), is4xx, "4xx"},
		// Sent last: once its line is on stdout, every earlier line is too.
		{"sentinel", message("evt_"+run+"_z", secret), is2xx, "2xx"},
	}
	for _, s := range sends {
		resp := sender.Send(ctx, s.msg)
		if resp.Err != nil {
			t.Fatalf("%s: send: %v\nreceiver stderr:\n%s", s.name, resp.Err, p.stderr())
		}
		if !s.wantCode(resp.StatusCode) {
			t.Fatalf("%s: status %d (%q), want %s\nreceiver stderr:\n%s", s.name, resp.StatusCode, resp.Excerpt, s.want, p.stderr())
		}
	}
	sentinel := "verified evt_" + run + "_z referral.reward_reached"
	if err := p.waitLine(ctx, sentinel); err != nil {
		t.Fatalf("waiting for %q on stdout: %v\nstdout:\n%s\nstderr:\n%s", sentinel, err, strings.Join(p.lines(), "\n"), p.stderr())
	}

	counts := map[string]int{}
	for _, l := range p.lines() {
		counts[l]++
	}
	for _, want := range []struct {
		line string
		n    int
	}{
		{"verified evt_" + run + "_a referral.reward_reached", 1},
		{"verified evt_" + run + "_r referral.reward_reached", 1},
		{"verified evt_" + run + "_w referral.reward_reached", 0},
		{sentinel, 1},
	} {
		if got := counts[want.line]; got != want.n {
			t.Errorf("stdout has %q %d times, want %d; stdout:\n%s", want.line, got, want.n, strings.Join(p.lines(), "\n"))
		}
	}
	if len(p.lines()) != 3 {
		t.Errorf("stdout has %d lines, want 3:\n%s", len(p.lines()), strings.Join(p.lines(), "\n"))
	}
}

func is2xx(code int) bool { return code >= 200 && code < 300 }
func is4xx(code int) bool { return code >= 400 && code < 500 }

// process is a running receiver and what it printed.
type process struct {
	addr string // host:port it listens on

	mu      sync.Mutex
	out     []string      // stdout lines so far
	changed chan struct{} // closed and replaced whenever out grows or stdout ends
	done    bool          // stdout reached EOF
	errBuf  bytes.Buffer
}

var listeningRE = regexp.MustCompile(`listening on (\S+):(\d+)`)

// startReceiver starts the receiver on a free loopback port (PORT=0; the
// receiver announces the port it got on stderr), waits until it accepts
// connections, and stops it when the test ends.
func startReceiver(t *testing.T, bin string, rc receiver, secret string) *process {
	t.Helper()
	cmd := exec.Command(bin, rc.args...)
	cmd.Dir = rc.dir
	cmd.Env = append(os.Environ(), "WEBHOOK_SECRET="+secret, "PORT=0", "HOST=127.0.0.1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("stdout pipe: %v", err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatalf("stderr pipe: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s receiver: %v", rc.name, err)
	}
	p := &process{changed: make(chan struct{})}
	portc := make(chan string, 1)
	var readers sync.WaitGroup
	readers.Add(2)
	go func() {
		defer readers.Done()
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.mu.Lock()
			p.out = append(p.out, sc.Text())
			close(p.changed)
			p.changed = make(chan struct{})
			p.mu.Unlock()
		}
		p.mu.Lock()
		p.done = true
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	}()
	go func() {
		defer readers.Done()
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.errBuf.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case portc <- m[2]:
				default:
				}
			}
		}
		close(portc)
	}()
	exited := make(chan error, 1)
	t.Cleanup(func() {
		// Only the process this test started is signalled.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	go func() {
		readers.Wait() // Wait must not run before the pipes are drained
		exited <- cmd.Wait()
	}()

	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	var port string
	select {
	case port = <-portc:
		if port == "" {
			t.Fatalf("%s receiver exited before listening; stderr:\n%s", rc.name, p.stderr())
		}
	case <-deadline.C:
		t.Fatalf("%s receiver did not announce its port within %s; stderr:\n%s", rc.name, startTimeout, p.stderr())
	}
	p.addr = net.JoinHostPort("127.0.0.1", port)

	// Poll until it accepts connections, with the same deadline.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		conn, err := net.DialTimeout("tcp", p.addr, time.Second)
		if err == nil {
			conn.Close()
			return p
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("%s receiver does not accept connections on %s: %v; stderr:\n%s", rc.name, p.addr, err, p.stderr())
		}
	}
}

// waitLine waits until line appears on stdout.
func (p *process) waitLine(ctx context.Context, line string) error {
	for {
		p.mu.Lock()
		for _, l := range p.out {
			if l == line {
				p.mu.Unlock()
				return nil
			}
		}
		done, changed := p.done, p.changed
		p.mu.Unlock()
		if done {
			return fmt.Errorf("receiver closed stdout")
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (p *process) lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.out...)
}

func (p *process) stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.errBuf.String()
}
