package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// relayKind says how a scenario runs the relay under test.
type relayKind int

const (
	// inProcess runs the engine in this process (env.startRelay).
	inProcess relayKind = iota
	// binaryProcess runs `hookrelay run` as separate processes, configured
	// only through the environment, with default settings.
	binaryProcess
)

// suffix is what the kind appends to a scenario's name.
func (k relayKind) suffix() string {
	if k == binaryProcess {
		return "_binary"
	}
	return ""
}

// runningRelay is a relay under test, whichever its kind.
type runningRelay interface {
	// cpu is the CPU seconds the relay has used so far.
	cpu() float64
	// pids are the relay's processes (this process when in-process).
	pids() []int
	// stop stops the relay and waits for it to finish.
	stop() error
}

// inProcessRelay is env.startRelay's engine; its CPU is this process's
// (the driver's polling included).
type inProcessRelay struct{ *relayHandle }

func (inProcessRelay) cpu() float64 { return selfCPU() }
func (inProcessRelay) pids() []int  { return []int{os.Getpid()} }

// selfCPU is this process's CPU seconds (user + system).
func selfCPU() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

// startRelayKind starts the relay on e's schema and returns once it is
// ready to work: in-process, the listener connected and the engine
// started; as a binary, every replica answering 200 on /readyz.
//
// extra are settings (KEY=value) of the binary's own.
func (b *bench) startRelayKind(ctx context.Context, e *env, kind relayKind, replicas int, timeout time.Duration, extra ...string) (runningRelay, error) {
	if kind == inProcess {
		if replicas != 1 || len(extra) > 0 {
			return nil, errors.New("the in-process relay runs one replica with the benchmark's settings")
		}
		h, err := e.startRelay(ctx, timeout)
		if err != nil {
			return nil, err
		}
		return inProcessRelay{h}, nil
	}
	if timeout != relayRequestTimeout {
		return nil, errors.New("the binary runs with the default request timeout")
	}
	return b.startBinaries(ctx, e.schema, replicas, extra...)
}

// binaryReadyTimeout bounds how long a `hookrelay run` may take to become
// ready (it opens every endpoint's secret at start-up).
const binaryReadyTimeout = 2 * time.Minute

// binaryStopTimeout bounds a replica's graceful stop (the default
// HOOKRELAY_SHUTDOWN_TIMEOUT is 30s).
const binaryStopTimeout = time.Minute

// hookrelayBuild builds ./cmd/hookrelay once per benchmark.
type hookrelayBuild struct {
	once sync.Once
	dir  string // temporary directory, removed by cleanup
	path string
	err  error
}

// binary returns the hookrelay executable: --hookrelay-bin when given,
// else ./cmd/hookrelay of this module built into a temporary directory
// (the first call builds).
func (b *bench) binary(ctx context.Context) (string, error) {
	if b.o.hookrelayBin != "" {
		return b.o.hookrelayBin, nil
	}
	hb := &b.build
	hb.once.Do(func() { hb.path, hb.dir, hb.err = buildHookrelay(ctx, b.out) })
	return hb.path, hb.err
}

// cleanup removes the built binary.
func (hb *hookrelayBuild) cleanup() {
	if hb.dir != "" {
		_ = os.RemoveAll(hb.dir)
	}
}

// buildHookrelay runs `go build` of ./cmd/hookrelay as the Dockerfile does
// (CGO_ENABLED=0, -trimpath) but keeping the symbol table, so that perf
// can name functions.
func buildHookrelay(ctx context.Context, out io.Writer) (path, dir string, err error) {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", "", fmt.Errorf("find the module (go env GOMOD): %w", err)
	}
	mod := strings.TrimSpace(string(gomod))
	if mod == "" || mod == os.DevNull {
		return "", "", errors.New("build hookrelay: not inside the hookrelay module; run hookbench from the repository or pass --hookrelay-bin")
	}
	dir, err = os.MkdirTemp("", "hookbench-bin-*")
	if err != nil {
		return "", "", fmt.Errorf("build hookrelay: %w", err)
	}
	path = filepath.Join(dir, "hookrelay")
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", path, "./cmd/hookrelay")
	cmd.Dir = filepath.Dir(mod)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		_ = os.RemoveAll(dir)
		return "", "", fmt.Errorf("go build ./cmd/hookrelay in %s: %w\n%s", cmd.Dir, err, stderr.String())
	}
	fmt.Fprintf(out, "hookbench: built ./cmd/hookrelay in %s\n", time.Since(start).Round(100*time.Millisecond))
	return path, dir, nil
}

// binaryEnv is the whole environment of a `hookrelay run` under test:
// the database, schema and listen address, private destinations allowed
// for the loopback receiver, migrations on start, warn-level logs, and
// nothing else from hookbench's environment but PATH, HOME and TMPDIR, so
// every other setting is the default; extra (KEY=value) is a scenario's
// own setting, named in its note.
func binaryEnv(dbURL, schema, listen string, extra ...string) []string {
	env := []string{
		"HOOKRELAY_DATABASE_URL=" + dbURL,
		"HOOKRELAY_SCHEMA=" + schema,
		"HOOKRELAY_LISTEN_ADDR=" + listen,
		"HOOKRELAY_ALLOW_PRIVATE_DESTINATIONS=true",
		"HOOKRELAY_MIGRATE_ON_START=true",
		"HOOKRELAY_LOG_LEVEL=warn",
	}
	env = append(env, extra...)
	for _, k := range []string{"PATH", "HOME", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// binaryRelay is one or more `hookrelay run` processes on one schema.
type binaryRelay struct {
	procs []*relayProc
}

// relayProc is one `hookrelay run` process.
type relayProc struct {
	cmd  *exec.Cmd
	addr string // its HOOKRELAY_LISTEN_ADDR
	log  string // its stderr (and stdout), kept for errors
	done chan struct{}
	err  error // Wait's result; read after done is closed
}

// startBinaries starts n replicas of `hookrelay run` on schema, with extra
// settings (KEY=value) if any, and waits until each is ready.
func (b *bench) startBinaries(ctx context.Context, schema string, n int, extra ...string) (*binaryRelay, error) {
	exe, err := b.binary(ctx)
	if err != nil {
		return nil, err
	}
	br := &binaryRelay{}
	for range n {
		p, err := startRelayProc(exe, b.srv.URL(), schema, extra)
		if err != nil {
			_ = br.stop()
			return nil, err
		}
		br.procs = append(br.procs, p)
	}
	for _, p := range br.procs {
		if err := p.waitReady(ctx, binaryReadyTimeout); err != nil {
			_ = br.stop()
			return nil, err
		}
	}
	return br, nil
}

// startRelayProc starts one `hookrelay run` on a free loopback port.
func startRelayProc(exe, dbURL, schema string, extra []string) (*relayProc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	logf, err := os.CreateTemp("", "hookbench-relay-*.log")
	if err != nil {
		return nil, fmt.Errorf("relay log: %w", err)
	}
	cmd := exec.Command(exe, "run")
	cmd.Env = binaryEnv(dbURL, schema, addr, extra...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The relay dies with hookbench; it is stopped by pid otherwise.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		_ = os.Remove(logf.Name())
		return nil, fmt.Errorf("start %s run: %w", exe, err)
	}
	p := &relayProc{cmd: cmd, addr: addr, log: logf.Name(), done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = logf.Close()
		close(p.done)
	}()
	return p, nil
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr, nil
}

// waitReady polls /readyz until it answers 200, the process exits, or
// timeout.
func (p *relayProc) waitReady(ctx context.Context, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	var last string
	return poll(ctx, timeout, 20*time.Millisecond, func() (bool, error) {
		select {
		case <-p.done:
			return false, fmt.Errorf("hookrelay run (pid %d) exited before it was ready: %v\n%s", p.pid(), p.err, p.logTail())
		default:
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+"/readyz", nil)
		if err != nil {
			return false, err
		}
		resp, err := client.Do(req)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		_ = resp.Body.Close()
		last = resp.Status
		return resp.StatusCode == http.StatusOK, nil
	}, func() string {
		return fmt.Sprintf("hookrelay run (pid %d) to be ready (last /readyz: %s)\n%s", p.pid(), last, p.logTail())
	})
}

func (p *relayProc) pid() int { return p.cmd.Process.Pid }

// logTail is the end of the process's log.
func (p *relayProc) logTail() string {
	data, err := os.ReadFile(p.log)
	if err != nil {
		return ""
	}
	const keep = 2000
	if len(data) > keep {
		data = data[len(data)-keep:]
	}
	return "--- hookrelay log (tail) ---\n" + string(data)
}

// stop sends SIGTERM (a graceful drain) and waits; after binaryStopTimeout
// it kills the process. A non-zero exit is an error.
func (p *relayProc) stop() error {
	defer func() { _ = os.Remove(p.log) }()
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(binaryStopTimeout):
			_ = p.cmd.Process.Kill()
			<-p.done
			return fmt.Errorf("hookrelay run (pid %d) did not stop within %s of SIGTERM\n%s", p.pid(), binaryStopTimeout, p.logTail())
		}
	}
	if p.err != nil {
		return fmt.Errorf("hookrelay run (pid %d): %w\n%s", p.pid(), p.err, p.logTail())
	}
	return nil
}

func (br *binaryRelay) cpu() float64 {
	t := 0.0
	for _, p := range br.procs {
		t += procCPU(p.pid())
	}
	return t
}

func (br *binaryRelay) pids() []int {
	ps := make([]int, 0, len(br.procs))
	for _, p := range br.procs {
		ps = append(ps, p.pid())
	}
	return ps
}

// stop stops all replicas at once and waits for them.
func (br *binaryRelay) stop() error {
	errs := make([]error, len(br.procs))
	var wg sync.WaitGroup
	for i, p := range br.procs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = p.stop() }()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// resetPeakRSSOf resets the VmHWM of pid (Linux clear_refs 5).
func resetPeakRSSOf(pid int) bool {
	return os.WriteFile("/proc/"+strconv.Itoa(pid)+"/clear_refs", []byte("5"), 0) == nil
}

// peakRSSOf is the VmHWM of pid in MiB.
func peakRSSOf(pid int) float64 { return procStatusMiB(pid, "VmHWM") }

// procStatusMiB is a kB field of /proc/<pid>/status (VmRSS, VmHWM) in MiB,
// 0 when it cannot be read.
func procStatusMiB(pid int, field string) float64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// procTimesOf are a process's parent and CPU seconds.
type procTimesOf struct {
	ppid     int
	self     float64 // utime + stime
	children float64 // cutime + cstime: children it has reaped
}

// procTimes reads /proc/<pid>/stat.
func procTimes(pid int) (procTimesOf, bool) {
	var t procTimesOf
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return t, false
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return t, false
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 15 {
		return t, false
	}
	t.ppid, _ = strconv.Atoi(f[1])
	var v [4]float64
	for j := range v {
		v[j], _ = strconv.ParseFloat(f[11+j], 64)
	}
	t.self, t.children = (v[0]+v[1])/clkTck, (v[2]+v[3])/clkTck
	return t, true
}

// counters sums the replicas' Prometheus counters of interest (fan-out
// rounds by trigger, notifications) from /metrics.
func (br *binaryRelay) counters(ctx context.Context) (map[string]float64, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	m := map[string]float64{}
	for _, p := range br.procs {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+"/metrics", nil)
		if err != nil {
			return nil, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("scrape %s/metrics: %w", p.addr, err)
		}
		data, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("scrape %s/metrics: %w", p.addr, err)
		}
		for _, l := range strings.Split(string(data), "\n") {
			name, v, ok := strings.Cut(l, " ")
			if !ok || !(strings.HasPrefix(name, "hookrelay_polls_total{") || name == "hookrelay_notifications_total") {
				continue
			}
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				m[name] += f
			}
		}
	}
	return m, nil
}
