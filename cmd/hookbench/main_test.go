package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary serve as the receiver subprocess, since
// hookbench re-executes itself for it.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == receiverFlag {
		os.Exit(receiverMain(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// runQuick runs hookbench --quick with args, writing the JSON results to a
// temporary file, and fails the test unless it exits 0; it returns what
// hookbench printed and the results. It skips in -short mode.
func runQuick(t *testing.T, timeout time.Duration, args ...string) (stdout, stderr string, results []byte) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	path := filepath.Join(t.TempDir(), "bench.json")
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	var out, errOut bytes.Buffer
	if code := run(ctx, append([]string{"--quick", "--json", path}, args...), &out, &errOut); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), data
}

func TestQuickWritesJSON(t *testing.T) {
	out, _, data := runQuick(t, 2*time.Minute, "--scenarios", "drain,latency,history", "--history-rows", "2000")
	var rep struct {
		Quick   bool
		Runs    int
		Machine struct {
			CPU      string
			Cores    int
			Postgres string
		}
		Results []struct {
			Scenario, Metric, Unit string
			Values                 []float64
			Median, Min, Max       float64
			Target, Status         string
		}
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("results are not JSON: %v", err)
	}
	if !rep.Quick || rep.Runs != 1 {
		t.Errorf("quick = %v, runs = %d; want true, 1", rep.Quick, rep.Runs)
	}
	if rep.Machine.CPU == "" || rep.Machine.Cores < 1 || !strings.HasPrefix(rep.Machine.Postgres, "PostgreSQL ") {
		t.Errorf("machine = %+v", rep.Machine)
	}
	want := map[string]bool{
		"drain/events_per_s": true, "drain/relay_cpu_s_per_10k": true, "drain/peak_rss": true,
		"latency/p50": true, "latency/p95": true, "latency/p99": true,
		"history/events_per_s_empty": true, "history/events_per_s_tenth": true, "history/events_per_s_full": true,
		"history/list_dead_ms_full": true, "history/table_mib_full": true, "history/rows_full": true,
	}
	for _, r := range rep.Results {
		key := r.Scenario + "/" + r.Metric
		if !want[key] {
			continue
		}
		delete(want, key)
		if len(r.Values) != 1 || r.Median != r.Values[0] || r.Min > r.Median || r.Max < r.Median {
			t.Errorf("%s: values %v, median %v, min %v, max %v", key, r.Values, r.Median, r.Min, r.Max)
		}
		if r.Median <= 0 {
			t.Errorf("%s = %v, want > 0", key, r.Median)
		}
	}
	for key := range want {
		t.Errorf("results lack %s", key)
	}
	for _, key := range []string{"drain/events_per_s", "latency/p99", "drain/peak_rss"} {
		for _, r := range rep.Results {
			if r.Scenario+"/"+r.Metric == key && (r.Target == "" || (r.Status != "PASS" && r.Status != "MISS")) {
				t.Errorf("%s: target %q status %q", key, r.Target, r.Status)
			}
		}
	}
	if !strings.Contains(out, "events_per_s") {
		t.Errorf("table lacks events_per_s:\n%s", out)
	}
}

func TestRunRejectsBadUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"unknown scenario", []string{"--scenarios", "drain,nope"}},
		{"zero runs", []string{"--runs", "0"}},
		{"unknown flag", []string{"--nope"}},
		{"zero endpoint cap", []string{"--endpoint-max-in-flight", "0"}},
		{"soak under a second", []string{"--soak", "500ms"}},
		{"soak not a duration", []string{"--soak", "30"}},
		{"history of 5 rows", []string{"--history-rows", "5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := run(context.Background(), tt.args, &out, &errOut); code != 2 {
				t.Errorf("exit %d, want 2 (stderr %q)", code, errOut.String())
			}
		})
	}
}

func TestDefaultScenarios(t *testing.T) {
	if got := defaultScenarios(false); !slices.Equal(got, allScenarios) {
		t.Errorf("full run: %v, want every scenario", got)
	}
	quick := defaultScenarios(true)
	if slices.Contains(quick, "soak_binary") || !slices.Contains(quick, "halfrate_binary") || !slices.Contains(quick, "history") {
		t.Errorf("--quick: %v, want all but soak_binary", quick)
	}
	if len(quick) != len(allScenarios)-len(longScenarios) {
		t.Errorf("--quick: %d scenarios, want %d", len(quick), len(allScenarios)-len(longScenarios))
	}
}

func TestSoakRunsOnce(t *testing.T) {
	b := &bench{}
	if err := b.soakBinary(t.Context(), 1); err != nil || len(b.figs) > 0 || b.soak != nil {
		t.Errorf("second run: err %v, figures %v, soak %v; want nothing done", err, b.figs, b.soak)
	}
}

func TestFigureFinish(t *testing.T) {
	tests := []struct {
		name           string
		values         []float64
		op             string
		goal           float64
		median, lo, hi float64
		status         string
	}{
		{"odd", []float64{3, 1, 2}, ">=", 2, 2, 1, 3, "PASS"},
		{"even", []float64{4, 1, 3, 2}, ">=", 3, 2.5, 1, 4, "MISS"},
		{"at most", []float64{30, 20, 10}, "<=", 25, 20, 10, 30, "PASS"},
		{"no target", []float64{5}, "", 0, 5, 5, 5, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &figure{Values: tt.values, op: tt.op, goal: tt.goal}
			f.finish()
			if f.Median != tt.median || f.Min != tt.lo || f.Max != tt.hi || f.Status != tt.status {
				t.Errorf("got median %v min %v max %v status %q", f.Median, f.Min, f.Max, f.Status)
			}
		})
	}
}

// TestQuickBinaryReadme builds and runs `hookrelay run` next to the
// in-process relay and checks the figures, targets, diagnostics and the
// README table of one quick run.
func TestQuickBinaryReadme(t *testing.T) {
	md, progress, data := runQuick(t, 4*time.Minute, "--scenarios", "bare,drain,drain_binary,halfrate_binary,soak_binary", "--soak", "6s", "--readme")
	if !strings.HasPrefix(md, "Measured on a ") || !strings.Contains(md, "| drain, 2k backlog to one endpoint | ") {
		t.Errorf("stdout is not the README table:\n%s", md)
	}
	if !strings.Contains(progress, "hookbench: built ./cmd/hookrelay") {
		t.Errorf("progress did not go to stderr:\n%s", progress)
	}
	var rep report
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("results are not JSON: %v", err)
	}
	for _, key := range []string{"drain_binary/events_per_s", "drain_binary/relay_cpu_s_per_10k", "drain_binary/pg_cpu_s_per_10k", "drain_binary/peak_rss"} {
		s, m, _ := strings.Cut(key, "/")
		if v, ok := figs(rep.Results).med(s, m); !ok || v <= 0 {
			t.Errorf("%s = %v (present %v), want > 0", key, v, ok)
		}
	}
	got := statuses(rep.Targets)
	for _, id := range []string{"cpu_per_10k", "bare_ceiling", "binary_vs_in_process"} {
		if got[id] != "PASS" && got[id] != "MISS" {
			t.Errorf("target %s: status %q", id, got[id])
		}
	}
	for _, id := range []string{"latency_half_max", "soak"} {
		if got[id] != "PASS" && got[id] != "MISS" {
			t.Errorf("target %s: status %q", id, got[id])
		}
	}
	if got["replicas"] != "not run" {
		t.Errorf("target replicas: status %q, want not run", got["replicas"])
	}
	drain, _ := figs(rep.Results).med("drain_binary", "events_per_s")
	if v, _ := figs(rep.Results).med("halfrate_binary", "max_drain_events_per_s"); v != drain {
		t.Errorf("halfrate_binary measured against %v events/s, want drain_binary's %v", v, drain)
	}
	if rep.Soak == nil || len(rep.Soak.Samples) != 3 || rep.Soak.Samples[0].Receipts == 0 || rep.Soak.Samples[0].RSSMiB <= 0 ||
		len(rep.Soak.Samples[0].Tables) != 3 || rep.Soak.Samples[0].totalMiB() <= 0 {
		t.Errorf("soak samples: %+v", rep.Soak)
	}
	if !strings.Contains(md, "Soak samples (`hookrelay run`, 1,000 events/s for 6s") {
		t.Errorf("README lacks the soak table:\n%s", md)
	}
	var diag *diagnostics
	for _, d := range rep.Diagnostics {
		if d.Label == "drain_binary" {
			diag = d
		}
	}
	if diag == nil {
		t.Fatalf("no drain_binary diagnostics in %+v", rep.Diagnostics)
	}
	if diag.WALBytesPerDelivery <= 0 || len(diag.Tables) == 0 {
		t.Errorf("drain_binary diagnostics: %+v", diag)
	}
	for _, tv := range diag.Tables {
		if tv.Table == "attempts" && tv.Inserted < 1 {
			t.Errorf("attempts inserted per delivery = %v, want ≥ 1", tv.Inserted)
		}
	}
}

// TestQuickTracksPlanning: --track-planning records the statements'
// planning time, and the diagnostics show it; without it the column is
// left out.
func TestQuickTracksPlanning(t *testing.T) {
	out, _, data := runQuick(t, 2*time.Minute, "--scenarios", "drain", "--track-planning")
	var rep struct {
		Diagnostics []diagnostics
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("results are not JSON: %v", err)
	}
	planned := slices.ContainsFunc(rep.Diagnostics, func(d diagnostics) bool {
		return slices.ContainsFunc(d.Statements, func(s statementCost) bool { return s.PlanMsPer10k > 0 })
	})
	if !planned {
		t.Fatalf("no statement has a planning time in %d diagnostics", len(rep.Diagnostics))
	}
	if !strings.Contains(out, "plan ms") {
		t.Errorf("the diagnostics lack the plan ms column:\n%s", out)
	}
	var ds []*diagnostics
	for i := range rep.Diagnostics {
		for j := range rep.Diagnostics[i].Statements {
			rep.Diagnostics[i].Statements[j].PlanMsPer10k = 0
		}
		ds = append(ds, &rep.Diagnostics[i])
	}
	var plain bytes.Buffer
	printDiagnostics(&plain, ds)
	if strings.Contains(plain.String(), "plan ms") || !strings.Contains(plain.String(), "exec ms") {
		t.Errorf("without planning times the diagnostics should have exec ms and no plan ms column:\n%s", plain.String())
	}
}
