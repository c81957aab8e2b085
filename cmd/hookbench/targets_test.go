package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// fig is a one-value figure.
func fig(scenario, metric string, v ...float64) *figure {
	return &figure{Scenario: scenario, Metric: metric, Values: v}
}

// passingFigures meet every issue 18 target.
func passingFigures() []*figure {
	return []*figure{
		fig("bare", "posts_per_s", 20000),
		fig("baseline", "events_per_s_16_workers", 3000),
		fig("drain", "events_per_s", 13000), fig("drain", "relay_cpu_s_per_10k", 0.6), fig("drain", "pg_cpu_s_per_10k", 0.6),
		fig("drain_binary", "events_per_s", 12500), fig("drain_binary", "relay_cpu_s_per_10k", 0.7), fig("drain_binary", "pg_cpu_s_per_10k", 0.7),
		fig("drain_binary", "receiver_cpu_s_per_10k", 0.3),
		fig("latency_binary", "p50", 4), fig("latency_binary", "p95", 8), fig("latency_binary", "p99", 12),
		fig("latency_binary", "offered_rate", 1000),
		fig("appcost", "overhead_relay_stopped_1conn", 3, -2, 8),
		fig("tenants_binary", "events_per_s_one_endpoint", 12000), fig("tenants_binary", "events_per_s_many_endpoints", 11800),
		fig("tenants_binary", "loss", 1.7),
		fig("fanout_binary", "deliveries_per_s", 12000),
		fig("replicas_binary", "pg_cpu_s_per_10k_1r", 0.7), fig("replicas_binary", "pg_cpu_s_per_10k_4r", 0.75),
		fig("replicas_binary", "pg_cpu_increase", 7),
		fig("halfrate_binary", "p50", 6), fig("halfrate_binary", "p95", 12), fig("halfrate_binary", "p99", 20),
		fig("halfrate_binary", "offered_rate", 6200), fig("halfrate_binary", "max_drain_events_per_s", 12500),
		fig("history", "rows_tenth", 1e6), fig("history", "rows_full", 1e7),
		fig("history", "events_per_s_empty", 6000), fig("history", "events_per_s_tenth", 5900), fig("history", "events_per_s_full", 5800),
		fig("history", "claim_ms_empty", 0.5), fig("history", "claim_ms_tenth", 0.52), fig("history", "claim_ms_full", 0.54),
		fig("history", "list_newest_ms_empty", 2), fig("history", "list_newest_ms_tenth", 2), fig("history", "list_newest_ms_full", 2.1),
		fig("history", "list_dead_ms_empty", 4), fig("history", "list_dead_ms_tenth", 4), fig("history", "list_dead_ms_full", 4.2),
		fig("history", "list_type_ms_empty", 5), fig("history", "list_type_ms_tenth", 5.4), fig("history", "list_type_ms_full", 5.5),
		fig("history", "table_mib_empty", 30), fig("history", "table_mib_tenth", 700), fig("history", "table_mib_full", 7000),
		fig("history", "index_mib_empty", 20), fig("history", "index_mib_tenth", 500), fig("history", "index_mib_full", 5000),
		fig("soak_binary", "rss_first_third", 30), fig("soak_binary", "rss_last_third", 31), fig("soak_binary", "rss_change", 3.3),
		fig("soak_binary", "p99_first_third", 10), fig("soak_binary", "p99_last_third", 11), fig("soak_binary", "p99_change", 10),
		fig("soak_binary", "size_first_third", 1500), fig("soak_binary", "size_last_third", 1600), fig("soak_binary", "size_change", 6.7),
		fig("soak_binary", "deliveries_deleted", 1.2e6), fig("soak_binary", "dead_tuples_max", 40000),
		fig("soak_binary", "duration_s", 1800), fig("soak_binary", "offered_rate", 1000),
	}
}

func statuses(gs []goal) map[string]string {
	m := map[string]string{}
	for _, g := range gs {
		m[g.ID] = g.Status
	}
	return m
}

func TestIssueTargets(t *testing.T) {
	set := func(fs []*figure, scenario, metric string, v float64) []*figure {
		for _, f := range fs {
			if f.Scenario == scenario && f.Metric == metric {
				f.Values = []float64{v}
			}
		}
		return fs
	}
	tests := []struct {
		name string
		figs []*figure
		want map[string]string
	}{
		{"all pass", passingFigures(), map[string]string{
			"cpu_per_10k": "PASS", "bare_ceiling": "PASS", "binary_vs_in_process": "PASS", "latency_p50": "PASS",
			"latency_p99": "PASS", "app_insert_cost": "PASS", "many_endpoints": "PASS", "fan_out": "PASS", "replicas": "PASS",
			"history_10m": "PASS", "latency_half_max": "PASS", "soak": "PASS",
		}},
		{"cpu over 1.5 s", set(passingFigures(), "drain_binary", "pg_cpu_s_per_10k", 0.81), map[string]string{"cpu_per_10k": "MISS"}},
		{"below 60 % of bare", set(passingFigures(), "bare", "posts_per_s", 21000), map[string]string{"bare_ceiling": "MISS"}},
		{"binary 15 % slower", set(passingFigures(), "drain", "events_per_s", 14800), map[string]string{"binary_vs_in_process": "MISS"}},
		{"binary 15 % faster", set(passingFigures(), "drain", "events_per_s", 10800), map[string]string{"binary_vs_in_process": "MISS"}},
		{"p99 over 15 ms", set(passingFigures(), "latency_binary", "p99", 15.5), map[string]string{"latency_p99": "MISS", "latency_p50": "PASS"}},
		{"insert cost", set(passingFigures(), "appcost", "overhead_relay_stopped_1conn", 12), map[string]string{"app_insert_cost": "MISS"}},
		{"many endpoints", set(passingFigures(), "tenants_binary", "loss", 5.5), map[string]string{"many_endpoints": "MISS"}},
		{"fan-out under 90 %", set(passingFigures(), "fanout_binary", "deliveries_per_s", 11000), map[string]string{"fan_out": "MISS"}},
		{"replicas", set(passingFigures(), "replicas_binary", "pg_cpu_increase", 10.5), map[string]string{"replicas": "MISS"}},
		{"half-rate p99 over 25 ms", set(passingFigures(), "halfrate_binary", "p99", 25.5), map[string]string{"latency_half_max": "MISS", "latency_p99": "PASS"}},
		{"history drain 11 % slower at 10M", set(passingFigures(), "history", "events_per_s_full", 5300), map[string]string{"history_10m": "MISS"}},
		{"history faster at 10M", set(passingFigures(), "history", "events_per_s_full", 9000), map[string]string{"history_10m": "PASS"}},
		{"history claim 11 % slower at 1M", set(passingFigures(), "history", "claim_ms_tenth", 0.555), map[string]string{"history_10m": "MISS"}},
		{"history dead list", set(passingFigures(), "history", "list_dead_ms_full", 4.5), map[string]string{"history_10m": "MISS"}},
		{"history without claim figures", slices.DeleteFunc(passingFigures(), func(f *figure) bool { return strings.HasPrefix(f.Metric, "claim_ms") }),
			map[string]string{"history_10m": "PASS"}},
		{"soak RSS grows", set(passingFigures(), "soak_binary", "rss_change", 21), map[string]string{"soak": "MISS"}},
		{"soak p99 grows", set(passingFigures(), "soak_binary", "p99_change", 20.5), map[string]string{"soak": "MISS"}},
		{"soak tables grow", set(passingFigures(), "soak_binary", "size_change", 40), map[string]string{"soak": "MISS"}},
		{"soak shrinks", set(passingFigures(), "soak_binary", "size_change", -30), map[string]string{"soak": "PASS"}},
		{"nothing run", nil, map[string]string{"cpu_per_10k": "not run", "latency_p50": "not run", "replicas": "not run", "soak": "not run",
			"history_10m": "not run", "latency_half_max": "not run"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gs := issueTargets(tt.figs)
			got := statuses(gs)
			for id, want := range tt.want {
				if got[id] != want {
					t.Errorf("%s = %q, want %q", id, got[id], want)
				}
			}
			for _, g := range gs {
				if (g.Status == "MISS") != (len(g.Diagnostics) > 0) {
					t.Errorf("%s: status %s with diagnostics %v; a MISS, and only a MISS, names its diagnostics", g.ID, g.Status, g.Diagnostics)
				}
			}
		})
	}
}

func TestPrintReadme(t *testing.T) {
	rep := report{
		StartedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Command: "go run ./cmd/hookbench --readme", Runs: 3, Sizes: fullSizes,
		Machine: machine{CPU: "Test CPU", Cores: 2, MemoryGiB: 24, Virtual: true, Postgres: "PostgreSQL 15.18", GoVersion: "go1.26.8", OS: "linux/amd64"},
		Results: passingFigures(), Soak: testSoak(60),
	}
	rep.Targets = issueTargets(rep.Results)
	var out bytes.Buffer
	printReadme(&out, rep)
	md := out.String()
	for _, want := range []string{
		"Measured on a 2-core Test CPU VM with 24 GiB of memory, PostgreSQL 15.18, go1.26.8, linux/amd64",
		"`go run ./cmd/hookbench --readme`, 2025-01-02, median of 3 run(s)",
		"| scenario | `hookrelay run` (the binary) | in-process engine |",
		"| drain, 100k backlog to one endpoint | 12,500 events/s; 62 % of bare POSTs, 4.2× the hand-written relay | 13,000 events/s; 65 % of bare POSTs, 4.3× the hand-written relay |",
		"| commit → receipt at 1,000 events/s, p50 / p95 / p99 | 4.00 / 8.00 / 12.0 ms |  |",
		"| drain of 50k events, one endpoint alone / with 100k endpoints of 10k other tenants | 12,000 / 11,800 events/s; -1.7 % |  |",
		"| relay + PostgreSQL CPU per 10k delivered events ≤ 1.5 s (binary, default settings, attempt log kept) | 0.70 + 0.70 = 1.40 s (in-process 0.60 + 0.60 = 1.20 s) | PASS |",
		"| commit → receipt at half the maximum drain rate (6,200 events/s offered), p50 / p95 / p99 | 6.00 / 12.0 / 20.0 ms |  |",
		"| drain with 0 / 1M / 10M finished deliveries of history |  | 6,000 / 5,900 / 5,800 events/s |",
		"| the same: admin list of the newest 50 / of dead / of one event type, median |  | 2.00 / 2.00 / 2.10 ms; 4.00 / 4.00 / 4.20 ms; 5.00 / 5.40 / 5.50 ms |",
		"| soak, 1,000 events/s for 30m0s: relay RSS; p99; outbox + deliveries + attempts (median of the first → the last third of the samples) | 30.0 → 31.0 MiB; 10.0 → 11.0 ms; 1,500 → 1,600 MiB |  |",
		"| commit → first receipt p99 ≤ 25 ms at half the maximum drain rate (binary) | 20.0 ms (p50 6.0) at 6,200 events/s offered, half of 12,500; phases",
		"| drain, claim latency and the admin list queries within 10 % from 0 to 10M finished deliveries (in-process) | worse at 1M / 10M rows than at 0: drain +2 / +3 %, claim +4 / +8 %, newest list +0 / +5 %, dead list +0 / +5 %, type list +8 / +10 %; at 10M: tables 7,000 MiB, indexes 5,000 MiB (at 0: 30, 20) | PASS |",
		"RSS 30.0 → 31.0 MiB (+3 %), p99 10.0 → 11.0 ms (+10 %), outbox + deliveries + attempts 1,500 → 1,600 MiB (+7 %); 1,200,000 deliveries deleted by retention, at most 40,000 dead tuples; 30m0s at 1,000 events/s | PASS |",
		"| time | relay RSS | p99 | outbox + deliveries + attempts | dead tuples | deliveries deleted |",
		"| 0:30 | 30.0 MiB | 10.0 ms | 1,500 MiB | 100 | 0 |",
		"| 30:00 | 31.0 MiB | 11.0 ms | 1,600 MiB | 100 | 29,500 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "isolation") || strings.Contains(md, "hot key") {
		t.Errorf("rows without figures are printed:\n%s", md)
	}
	_, samples, _ := strings.Cut(md, "| time |")
	if n := strings.Count(samples, "\n| "); n != 10 {
		t.Errorf("soak table has %d sample rows, want 10:\n%s", n, md)
	}
}

// testSoak is a soak of n samples 30 s apart: RSS and p99 rising from 30
// MiB and 10 ms to 31 and 11, tables from 1,500 to 1,600 MiB, deletions
// growing by 500 deliveries a sample.
func testSoak(n int) *soakResult {
	r := &soakResult{Rate: 1000, Duration: time.Duration(n) * 30 * time.Second, Every: 30 * time.Second, Retention: time.Hour}
	for i := range n {
		f := float64(i) / float64(max(n-1, 1))
		r.Samples = append(r.Samples, soakSample{At: float64(30 * (i + 1)), Receipts: 30000, P50: 5, P99: 10 + f, RSSMiB: 30 + f,
			Tables: []soakTable{
				{Table: "outbox", SizeMiB: 500 + 100*f, Dead: 40},
				{Table: "deliveries", SizeMiB: 700, Dead: 60, Deleted: int64(500 * i)},
				{Table: "attempts", SizeMiB: 300},
			}})
	}
	return r
}

func TestThirds(t *testing.T) {
	tests := []struct {
		xs          []float64
		first, last float64
		ok          bool
	}{
		{nil, 0, 0, false},
		{[]float64{1, 2}, 0, 0, false},
		{[]float64{1, 2, 3}, 1, 3, true},
		{[]float64{5, 1, 9, 9, 9, 9, 2, 4, 3}, 5, 3, true},
		{[]float64{10, 12, 11, 14, 50, 13, 12, 30, 11, 12}, 11, 12, true},
		{[]float64{10, 14, 12, 11, 9, 9, 9, 20, 22, 21, 23, 99}, 11.5, 22.5, true},
	}
	for _, tt := range tests {
		first, last, ok := thirds(tt.xs)
		if first != tt.first || last != tt.last || ok != tt.ok {
			t.Errorf("thirds(%v) = %v, %v, %v; want %v, %v, %v", tt.xs, first, last, ok, tt.first, tt.last, tt.ok)
		}
	}
}

func TestRecordSoak(t *testing.T) {
	b := &bench{}
	b.recordSoak(testSoak(9).Samples)
	want := map[string]float64{
		"rss_first_third": 30.125, "rss_last_third": 30.875, "p99_first_third": 10.125, "p99_last_third": 10.875,
		"size_first_third": 1512.5, "size_last_third": 1587.5, "dead_tuples_max": 100, "deliveries_deleted": 4000, "duration_s": 270,
	}
	for m, v := range want {
		if got := figs(b.figs).get("soak_binary", m); got != v {
			t.Errorf("%s = %v, want %v", m, got, v)
		}
	}
	if got := figs(b.figs).get("soak_binary", "size_change"); got < 4.95 || got > 4.96 {
		t.Errorf("size_change = %v, want 4.96 (1587.5 / 1512.5 - 1)", got)
	}
}

func TestSoakRows(t *testing.T) {
	ss := testSoak(60).Samples
	for _, tt := range []struct{ n, keep int }{{5, 5}, {10, 10}, {60, 60}, {61, 60}} {
		got := soakRows(ss, tt.n)
		if len(got) != tt.keep || got[0].At != ss[0].At || got[len(got)-1].At != ss[len(ss)-1].At {
			t.Errorf("soakRows(60 samples, %d): %d rows from %v to %v", tt.n, len(got), got[0].At, got[len(got)-1].At)
		}
		if !slices.IsSortedFunc(got, func(a, b soakSample) int { return int(a.At - b.At) }) {
			t.Errorf("soakRows(60 samples, %d) out of order", tt.n)
		}
	}
}

func TestPrintSoak(t *testing.T) {
	var out bytes.Buffer
	printSoak(&out, nil)
	printSoak(&out, &soakResult{})
	if out.Len() != 0 {
		t.Errorf("no samples printed %q", out.String())
	}
	printSoak(&out, testSoak(3))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "soak: 1,000 events/s for 1m30s, retention 1h0m0s") {
		t.Fatalf("printSoak:\n%s", out.String())
	}
	for line, want := range map[int][]string{
		1: {"t", "receipts", "p50 ms", "p99 ms", "relay RSS MiB", "outbox MiB", "deliveries MiB", "dead tuples o / d / a", "deleted o / d / a"},
		2: {"0:30", "30000", "5.0", "10.0", "30.0", "500.0", "700.0", "300.0", "40 / 60 / 0", "0 / 0 / 0"},
		4: {"1:30", "11.0", "31.0", "600.0", "40 / 60 / 0", "0 / 1,000 / 0"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[line], w) {
				t.Errorf("line %q lacks %q", lines[line], w)
			}
		}
	}
}

func TestRenderFromJSON(t *testing.T) {
	rep := report{Runs: 1, Sizes: quickSizes, Machine: machine{CPU: "Test CPU", Cores: 2}, Results: passingFigures()}
	data, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "results.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"--readme", "--from", path}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.HasPrefix(out.String(), "Measured on a 2-core Test CPU") || !strings.Contains(out.String(), "| PASS |") {
		t.Errorf("--readme --from printed:\n%s", out.String())
	}
	out.Reset()
	if code := run(t.Context(), []string{"--from", path}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "issue 18 targets:") || !strings.Contains(out.String(), "cpu_per_10k") {
		t.Errorf("--from printed:\n%s", out.String())
	}
	if code := run(t.Context(), []string{"--from", filepath.Join(t.TempDir(), "none.json")}, &out, &errOut); code != 1 {
		t.Errorf("missing file: exit %d, want 1", code)
	}
}

func TestThousands(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 999.4: "999", 1000: "1,000", 23867.6: "23,868", 1234567: "1,234,567", -4941: "-4,941"} {
		if got := thousands(v); got != want {
			t.Errorf("thousands(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestStatementNames(t *testing.T) {
	tests := []struct{ query, want string }{
		{"WITH locked AS (\n  SELECT id FROM \"hb_drain_3\".outbox", "fan-out + lease (outbox dispatchSQL)"},
		{"WITH lim AS ( -- No more candidates", "claim (outbox claimSQL)"},
		{"WITH r AS (SELECT * FROM unnest($1)) ... INSERT INTO \"hb_replicas4_12\".attempts", "record outcomes (outbox completeSQL)"},
		{"SELECT count(*) FROM \"hb_replicas1_8\".deliveries WHERE id > $1 AND state = 'delivered'", "hookbench: delivered count"},
		{"SELECT set_config($1, $2, $3)", "set_config (async commit)"},
	}
	for _, tt := range tests {
		if got := statementName(normalizeQuery(tt.query)); got != tt.want {
			t.Errorf("statementName(%q) = %q, want %q", tt.query, got, tt.want)
		}
	}
	if got := normalizeQuery("UPDATE  \"hb_tenants_many_2\".outbox\n SET x"); got != "UPDATE {{schema}}.outbox SET x" {
		t.Errorf("normalizeQuery = %q", got)
	}
}

func TestPGProcKind(t *testing.T) {
	for title, want := range map[string]string{
		"postgres: walwriter ":                             "walwriter",
		"postgres: autovacuum worker postgres":             "autovacuum",
		"postgres: checkpointer ":                          "checkpointer",
		"postgres: postgres postgres 127.0.0.1(4242) idle": "backends",
	} {
		if got := pgProcKind(title); got != want {
			t.Errorf("pgProcKind(%q) = %q, want %q", title, got, want)
		}
	}
}

func TestProcTimes(t *testing.T) {
	pt, ok := procTimes(os.Getpid())
	if !ok {
		t.Skip("no /proc")
	}
	if pt.ppid != os.Getppid() {
		t.Errorf("ppid = %d, want %d", pt.ppid, os.Getppid())
	}
	if _, ok := procTimes(-1); ok {
		t.Error("procTimes(-1) ok")
	}
}

func TestBinaryEnvIsDefaultsOnly(t *testing.T) {
	t.Setenv("HOOKRELAY_BATCH_SIZE", "7")
	t.Setenv("DATABASE_URL", "postgres://elsewhere")
	t.Setenv("GOMAXPROCS", "1")
	env := binaryEnv("postgres://db", "hb_x_1", "127.0.0.1:1234")
	want := map[string]string{
		"HOOKRELAY_DATABASE_URL": "postgres://db", "HOOKRELAY_SCHEMA": "hb_x_1", "HOOKRELAY_LISTEN_ADDR": "127.0.0.1:1234",
		"HOOKRELAY_ALLOW_PRIVATE_DESTINATIONS": "true", "HOOKRELAY_MIGRATE_ON_START": "true", "HOOKRELAY_LOG_LEVEL": "warn",
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "PATH", "HOME", "TMPDIR":
			continue
		}
		if want[k] != v {
			t.Errorf("%s=%s in the binary's environment", k, v)
		}
		delete(want, k)
	}
	for k := range want {
		t.Errorf("%s missing from the binary's environment", k)
	}
}
