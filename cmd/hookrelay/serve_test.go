package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/outbox/outboxtest"
	"github.com/hookrelay/hookrelay/relay/relaytest"
)

// waitFor polls check until it succeeds, failing the test after timeout
// with check's last error.
func waitFor(t *testing.T, what string, timeout time.Duration, check func() error) {
	t.Helper()
	var err error
	defer func() {
		if err != nil { // Eventually failed the test: say why
			t.Logf("%s: last error: %v", what, err)
		}
	}()
	relaytest.Eventually(t, timeout, what, func() bool { err = check(); return err == nil })
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

// logWatcher collects a child's JSON log lines and reports its listen
// address (and its metrics address, when metricsAddr is not nil).
type logWatcher struct {
	mu          sync.Mutex
	lines       []string
	addr        chan string
	metricsAddr chan string
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
			Msg         string `json:"msg"`
			Addr        string `json:"addr"`
			MetricsAddr string `json:"metrics_addr"`
		}
		if json.Unmarshal([]byte(line), &entry) == nil && strings.HasPrefix(entry.Msg, "listening on") && entry.Addr != "" {
			w.addr <- entry.Addr
		}
		if w.metricsAddr != nil && entry.MetricsAddr != "" {
			w.metricsAddr <- entry.MetricsAddr
		}
	}
}

func (w *logWatcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.lines, "\n")
}

func TestRun(t *testing.T) {
	schema := outboxtest.NewSchema(t)
	env := testEnv(schema,
		"HOOKRELAY_ALLOW_PRIVATE_DESTINATIONS=true",
		"HOOKRELAY_LISTEN_ADDR=127.0.0.1:0",
		"HOOKRELAY_POLL_INTERVAL=200ms",
		"HOOKRELAY_SHUTDOWN_TIMEOUT=5s",
		"HOOKRELAY_ADMIN_TOKEN=s3cr3t-admin-token-do-not-log",
	)
	rc := newReceiver(t, http.StatusOK)
	ep := decodeEndpoint(t, hookrelay(t, env, "endpoints", "create", "--url", rc.URL(), "--secret", rc.Secret,
		"--tenant", "acme", "--event-types", "signup.created", "--output", "json"))

	run, _ := startRun(t, env, false)
	logs := run.logs
	waitFor(t, "healthz", 10*time.Second, func() error { return httpGet(run.base + "/healthz") })
	waitFor(t, "readyz", 10*time.Second, func() error { return httpGet(run.base + "/readyz") })

	// The application enqueues with plain SQL.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := outboxtest.Pool(t).Exec(ctx, outboxtest.SQL(schema,
		`INSERT INTO {{schema}}.outbox (event_type, tenant, payload) VALUES ($1, $2, $3)`), "signup.created", "acme", `{"email":"a@example.com"}`); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	if got := rc.WaitAccepted(1, 20*time.Second); got[0].Type != "signup.created" {
		t.Errorf("delivered event type = %q", got[0].Type)
	}
	run.stop(t)

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
	env := testEnv(outboxtest.NewSchema(t), "HOOKRELAY_LISTEN_ADDR=256.0.0.1:1")
	res := hookrelay(t, env, "run")
	if res.Code != 1 || !strings.Contains(res.Stderr, "listen on") {
		t.Fatalf("want exit 1 naming the listen failure:\n%s", res)
	}
}

// runningRelay is a `hookrelay run` child process.
type runningRelay struct {
	cmd    *exec.Cmd
	logs   *logWatcher
	exited chan error
	base   string // http://host:port of HOOKRELAY_LISTEN_ADDR
}

// startRun starts `hookrelay run` with env and waits for its listening
// address (and its metrics address when withMetrics); it is killed when t
// ends if it is still running.
func startRun(t *testing.T, env []string, withMetrics bool) (*runningRelay, string) {
	t.Helper()
	cmd := exec.Command(binPath, "run")
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	logs := &logWatcher{addr: make(chan string, 1)}
	if withMetrics {
		logs.metricsAddr = make(chan string, 1)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	scanned := make(chan struct{})
	go func() { logs.scan(stderr); close(scanned) }()
	r := &runningRelay{cmd: cmd, logs: logs, exited: make(chan error, 1)}
	go func() { <-scanned; r.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-r.exited
		}
	})
	wait := func(ch chan string, what string) string {
		select {
		case a := <-ch:
			return a
		case err := <-r.exited:
			t.Fatalf("run exited early: %v\n%s", err, logs)
		case <-time.After(30 * time.Second):
			t.Fatalf("no %s logged\n%s", what, logs)
		}
		return ""
	}
	r.base = "http://" + wait(logs.addr, "listening address")
	var metricsBase string
	if withMetrics {
		metricsBase = "http://" + wait(logs.metricsAddr, "metrics address")
	}
	return r, metricsBase
}

// stop sends SIGTERM and waits for a clean exit.
func (r *runningRelay) stop(t *testing.T) {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-r.exited:
		if err != nil {
			t.Fatalf("run after SIGTERM: %v\n%s", err, r.logs)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("run did not exit within 20s of SIGTERM\n%s", r.logs)
	}
}

// get sends a GET with an optional Authorization header and returns the
// status and body.
func get(t *testing.T, url, auth string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestRunBeforeDatabase: pointed at a port where no database listens, run
// serves /healthz 200 from the start and /readyz 503 with the reason, keeps
// waiting for the database, and stops cleanly on SIGTERM.
func TestRunBeforeDatabase(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := l.Addr().String()
	_ = l.Close()
	const password = "db-pass-not-in-answers"
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"HOOKRELAY_DATABASE_URL=postgres://hookrelay:" + password + "@" + deadAddr + "/hookrelay?sslmode=disable",
		"HOOKRELAY_LISTEN_ADDR=127.0.0.1:0",
		"HOOKRELAY_ADMIN_TOKEN=s3cr3t-admin-token-do-not-log",
	}
	r, _ := startRun(t, env, false)

	// Once it listens, liveness answers at once: no poll.
	if code, body := get(t, r.base+"/healthz", ""); code != 200 || !strings.Contains(body, `"ok"`) {
		t.Fatalf("healthz %d %s", code, body)
	}
	var ready string
	waitFor(t, "readyz naming the unreachable database", 20*time.Second, func() error {
		code, body := get(t, r.base+"/readyz", "")
		ready = body
		if code != http.StatusServiceUnavailable {
			return fmt.Errorf("readyz %d %s", code, body)
		}
		var b struct{ Status, Reason string }
		if err := json.Unmarshal([]byte(body), &b); err != nil || b.Status != "not_ready" {
			return fmt.Errorf("readyz body %s", body)
		}
		if !strings.HasPrefix(b.Reason, "database unreachable: ") || !strings.Contains(b.Reason, "refused") {
			return fmt.Errorf("reason %q", b.Reason)
		}
		return nil
	})
	if strings.Contains(ready, password) {
		t.Errorf("readyz shows the database password: %s", ready)
	}
	// Still waiting for its database, still alive; the admin API says so.
	if code, body := get(t, r.base+"/healthz", ""); code != 200 {
		t.Errorf("healthz while waiting: %d %s", code, body)
	}
	if code, body := get(t, r.base+"/v1/endpoints", "Bearer s3cr3t-admin-token-do-not-log"); code != 503 || !strings.Contains(body, `"starting"`) {
		t.Errorf("admin API while waiting: %d %s", code, body)
	}
	if code, _ := get(t, r.base+"/metrics", ""); code != 200 {
		t.Errorf("metrics while waiting: %d", code)
	}
	r.stop(t)
	if out := r.logs.String(); strings.Contains(out, password) || !strings.Contains(out, "database not ready, retrying") {
		t.Errorf("log (want retries, no password):\n%s", out)
	}
}

// TestRunMetricsListener: with HOOKRELAY_METRICS_ADDR and
// HOOKRELAY_METRICS_TOKEN, /metrics is served on its own port behind the
// token, and the main port (fronting the application) passes /metrics to
// the application.
func TestRunMetricsListener(t *testing.T) {
	var appHits atomic.Int64
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		appHits.Add(1)
		_, _ = io.WriteString(w, "app "+r.URL.Path)
	}))
	defer app.Close()
	const token = "metrics-token-0123456789"
	env := testEnv(outboxtest.NewSchema(t),
		"HOOKRELAY_LISTEN_ADDR=127.0.0.1:0",
		"HOOKRELAY_METRICS_ADDR=127.0.0.1:0",
		"HOOKRELAY_METRICS_TOKEN="+token,
		"HOOKRELAY_PROXY_UPSTREAM="+app.URL,
	)
	r, metrics := startRun(t, env, true)
	waitFor(t, "readyz", 20*time.Second, func() error { return httpGet(r.base + "/readyz") })

	if code, body := get(t, metrics+"/metrics", ""); code != 401 {
		t.Errorf("metrics port without the token: %d %s", code, body)
	}
	if code, body := get(t, metrics+"/metrics", "Bearer "+token); code != 200 || !strings.Contains(body, "hookrelay_queue_stats_up 1") {
		t.Errorf("metrics port with the token: %d %s", code, body)
	}
	if code, _ := get(t, metrics+"/healthz", ""); code != 200 {
		t.Errorf("metrics port /healthz: %d", code)
	}
	if code, body := get(t, r.base+"/metrics", "Bearer "+token); code != 200 || body != "app /metrics" || appHits.Load() != 1 {
		t.Errorf("main port /metrics: %d %q (app hits %d), want the application's", code, body, appHits.Load())
	}
	r.stop(t)
	if strings.Contains(r.logs.String(), token) {
		t.Errorf("log shows the metrics token")
	}
}
