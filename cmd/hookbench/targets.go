package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"
)

// goal is one target of issue 18 with what this run measured.
type goal struct {
	ID     string `json:"id"`
	Target string `json:"target"`
	Value  string `json:"value"`
	// Status is PASS, MISS or "not run" (its scenarios were not selected).
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

	add(halfRateGoal(fs), "halfrate_binary/p99")
	add(historyGoal(fs), "history/events_per_s_empty", "history/events_per_s_full")
	add(soakGoal(fs), "soak_binary/rss_change", "soak_binary/p99_change", "soak_binary/size_change")
	for i := range gs {
		if gs[i].Status != "MISS" {
			gs[i].Diagnostics = nil
		}
	}
	return gs
}

// halfRateGoal is commit → receipt p99 at half the binary's drain rate.
func halfRateGoal(fs figs) goal {
	v := fs.get("halfrate_binary", "p99")
	return goal{ID: "latency_half_max", Target: "commit → first receipt p99 ≤ 25 ms at half the maximum drain rate (binary)",
		Value: fmt.Sprintf("%.1f ms (p50 %.1f) at %s events/s offered, half of %s; phases (p99 of each): commit → fan-out %.1f, fan-out → send %.1f, send → receipt %.1f ms",
			v, fs.get("halfrate_binary", "p50"), thousands(fs.get("halfrate_binary", "offered_rate")), thousands(fs.get("halfrate_binary", "max_drain_events_per_s")),
			fs.get("halfrate_binary", "commit_to_fanout_p99"), fs.get("halfrate_binary", "fanout_to_send_p99"), fs.get("halfrate_binary", "send_to_receipt_p99")),
		Status: passIf(v <= 25), Diagnostics: []string{"halfrate_binary", "halfrate_binary phases"}}
}

// historyLimit is how much worse (%) than with no history a figure may be
// at a tenth of the history and at all of it.
const historyLimit = 10

// historyChange is one history figure at the tenth and full levels
// against no history.
type historyChange struct {
	what   string
	metric string     // history/<metric>_<level>
	worse  [2]float64 // % worse than with no history (negative: better), tenth and full
}

// historyChanges compares the history scenario's figures at the tenth and
// full levels with the empty level's: a drain rate is worse when lower,
// a time when higher. Figures missing at a level are left out.
func historyChanges(fs figs) []historyChange {
	var out []historyChange
	for _, m := range []struct {
		what, metric string
		rate         bool
	}{
		{"drain", "events_per_s", true}, {"claim", "claim_ms", false}, {"newest list", "list_newest_ms", false},
		{"dead list", "list_dead_ms", false}, {"type list", "list_type_ms", false},
	} {
		base, ok := fs.med("history", m.metric+"_empty")
		if !ok || base <= 0 || !fs.has("history/"+m.metric+"_tenth", "history/"+m.metric+"_full") {
			continue
		}
		c := historyChange{what: m.what, metric: m.metric}
		for i, level := range historyLevels[1:] {
			c.worse[i] = pct(fs.get("history", m.metric+"_"+level), base) - 100
			if m.rate {
				c.worse[i] = -c.worse[i]
			}
		}
		out = append(out, c)
	}
	return out
}

// historyGoal is drain, claim and admin lists flat from 0 to HistoryRows.
func historyGoal(fs figs) goal {
	tenth, full := short(int(fs.get("history", "rows_tenth"))), short(int(fs.get("history", "rows_full")))
	g := goal{ID: "history_10m", Target: fmt.Sprintf("drain, claim latency and the admin list queries within %d %% from 0 to 10M finished deliveries (in-process)", historyLimit)}
	ok := true
	var parts []string
	for _, c := range historyChanges(fs) {
		parts = append(parts, fmt.Sprintf("%s %+.0f / %+.0f %%", c.what, c.worse[0], c.worse[1]))
		if max(c.worse[0], c.worse[1]) > historyLimit {
			ok = false
			g.Diagnostics = append(g.Diagnostics, "history "+c.metric)
		}
	}
	g.Value = fmt.Sprintf("worse at %s / %s rows than at 0: %s; at %s: tables %s MiB, indexes %s MiB (at 0: %s, %s)", tenth, full, strings.Join(parts, ", "), full,
		thousands(fs.get("history", "table_mib_full")), thousands(fs.get("history", "index_mib_full")),
		thousands(fs.get("history", "table_mib_empty")), thousands(fs.get("history", "index_mib_empty")))
	if !strings.HasPrefix(full, "10M") {
		g.Value += fmt.Sprintf(" (--history-rows %s, not 10M)", full)
	}
	g.Status = passIf(ok)
	return g
}

// soakGoal is the soak's flatness.
func soakGoal(fs figs) goal {
	change := func(m string) float64 { return fs.get("soak_binary", m+"_change") }
	g := goal{ID: "soak", Target: fmt.Sprintf("30-minute soak at 1,000 events/s (binary): relay RSS, p99 and table sizes flat (last third's median within +%d %% of the first third's), retention deleting", soakFlatLimit),
		Value: fmt.Sprintf("RSS %.1f → %.1f MiB (%+.0f %%), p99 %.1f → %.1f ms (%+.0f %%), outbox + deliveries + attempts %s → %s MiB (%+.0f %%); %s deliveries deleted by retention, at most %s dead tuples; %s at %s events/s",
			fs.get("soak_binary", "rss_first_third"), fs.get("soak_binary", "rss_last_third"), change("rss"),
			fs.get("soak_binary", "p99_first_third"), fs.get("soak_binary", "p99_last_third"), change("p99"),
			thousands(fs.get("soak_binary", "size_first_third")), thousands(fs.get("soak_binary", "size_last_third")), change("size"),
			thousands(fs.get("soak_binary", "deliveries_deleted")), thousands(fs.get("soak_binary", "dead_tuples_max")),
			time.Duration(fs.get("soak_binary", "duration_s")*float64(time.Second)).Round(time.Second), thousands(fs.get("soak_binary", "offered_rate"))),
		Status:      passIf(change("rss") <= soakFlatLimit && change("p99") <= soakFlatLimit && change("size") <= soakFlatLimit),
		Diagnostics: []string{"soak_binary", "soak samples"}}
	return g
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
