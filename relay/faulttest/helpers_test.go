package faulttest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
	"github.com/hookrelay/hookrelay/relay/relaytest"
)

// Relay settings shared by the cases. The lease must exceed
// requestTimeout+5s; a short one makes crash recovery fast.
const (
	maxInFlight     = 64
	requestTimeout  = 2 * time.Second
	leaseDuration   = 8 * time.Second
	shutdownTimeout = 5 * time.Second
	retrySchedule   = "200ms,500ms,1s,2s,5s,10s"
)

// binPath is the hookrelay binary under test, built once by TestMain.
var binPath string

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "hookrelay-faulttest-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, "faulttest: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if binPath, err = relaytest.BuildBinary(dir); err != nil {
		fmt.Fprintln(os.Stderr, "faulttest:", err)
		return 1
	}
	return outboxtest.Main(m)
}

// eventually polls cond until it holds or timeout passes.
var eventually = relaytest.Eventually

// tail is the end of a process's output, for failure messages.
var tail = relaytest.Tail

// freeAddr returns a loopback address with a port that was free a moment
// ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// ---------------------------------------------------------------------------
// The relay process.

// relayEnv is the environment of one relay: a clean base, the database and
// schema, the suite's settings, then extra NAME=value pairs (later values
// win).
func relayEnv(dbURL, schema string, extra ...string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"HOOKRELAY_DATABASE_URL=" + dbURL,
		"HOOKRELAY_SCHEMA=" + schema,
		"HOOKRELAY_ALLOW_PRIVATE_DESTINATIONS=true",
		"HOOKRELAY_POLL_INTERVAL=200ms",
		"HOOKRELAY_REQUEST_TIMEOUT=" + requestTimeout.String(),
		"HOOKRELAY_LEASE_DURATION=" + leaseDuration.String(),
		"HOOKRELAY_RETRY_SCHEDULE=" + retrySchedule,
		"HOOKRELAY_SHUTDOWN_TIMEOUT=" + shutdownTimeout.String(),
		"HOOKRELAY_LOG_LEVEL=warn",
		fmt.Sprintf("HOOKRELAY_MAX_IN_FLIGHT=%d", maxInFlight),
		fmt.Sprintf("HOOKRELAY_ENDPOINT_MAX_IN_FLIGHT=%d", maxInFlight),
	}
	return append(env, extra...)
}

// relayProc is one running `hookrelay run`.
type relayProc struct {
	t    testing.TB
	cmd  *exec.Cmd
	base string // http://host:port
	logs *relaytest.SyncBuffer
	done chan struct{} // closed when the process has exited and been reaped
	code int           // exit code; read after done
}

// startRelay starts `hookrelay run` with env on a free port and waits until
// /readyz answers 200. The process is killed (by its pid) when the test
// ends if it is still running.
func startRelay(t testing.TB, env []string) *relayProc {
	t.Helper()
	p := startRelayNoWait(t, append(append([]string(nil), env...), "HOOKRELAY_LISTEN_ADDR="+freeAddr(t)))
	eventually(t, 30*time.Second, "hookrelay ready", func() bool {
		select {
		case <-p.done:
			t.Fatalf("hookrelay exited with %d before becoming ready:\n%s", p.code, tail(p.logs.String(), 4000))
		default:
		}
		return p.ready() == http.StatusOK
	})
	return p
}

// startRelayNoWait starts `hookrelay run` with env, which must set
// HOOKRELAY_LISTEN_ADDR, and returns at once.
func startRelayNoWait(t testing.TB, env []string) *relayProc {
	t.Helper()
	addr := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "HOOKRELAY_LISTEN_ADDR="); ok {
			addr = v
		}
	}
	cmd := exec.Command(binPath, "run")
	cmd.Env = env
	p := &relayProc{t: t, cmd: cmd, base: "http://" + addr, logs: &relaytest.SyncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start hookrelay: %v", err)
	}
	go func() {
		err := cmd.Wait()
		var exitErr *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &exitErr):
			p.code = exitErr.ExitCode() // -1 when killed by a signal
		default:
			p.code = -2
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("hookrelay (pid %d) log tail:\n%s", cmd.Process.Pid, tail(p.logs.String(), 4000))
		}
	})
	return p
}

// statusOf is the status of GET url (0 when the request failed).
func statusOf(url string) int {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// getBody is GET url's status and body.
func getBody(t testing.TB, url string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// ready returns the status of GET /readyz (0 when the request failed).
func (p *relayProc) ready() int { return statusOf(p.base + "/readyz") }

// exited reports whether the process has exited.
func (p *relayProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to this process (by pid) unless it has exited.
func (p *relayProc) signal(sig syscall.Signal) {
	if p.exited() {
		return
	}
	if err := syscall.Kill(p.cmd.Process.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		p.t.Errorf("signal %v to pid %d: %v", sig, p.cmd.Process.Pid, err)
	}
}

// kill sends SIGKILL and waits for the process to be reaped.
func (p *relayProc) kill() {
	p.signal(syscall.SIGKILL)
	<-p.done
}

// wait waits up to timeout for the process to exit and returns its exit
// code.
func (p *relayProc) wait(timeout time.Duration) (int, bool) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return p.code, true
	case <-t.C:
		return 0, false
	}
}

// ---------------------------------------------------------------------------
// Database helpers.

// migratedStore opens a pool on dbURL (closed when the test ends) and
// migrates schema there; for servers that are not the shared one.
func migratedStore(t testing.TB, dbURL, schema string) *outbox.Store {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return outboxtest.StoreOn(t, pool, schema)
}

// addEndpoint subscribes rc to every event of tenant "".
func addEndpoint(t testing.TB, st *outbox.Store, rc *relaytest.Receiver) string {
	t.Helper()
	ep, err := st.CreateEndpoint(context.Background(), outbox.EndpointInput{URL: rc.URL(), Secret: rc.Secret}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ep.ID
}

// insertEvents inserts n events of tenant "" with one SQL statement.
func insertEvents(t testing.TB, st *outbox.Store, n int) {
	t.Helper()
	_, err := st.Pool().Exec(context.Background(), outboxtest.SQL(st.Schema(), `INSERT INTO {{schema}}.outbox (event_type, tenant, payload)
		SELECT 'fault.test', '', jsonb_build_object('n', g, 'pad', repeat('x', 64)) FROM generate_series(1, $1) g`), n)
	if err != nil {
		t.Fatalf("insert events: %v", err)
	}
}

// count runs a count(*) style query; errors count as -1 so that polls
// across a database restart keep polling.
func count(st *outbox.Store, sql string, args ...any) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var n int
	if err := st.Pool().QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		return -1
	}
	return n
}

// waitDelivered waits until every event is dispatched and each of its
// deliveries to the given endpoints is delivered.
func waitDelivered(t testing.TB, st *outbox.Store, events, endpoints int, timeout time.Duration) {
	t.Helper()
	want := events * endpoints
	q := outboxtest.SQL(st.Schema(), `SELECT count(*) FROM {{schema}}.deliveries WHERE state = 'delivered'`)
	eventually(t, timeout, fmt.Sprintf("%d delivered deliveries", want), func() bool { return count(st, q) >= want })
}

// figures are what a case reports.
type figures struct {
	events     int
	duplicates int
	bad        int
}

// verify asserts that every event in the outbox (of the endpoint's
// tenant) has a delivered delivery to the receiver's endpoint and that the
// receiver got its webhook-id, and that no signature failed. It returns the
// figures.
func verify(t testing.TB, st *outbox.Store, endpointID string, rc *relaytest.Receiver) figures {
	t.Helper()
	rows, err := st.Pool().Query(context.Background(), outboxtest.SQL(st.Schema(), `SELECT 'msg_' || replace(o.uid::text, '-', ''), coalesce(d.state, '<none>')
		FROM {{schema}}.outbox o
		LEFT JOIN {{schema}}.deliveries d ON d.event_id = o.id AND d.endpoint_id = $1
		WHERE o.tenant = (SELECT tenant FROM {{schema}}.endpoints WHERE id = $1)
		ORDER BY o.id`), endpointID)
	if err != nil {
		t.Fatal(err)
	}
	type row struct{ id, state string }
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		err := r.Scan(&x.id, &x.state)
		return x, err
	})
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for _, r := range all {
		if r.state != outbox.StateDelivered || !rc.Has(r.id) {
			missing = append(missing, fmt.Sprintf("%s (state %s, received %v)", r.id, r.state, rc.Has(r.id)))
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d of %d events missing, e.g. %s", len(missing), len(all), strings.Join(missing[:min(5, len(missing))], ", "))
	}
	unique, dups, bad, _ := rc.Stats()
	if unique != len(all) {
		t.Errorf("receiver saw %d distinct webhook ids, the outbox holds %d events", unique, len(all))
	}
	if bad != 0 {
		t.Errorf("%d signature failures", bad)
	}
	return figures{events: len(all), duplicates: dups, bad: bad}
}

// report logs a case's figures.
func report(t testing.TB, f figures, d time.Duration) {
	t.Helper()
	t.Logf("figures: events=%d duration=%v events/s=%.0f duplicates=%d signature_failures=%d",
		f.events, d.Round(time.Millisecond), float64(f.events)/d.Seconds(), f.duplicates, f.bad)
}

// ---------------------------------------------------------------------------
// TCP proxy between the relay and PostgreSQL.

// proxy forwards loopback TCP connections to a target and can cut them all
// and refuse new ones, to simulate losing the database.
type proxy struct {
	t      testing.TB
	ln     net.Listener
	target string

	mu     sync.Mutex
	refuse bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func newProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

// addr is the proxy's listen address.
func (p *proxy) addr() string { return p.ln.Addr().String() }

// setRefuse makes the proxy close new connections at once (true) or
// forward them again (false).
func (p *proxy) setRefuse(v bool) {
	p.mu.Lock()
	p.refuse = v
	p.mu.Unlock()
}

// cut closes every open connection (both sides).
func (p *proxy) cut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.conns)
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
	return n
}

func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.refuse {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refuse := p.refuse
		p.mu.Unlock()
		if refuse {
			_ = c.Close()
			continue
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
			if err != nil {
				_ = c.Close()
				return
			}
			if !p.track(c) || !p.track(up) {
				_ = c.Close()
				_ = up.Close()
				return
			}
			done := make(chan struct{}, 2)
			pipe := func(dst, src net.Conn) {
				_, _ = io.Copy(dst, src)
				_ = dst.Close()
				_ = src.Close()
				done <- struct{}{}
			}
			go pipe(up, c)
			go pipe(c, up)
			<-done
			<-done
			p.mu.Lock()
			delete(p.conns, c)
			delete(p.conns, up)
			p.mu.Unlock()
		}()
	}
}

// viaProxy rewrites a postgres:// URL to connect through addr.
func viaProxy(t testing.TB, dbURL, addr string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = addr
	return u.String()
}

// hostPort is the host:port of a postgres:// URL.
func hostPort(t testing.TB, dbURL string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}
