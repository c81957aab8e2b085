package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
)

// goal is one target of issue 18 with what this run measured.
type goal struct {
	ID     string `json:"id"`
	Target string `json:"target"`
	Value  string `json:"value"`
	// Status is PASS, MISS, "not run" (its scenarios were not selected) or
	// "not measured" (hookbench has no scenario for it).
	Status string `json:"status"`
	// Diagnostics names the diagnostics that show what holds a MISS back.
	Diagnostics []string `json:"diagnostics,omitempty"`
}

// figs looks figures up by scenario and metric.
type figs []*figure

// med is a figure's median.
func (fs figs) med(scenario, metric string) (float64, bool) {
	for _, f := range fs {
		if f.Scenario == scenario && f.Metric == metric && len(f.Values) > 0 {
			f.finish()
			return f.Median, true
		}
	}
	return 0, false
}

// get is med for figures known to exist (0 otherwise).
func (fs figs) get(scenario, metric string) float64 {
	v, _ := fs.med(scenario, metric)
	return v
}

// has says whether every scenario/metric pair is present.
func (fs figs) has(pairs ...string) bool {
	for _, p := range pairs {
		s, m, _ := strings.Cut(p, "/")
		if _, ok := fs.med(s, m); !ok {
			return false
		}
	}
	return true
}

func passIf(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

// issueTargets computes issue 18's targets from one run's figures.
func issueTargets(all []*figure) []goal {
	fs := figs(all)
	var gs []goal
	add := func(g goal, needs ...string) {
		if !fs.has(needs...) {
			g.Status, g.Value, g.Diagnostics = "not run", "", nil
		}
		gs = append(gs, g)
	}

	relay, pg := fs.get("drain_binary", "relay_cpu_s_per_10k"), fs.get("drain_binary", "pg_cpu_s_per_10k")
	inRelay, inPG := fs.get("drain", "relay_cpu_s_per_10k"), fs.get("drain", "pg_cpu_s_per_10k")
	g := goal{ID: "cpu_per_10k", Target: "relay + PostgreSQL CPU per 10k delivered events ≤ 1.5 s (binary, default settings, attempt log kept)",
		Value:  fmt.Sprintf("%.2f + %.2f = %.2f s", relay, pg, relay+pg),
		Status: passIf(relay+pg <= 1.5), Diagnostics: []string{"drain_binary"}}
	if fs.has("drain/relay_cpu_s_per_10k") {
		g.Value += fmt.Sprintf(" (in-process %.2f + %.2f = %.2f s)", inRelay, inPG, inRelay+inPG)
	}
	add(g, "drain_binary/relay_cpu_s_per_10k", "drain_binary/pg_cpu_s_per_10k")

	bin, in, bare := fs.get("drain_binary", "events_per_s"), fs.get("drain", "events_per_s"), fs.get("bare", "posts_per_s")
	g = goal{ID: "bare_ceiling", Target: "drain ≥ 60 % of the bare signed-POST ceiling (binary, same run)",
		Value:  fmt.Sprintf("%s events/s = %.0f %% of %s posts/s", thousands(bin), pct(bin, bare), thousands(bare)),
		Status: passIf(pct(bin, bare) >= 60), Diagnostics: []string{"drain_binary"}}
	if in > 0 {
		g.Value += fmt.Sprintf(" (in-process %.0f %%)", pct(in, bare))
	}
	add(g, "drain_binary/events_per_s", "bare/posts_per_s")

	diff := pct(bin, in) - 100
	add(goal{ID: "binary_vs_in_process", Target: "the binary's drain within 10 % of the in-process drain",
		Value:  fmt.Sprintf("%s vs %s events/s: %+.1f %%", thousands(bin), thousands(in), diff),
		Status: passIf(math.Abs(diff) <= 10), Diagnostics: []string{"drain_binary", "drain"}},
		"drain_binary/events_per_s", "drain/events_per_s")

	for _, p := range []struct {
		metric string
		limit  float64
	}{{"p50", 5}, {"p99", 15}} {
		v := fs.get("latency_binary", p.metric)
		g := goal{ID: "latency_" + p.metric, Target: fmt.Sprintf("commit → first receipt %s ≤ %g ms at 1,000 events/s (binary)", p.metric, p.limit),
			Value: fmt.Sprintf("%.1f ms; phases (%s of each): commit → fan-out %.1f, fan-out → send %.1f, send → receipt %.1f ms", v, p.metric,
				fs.get("latency_binary", "commit_to_fanout_"+p.metric), fs.get("latency_binary", "fanout_to_send_"+p.metric),
				fs.get("latency_binary", "send_to_receipt_"+p.metric)),
			Status: passIf(v <= p.limit), Diagnostics: []string{"latency_binary phases"}}
		if iv, ok := fs.med("latency", p.metric); ok {
			g.Value += fmt.Sprintf(" (in-process %.1f ms)", iv)
		}
		if r, ok := fs.med("latency_binary", "offered_rate"); ok && r < 950 {
			g.Value += fmt.Sprintf("; offered %s/s", thousands(r))
		}
		add(g, "latency_binary/"+p.metric)
	}

	var app *figure
	for _, f := range all {
		if f.Scenario == "appcost" && f.Metric == "overhead_relay_stopped_1conn" {
			app = f
		}
	}
	g = goal{ID: "app_insert_cost", Target: "the app's single-connection autocommit INSERT costs ≤ 10 % with the trigger"}
	if app != nil && len(app.Values) > 0 {
		app.finish()
		g.Value = fmt.Sprintf("%+.1f %% (runs %+.1f to %+.1f %%), relay stopped", app.Median, app.Min, app.Max)
		if v, ok := fs.med("appcost", "overhead_1conn"); ok {
			g.Value += fmt.Sprintf("; %+.1f %% while the in-process relay delivers on the same cores", v)
		}
		g.Status = passIf(app.Median <= 10)
		g.Diagnostics = []string{"appcost plain_/outbox_insert_exec_us and _wal_bytes (pg_stat_statements, relay stopped)"}
	}
	add(g, "appcost/overhead_relay_stopped_1conn")

	one, many := fs.get("tenants_binary", "events_per_s_one_endpoint"), fs.get("tenants_binary", "events_per_s_many_endpoints")
	loss := fs.get("tenants_binary", "loss")
	add(goal{ID: "many_endpoints", Target: "drain with 100k endpoints of 10k other tenants in the table within 5 % of one endpoint (binary)",
		Value: fmt.Sprintf("%s vs %s events/s: %+.1f %%; PostgreSQL CPU per 10k %.2f vs %.2f s", thousands(many), thousands(one), -loss,
			fs.get("tenants_binary", "pg_cpu_s_per_10k_many_endpoints"), fs.get("tenants_binary", "pg_cpu_s_per_10k_one_endpoint")),
		Status: passIf(loss <= 5), Diagnostics: []string{"tenants_binary_many_endpoints", "tenants_binary_one_endpoint"}},
		"tenants_binary/loss")

	fan, fanIn := fs.get("fanout_binary", "deliveries_per_s"), fs.get("fanout", "deliveries_per_s")
	g = goal{ID: "fan_out", Target: "fan-out 10k events × 10 endpoints ≥ 90 % of the single-endpoint delivery rate (binary)",
		Value:  fmt.Sprintf("%s deliveries/s = %.0f %% of %s", thousands(fan), pct(fan, bin), thousands(bin)),
		Status: passIf(pct(fan, bin) >= 90), Diagnostics: []string{"fanout_binary", "drain_binary"}}
	if fanIn > 0 && in > 0 {
		g.Value += fmt.Sprintf(" (in-process %.0f %%)", pct(fanIn, in))
	}
	add(g, "fanout_binary/deliveries_per_s", "drain_binary/events_per_s")

	inc := fs.get("replicas_binary", "pg_cpu_increase")
	add(goal{ID: "replicas", Target: fmt.Sprintf("%d replicas draining one backlog use ≤ 10 %% more PostgreSQL CPU per event than one", replicaCount),
		Value: fmt.Sprintf("%.2f vs %.2f s per 10k: %+.1f %%; %s vs %s events/s", fs.get("replicas_binary", fmt.Sprintf("pg_cpu_s_per_10k_%dr", replicaCount)),
			fs.get("replicas_binary", "pg_cpu_s_per_10k_1r"), inc,
			thousands(fs.get("replicas_binary", fmt.Sprintf("events_per_s_%dr", replicaCount))), thousands(fs.get("replicas_binary", "events_per_s_1r"))),
		Status: passIf(inc <= 10), Diagnostics: []string{fmt.Sprintf("replicas_binary_%dr", replicaCount), "replicas_binary_1r"}},
		"replicas_binary/pg_cpu_increase")

	g = goal{ID: "history_10m", Target: "drain, claim latency and admin lists flat from 0 to 10M finished deliveries; retention bounds table size", Status: "not measured"}
	if v, ok := fs.med("history", "slowdown"); ok {
		g.Value = fmt.Sprintf("hookbench's history scenario stops at 1M rows (drain only): %+.1f %% slower", v)
	}
	gs = append(gs, g,
		goal{ID: "latency_half_max", Target: "commit → receipt p99 ≤ 25 ms at half the maximum drain rate", Status: "not measured"},
		goal{ID: "soak", Target: "30-minute soak at 1,000 events/s: RSS, p99 and table sizes flat", Status: "not measured"})
	for i := range gs {
		if gs[i].Status != "MISS" {
			gs[i].Diagnostics = nil
		}
	}
	return gs
}

// pct is 100·a/b (0 when b is 0).
func pct(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * a / b
}

// thousands formats v rounded, with thousands separators.
func thousands(v float64) string {
	n := int64(math.Round(v))
	neg := n < 0
	if neg {
		n = -n
	}
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// printTargets writes the targets table.
func printTargets(out io.Writer, gs []goal) {
	if len(gs) == 0 {
		return
	}
	fmt.Fprintln(out, "issue 18 targets:")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, g := range gs {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t\n", g.Status, g.ID, g.Value)
	}
	_ = tw.Flush()
	fmt.Fprintln(out)
}
