package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the variable that points tests at an existing server instead
// of a throwaway cluster.
const EnvURL = "HOOKRELAY_TEST_DATABASE_URL"

const (
	// tempPattern is the os.MkdirTemp pattern of cluster directories.
	tempPattern = "hookrelay-pg-*"
	// ReadyTimeout bounds how long Start and Restart wait for the server to
	// accept connections.
	ReadyTimeout = 30 * time.Second
	// stopTimeout bounds how long Stop waits for a fast shutdown before it
	// kills the postmaster.
	stopTimeout = 30 * time.Second
	// pollInterval is the pause between connection attempts while waiting.
	pollInterval = 50 * time.Millisecond
	// startAttempts is how often Start tries a new port when the one it
	// picked was taken before the postmaster could bind it.
	startAttempts = 3
	// ownerFile holds the pid of the process that started the cluster; the
	// next Start removes the directory once that process is gone.
	ownerFile = "owner.pid"
	// logFile is the postmaster's stderr and stdout.
	logFile = "postgres.log"
	// superuser is the bootstrap superuser and default database name.
	superuser = "postgres"
)

// searchGlob is where server binaries are looked for when they are not on
// PATH; a variable so tests can point it elsewhere.
var searchGlob = "/usr/lib/postgresql/*/bin"

// ErrExternal is returned by operations that need a local cluster when the
// Server wraps an existing server from EnvURL.
var ErrExternal = errors.New("pgcluster: operation not supported on an external server (" + EnvURL + ")")

// NotFoundError reports that the PostgreSQL server binaries could not be
// found. Its message says how to install them.
type NotFoundError struct {
	// Searched lists the directories that were looked in.
	Searched []string
}

// Error implements error.
func (e *NotFoundError) Error() string {
	return "PostgreSQL server binaries (initdb, postgres) not found on PATH or under " + searchGlob +
		"; install them, e.g. `sudo apt-get install postgresql` (Debian/Ubuntu) or " +
		"`brew install postgresql@16` (macOS), or set " + EnvURL + " to an existing server"
}

// StartError reports that the postmaster did not come up; Log holds the tail
// of its log.
type StartError struct {
	// Err is the underlying cause.
	Err error
	// Log is the tail of the server log, possibly empty.
	Log string
}

// Error implements error.
func (e *StartError) Error() string {
	if e.Log == "" {
		return "start postgres: " + e.Err.Error()
	}
	return "start postgres: " + e.Err.Error() + "\n--- server log (tail) ---\n" + e.Log
}

// Unwrap returns the underlying cause.
func (e *StartError) Unwrap() error { return e.Err }

// Options tune the cluster. The zero value is a fast, non-durable cluster.
type Options struct {
	// Durable turns fsync, synchronous_commit and full_page_writes on (for
	// benchmarks). By default all three are off for speed.
	Durable bool
	// ForceLocal starts a local cluster even when EnvURL is set.
	ForceLocal bool
	// Logf, if set, receives progress lines.
	Logf func(format string, args ...any)
	// Settings are extra postgresql.conf settings passed as -c name=value.
	// They override the defaults, except port, listen_addresses and
	// unix_socket_directories.
	Settings map[string]string
}

// binaries are the server programs a cluster needs.
type binaries struct {
	initdb   string
	postgres string
}

// proc is a running postmaster and the signal of its exit.
type proc struct {
	pid  int
	done chan struct{} // closed when the process has exited and been reaped
	err  error         // Wait's result; read only after done is closed
}

// Server is a running throwaway cluster (or an external server from EnvURL).
// Its methods are safe for concurrent use.
type Server struct {
	url  string
	dir  string // "" for external servers
	port int
	bins binaries
	args []string   // postgres arguments
	cred *user.User // nil unless running as another user
	logf func(format string, args ...any)

	mu      sync.Mutex
	proc    *proc
	stopped bool
}

// Start starts a new cluster in a temporary directory on a free loopback TCP
// port and waits until it accepts connections. It creates no database, role
// or schema beyond what initdb makes. If EnvURL is set and opts.ForceLocal is
// false, it starts nothing and returns a Server wrapping that URL.
func Start(ctx context.Context, opts Options) (*Server, error) {
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if u := os.Getenv(EnvURL); u != "" && !opts.ForceLocal {
		logf("pgcluster: using existing server from %s", EnvURL)
		return &Server{url: u, logf: logf, stopped: true}, nil
	}
	reapStale(os.TempDir(), logf)

	bins, err := findBinaries(os.Getenv("PATH"), searchGlob)
	if err != nil {
		return nil, err
	}
	var runAs *user.User
	if os.Geteuid() == 0 {
		runAs, err = user.Lookup(superuser)
		if err != nil {
			return nil, fmt.Errorf("pgcluster: running as root, PostgreSQL must run as the %q system user: %w", superuser, err)
		}
	}
	dir, err := os.MkdirTemp("", tempPattern)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: create cluster directory: %w", err)
	}
	s := &Server{dir: dir, bins: bins, cred: runAs, logf: logf}
	if err := s.init(ctx, opts); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		s.port, err = freePort()
		if err == nil {
			s.args = serverArgs(s.dataDir(), dir, s.port, opts)
			s.url = fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", superuser, s.port, superuser)
			err = s.launch(ctx)
		}
		var se *StartError
		if err == nil || attempt == startAttempts || !errors.As(err, &se) || !strings.Contains(se.Log, "could not bind") {
			break
		}
		logf("pgcluster: port %d was taken, trying another", s.port)
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// URL is a postgres:// URL for the superuser on the default database (user
// "postgres", database "postgres", host 127.0.0.1, sslmode=disable), or the
// EnvURL value for an external server.
func (s *Server) URL() string { return s.url }

// Dir is the cluster's temporary directory ("" for an external server).
func (s *Server) Dir() string { return s.dir }

// PID is the postmaster's pid (0 for an external server or a stopped
// cluster).
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.pid
}

// Stop stops the cluster with a fast shutdown (SIGINT), waits with a
// deadline, kills the postmaster's process group if it did not exit, and
// removes the temporary directory. It is idempotent, and a no-op for an
// external server.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	s.stopped = true
	err := s.halt()
	if rmErr := os.RemoveAll(s.dir); rmErr != nil {
		err = errors.Join(err, fmt.Errorf("pgcluster: remove cluster directory: %w", rmErr))
	}
	return err
}

// Restart does a fast restart of the cluster (like pg_ctl restart -m fast)
// on the same port and data directory; existing connections are dropped. If
// the postmaster is not running (after Kill), Restart just starts it, which
// runs crash recovery. It returns ErrExternal for an external server.
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dir == "" {
		return ErrExternal
	}
	if s.stopped {
		return errors.New("pgcluster: restart: server is stopped")
	}
	if err := s.halt(); err != nil {
		return fmt.Errorf("pgcluster: restart: %w", err)
	}
	// After a crash, children of the old postmaster may take a moment to go;
	// until then the new postmaster refuses the shared memory block.
	ctx, cancel := context.WithTimeout(ctx, ReadyTimeout)
	defer cancel()
	for {
		err := s.launch(ctx)
		var se *StartError
		if err == nil || !errors.As(err, &se) || !strings.Contains(se.Log, "pre-existing shared memory block") {
			return err
		}
		if err := wait(ctx, pollInterval); err != nil {
			return fmt.Errorf("pgcluster: restart: %w (last start: %v)", err, se)
		}
	}
}

// Kill sends SIGKILL to the postmaster and its children, simulating a crash,
// and waits for the postmaster to exit. Restart brings the cluster back up
// through crash recovery. It returns ErrExternal for an external server.
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dir == "" {
		return ErrExternal
	}
	p := s.proc
	if p == nil {
		return nil
	}
	s.proc = nil
	killGroup(p.pid)
	<-p.done
	return nil
}

// halt stops the running postmaster, if any. The caller holds s.mu.
func (s *Server) halt() error {
	p := s.proc
	if p == nil {
		return nil
	}
	s.proc = nil
	_ = syscall.Kill(p.pid, syscall.SIGINT)
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return nil
	case <-timer.C:
	}
	killGroup(p.pid)
	<-p.done
	return fmt.Errorf("pgcluster: postgres (pid %d) ignored fast shutdown for %s; killed", p.pid, stopTimeout)
}

// killGroup sends SIGKILL to the process group the postmaster leads, which
// also takes its backends down.
func killGroup(pid int) {
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// dataDir is PGDATA, a sub-directory so that the log and socket stay out of
// it.
func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }

// init prepares the directory and runs initdb.
func (s *Server) init(ctx context.Context, opts Options) error {
	if err := os.Chmod(s.dir, 0o700); err != nil {
		return fmt.Errorf("pgcluster: chmod cluster directory: %w", err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return fmt.Errorf("pgcluster: write owner file: %w", err)
	}
	if s.cred != nil {
		uid, gid, err := ids(s.cred)
		if err != nil {
			return err
		}
		if err := os.Chown(s.dir, uid, gid); err != nil {
			return fmt.Errorf("pgcluster: chown cluster directory to %s: %w", s.cred.Username, err)
		}
	}
	args := []string{"-D", s.dataDir(), "-U", superuser, "--auth=trust", "-E", "UTF8", "--locale=C"}
	if !opts.Durable {
		args = append(args, "--no-sync")
	}
	cmd := exec.CommandContext(ctx, s.bins.initdb, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := s.prepare(cmd); err != nil {
		return err
	}
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return &StartError{Err: fmt.Errorf("initdb: %w", err), Log: tail(out.Bytes())}
	}
	s.logf("pgcluster: initdb %s in %s", s.dataDir(), time.Since(start).Round(time.Millisecond))
	return nil
}

// prepare sets the working directory, environment and credentials of cmd.
func (s *Server) prepare(cmd *exec.Cmd) error {
	cmd.Dir = s.dir
	cmd.Env = cleanEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if s.cred != nil {
		uid, gid, err := ids(s.cred)
		if err != nil {
			return err
		}
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	return nil
}

// launch starts the postmaster and waits until it accepts connections. The
// caller holds s.mu or owns s exclusively.
func (s *Server) launch(ctx context.Context) error {
	logPath := filepath.Join(s.dir, logFile)
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("pgcluster: open server log: %w", err)
	}
	defer lf.Close()
	offset, _ := lf.Seek(0, io.SeekEnd)

	cmd := exec.Command(s.bins.postgres, s.args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := s.prepare(cmd); err != nil {
		return err
	}
	// Own process group, so Kill and Stop reach the backends; the death
	// signal replaces the terminal's Ctrl-C that the group no longer gets.
	cmd.SysProcAttr.Setpgid = true
	setDeathSignal(cmd.SysProcAttr)

	started := time.Now()
	p, err := startLocked(cmd)
	if err != nil {
		return &StartError{Err: err}
	}
	if err := waitReady(ctx, s.url, p); err != nil {
		killGroup(p.pid)
		<-p.done
		return &StartError{Err: err, Log: logTail(logPath, offset)}
	}
	s.proc = p
	s.logf("pgcluster: postgres ready on 127.0.0.1:%d (pid %d) in %s", s.port, p.pid, time.Since(started).Round(time.Millisecond))
	return nil
}

// startLocked starts cmd from a goroutine locked to its OS thread and waits
// for it there. The death signal of a child fires when the thread that
// started it exits, and Go may end idle threads; a locked thread lives until
// the child has been reaped.
func startLocked(cmd *exec.Cmd) (*proc, error) {
	p := &proc{done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		p.pid = cmd.Process.Pid
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("run %s: %w", cmd.Path, err)
	}
	return p, nil
}

// waitReady polls until the server at connURL accepts a connection, the
// process exits, or the deadline passes.
func waitReady(ctx context.Context, connURL string, p *proc) error {
	ctx, cancel := context.WithTimeout(ctx, ReadyTimeout)
	defer cancel()
	cfg, err := pgx.ParseConfig(connURL)
	if err != nil {
		return fmt.Errorf("parse server URL: %w", err)
	}
	cfg.ConnectTimeout = time.Second
	var lastErr error
	for {
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			return conn.Close(ctx)
		}
		lastErr = err
		timer := time.NewTimer(pollInterval)
		select {
		case <-p.done:
			timer.Stop()
			return fmt.Errorf("postgres exited during start-up: %v", p.err)
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("wait for postgres to accept connections: %w (last error: %v)", ctx.Err(), lastErr)
		case <-timer.C:
		}
	}
}

// wait blocks for d or until ctx is done.
func wait(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// serverArgs are the postmaster's command-line arguments.
func serverArgs(dataDir, sockDir string, port int, opts Options) []string {
	onOff := "off"
	if opts.Durable {
		onOff = "on"
	}
	settings := map[string]string{
		"max_connections":    "300",
		"fsync":              onOff,
		"synchronous_commit": onOff,
		"full_page_writes":   onOff,
	}
	for k, v := range opts.Settings {
		settings[k] = v
	}
	settings["listen_addresses"] = "127.0.0.1"
	settings["unix_socket_directories"] = sockDir
	delete(settings, "port")

	args := []string{"-D", dataDir, "-p", strconv.Itoa(port)}
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		args = append(args, "-c", k+"="+settings[k])
	}
	return args
}

// findBinaries looks for initdb and postgres in a directory of pathList
// that holds both, else in the highest-versioned directory matching glob.
func findBinaries(pathList, glob string) (binaries, error) {
	var searched []string
	for _, dir := range filepath.SplitList(pathList) {
		if dir == "" {
			continue
		}
		searched = append(searched, dir)
		if b, ok := binariesIn(dir); ok {
			return b, nil
		}
	}
	dirs, _ := filepath.Glob(glob)
	slices.SortFunc(dirs, func(a, b string) int {
		return compareVersions(filepath.Base(filepath.Dir(b)), filepath.Base(filepath.Dir(a)))
	})
	for _, dir := range dirs {
		searched = append(searched, dir)
		if b, ok := binariesIn(dir); ok {
			return b, nil
		}
	}
	return binaries{}, &NotFoundError{Searched: searched}
}

// binariesIn reports whether dir holds executable initdb and postgres.
func binariesIn(dir string) (binaries, bool) {
	b := binaries{initdb: filepath.Join(dir, "initdb"), postgres: filepath.Join(dir, "postgres")}
	for _, p := range []string{b.initdb, b.postgres} {
		fi, err := os.Stat(p)
		if err != nil || fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return binaries{}, false
		}
	}
	return b, true
}

// compareVersions compares dotted version strings numerically ("9.6" <
// "15"); non-numeric parts compare as strings.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) && i < len(bs); i++ {
		ai, aErr := strconv.Atoi(as[i])
		bi, bErr := strconv.Atoi(bs[i])
		var c int
		if aErr == nil && bErr == nil {
			c = ai - bi
		} else {
			c = strings.Compare(as[i], bs[i])
		}
		if c != 0 {
			return c
		}
	}
	return len(as) - len(bs)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgcluster: find a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("pgcluster: find a free port: %w", err)
	}
	return port, nil
}

// ids parses a user's numeric uid and gid.
func ids(u *user.User) (int, int, error) {
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return 0, 0, fmt.Errorf("pgcluster: uid of %s: %w", u.Username, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return 0, 0, fmt.Errorf("pgcluster: gid of %s: %w", u.Username, err)
	}
	return uid, gid, nil
}

// cleanEnv is the environment for initdb and postgres: the caller's, minus
// libpq and locale variables that could change what the cluster does.
func cleanEnv() []string {
	env := make([]string, 0, len(os.Environ()))
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "PG") || strings.HasPrefix(name, "LC_") || name == "LANG" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C")
}

// logTail returns the last lines the server wrote to path after offset.
func logTail(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(f)
	return tail(b)
}

// tail returns at most the last 30 lines of b.
func tail(b []byte) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

// reapStale removes cluster directories under tmp whose starting process
// and postmaster are both gone (left behind by a test binary that was
// killed). It never signals a process.
func reapStale(tmp string, logf func(string, ...any)) {
	dirs, _ := filepath.Glob(filepath.Join(tmp, tempPattern))
	for _, dir := range dirs {
		owner, ok := readPID(filepath.Join(dir, ownerFile))
		if !ok || alive(owner) {
			continue
		}
		if pm, ok := readPID(filepath.Join(dir, "data", "postmaster.pid")); ok && alive(pm) {
			continue
		}
		if err := os.RemoveAll(dir); err == nil {
			logf("pgcluster: removed stale cluster directory %s", dir)
		}
	}
}

// readPID reads the pid on the first line of path.
func readPID(path string) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	return pid, err == nil && pid > 0
}

// alive reports whether a process with this pid exists.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
