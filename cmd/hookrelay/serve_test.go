package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// waitFor polls check every 50ms until it succeeds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		<-tick.C
	}
}

func httpGet(url string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// logWatcher collects a child's JSON log lines and reports its listen address.
type logWatcher struct {
	mu    sync.Mutex
	lines []string
	addr  chan string
}

func (w *logWatcher) scan(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		w.mu.Lock()
		w.lines = append(w.lines, line)
		w.mu.Unlock()
		var entry struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal([]byte(line), &entry) == nil && strings.HasPrefix(entry.Msg, "listening on") && entry.Addr != "" {
			w.addr <- entry.Addr
		}
	}
}

func (w *logWatcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.lines, "\n")
}

func TestRun(t *testing.T) {
	schema := newSchema(t)
	env := testEnv(schema,
		"HOOKRELAY_ALLOW_PRIVATE_DESTINATIONS=true",
		"HOOKRELAY_LISTEN_ADDR=127.0.0.1:0",
		"HOOKRELAY_POLL_INTERVAL=200ms",
		"HOOKRELAY_SHUTDOWN_TIMEOUT=5s",
		"HOOKRELAY_ADMIN_TOKEN=s3cr3t-admin-token-do-not-log",
	)
	rc, srv := newReceiver(t, http.StatusOK)
	ep := decodeEndpoint(t, hookrelay(t, env, "endpoints", "create", "--url", srv.URL+"/hook",
		"--tenant", "acme", "--event-types", "signup.created", "--output", "json"))
	rc.setSecret(ep.Secret)

	cmd := exec.Command(binPath, "run")
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	logs := &logWatcher{addr: make(chan string, 1)}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	scanned := make(chan struct{})
	go func() { logs.scan(stderr); close(scanned) }()
	exited := make(chan error, 1)
	go func() { <-scanned; exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	})

	var addr string
	select {
	case addr = <-logs.addr:
	case err := <-exited:
		t.Fatalf("run exited early: %v\n%s", err, logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("no listening address logged\n%s", logs)
	}
	base := "http://" + addr
	waitFor(t, "healthz", 10*time.Second, func() error { return httpGet(base + "/healthz") })
	waitFor(t, "readyz", 10*time.Second, func() error { return httpGet(base + "/readyz") })

	// The application enqueues with plain SQL.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, fmt.Sprintf("INSERT INTO %s (event_type, tenant, payload) VALUES ($1, $2, $3)",
		pgx.Identifier{schema, "outbox"}.Sanitize()), "signup.created", "acme", `{"email":"a@example.com"}`); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	select {
	case typ := <-rc.verified:
		if typ != "signup.created" {
			t.Errorf("delivered event type = %q", typ)
		}
	case err := <-exited:
		t.Fatalf("run exited: %v\n%s", err, logs)
	case <-time.After(20 * time.Second):
		t.Fatalf("no delivery within 20s\n%s", logs)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("run after SIGTERM: %v\n%s", err, logs)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("run did not exit within 20s of SIGTERM\n%s", logs)
	}

	out := logs.String()
	if testing.Verbose() {
		t.Logf("run's log:\n%s", out)
	}
	for _, secret := range []string{"s3cr3t-admin-token-do-not-log", ep.Secret, "a@example.com"} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, `"config"`) {
		t.Errorf("config not logged at start:\n%s", out)
	}
}

func TestRunListenFails(t *testing.T) {
	env := testEnv(newSchema(t), "HOOKRELAY_LISTEN_ADDR=256.0.0.1:1")
	res := hookrelay(t, env, "run")
	if res.code != 1 || !strings.Contains(res.stderr, "listen on") {
		t.Fatalf("want exit 1 naming the listen failure:\n%s", res)
	}
}
