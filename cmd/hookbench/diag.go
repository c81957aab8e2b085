package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// diagnostics is what one drain cost the database, per delivery: the
// evidence behind a missed target.
type diagnostics struct {
	Label      string  `json:"label"`
	Events     int     `json:"events"`
	Deliveries int     `json:"deliveries"`
	Seconds    float64 `json:"seconds"`
	// WALBytesPerDelivery is pg_current_wal_lsn's advance from the backlog's
	// COMMIT to the end of the drain, per delivery.
	WALBytesPerDelivery float64 `json:"wal_bytes_per_delivery"`
	// Tables are the row versions written per delivery (pg_stat_user_tables,
	// from before the backlog's INSERT, so the application's insert is in
	// outbox's inserted count).
	Tables []tableVersions `json:"tables,omitempty"`
	// PGCPU is PostgreSQL's CPU by process kind, seconds per 10k
	// deliveries.
	PGCPU []cpuShare `json:"pg_cpu_per_10k,omitempty"`
	// Statements are the top statements by execution time
	// (pg_stat_statements, reset at the COMMIT).
	Statements []statementCost `json:"statements,omitempty"`
	// Waits are what the active client backends were doing, sampled from
	// pg_stat_activity every waitSampleEvery: the statement and its wait
	// event ("CPU" when none), as a share of the samples.
	Waits []waitShare `json:"waits,omitempty"`
	// ActiveBackends is the mean number of active client backends.
	ActiveBackends float64  `json:"active_backends"`
	Notes          []string `json:"notes,omitempty"`
}

// waitShare is one (statement, wait event) pair's share of the samples.
type waitShare struct {
	What  string  `json:"what"`
	Share float64 `json:"share_pct"`
}

// tableVersions are one table's row versions per delivery.
type tableVersions struct {
	Table      string  `json:"table"`
	Inserted   float64 `json:"inserted"`
	Updated    float64 `json:"updated"`
	HOTUpdated float64 `json:"hot_updated"`
	Deleted    float64 `json:"deleted"`
	DeadTuples int64   `json:"dead_tuples_after"`
	SizeMiB    float64 `json:"total_size_mib_after"`
}

// cpuShare is one kind of PostgreSQL process's CPU.
type cpuShare struct {
	Kind    string  `json:"kind"`
	Seconds float64 `json:"seconds"`
}

// statementCost is one statement's cost over a drain.
type statementCost struct {
	Name         string  `json:"name"`
	Query        string  `json:"query"`
	CallsPer10k  float64 `json:"calls_per_10k"`
	ExecMsPer10k float64 `json:"exec_ms_per_10k"`
	// PlanMsPer10k is planning time, recorded with --track-planning only.
	PlanMsPer10k  float64 `json:"plan_ms_per_10k,omitempty"`
	ShareOfExec   float64 `json:"share_of_exec_pct"`
	RowsPerCall   float64 `json:"rows_per_call"`
	BlksHitPerDel float64 `json:"shared_blks_hit_per_delivery"`
	WALPerDel     float64 `json:"wal_bytes_per_delivery"`
	FPIPer10k     float64 `json:"wal_fpi_per_10k"`
}

// diagWindow collects one drain's diagnostics.
type diagWindow struct {
	b      *bench
	e      *env
	d      *diagnostics
	rows0  map[string]tableStat
	lsn0   string
	cpu0   pgProcCPU
	t0     time.Time
	failed []string

	stopWaits chan struct{}
	stopOnce  sync.Once
	waitsDone chan struct{}
	waits     map[string]int
	ticks     int
}

// waitSampleEvery is how often the wait sampler reads pg_stat_activity.
const waitSampleEvery = 25 * time.Millisecond

// stopSampling stops the wait sampler (if started) and waits for it.
func (w *diagWindow) stopSampling() {
	if w.stopWaits == nil {
		return
	}
	w.stopOnce.Do(func() { close(w.stopWaits) })
	<-w.waitsDone
}

// sampleWaits samples the active client backends until stopWaits closes.
func (w *diagWindow) sampleWaits(ctx context.Context) {
	defer close(w.waitsDone)
	t := time.NewTicker(waitSampleEvery)
	defer t.Stop()
	for {
		select {
		case <-w.stopWaits:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rows, err := w.b.admin.Query(ctx, `SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU'), query
			  FROM pg_stat_activity
			 WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid()`)
		if err != nil {
			continue
		}
		w.ticks++
		for rows.Next() {
			var wait, q string
			if rows.Scan(&wait, &q) == nil {
				w.waits[statementName(normalizeQuery(q))+" — "+wait]++
			}
		}
		rows.Close()
	}
}

// tableStat is a pg_stat_user_tables row.
type tableStat struct {
	ins, upd, hot, del, live, dead, size int64
}

// beginDiag snapshots the row-version counters before the backlog is
// inserted.
func (b *bench) beginDiag(ctx context.Context, e *env, label string) (*diagWindow, error) {
	w := &diagWindow{b: b, e: e, d: &diagnostics{Label: label}}
	var err error
	if w.rows0, err = tableStats(ctx, b.admin, e.schema); err != nil {
		return nil, err
	}
	return w, nil
}

// committed marks the backlog's COMMIT: WAL position, statement counters
// and PostgreSQL's CPU by process start here.
func (w *diagWindow) committed(ctx context.Context) {
	w.t0 = time.Now()
	w.cpu0 = pgCPUByKind(w.b.srv.PID())
	if err := w.b.admin.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&w.lsn0); err != nil {
		w.fail("WAL position: %v", err)
	}
	if w.b.pgss {
		if _, err := w.b.admin.Exec(ctx, `SELECT pg_stat_statements_reset()`); err != nil {
			w.fail("pg_stat_statements_reset: %v", err)
		}
	}
	w.stopWaits, w.waitsDone, w.waits = make(chan struct{}), make(chan struct{}), map[string]int{}
	go w.sampleWaits(ctx)
}

// drained takes what must be read while the relay still runs.
func (w *diagWindow) drained(ctx context.Context, r drainResult) {
	d := w.d
	d.Events, d.Deliveries, d.Seconds = r.events, r.deliveries, r.elapsed.Seconds()
	if w.stopWaits != nil {
		w.stopSampling()
		total := 0
		for _, n := range w.waits {
			total += n
		}
		for what, n := range w.waits {
			d.Waits = append(d.Waits, waitShare{What: what, Share: 100 * float64(n) / float64(total)})
		}
		slices.SortFunc(d.Waits, func(a, b waitShare) int {
			if a.Share != b.Share {
				if a.Share > b.Share {
					return -1
				}
				return 1
			}
			return strings.Compare(a.What, b.What)
		})
		if len(d.Waits) > 8 {
			d.Waits = d.Waits[:8]
		}
		if w.ticks > 0 {
			d.ActiveBackends = float64(total) / float64(w.ticks)
		}
	}
	per10k := 10000 / float64(r.deliveries)
	cpu1 := pgCPUByKind(w.b.srv.PID())
	for _, k := range cpu1.kinds(w.cpu0) {
		d.PGCPU = append(d.PGCPU, cpuShare{Kind: k.Kind, Seconds: k.Seconds * per10k})
	}
	if w.lsn0 != "" {
		var wal float64
		if err := w.b.admin.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::float8`, w.lsn0).Scan(&wal); err != nil {
			w.fail("WAL bytes: %v", err)
		} else {
			d.WALBytesPerDelivery = wal / float64(r.deliveries)
		}
	}
	if w.b.pgss {
		st, err := topStatements(ctx, w.b.admin, r.deliveries)
		if err != nil {
			w.fail("pg_stat_statements: %v", err)
		}
		d.Statements = st
	}
}

// finish reads the row-version counters once the relay has stopped (its
// connections' statistics are flushed when they close), waiting until they
// account for every delivery.
func (w *diagWindow) finish(ctx context.Context) {
	d := w.d
	// An idle connection flushes its statistics only every so often; ask
	// the application's and the in-process relay's to do so now.
	for _, p := range []*pgxpool.Pool{w.e.app, w.e.pool} {
		for _, c := range p.AcquireAllIdle(ctx) {
			_, _ = c.Exec(ctx, `SELECT pg_stat_force_next_flush()`)
			c.Release()
		}
	}
	var rows1 map[string]tableStat
	err := poll(ctx, 30*time.Second, 50*time.Millisecond, func() (bool, error) {
		var err error
		if rows1, err = tableStats(ctx, w.b.admin, w.e.schema); err != nil {
			return false, err
		}
		grew := func(t string, n int) bool { return rows1[t].ins-w.rows0[t].ins >= int64(n) }
		return grew("outbox", d.Events) && grew("deliveries", d.Deliveries) && grew("attempts", d.Deliveries), nil
	}, func() string { return "the table statistics to count every event and delivery" })
	if err != nil {
		w.fail("row versions: %v (figures may be short)", err)
	}
	per := 1 / float64(max(d.Deliveries, 1))
	for _, t := range []string{"outbox", "deliveries", "attempts", "endpoints", "relays"} {
		a, ok := rows1[t]
		if !ok {
			continue
		}
		z := w.rows0[t]
		d.Tables = append(d.Tables, tableVersions{
			Table: t, Inserted: float64(a.ins-z.ins) * per, Updated: float64(a.upd-z.upd) * per,
			HOTUpdated: float64(a.hot-z.hot) * per, Deleted: float64(a.del-z.del) * per,
			DeadTuples: a.dead, SizeMiB: float64(a.size) / (1 << 20),
		})
	}
	d.Notes = append(d.Notes, w.failed...)
	w.b.diags = append(w.b.diags, d)
}

func (w *diagWindow) fail(format string, args ...any) {
	w.failed = append(w.failed, fmt.Sprintf(format, args...))
}

// tableStats reads pg_stat_user_tables for schema.
func tableStats(ctx context.Context, pool *pgxpool.Pool, schema string) (map[string]tableStat, error) {
	rows, err := pool.Query(ctx, `SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del, n_live_tup, n_dead_tup,
		pg_total_relation_size(relid) FROM pg_stat_user_tables WHERE schemaname = $1`, schema)
	if err != nil {
		return nil, fmt.Errorf("read table statistics: %w", err)
	}
	defer rows.Close()
	m := map[string]tableStat{}
	for rows.Next() {
		var name string
		var s tableStat
		if err := rows.Scan(&name, &s.ins, &s.upd, &s.hot, &s.del, &s.live, &s.dead, &s.size); err != nil {
			return nil, fmt.Errorf("read table statistics: %w", err)
		}
		m[name] = s
	}
	return m, rows.Err()
}

// topStatements reads the costliest statements since the reset.
func topStatements(ctx context.Context, pool *pgxpool.Pool, deliveries int) ([]statementCost, error) {
	rows, err := pool.Query(ctx, `SELECT query, calls, total_exec_time, total_plan_time, rows, shared_blks_hit, wal_bytes::float8, wal_fpi,
		sum(total_exec_time) OVER ()
		  FROM pg_stat_statements
		 WHERE query NOT ILIKE '%pg_stat_statements%' AND query NOT ILIKE '%pg_stat_activity%'
		 ORDER BY total_exec_time DESC LIMIT 10`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []statementCost
	n := float64(deliveries)
	for rows.Next() {
		var q string
		var calls, rowsN, hit, fpi int64
		var exec, plan, wal, all float64
		if err := rows.Scan(&q, &calls, &exec, &plan, &rowsN, &hit, &wal, &fpi, &all); err != nil {
			return nil, err
		}
		q = normalizeQuery(q)
		s := statementCost{
			Name: statementName(q), Query: shorten(q, 160),
			CallsPer10k: float64(calls) * 10000 / n, ExecMsPer10k: exec * 10000 / n, PlanMsPer10k: plan * 10000 / n,
			BlksHitPerDel: float64(hit) / n, WALPerDel: wal / n, FPIPer10k: float64(fpi) * 10000 / n,
		}
		if calls > 0 {
			s.RowsPerCall = float64(rowsN) / float64(calls)
		}
		if all > 0 {
			s.ShareOfExec = 100 * exec / all
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// statementMeans is the mean execution time (ms) of each named statement
// since pg_stat_statements was last reset, by statementName.
func (b *bench) statementMeans(ctx context.Context) (map[string]float64, error) {
	rows, err := b.admin.Query(ctx, `SELECT query, calls, total_exec_time FROM pg_stat_statements WHERE calls > 0`)
	if err != nil {
		return nil, fmt.Errorf("read pg_stat_statements: %w", err)
	}
	defer rows.Close()
	calls, total := map[string]int64{}, map[string]float64{}
	for rows.Next() {
		var q string
		var n int64
		var ms float64
		if err := rows.Scan(&q, &n, &ms); err != nil {
			return nil, fmt.Errorf("read pg_stat_statements: %w", err)
		}
		name := statementName(normalizeQuery(q))
		calls[name] += n
		total[name] += ms
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read pg_stat_statements: %w", err)
	}
	means := make(map[string]float64, len(calls))
	for name, n := range calls {
		means[name] = total[name] / float64(n)
	}
	return means, nil
}

var (
	spaces      = regexp.MustCompile(`\s+`)
	benchSchema = regexp.MustCompile(`"?hb_[a-z0-9_]+_[0-9]+"?`)
)

// normalizeQuery folds whitespace and names the schema {{schema}}.
func normalizeQuery(q string) string {
	return benchSchema.ReplaceAllString(strings.TrimSpace(spaces.ReplaceAllString(q, " ")), "{{schema}}")
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// The names statementName gives the engine's two statements that find
// work.
const (
	stmtFanout = "fan-out + lease (outbox dispatchSQL)"
	stmtClaim  = "claim (outbox claimSQL)"
)

// statementName names the relay's and hookbench's own statements.
func statementName(q string) string {
	switch {
	case strings.HasPrefix(q, "WITH locked AS"):
		return stmtFanout
	case strings.HasPrefix(q, "WITH lim AS"):
		return stmtClaim
	case strings.HasPrefix(q, "WITH r AS") && strings.Contains(q, ".attempts"):
		return "record outcomes (outbox completeSQL)"
	case strings.Contains(q, "SET state = 'pending', lease_token = NULL"):
		return "release leases (outbox releaseSQL)"
	case strings.Contains(q, "dispatched_at IS NULL) OR EXISTS"):
		return "hookbench: work-left poll"
	case strings.Contains(q, "count(*) FROM {{schema}}.deliveries WHERE id >"):
		return "hookbench: delivered count"
	case strings.Contains(q, "set_config"):
		return "set_config (async commit)"
	case strings.Contains(q, "{{schema}}.relays"):
		return "relays heartbeat / idle flag"
	case q == "COMMIT" || q == "BEGIN" || strings.HasPrefix(q, "begin") || strings.HasPrefix(q, "commit"):
		return strings.ToUpper(q)
	}
	return shorten(q, 60)
}

// pgProcCPU is PostgreSQL's CPU per live process, plus the postmaster's
// own and its reaped children's (autovacuum workers and backends that
// have exited).
type pgProcCPU struct {
	procs  map[int]procCPUKind
	reaped float64
}

type procCPUKind struct {
	kind string
	cpu  float64
}

// pgCPUByKind samples PostgreSQL's processes.
func pgCPUByKind(postmaster int) pgProcCPU {
	s := pgProcCPU{procs: map[int]procCPUKind{}}
	if postmaster <= 0 {
		return s
	}
	if t, ok := procTimes(postmaster); ok {
		s.reaped = t.self + t.children
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return s
	}
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		t, ok := procTimes(pid)
		if !ok || t.ppid != postmaster {
			continue
		}
		cmd, _ := os.ReadFile("/proc/" + d.Name() + "/cmdline")
		s.procs[pid] = procCPUKind{kind: pgProcKind(string(cmd)), cpu: t.self}
	}
	return s
}

// pgProcKind classifies a PostgreSQL child by its process title.
func pgProcKind(title string) string {
	for _, k := range []string{"walwriter", "checkpointer", "background writer", "autovacuum", "logical replication", "stats collector"} {
		if strings.Contains(title, k) {
			return k
		}
	}
	return "backends"
}

// kinds is the CPU used since s0, by kind, largest first.
func (s pgProcCPU) kinds(s0 pgProcCPU) []cpuShare {
	m := map[string]float64{"postmaster + exited children": s.reaped - s0.reaped}
	for pid, p := range s.procs {
		m[p.kind] += p.cpu - s0.procs[pid].cpu // a process new since s0 counts whole
	}
	var out []cpuShare
	for k, v := range m {
		if v > 0.005 {
			out = append(out, cpuShare{Kind: k, Seconds: v})
		}
	}
	slices.SortFunc(out, func(a, b cpuShare) int {
		if a.Seconds != b.Seconds {
			if a.Seconds > b.Seconds {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Kind, b.Kind)
	})
	return out
}

// printDiagnostics writes each drain's diagnostics.
func printDiagnostics(out io.Writer, ds []*diagnostics) {
	for _, d := range ds {
		fmt.Fprintf(out, "diagnostics: %s (%d deliveries in %.1fs)\n", d.Label, d.Deliveries, d.Seconds)
		fmt.Fprintf(out, "  WAL: %.0f bytes per delivery\n", d.WALBytesPerDelivery)
		if len(d.PGCPU) > 0 {
			var parts []string
			for _, c := range d.PGCPU {
				parts = append(parts, fmt.Sprintf("%s %.2f s", c.Kind, c.Seconds))
			}
			fmt.Fprintf(out, "  PostgreSQL CPU per 10k deliveries: %s\n", strings.Join(parts, ", "))
		}
		if len(d.Tables) > 0 {
			fmt.Fprintln(out, "  row versions per delivery (inserted / updated (HOT) / deleted; dead tuples and size after):")
			for _, t := range d.Tables {
				fmt.Fprintf(out, "    %-11s %.2f / %.2f (%.2f) / %.2f; %d dead, %.1f MiB\n", t.Table, t.Inserted, t.Updated, t.HOTUpdated, t.Deleted, t.DeadTuples, t.SizeMiB)
			}
		}
		if len(d.Statements) > 0 {
			fmt.Fprintln(out, "  statements (pg_stat_statements), per 10k deliveries:")
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			// Planning is recorded with --track-planning only; without
			// it every statement's plan time is 0 and the column is left out.
			planned := slices.ContainsFunc(d.Statements, func(s statementCost) bool { return s.PlanMsPer10k > 0 })
			plan, planHead := func(statementCost) string { return "" }, ""
			if planned {
				plan, planHead = func(s statementCost) string { return fmt.Sprintf("%.1f\t", s.PlanMsPer10k) }, "plan ms\t"
			}
			fmt.Fprintf(tw, "    statement\tcalls\texec ms\t%sshare\trows/call\tblks hit/del\tWAL B/del\tFPI\t\n", planHead)
			for _, s := range d.Statements {
				fmt.Fprintf(tw, "    %s\t%.1f\t%.0f\t%s%.0f %%\t%.1f\t%.1f\t%.0f\t%.0f\t\n", s.Name, s.CallsPer10k, s.ExecMsPer10k, plan(s), s.ShareOfExec, s.RowsPerCall, s.BlksHitPerDel, s.WALPerDel, s.FPIPer10k)
			}
			_ = tw.Flush()
		}
		if len(d.Waits) > 0 {
			fmt.Fprintf(out, "  active client backends (pg_stat_activity every %s): %.2f on average; statement — wait event, share of samples:\n", waitSampleEvery, d.ActiveBackends)
			for _, ws := range d.Waits {
				fmt.Fprintf(out, "    %5.1f %%  %s\n", ws.Share, ws.What)
			}
		}
		for _, n := range d.Notes {
			fmt.Fprintf(out, "  note: %s\n", n)
		}
		fmt.Fprintln(out)
	}
}

// latencyPhases splits commit→receipt into the relay's steps, from the
// rows it wrote: commit → fan-out (the fan-out statement's transaction
// start, deliveries.created_at: the wake-up and the wait for a fan-out
// turn), fan-out → send (attempts.started_at, taken by the relay when the
// request starts: the statement and the hand-off to a worker) and send →
// receipt (signing, HTTP and the receiver). committed holds each seq's
// commit time (unix ns), st the receiver's receipts.
func (b *bench) latencyPhases(ctx context.Context, e *env, name string, committed []int64, st stats) error {
	rcv := make(map[int64]int64, len(st.Seq))
	for i, s := range st.Seq {
		rcv[s] = st.ReceivedNS[i]
	}
	rows, err := b.admin.Query(ctx, `SELECT DISTINCT ON (d.id) (o.payload->>'seq')::bigint,
		(extract(epoch FROM d.created_at) * 1e6)::bigint, (extract(epoch FROM a.started_at) * 1e6)::bigint
		  FROM `+e.ident()+`.outbox o
		  JOIN `+e.ident()+`.deliveries d ON d.event_id = o.id
		  JOIN `+e.ident()+`.attempts a ON a.delivery_id = d.id
		 WHERE o.payload ? 'seq'
		 ORDER BY d.id, a.id`)
	if err != nil {
		return fmt.Errorf("latency phases: %w", err)
	}
	defer rows.Close()
	var fan, send, recv []int64 // µs
	for rows.Next() {
		var seq, fanned, sent int64
		if err := rows.Scan(&seq, &fanned, &sent); err != nil {
			return fmt.Errorf("latency phases: %w", err)
		}
		r, ok := rcv[seq]
		if seq < 0 || seq >= int64(len(committed)) || !ok {
			continue
		}
		fan = append(fan, max(fanned-committed[seq]/1000, 0))
		send = append(send, max(sent-fanned, 0))
		recv = append(recv, max(r/1000-sent, 0))
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("latency phases: %w", err)
	}
	if len(fan) == 0 {
		return errors.New("latency phases: no delivered event found")
	}
	for _, p := range []struct {
		metric string
		us     []int64
	}{{"commit_to_fanout", fan}, {"fanout_to_send", send}, {"send_to_receipt", recv}} {
		slices.Sort(p.us)
		for _, q := range []struct {
			suffix string
			at     float64
		}{{"_p50", 0.5}, {"_p99", 0.99}} {
			b.record(name, p.metric+q.suffix, "ms", float64(p.us[int(float64(len(p.us)-1)*q.at)])/1000)
		}
	}
	b.note("latency: commit_to_fanout runs from the application's commit to the start of the fan-out transaction that created the delivery (deliveries.created_at), fanout_to_send from there to the request's start (attempts.started_at), send_to_receipt from there to the receiver's verified receipt; each is its own percentile, so they do not add up")
	return nil
}

// latencyProbe takes a latency run's diagnostics when the relay is the
// binary: the drain diagnostics over the whole run and the fan-out rounds
// by trigger from its /metrics.
type latencyProbe struct {
	b    *bench
	name string
	br   *binaryRelay
	dw   *diagWindow
	c0   map[string]float64
	t0   time.Time
}

// startLatencyProbe starts the probe before the first insert; it returns
// nil for an in-process relay. The diagnostics are taken on the first run
// only (the wait sampler costs a little CPU), the counters on every run.
func (b *bench) startLatencyProbe(ctx context.Context, e *env, name string, rel runningRelay) (*latencyProbe, error) {
	br, ok := rel.(*binaryRelay)
	if !ok {
		return nil, nil
	}
	p := &latencyProbe{b: b, name: name, br: br}
	var err error
	if p.c0, err = br.counters(ctx); err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(b.diags, func(d *diagnostics) bool { return d.Label == name }) {
		if p.dw, err = b.beginDiag(ctx, e, name); err != nil {
			return nil, err
		}
		p.dw.committed(ctx)
	}
	p.t0 = time.Now()
	return p, nil
}

// finish records the probe's figures once every event has arrived; it
// stops the relay (stop runs once) to read the row versions.
func (p *latencyProbe) finish(ctx context.Context, events int, stop func() error) error {
	if p == nil {
		return nil
	}
	if p.dw != nil {
		defer p.dw.stopSampling()
	}
	c1, err := p.br.counters(ctx)
	if err != nil {
		return err
	}
	for k, v := range c1 {
		metric := "notifications_per_event"
		if t, ok := strings.CutPrefix(k, `hookrelay_polls_total{trigger="`); ok {
			metric = "fanout_rounds_per_event_" + strings.TrimSuffix(t, `"}`)
		}
		p.b.record(p.name, metric, "/event", (v-p.c0[k])/float64(events))
	}
	if p.dw == nil {
		return nil
	}
	p.dw.drained(ctx, drainResult{events: events, deliveries: events, elapsed: time.Since(p.t0)})
	if err := stop(); err != nil {
		return err
	}
	p.dw.finish(ctx)
	p.b.note("latency_binary: fanout_rounds_per_event_* are the binary's fan-out rounds (hookrelay_polls_total) by trigger per event, from its /metrics; its diagnostics cover the whole run")
	return nil
}
