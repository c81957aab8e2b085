package pgcluster

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// startLocal starts a private cluster for a test.
func startLocal(t *testing.T, opts Options) *Server {
	t.Helper()
	opts.ForceLocal = true
	opts.Logf = t.Logf
	srv, err := Start(t.Context(), opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return srv
}

// queryString runs a one-value query on a fresh connection.
func queryString(t *testing.T, url, sql string) string {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	var v string
	if err := conn.QueryRow(t.Context(), sql).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

func TestStartStopDurable(t *testing.T) {
	t.Parallel()
	srv, err := Start(t.Context(), Options{
		ForceLocal: true,
		Durable:    true,
		Logf:       t.Logf,
		Settings:   map[string]string{"application_name": "outboxtest_probe", "max_connections": "50"},
	})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	dir, pid := srv.Dir(), srv.PID()
	if dir == "" || pid == 0 {
		t.Fatalf("Dir() = %q, PID() = %d; want both set", dir, pid)
	}
	for _, tc := range []struct{ setting, want string }{
		{"fsync", "on"},
		{"synchronous_commit", "on"},
		{"full_page_writes", "on"},
		{"max_connections", "50"},
		{"application_name", "outboxtest_probe"},
	} {
		if got := queryString(t, srv.URL(), "SHOW "+tc.setting); got != tc.want {
			t.Errorf("SHOW %s = %q, want %q", tc.setting, got, tc.want)
		}
	}
	if err := srv.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Stop, stat %s: %v; want not exist", dir, err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("after Stop, kill(%d, 0) = %v; want ESRCH", pid, err)
	}
	if srv.PID() != 0 {
		t.Errorf("after Stop, PID() = %d, want 0", srv.PID())
	}
	if err := srv.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if err := srv.Restart(t.Context()); err == nil {
		t.Error("Restart after Stop succeeded, want error")
	}
}

func TestRestartAndKillKeepData(t *testing.T) {
	t.Parallel()
	srv := startLocal(t, Options{})
	pool, err := pgxpool.New(t.Context(), srv.URL())
	if err != nil {
		t.Fatalf("pool: %v", err)
	}
	t.Cleanup(pool.Close)
	if _, err := pool.Exec(t.Context(), "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)"); err != nil {
		t.Fatalf("create table: %v", err)
	}

	for _, step := range []struct {
		name  string
		crash bool
	}{
		{"fast restart", false},
		{"kill then restart", true},
	} {
		before := srv.PID()
		if step.crash {
			if err := srv.Kill(); err != nil {
				t.Fatalf("%s: Kill: %v", step.name, err)
			}
			if srv.PID() != 0 {
				t.Errorf("%s: PID() after Kill = %d, want 0", step.name, srv.PID())
			}
			if err := syscall.Kill(before, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("%s: kill(%d, 0) after Kill = %v; want ESRCH", step.name, before, err)
			}
		}
		if err := srv.Restart(t.Context()); err != nil {
			t.Fatalf("%s: Restart: %v", step.name, err)
		}
		if after := srv.PID(); after == 0 || after == before {
			t.Errorf("%s: PID %d -> %d, want a new postmaster", step.name, before, after)
		}
		// The pool's old connections are dead; it must hand out new ones.
		var v int
		deadline := time.Now().Add(10 * time.Second)
		for {
			err = pool.QueryRow(t.Context(), "SELECT v FROM kept").Scan(&v)
			if err == nil || time.Now().After(deadline) {
				break
			}
			if werr := wait(t.Context(), 20*time.Millisecond); werr != nil {
				t.Fatal(werr)
			}
		}
		if err != nil || v != 42 {
			t.Fatalf("%s: SELECT v FROM kept = %d, %v; want 42", step.name, v, err)
		}
	}
}

func TestFindBinaries(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	mk := func(dir string, names ...string) string {
		t.Helper()
		full := filepath.Join(root, dir)
		if err := os.MkdirAll(full, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if err := os.WriteFile(filepath.Join(full, n), []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		return full
	}
	onlyInitdb := mk("path/only-initdb", "initdb")
	both := mk("path/both", "initdb", "postgres")
	mk("pg/9.6/bin", "initdb", "postgres")
	v15 := mk("pg/15/bin", "initdb", "postgres")
	mk("pg/16/bin", "initdb") // incomplete: skipped
	glob := filepath.Join(root, "pg", "*", "bin")

	for _, tc := range []struct {
		name, path, glob, want string
	}{
		{"PATH dir with both wins", strings.Join([]string{onlyInitdb, both}, string(filepath.ListSeparator)), glob, both},
		{"highest complete version", onlyInitdb, glob, v15},
		{"empty PATH", "", glob, v15},
	} {
		got, err := findBinaries(tc.path, tc.glob)
		if err != nil {
			t.Errorf("%s: findBinaries: %v", tc.name, err)
			continue
		}
		if want := (binaries{filepath.Join(tc.want, "initdb"), filepath.Join(tc.want, "postgres")}); got != want {
			t.Errorf("%s: findBinaries = %+v, want %+v", tc.name, got, want)
		}
	}
}

func TestFindBinariesNotFound(t *testing.T) {
	t.Parallel()
	_, err := findBinaries("", filepath.Join(t.TempDir(), "nope", "*", "bin"))
	var nf *NotFoundError
	if !errors.As(err, &nf) {
		t.Fatalf("findBinaries with nothing to find = %v, want *NotFoundError", err)
	}
	for _, want := range []string{"initdb, postgres", "not found on PATH", "apt-get install postgresql", "brew install postgresql@16", EnvURL} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestCompareVersions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b string
		sign int
	}{
		{"9.6", "15", -1},
		{"16", "15", 1},
		{"15", "15", 0},
		{"10", "9", 1},
		{"15.1", "15", 1},
	} {
		got := compareVersions(tc.a, tc.b)
		if (got > 0) != (tc.sign > 0) || (got < 0) != (tc.sign < 0) {
			t.Errorf("compareVersions(%q, %q) = %d, want sign %d", tc.a, tc.b, got, tc.sign)
		}
	}
}

func TestStartExternal(t *testing.T) {
	const url = "postgres://someone@127.0.0.1:1/elsewhere?sslmode=disable"
	t.Setenv(EnvURL, url)
	srv, err := Start(t.Context(), Options{})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if srv.URL() != url || srv.Dir() != "" || srv.PID() != 0 {
		t.Errorf("external server: URL %q, Dir %q, PID %d; want %q, \"\", 0", srv.URL(), srv.Dir(), srv.PID(), url)
	}
	if err := srv.Restart(t.Context()); !errors.Is(err, ErrExternal) {
		t.Errorf("Restart = %v, want ErrExternal", err)
	}
	if err := srv.Kill(); !errors.Is(err, ErrExternal) {
		t.Errorf("Kill = %v, want ErrExternal", err)
	}
	if err := srv.Stop(); err != nil {
		t.Errorf("Stop = %v, want nil", err)
	}
}

func TestReapStale(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	// A pid that certainly belonged to a process that is gone.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatalf("run true: %v", err)
	}
	deadPID := strconv.Itoa(gone.Process.Pid)
	livePID := strconv.Itoa(os.Getpid())

	for _, tc := range []struct {
		name       string
		owner      string // "" writes no owner file
		postmaster string // "" writes no postmaster.pid
		kept       bool
	}{
		{"owner gone", deadPID, "", false},
		{"owner and postmaster gone", deadPID, deadPID + "\n/data\n", false},
		{"owner alive", livePID, "", true},
		{"postmaster alive", deadPID, livePID + "\n/data\n", true},
		{"no owner file", "", "", true},
	} {
		dir, err := os.MkdirTemp(tmp, tempPattern)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
			t.Fatal(err)
		}
		if tc.owner != "" {
			if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(tc.owner), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if tc.postmaster != "" {
			if err := os.WriteFile(filepath.Join(dir, "data", "postmaster.pid"), []byte(tc.postmaster), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		reapStale(tmp, t.Logf)
		_, err = os.Stat(dir)
		if kept := err == nil; kept != tc.kept {
			t.Errorf("%s: directory kept = %v, want %v", tc.name, kept, tc.kept)
		}
	}
}
