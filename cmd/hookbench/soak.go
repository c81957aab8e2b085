package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/hookrelay/hookrelay/relay"
)

// soakRetention is the binary's HOOKRELAY_RETENTION in the soak: the
// shortest the configuration allows.
const soakRetention = time.Hour

// soakTables are the tables a soak sample sizes.
var soakTables = []string{"outbox", "deliveries", "attempts"}

// soakResult is a soak's samples.
type soakResult struct {
	Rate      float64       `json:"rate"`
	Duration  time.Duration `json:"duration_ns"`
	Every     time.Duration `json:"sample_every_ns"`
	Retention time.Duration `json:"retention_ns"`
	// SeededRows finished deliveries (with events and attempts) were in
	// the schema at the start, finished from Retention ago on at Rate.
	SeededRows int          `json:"seeded_rows"`
	Samples    []soakSample `json:"samples"`
}

// soakSample is one sample: the window since the one before.
type soakSample struct {
	// At is the sample's time since the load started, in seconds.
	At float64 `json:"t_s"`
	// Receipts are the deliveries received in the window, with the p50
	// and p99 of their commit → receipt times.
	Receipts int     `json:"receipts"`
	P50      float64 `json:"p50_ms"`
	P99      float64 `json:"p99_ms"`
	// RSSMiB is the relay's resident set (VmRSS) at the sample.
	RSSMiB float64 `json:"relay_rss_mib"`
	// RelayCores and PGCores are the CPU cores the relay and PostgreSQL
	// used over the window.
	RelayCores float64     `json:"relay_cpu_cores"`
	PGCores    float64     `json:"pg_cpu_cores"`
	Tables     []soakTable `json:"tables"`
}

// soakTable is one table at a sample.
type soakTable struct {
	Table string `json:"table"`
	// SizeMiB is pg_total_relation_size: the table, its indexes and TOAST.
	SizeMiB float64 `json:"total_size_mib"`
	Live    int64   `json:"live_tuples"`
	Dead    int64   `json:"dead_tuples"`
	// Deleted are the rows deleted since the load started (retention).
	Deleted int64 `json:"deleted"`
}

// totalMiB is the sample's tables' size.
func (s soakSample) totalMiB() float64 {
	t := 0.0
	for _, tb := range s.Tables {
		t += tb.SizeMiB
	}
	return t
}

// dead is the sample's tables' dead tuples.
func (s soakSample) dead() int64 {
	var n int64
	for _, tb := range s.Tables {
		n += tb.Dead
	}
	return n
}

// table is the sample's row for table t (zero if absent).
func (s soakSample) table(t string) soakTable {
	for _, tb := range s.Tables {
		if tb.Table == t {
			return tb
		}
	}
	return soakTable{Table: t}
}

// median is the median of xs (0 for none).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// thirds is the median of the first third of xs and of the last third;
// ok is false with fewer than three values.
func thirds(xs []float64) (first, last float64, ok bool) {
	n := len(xs) / 3
	if n == 0 {
		return 0, 0, false
	}
	return median(xs[:n]), median(xs[len(xs)-n:]), true
}

// soakFlatLimit is how much the last third's median may exceed the first
// third's (%) for a soak figure to count as flat.
const soakFlatLimit = 20

// soakBinary is soak_binary: SoakRate events/s for SoakFor into the
// binary, sampled every SoakEvery, with retention short enough to delete
// during the soak. It runs once, on the first run, whatever --runs says.
func (b *bench) soakBinary(ctx context.Context, run int) error {
	const name = "soak_binary"
	if run > 0 {
		b.note("soak_binary: runs once, on the first run (--runs repeats the other scenarios)")
		return nil
	}
	res := &soakResult{Rate: float64(b.sz.SoakRate), Duration: b.sz.SoakFor, Every: b.sz.SoakEvery, Retention: soakRetention}
	seed := func(e *env) error {
		if !b.sz.SoakSeed {
			return nil
		}
		// As if the relay had run at the soak's rate before, its last
		// retention pass a retention interval ago: finished history from
		// the retention period plus that interval ago on, SoakFor plus the
		// interval's worth. The first pass deletes the interval's worth,
		// whose room the next interval's rows take, and by the end the
		// soak has added about what retention deleted. Without those
		// rows the tables start a pass's worth below their working size.
		start := time.Now()
		res.SeededRows = int(res.Rate * (b.sz.SoakFor + relay.DefaultRetentionInterval).Seconds())
		first := start.Add(-soakRetention - relay.DefaultRetentionInterval)
		if err := e.generateHistory(ctx, e.ids[0], res.SeededRows, first, time.Duration(float64(time.Second)/res.Rate)); err != nil {
			return err
		}
		if err := e.vacuum(ctx, soakTables...); err != nil {
			return err
		}
		fmt.Fprintf(b.out, "hookbench: soak: %s finished rows seeded in %s\n", thousands(float64(res.SeededRows)), time.Since(start).Round(100*time.Millisecond))
		return nil
	}
	rig, err := b.startSteady(ctx, name, binaryProcess, seed, "HOOKRELAY_RETENTION="+soakRetention.String())
	if err != nil {
		return err
	}
	defer rig.close()
	rel := rig.rel.(*binaryRelay)
	e := rig.e
	o := newOffer(max(int(res.Rate*b.sz.SoakFor.Seconds()), 1), eventsPerTx(res.Rate))
	sp, err := b.newSoakProbe(ctx, e, o, rel)
	if err != nil {
		return err
	}
	octx, cancel := context.WithCancel(ctx)
	defer cancel()
	offered := make(chan error, 1)
	go func(ch chan<- error) { ch <- o.run(octx, e, res.Rate) }(offered)
	tick := time.NewTicker(b.sz.SoakEvery)
	defer tick.Stop()
	fmt.Fprintf(b.out, "hookbench: soak: %s events/s for %s, a sample every %s\n", thousands(res.Rate), b.sz.SoakFor, b.sz.SoakEvery)
	// A sample on each tick while the load runs, so the windows are whole
	// (the load may end a moment before the last tick).
	var loadDone bool
	stopLoad := func() {
		cancel()
		if !loadDone {
			<-offered
		}
	}
	for range max(int(b.sz.SoakFor/b.sz.SoakEvery), 1) {
		for ticked := false; !ticked; {
			select {
			case <-ctx.Done():
				stopLoad()
				return ctx.Err()
			case err := <-offered:
				loadDone, offered = true, nil
				if err != nil {
					return err
				}
			case <-tick.C:
				ticked = true
			}
		}
		s, err := sp.sample(ctx)
		if err != nil {
			stopLoad()
			return err
		}
		res.Samples = append(res.Samples, s)
		fmt.Fprintf(b.out, "hookbench: soak: %s\n", s.line())
	}
	if !loadDone {
		if err := <-offered; err != nil {
			return err
		}
	}
	if err := b.rc.waitCount(ctx, rig.path, int64(o.total), time.Minute); err != nil {
		return err
	}
	if b.soak == nil {
		b.soak = res
	}
	b.record(name, "offered_rate", "events/s", o.rate)
	b.recordSoak(res.Samples)
	if err := rig.probe.finish(ctx, o.total, rig.stop); err != nil {
		return err
	}
	seeded := "no history seeded"
	if res.SeededRows > 0 {
		seeded = fmt.Sprintf("the schema starts with %s finished deliveries (events, attempts) that finished from %s ago on at the soak's rate, as if the relay had been running and its last retention pass were %s ago, so retention deletes about what the soak adds", thousands(float64(res.SeededRows)), soakRetention+relay.DefaultRetentionInterval, relay.DefaultRetentionInterval)
	}
	b.note(fmt.Sprintf("soak_binary: the binary with HOOKRELAY_RETENTION=%s (the least allowed; retention runs on the first maintenance sweep, about a minute in, then every 10 minutes); %s; every %s the window's commit → receipt percentiles, the relay's RSS (VmRSS) and CPU, and each table's total size (pg_total_relation_size), live and dead tuples (pg_stat_user_tables) and rows deleted; flat = the last third's median within +%d %% of the first third's",
		soakRetention, seeded, b.sz.SoakEvery, soakFlatLimit))
	return nil
}

// recordSoak records the soak's flatness: the first and last thirds'
// medians of the relay's RSS, the p99 and the tables' size, and their
// change; and the most dead tuples and the rows deleted.
func (b *bench) recordSoak(ss []soakSample) {
	const name = "soak_binary"
	for _, m := range []struct {
		metric, unit string
		v            func(soakSample) float64
	}{
		{"rss", "MiB", func(s soakSample) float64 { return s.RSSMiB }},
		{"p99", "ms", func(s soakSample) float64 { return s.P99 }},
		{"size", "MiB", soakSample.totalMiB},
	} {
		xs := make([]float64, len(ss))
		for i, s := range ss {
			xs[i] = m.v(s)
		}
		first, last, ok := thirds(xs)
		if !ok {
			continue
		}
		b.record(name, m.metric+"_first_third", m.unit, first)
		b.record(name, m.metric+"_last_third", m.unit, last)
		b.record(name, m.metric+"_change", "%", pct(last, first)-100)
	}
	var dead int64
	for _, s := range ss {
		dead = max(dead, s.dead())
	}
	b.record(name, "dead_tuples_max", "tuples", float64(dead))
	if len(ss) > 0 {
		last := ss[len(ss)-1]
		b.record(name, "deliveries_deleted", "rows", float64(last.table("deliveries").Deleted))
		b.record(name, "duration_s", "s", last.At)
	}
}

// soakProbe takes a soak's samples.
type soakProbe struct {
	b     *bench
	e     *env
	o     *offer
	rel   *binaryRelay
	t0    time.Time
	at    time.Time // the last sample
	relay float64   // the relay's and PostgreSQL's CPU seconds then
	pg    float64
	del0  map[string]int64
	// receipts whose commit had not returned at the last sample
	waitSeq, waitRcv []int64
}

func (b *bench) newSoakProbe(ctx context.Context, e *env, o *offer, rel *binaryRelay) (*soakProbe, error) {
	ts, err := tableStats(ctx, b.admin, e.schema)
	if err != nil {
		return nil, err
	}
	p := &soakProbe{b: b, e: e, o: o, rel: rel, del0: map[string]int64{}}
	for t, s := range ts {
		p.del0[t] = s.del
	}
	p.t0, p.at, p.relay, p.pg = time.Now(), time.Now(), rel.cpu(), pgCPU(b.srv.PID())
	return p, nil
}

// sample takes the window since the last sample.
func (p *soakProbe) sample(ctx context.Context) (soakSample, error) {
	st, err := p.b.rc.take(ctx)
	if err != nil {
		return soakSample{}, err
	}
	if st.Bad > 0 {
		return soakSample{}, fmt.Errorf("receiver: %d deliveries with bad signatures", st.Bad)
	}
	now, relay, pg := time.Now(), p.rel.cpu(), pgCPU(p.b.srv.PID())
	var us []int64
	us, p.waitSeq, p.waitRcv = p.o.fromCommit(append(p.waitSeq, st.Seq...), append(p.waitRcv, st.ReceivedNS...))
	slices.Sort(us)
	dt := now.Sub(p.at).Seconds()
	s := soakSample{At: now.Sub(p.t0).Seconds(), Receipts: len(us), P50: quantileMS(us, 0.5), P99: quantileMS(us, 0.99),
		RSSMiB: procStatusMiB(p.rel.procs[0].pid(), "VmRSS"), RelayCores: (relay - p.relay) / dt, PGCores: (pg - p.pg) / dt}
	p.at, p.relay, p.pg = now, relay, pg
	ts, err := tableStats(ctx, p.b.admin, p.e.schema)
	if err != nil {
		return s, err
	}
	for _, t := range soakTables {
		x := ts[t]
		s.Tables = append(s.Tables, soakTable{Table: t, SizeMiB: float64(x.size) / (1 << 20), Live: x.live, Dead: x.dead, Deleted: x.del - p.del0[t]})
	}
	return s, nil
}

// line is the sample as one progress line.
func (s soakSample) line() string {
	return fmt.Sprintf("%s: %d receipts, p50 %.1f ms, p99 %.1f ms, relay RSS %.1f MiB, CPU relay %.2f / PostgreSQL %.2f cores, tables %.0f MiB, %s dead tuples, %s deliveries deleted",
		clock(s.At), s.Receipts, s.P50, s.P99, s.RSSMiB, s.RelayCores, s.PGCores, s.totalMiB(), thousands(float64(s.dead())), thousands(float64(s.table("deliveries").Deleted)))
}

// clock writes seconds as m:ss.
func clock(sec float64) string {
	t := int(sec + 0.5)
	return fmt.Sprintf("%d:%02d", t/60, t%60)
}

// printSoak writes the soak's samples as a table.
func printSoak(out io.Writer, r *soakResult) {
	if r == nil || len(r.Samples) == 0 {
		return
	}
	fmt.Fprintf(out, "soak: %s events/s for %s, retention %s, %s rows seeded; a sample every %s (the window since the one before):\n",
		thousands(r.Rate), r.Duration, r.Retention, thousands(float64(r.SeededRows)), r.Every)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "  t\treceipts\tp50 ms\tp99 ms\trelay RSS MiB\trelay CPU\tPG CPU\toutbox MiB\tdeliveries MiB\tattempts MiB\tdead tuples o / d / a\tdeleted o / d / a\t")
	for _, s := range r.Samples {
		o, d, a := s.table("outbox"), s.table("deliveries"), s.table("attempts")
		fmt.Fprintf(tw, "  %s\t%d\t%.1f\t%.1f\t%.1f\t%.2f\t%.2f\t%.1f\t%.1f\t%.1f\t%s / %s / %s\t%s / %s / %s\t\n",
			clock(s.At), s.Receipts, s.P50, s.P99, s.RSSMiB, s.RelayCores, s.PGCores, o.SizeMiB, d.SizeMiB, a.SizeMiB,
			thousands(float64(o.Dead)), thousands(float64(d.Dead)), thousands(float64(a.Dead)),
			thousands(float64(o.Deleted)), thousands(float64(d.Deleted)), thousands(float64(a.Deleted)))
	}
	_ = tw.Flush()
	fmt.Fprintln(out)
}

// soakRows is the README's soak table: at most n samples, evenly spaced,
// the first and last included.
func soakRows(ss []soakSample, n int) []soakSample {
	if len(ss) <= n {
		return ss
	}
	out := make([]soakSample, 0, n)
	for i := range n {
		out = append(out, ss[i*(len(ss)-1)/(n-1)])
	}
	return out
}

// printSoakMarkdown writes the soak's samples as a compact Markdown table.
func printSoakMarkdown(out io.Writer, r *soakResult) {
	if r == nil || len(r.Samples) == 0 {
		return
	}
	fmt.Fprintf(out, "\nSoak samples (`hookrelay run`, %s events/s for %s, HOOKRELAY_RETENTION=%s; each window since the sample before):\n\n",
		thousands(r.Rate), r.Duration, r.Retention)
	fmt.Fprintln(out, "| time | relay RSS | p99 | outbox + deliveries + attempts | dead tuples | deliveries deleted |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|")
	for _, s := range soakRows(r.Samples, 10) {
		fmt.Fprintf(out, "| %s | %.1f MiB | %.1f ms | %s MiB | %s | %s |\n", clock(s.At), s.RSSMiB, s.P99,
			thousands(s.totalMiB()), thousands(float64(s.dead())), thousands(float64(s.table("deliveries").Deleted)))
	}
}
