package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// figure is one measured (or derived) quantity over all runs.
type figure struct {
	Scenario string    `json:"scenario"`
	Metric   string    `json:"metric"`
	Unit     string    `json:"unit"`
	Values   []float64 `json:"values"`
	Median   float64   `json:"median"`
	Min      float64   `json:"min"`
	Max      float64   `json:"max"`
	Target   string    `json:"target,omitempty"`
	Status   string    `json:"status,omitempty"`

	op   string
	goal float64
}

// targets are issue 8's goals, and issue 18's for the binary, by
// scenario/metric.
var targets = map[string]struct {
	op   string
	goal float64
}{
	"drain/events_per_s":          {">=", 10000},
	"drain/x_baseline":            {">=", 5},
	"drain/peak_rss":              {"<=", 64},
	"latency/p99":                 {"<=", 25},
	"appcost/overhead_1conn":      {"<=", 10},
	"appcost/overhead_16conn":     {"<=", 10},
	"isolation/healthy_loss":      {"<=", 10},
	"history/slowdown":            {"<=", 10},
	"halfrate_binary/p99":         {"<=", 25},
	"drain/pct_of_bare_post_rate": {">=", 70},
	"ordering/keyed_loss":         {"<=", 20},
	// issue 18's, also summarised by issueTargets
	"drain_binary/pct_of_bare_post_rate": {">=", 60},
	"latency_binary/p50":                 {"<=", 5},
	"latency_binary/p99":                 {"<=", 15},
	"tenants_binary/loss":                {"<=", 5},
	"fanout_binary/pct_of_drain_rate":    {">=", 90},
	"replicas_binary/pg_cpu_increase":    {"<=", 10},
}

// record adds one run's value of a figure.
func (b *bench) record(scenario, metric, unit string, v float64) {
	for _, f := range b.figs {
		if f.Scenario == scenario && f.Metric == metric {
			f.Values = append(f.Values, v)
			return
		}
	}
	f := &figure{Scenario: scenario, Metric: metric, Unit: unit, Values: []float64{v}}
	if t, ok := targets[scenario+"/"+metric]; ok {
		f.op, f.goal = t.op, t.goal
		f.Target = fmt.Sprintf("%s %g", t.op, t.goal)
	}
	b.figs = append(b.figs, f)
}

// find returns the figure, or nil.
func (b *bench) find(scenario, metric string) *figure {
	for _, f := range b.figs {
		if f.Scenario == scenario && f.Metric == metric {
			f.finish()
			return f
		}
	}
	return nil
}

// finish computes the median, min, max and the target's status.
func (f *figure) finish() {
	if len(f.Values) == 0 {
		return
	}
	f.Min, f.Max, f.Median = slices.Min(f.Values), slices.Max(f.Values), median(f.Values)
	if f.op != "" {
		ok := f.Median >= f.goal
		if f.op == "<=" {
			ok = f.Median <= f.goal
		}
		f.Status = "MISS"
		if ok {
			f.Status = "PASS"
		}
	}
}

// derive adds the ratios between scenarios, from their medians: each
// drain (in-process and binary) against the hand-written relay and the
// bare POST ceiling, and each fan-out against its drain.
func (b *bench) derive() {
	var best *figure
	for _, m := range []string{"events_per_s_16_workers", "events_per_s_64_workers"} {
		if f := b.find("baseline", m); f != nil && (best == nil || f.Median > best.Median) {
			best = f
		}
	}
	bare := b.find("bare", "posts_per_s")
	for _, kind := range []relayKind{inProcess, binaryProcess} {
		name := "drain" + kind.suffix()
		drain := b.find(name, "events_per_s")
		if drain == nil {
			continue
		}
		if best != nil && best.Median > 0 {
			b.record(name, "x_baseline", "×", drain.Median/best.Median)
			for _, m := range []string{"events_per_s_16_workers", "events_per_s_64_workers"} {
				if f := b.find("baseline", m); f != nil && f.Median > 0 {
					b.record(name, "x_baseline_"+strings.TrimPrefix(m, "events_per_s_"), "×", drain.Median/f.Median)
				}
			}
			for _, m := range []string{"relay_cpu_s_per_10k", "pg_cpu_s_per_10k"} {
				d := b.find(name, m)
				bl := b.find("baseline", strings.Replace(m, "relay_", "", 1)+"_"+strings.TrimPrefix(best.Metric, "events_per_s_"))
				if d != nil && bl != nil && bl.Median > 0 {
					b.record(name, m+"_x_baseline", "×", d.Median/bl.Median)
				}
			}
		}
		if bare != nil && bare.Median > 0 {
			b.record(name, "pct_of_bare_post_rate", "%", 100*drain.Median/bare.Median)
		}
		if fan := b.find("fanout"+kind.suffix(), "deliveries_per_s"); fan != nil && drain.Median > 0 {
			b.record("fanout"+kind.suffix(), "pct_of_drain_rate", "%", 100*fan.Median/drain.Median)
		}
	}
	if in, bin := b.find("drain", "events_per_s"), b.find("drain_binary", "events_per_s"); in != nil && bin != nil && in.Median > 0 {
		b.record("drain_binary", "pct_of_in_process", "%", 100*bin.Median/in.Median)
	}
}

// printTable writes the results table.
func printTable(out io.Writer, rep report) {
	fmt.Fprintf(out, "\nhookrelay benchmark — %s, %d cores, %s, %s, %s\n", rep.Machine.CPU, rep.Machine.Cores, rep.Machine.Postgres, rep.Machine.GoVersion, rep.Machine.OS)
	fmt.Fprintf(out, "command: %s (runs per figure: %d; median and min–max); load average at the start: %s\n", rep.Command, rep.Runs, rep.LoadAtStart)
	fmt.Fprintf(out, "relay: pool %d conns, async commit %t, batch %d, %d in flight, %d per endpoint\n\n",
		rep.Relay.PoolConns, rep.Relay.AsyncCommit, rep.Relay.BatchSize, rep.Relay.MaxInFlight, rep.Relay.EndpointMaxInFlight)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tmetric\tmedian\tmin–max\tunit\ttarget\t")
	for _, f := range rep.Results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s–%s\t%s\t%s %s\t\n", f.Scenario, f.Metric, num(f.Median), num(f.Min), num(f.Max), f.Unit, f.Target, f.Status)
	}
	_ = tw.Flush()
	for _, f := range rep.Failed {
		fmt.Fprintln(out, "\nFAILED:", f)
	}
	if len(rep.Notes) > 0 {
		fmt.Fprintln(out, "\nnotes:")
		for _, n := range rep.Notes {
			fmt.Fprintln(out, "  -", n)
		}
	}
	fmt.Fprintln(out)
}

// num formats a figure with sensible precision.
func num(v float64) string {
	switch {
	case v >= 1000 || v <= -1000:
		return fmt.Sprintf("%.0f", v)
	case v >= 10 || v <= -10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}
