package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hookrelay/hookrelay/relay/signature"
)

// receiverFlag is the hidden flag that turns hookbench into the receiver
// subprocess.
const receiverFlag = "--receiver-only"

// stats is what the receiver's GET /stats returns.
type stats struct {
	// OK counts verified deliveries per path.
	OK map[string]int64 `json:"ok"`
	// Bad counts deliveries whose signature did not verify.
	Bad int64 `json:"bad"`
	// LatencyUS holds insert→receipt latencies (µs) of payloads carrying
	// "t" (unix ns), collected since the last reset.
	LatencyUS []int64 `json:"latency_us,omitempty"`
	// Seq and ReceivedNS pair the "seq" of such payloads with when each was
	// received (unix ns), for the driver to measure from the commit.
	Seq        []int64 `json:"seq,omitempty"`
	ReceivedNS []int64 `json:"received_ns,omitempty"`
}

// receiverServer verifies and counts deliveries. Paths under /slow/ never
// answer until the client gives up.
type receiverServer struct {
	secret signature.Secret
	bad    atomic.Int64

	mu       sync.Mutex
	ok       map[string]*atomic.Int64
	lat      []int64
	seq, rcv []int64
}

// receiverMain runs the receiver subprocess: it listens on --addr, prints
// "listening <addr>" and serves until stdin is closed.
func receiverMain(args []string) int {
	fs := flag.NewFlagSet("hookbench receiver", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	secret := fs.String("secret", "", "whsec_ signing secret")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	sec, err := signature.ParseSecret(*secret)
	if err != nil {
		fmt.Fprintln(os.Stderr, "receiver:", err)
		return 2
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "receiver:", err)
		return 1
	}
	rs := &receiverServer{secret: sec, ok: map[string]*atomic.Int64{}}
	srv := &http.Server{Handler: rs, ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("listening %s\n", ln.Addr())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "receiver:", err)
		return 1
	}
	return 0
}

// ServeHTTP implements http.Handler.
func (rs *receiverServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/stats":
		rs.serveStats(w, r)
		return
	case r.URL.Path == "/reset":
		rs.mu.Lock()
		rs.ok = map[string]*atomic.Int64{}
		rs.lat, rs.seq, rs.rcv = nil, nil, nil
		rs.mu.Unlock()
		rs.bad.Store(0)
		w.WriteHeader(http.StatusNoContent)
		return
	case strings.HasPrefix(r.URL.Path, "/slow/"):
		// Never answer in time: hold the request until the client gives up.
		select {
		case <-r.Context().Done():
		case <-time.After(time.Minute):
		}
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	now := time.Now()
	if err := signature.Verify(r.Header, body, rs.secret, 5*time.Minute, now); err != nil {
		rs.bad.Add(1)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	var lat int64 = -1
	if t, ok := intField(body, "t"); ok {
		lat = now.Sub(time.Unix(0, t)).Microseconds()
	}
	seq, hasSeq := intField(body, "seq")
	rs.mu.Lock()
	if hasSeq {
		rs.seq = append(rs.seq, seq)
		rs.rcv = append(rs.rcv, now.UnixNano())
	}
	c := rs.ok[r.URL.Path]
	if c == nil {
		c = new(atomic.Int64)
		rs.ok[r.URL.Path] = c
	}
	if lat >= 0 {
		rs.lat = append(rs.lat, lat)
	}
	rs.mu.Unlock()
	c.Add(1)
	w.WriteHeader(http.StatusNoContent)
}

// intField finds the non-negative integer member key in a JSON body
// without decoding all of it.
func intField(body []byte, key string) (int64, bool) {
	i := bytes.Index(body, []byte(`"`+key+`":`))
	if i < 0 {
		return 0, false
	}
	rest := bytes.TrimLeft(body[i+len(key)+3:], " ")
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	n, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	return n, err == nil
}

func (rs *receiverServer) serveStats(w http.ResponseWriter, r *http.Request) {
	st := stats{OK: map[string]int64{}, Bad: rs.bad.Load()}
	rs.mu.Lock()
	for p, c := range rs.ok {
		st.OK[p] = c.Load()
	}
	switch {
	case r.URL.Query().Get("take") != "":
		// The latencies since the last take, which are then forgotten: a
		// long run reads them in windows without the receiver keeping all.
		st.LatencyUS, st.Seq, st.ReceivedNS = rs.lat, rs.seq, rs.rcv
		rs.lat, rs.seq, rs.rcv = nil, nil, nil
	case r.URL.Query().Get("lat") != "":
		st.LatencyUS = append([]int64(nil), rs.lat...)
		st.Seq = append([]int64(nil), rs.seq...)
		st.ReceivedNS = append([]int64(nil), rs.rcv...)
	}
	rs.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(st)
}

// receiverProc is the receiver subprocess as the driver sees it.
type receiverProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	base   string // http://host:port
	client *http.Client
	done   chan struct{}
}

// startReceiver re-executes this binary as the receiver subprocess.
func startReceiver(ctx context.Context, secret string) (*receiverProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	cmd := exec.Command(exe, receiverFlag, "--addr", "127.0.0.1:0", "--secret", secret)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("receiver stdin: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("receiver stdout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start receiver: %w", err)
	}
	rp := &receiverProc{cmd: cmd, stdin: stdin, client: &http.Client{Timeout: 30 * time.Second}, done: make(chan struct{})}
	go func() { defer close(rp.done); _ = cmd.Wait() }()
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case l, ok := <-line:
		addr, found := strings.CutPrefix(l, "listening ")
		if !ok || !found {
			rp.stop()
			return nil, fmt.Errorf("receiver did not start (first line %q)", l)
		}
		rp.base = "http://" + addr
	case <-time.After(30 * time.Second):
		rp.stop()
		return nil, errors.New("receiver did not start within 30s")
	case <-ctx.Done():
		rp.stop()
		return nil, ctx.Err()
	}
	return rp, nil
}

// stop closes the receiver's stdin and waits for it to exit.
func (rp *receiverProc) stop() {
	_ = rp.stdin.Close()
	select {
	case <-rp.done:
	case <-time.After(5 * time.Second):
		_ = rp.cmd.Process.Kill()
		<-rp.done
	}
}

// pid is the receiver's process id.
func (rp *receiverProc) pid() int { return rp.cmd.Process.Pid }

// stats fetches the receiver's counters (and latencies when lat is set).
func (rp *receiverProc) stats(ctx context.Context, lat bool) (stats, error) {
	u := rp.base + "/stats"
	if lat {
		u += "?lat=1"
	}
	return rp.getStats(ctx, u)
}

// take fetches the receiver's counters and the latencies received since
// the last take, which the receiver then forgets.
func (rp *receiverProc) take(ctx context.Context) (stats, error) {
	return rp.getStats(ctx, rp.base+"/stats?take=1")
}

func (rp *receiverProc) getStats(ctx context.Context, u string) (stats, error) {
	var st stats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return st, fmt.Errorf("receiver stats: %w", err)
	}
	resp, err := rp.client.Do(req)
	if err != nil {
		return st, fmt.Errorf("receiver stats: %w", err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("decode receiver stats: %w", err)
	}
	return st, nil
}

// reset clears the receiver's counters.
func (rp *receiverProc) reset(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rp.base+"/reset", nil)
	if err != nil {
		return fmt.Errorf("receiver reset: %w", err)
	}
	resp, err := rp.client.Do(req)
	if err != nil {
		return fmt.Errorf("receiver reset: %w", err)
	}
	_ = resp.Body.Close()
	return nil
}

// waitCount polls the receiver until path has at least n verified
// deliveries, or timeout.
func (rp *receiverProc) waitCount(ctx context.Context, path string, n int64, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := rp.stats(ctx, false)
		if err != nil {
			return err
		}
		if st.Bad > 0 {
			return fmt.Errorf("receiver: %d deliveries with bad signatures", st.Bad)
		}
		if st.OK[path] >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("receiver: %d of %d deliveries to %s after %s", st.OK[path], n, path, timeout)
		case <-tick.C:
		}
	}
}
