package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
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
			"history_10m": "not measured", "latency_half_max": "not measured", "soak": "not measured",
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
		{"nothing run", nil, map[string]string{"cpu_per_10k": "not run", "latency_p50": "not run", "replicas": "not run", "soak": "not measured"}},
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
		Results: passingFigures(),
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
		"| 30-minute soak at 1,000 events/s: RSS, p99 and table sizes flat | — | not measured |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "isolation") || strings.Contains(md, "hot key") {
		t.Errorf("rows without figures are printed:\n%s", md)
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
		{"WITH ev AS (\n  SELECT id FROM \"hb_drain_3\".outbox", "fan-out + lease (outbox dispatchSQL)"},
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
