package main

import (
	"fmt"
	"io"
	"strings"
)

// machineLine names the machine a report ran on.
func machineLine(m machine) string {
	s := fmt.Sprintf("%d-core %s", m.Cores, m.CPU)
	if m.Virtual {
		s += " VM"
	}
	if m.MemoryGiB > 0 {
		s += fmt.Sprintf(" with %.0f GiB of memory", m.MemoryGiB)
	}
	return s + fmt.Sprintf(", %s, %s, %s", m.Postgres, m.GoVersion, m.OS)
}

// printReadme writes the README's performance table for rep: binary and
// in-process side by side, CPU per 10k events, the ratios to the bare POST
// ceiling and the hand-written relay, and issue 18's targets.
func printReadme(out io.Writer, rep report) {
	fs := figs(rep.Results)
	cell := func(scenario, metric, unit string) string {
		for _, f := range fs {
			if f.Scenario == scenario && f.Metric == metric && len(f.Values) > 0 {
				f.finish()
				s := fmtNum(f.Median)
				if unit != "" {
					s += " " + unit
				}
				if len(f.Values) > 1 {
					s += fmt.Sprintf(" (%s–%s)", fmtNum(f.Min), fmtNum(f.Max))
				}
				return s
			}
		}
		return ""
	}
	// joined renders several medians as "a / b / c unit" when all exist.
	joined := func(scenario, unit string, metrics ...string) string {
		parts := make([]string, 0, len(metrics))
		for _, m := range metrics {
			v, ok := fs.med(scenario, m)
			if !ok {
				return ""
			}
			parts = append(parts, fmtNum(v))
		}
		return strings.Join(parts, " / ") + " " + unit
	}
	ratios := func(scenario string) string {
		d, ok := fs.med(scenario, "events_per_s")
		if !ok {
			return ""
		}
		var parts []string
		if bare, ok := fs.med("bare", "posts_per_s"); ok && bare > 0 {
			parts = append(parts, fmt.Sprintf("%.0f %% of bare POSTs", pct(d, bare)))
		}
		if base, ok := fs.med("baseline", "events_per_s_16_workers"); ok && base > 0 {
			parts = append(parts, fmt.Sprintf("%.1f× the hand-written relay", d/base))
		}
		return strings.Join(parts, ", ")
	}
	cpu := func(scenario, suffix string) string {
		return joined(scenario, "s", "relay_cpu_s_per_10k"+suffix, "pg_cpu_s_per_10k"+suffix, "receiver_cpu_s_per_10k"+suffix)
	}
	levels := func(metric string) []string {
		out := make([]string, len(historyLevels))
		for i, l := range historyLevels {
			out[i] = metric + "_" + l
		}
		return out
	}
	sz := rep.Sizes
	rows := [][3]string{
		{"bare signed POSTs, no database (the HTTP ceiling)", cell("bare", "posts_per_s", "/s"), ""},
		{"hand-written relay, one row per transaction, 16 workers: events/s; CPU per 10k relay / PostgreSQL",
			cell("baseline", "events_per_s_16_workers", "events/s") + semi(joined("baseline", "s", "cpu_s_per_10k_16_workers", "pg_cpu_s_per_10k_16_workers")), ""},
		{fmt.Sprintf("drain, %s backlog to one endpoint", short(sz.Drain)),
			cell("drain_binary", "events_per_s", "events/s") + semi(ratios("drain_binary")),
			cell("drain", "events_per_s", "events/s") + semi(ratios("drain"))},
		{"CPU per 10k events of that drain, relay / PostgreSQL / receiver", cpu("drain_binary", ""), cpu("drain", "")},
		{"relay peak RSS during the drain", cell("drain_binary", "peak_rss", "MiB"), cell("drain", "peak_rss", "MiB")},
		{"other processes on the machine during the drain (CPU cores busy)", cell("drain_binary", "other_load_cores", ""), cell("drain", "other_load_cores", "")},
		{fmt.Sprintf("fan-out, %s events × %d endpoints", short(sz.FanoutEvents), sz.FanoutEPs),
			cell("fanout_binary", "deliveries_per_s", "deliveries/s"), cell("fanout", "deliveries_per_s", "deliveries/s")},
		{fmt.Sprintf("commit → receipt at %s events/s, p50 / p95 / p99", thousands(float64(sz.LatencyRate))),
			joined("latency_binary", "ms", "p50", "p95", "p99"), joined("latency", "ms", "p50", "p95", "p99")},
		{fmt.Sprintf("commit → receipt at half the maximum drain rate (%s events/s offered), p50 / p95 / p99", thousands(fs.get("halfrate_binary", "offered_rate"))),
			joined("halfrate_binary", "ms", "p50", "p95", "p99"), ""},
		{fmt.Sprintf("soak, %s events/s for %s: relay RSS; p99; outbox + deliveries + attempts (median of the first → the last third of the samples)", thousands(float64(sz.SoakRate)), sz.SoakFor),
			thirdsCell(fs, "rss", "MiB") + semi(thirdsCell(fs, "p99", "ms")) + semi(thirdsCell(fs, "size", "MiB")), ""},
		{fmt.Sprintf("drain of %s events, one endpoint alone / with %s endpoints of %s other tenants", short(sz.TenantsEvents), short(sz.TenantEndpoints), short(sz.Tenants)),
			joined("tenants_binary", "events/s", "events_per_s_one_endpoint", "events_per_s_many_endpoints") + semi(signed("tenants_binary", "loss", -1, fs)), ""},
		{fmt.Sprintf("%s-event drain by 1 / %d replicas: events/s; PostgreSQL CPU per 10k", short(sz.ReplicaEvents), replicaCount),
			joined("replicas_binary", "events/s", "events_per_s_1r", fmt.Sprintf("events_per_s_%dr", replicaCount)) +
				semi(joined("replicas_binary", "s", "pg_cpu_s_per_10k_1r", fmt.Sprintf("pg_cpu_s_per_10k_%dr", replicaCount))), ""},
		{"outbox INSERT vs the same table without the trigger, relay stopped, 1 / 16 connections", "",
			joined("appcost", "%", "overhead_relay_stopped_1conn", "overhead_relay_stopped_16conn")},
		{"the same while the relay delivers those rows on the same cores", "", joined("appcost", "%", "overhead_1conn", "overhead_16conn")},
		{"healthy endpoint next to one whose every request times out (loss)", "", cell("isolation", "healthy_loss", "%")},
		{fmt.Sprintf("drain with 0 / %s / %s finished deliveries of history", short(sz.HistoryRows/10), short(sz.HistoryRows)), "",
			joined("history", "events/s", levels("events_per_s")...)},
		{"the same: claim statement (a batch of fresh deliveries), median", "", joined("history", "ms", levels("claim_ms")...)},
		{"the same: admin list of the newest 50 / of dead / of one event type, median", "",
			joined("history", "ms", levels("list_newest_ms")...) + semi(joined("history", "ms", levels("list_dead_ms")...)) +
				semi(joined("history", "ms", levels("list_type_ms")...))},
		{"the same: outbox, deliveries and attempts tables; their indexes", "",
			joined("history", "MiB", levels("table_mib")...) + semi(joined("history", "MiB", levels("index_mib")...))},
		{fmt.Sprintf("ordering keys: %s keys vs none (loss); one hot key", short(sz.OrderingKeys)), "",
			cell("ordering", "keyed_loss", "%") + semi(cell("ordering", "hot_key_ms_per_event", "ms per event"))},
	}
	fmt.Fprintf(out, "Measured on a %s; relay, PostgreSQL (durable: fsync, synchronous_commit and full_page_writes on) and receiver on the one machine.\n", machineLine(rep.Machine))
	fmt.Fprintf(out, "`%s`, %s, median of %d run(s) (min–max), every figure from that one run", rep.Command, rep.StartedAt.Format("2006-01-02"), rep.Runs)
	if load := strings.Fields(rep.LoadAtStart); len(load) >= 3 {
		fmt.Fprintf(out, "; load average at the start %s", strings.Join(load[:3], " / "))
	}
	fmt.Fprint(out, ".\n\n")
	fmt.Fprintln(out, "| scenario | `hookrelay run` (the binary) | in-process engine |")
	fmt.Fprintln(out, "|---|---|---|")
	for _, r := range rows {
		if r[1] == "" && r[2] == "" {
			continue
		}
		fmt.Fprintf(out, "| %s | %s | %s |\n", r[0], r[1], r[2])
	}
	for _, f := range rep.Failed {
		fmt.Fprintf(out, "\nFailed in this run: %s\n", strings.ReplaceAll(firstLine(f), "|", "\\|"))
	}
	if len(rep.Targets) > 0 {
		fmt.Fprintln(out)
		fmt.Fprintln(out, "| target (issue 18) | this run | |")
		fmt.Fprintln(out, "|---|---|---|")
		for _, g := range rep.Targets {
			v := g.Value
			if v == "" {
				v = "—"
			}
			fmt.Fprintf(out, "| %s | %s | %s |\n", g.Target, v, g.Status)
		}
	}
	printSoakMarkdown(out, rep.Soak)
}

// thirdsCell renders a soak figure's first and last thirds, "a → b unit".
func thirdsCell(fs figs, metric, unit string) string {
	first, ok1 := fs.med("soak_binary", metric+"_first_third")
	last, ok2 := fs.med("soak_binary", metric+"_last_third")
	if !ok1 || !ok2 {
		return ""
	}
	return fmt.Sprintf("%s → %s %s", fmtNum(first), fmtNum(last), unit)
}

// semi prefixes a non-empty s with "; ".
func semi(s string) string {
	if s == "" {
		return ""
	}
	return "; " + s
}

// signed renders a percentage figure times sign, e.g. "−4.2 %".
func signed(scenario, metric string, sign float64, fs figs) string {
	v, ok := fs.med(scenario, metric)
	if !ok {
		return ""
	}
	return fmt.Sprintf("%+.1f %%", sign*v)
}

// short writes a count as 100k, 1M.
func short(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return thousands(float64(n))
}

// fmtNum formats a median for the README: thousands separators from 1,000,
// else the table's precision.
func fmtNum(v float64) string {
	if v >= 1000 || v <= -1000 {
		return thousands(v)
	}
	return num(v)
}
