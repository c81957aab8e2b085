package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// profile is a perf report of one drain, summarised.
type profile struct {
	Name string   `json:"name"`
	File string   `json:"file"`
	Top  []string `json:"top"`
}

// perfDrain runs one more (unrecorded) drain_binary while `perf record`
// samples the whole machine, then writes perf reports of the binary and of
// PostgreSQL into b.o.perfDir. The product has no profiling hook of its
// own (no pprof endpoint, no -cpuprofile); perf needs none.
func (b *bench) perfDrain(ctx context.Context) error {
	perf, err := exec.LookPath("perf")
	if err != nil {
		b.note("perf: not found on PATH; no profile of the binary was taken")
		return nil
	}
	dir := b.o.perfDir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("perf directory: %w", err)
	}
	data := filepath.Join(dir, "perf.data")
	var relayPIDs, pgPIDs []int
	var rec *exec.Cmd
	var recErr bytes.Buffer
	hook := func(rel runningRelay) (func(), error) {
		relayPIDs = rel.pids()
		rec = exec.Command(perf, "record", "-F", "499", "-g", "-a", "-o", data)
		rec.Stderr = &recErr
		rec.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGINT}
		if err := rec.Start(); err != nil {
			return nil, fmt.Errorf("start perf record: %w", err)
		}
		// perf writes its header before it samples; give it a moment to
		// attach by waiting for the file to appear.
		_ = poll(ctx, 10*time.Second, 20*time.Millisecond, func() (bool, error) {
			_, err := os.Stat(data)
			return err == nil, nil
		}, func() string { return "perf to start" })
		return func() {
			for pid := range pgCPUByKind(b.srv.PID()).procs {
				pgPIDs = append(pgPIDs, pid)
			}
			pgPIDs = append(pgPIDs, b.srv.PID())
			_ = rec.Process.Signal(syscall.SIGINT)
			_ = rec.Wait()
		}, nil
	}
	fmt.Fprintf(b.out, "hookbench: profiling one more drain_binary with perf (%s)\n", data)
	r, err := b.drainFresh(ctx, "drain_perf", drainSpec{kind: binaryProcess, events: b.sz.Drain, hook: hook})
	if err != nil {
		return err
	}
	if _, err := os.Stat(data); err != nil {
		b.note("perf record wrote nothing: " + strings.TrimSpace(recErr.String()))
		return nil
	}
	b.note(fmt.Sprintf("perf: one extra drain_binary of %d events at %s events/s (not in the figures) under `perf record -F 499 -g -a`; reports in %s", b.sz.Drain, thousands(r.rate()), dir))
	slices.Sort(pgPIDs)
	relay, pg := joinPIDs(relayPIDs), joinPIDs(pgPIDs)
	reports := []struct {
		name, file string
		args       []string
	}{
		{"processes (share of all samples)", "by-process.txt", []string{"--sort", "comm"}},
		{"hookrelay run, self time by function (share of its samples)", "hookrelay-self.txt", []string{"--no-children", "--sort", "sym", "--pid", relay, "--percentage", "relative"}},
		{"hookrelay run, time including callees (share of its samples)", "hookrelay-children.txt", []string{"--children", "--sort", "sym", "--pid", relay, "--percentage", "relative"}},
		{"PostgreSQL, self time by function (share of its samples)", "postgres-self.txt", []string{"--no-children", "--sort", "dso,sym", "--pid", pg, "--percentage", "relative"}},
	}
	for _, rp := range reports {
		args := append([]string{"report", "-i", data, "--stdio", "-g", "none", "--percent-limit", "0.5"}, rp.args...)
		cmd := exec.CommandContext(ctx, perf, args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			b.note(fmt.Sprintf("perf report (%s): %v: %s", rp.name, err, strings.TrimSpace(stderr.String())))
			continue
		}
		path := filepath.Join(dir, rp.file)
		if err := os.WriteFile(path, stdout.Bytes(), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		b.profiles = append(b.profiles, profile{Name: rp.name, File: path, Top: topLines(stdout.String(), 25)})
	}
	return nil
}

func joinPIDs(pids []int) string {
	s := make([]string, len(pids))
	for i, p := range pids {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ",")
}

// topLines keeps the first n non-comment, non-blank lines of a perf
// report.
func topLines(report string, n int) []string {
	var out []string
	for _, l := range strings.Split(report, "\n") {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "#") || frameOnly(t) {
			continue
		}
		out = append(out, strings.Join(strings.Fields(t), " "))
		if len(out) == n {
			break
		}
	}
	return out
}

// frameOnly says whether a report line is a frame every goroutine or
// thread passes through, which says nothing about where time goes.
func frameOnly(line string) bool {
	for _, f := range []string{"runtime.goexit", "runtime.systemstack", "runtime.mcall", "runtime.main", ".gowrap", "runtime.mstart"} {
		if strings.Contains(line, f) {
			return true
		}
	}
	return false
}
