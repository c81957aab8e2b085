// Command hookbench runs hookrelay's reproducible performance benchmark
// (issues 8 and 18): it starts a throwaway durable PostgreSQL and a
// signature-verifying receiver in a subprocess, runs the scenarios with
// the relay in this process and, for the *_binary scenarios, as `hookrelay
// run` processes built from ./cmd/hookrelay and configured only through
// the environment, prints a table with each figure against its target, the
// PASS/MISS rows of issue 18 and the diagnostics behind them (WAL bytes,
// row versions and pg_stat_statements per delivery), and writes the
// results as JSON.
//
//	go run ./cmd/hookbench                 # full run, 3 runs per scenario
//	go run ./cmd/hookbench --quick         # smoke run (CI)
//	go run ./cmd/hookbench --scenarios drain,drain_binary --runs 5
//	go run ./cmd/hookbench --scenarios halfrate_binary,history --runs 1
//	go run ./cmd/hookbench --scenarios soak_binary --runs 1 --soak 30m
//	go run ./cmd/hookbench --readme        # full run; prints the README's table
//	go run ./cmd/hookbench --readme --from bench-results.json  # the table again, no run
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/hookrelay/hookrelay/outbox/pgcluster"
	"github.com/hookrelay/hookrelay/relay/sidecar"
	"github.com/hookrelay/hookrelay/relay/signature"
)

// scenarioGroups lists the scenarios in the order they run. The scenarios
// of a group run interleaved (run 1 of each, then run 2 of each, the order
// reversed on every other run), so their ratios come from the same minutes
// of a machine whose speed drifts.
var scenarioGroups = [][]string{
	{"bare", "baseline", "drain", "drain_binary"},
	{"fanout", "fanout_binary"},
	{"latency", "latency_binary"},
	{"halfrate_binary"},
	{"appcost"},
	{"isolation"},
	{"history"},
	{"ordering"},
	{"tenants_binary"},
	{"replicas_binary"},
	{"soak_binary"},
}

// allScenarios lists every scenario, in order.
var allScenarios = slices.Concat(scenarioGroups...)

// longScenarios are left out of --quick's default list: even at quick
// sizes they would take the smoke run past a minute.
var longScenarios = []string{"soak_binary"}

// defaultScenarios is the --scenarios default of a run.
func defaultScenarios(quick bool) []string {
	if !quick {
		return allScenarios
	}
	return slices.DeleteFunc(slices.Clone(allScenarios), func(s string) bool { return slices.Contains(longScenarios, s) })
}

// sizes are the workload sizes of one mode.
type sizes struct {
	Drain        int           `json:"drain_events"`
	FanoutEvents int           `json:"fanout_events"`
	FanoutEPs    int           `json:"fanout_endpoints"`
	LatencyRate  int           `json:"latency_rate"`
	LatencyFor   time.Duration `json:"latency_duration_ns"`
	AppCostFor   time.Duration `json:"appcost_phase_duration_ns"`
	Isolation    int           `json:"isolation_events"`
	IsoTimeout   time.Duration `json:"isolation_request_timeout_ns"`
	// HistoryRows finished deliveries (with their events and attempts)
	// are the history scenario's largest level; it also measures a tenth
	// of them and none.
	HistoryRows   int `json:"history_rows"`
	HistoryEvents int `json:"history_drain_events"`
	Baseline      int `json:"baseline_events"`
	Bare          int `json:"bare_posts"`
	Ordering      int `json:"ordering_events"`
	OrderingKeys  int `json:"ordering_keys"`
	HotKey        int `json:"hot_key_events"`
	// TenantsEvents are drained with TenantEndpoints endpoints of Tenants
	// other tenants in the table, and without.
	TenantsEvents   int `json:"tenants_drain_events"`
	TenantEndpoints int `json:"tenants_other_endpoints"`
	Tenants         int `json:"tenants_other_tenants"`
	ReplicaEvents   int `json:"replicas_drain_events"`
	// HalfRateFor is how long halfrate_binary offers events at half the
	// binary's drain rate.
	HalfRateFor time.Duration `json:"halfrate_duration_ns"`
	// SoakRate events/s are offered for SoakFor, sampled every SoakEvery;
	// SoakSeed starts the schema with SoakFor's worth of finished history
	// about to pass the retention period, plus a retention interval's
	// worth already past it (what the next pass deletes).
	SoakRate  int           `json:"soak_rate"`
	SoakFor   time.Duration `json:"soak_duration_ns"`
	SoakEvery time.Duration `json:"soak_sample_every_ns"`
	SoakSeed  bool          `json:"soak_seed_history"`
}

var (
	fullSizes = sizes{
		Drain: 100_000, FanoutEvents: 10_000, FanoutEPs: 10, LatencyRate: 1000, LatencyFor: 30 * time.Second,
		AppCostFor: 5 * time.Second, Isolation: 40_000, IsoTimeout: 2 * time.Second,
		HistoryRows: 10_000_000, HistoryEvents: 50_000, Baseline: 20_000, Bare: 100_000,
		Ordering: 100_000, OrderingKeys: 10_000, HotKey: 2000,
		TenantsEvents: 50_000, TenantEndpoints: 100_000, Tenants: 10_000, ReplicaEvents: 50_000,
		HalfRateFor: 30 * time.Second, SoakRate: 1000, SoakFor: 30 * time.Minute, SoakEvery: 30 * time.Second, SoakSeed: true,
	}
	quickSizes = sizes{
		Drain: 2000, FanoutEvents: 200, FanoutEPs: 5, LatencyRate: 200, LatencyFor: 5 * time.Second,
		AppCostFor: time.Second, Isolation: 1000, IsoTimeout: 2 * time.Second,
		HistoryRows: 50_000, HistoryEvents: 2000, Baseline: 1000, Bare: 2000,
		Ordering: 2000, OrderingKeys: 200, HotKey: 100,
		TenantsEvents: 2000, TenantEndpoints: 2000, Tenants: 200, ReplicaEvents: 2000,
		HalfRateFor: 3 * time.Second, SoakRate: 1000, SoakFor: 20 * time.Second, SoakEvery: 2 * time.Second,
	}
)

// options are the command-line settings.
type options struct {
	quick      bool
	runs       int
	scenarios  []string
	jsonPath   string
	cpuprofile string
	relay      relayConfig
	// hookrelayBin is a hookrelay executable to run instead of building
	// ./cmd/hookrelay.
	hookrelayBin string
	// perfDir, when set, receives perf profiles of one extra drain_binary.
	perfDir string
	// readme prints the README's Markdown table on stdout (progress goes
	// to stderr).
	readme bool
	// from renders an earlier JSON results file instead of running.
	from string
	// pgss loads pg_stat_statements into the throwaway cluster.
	pgss bool
	// trackPlanning turns on pg_stat_statements.track_planning, so the
	// statement costs include planning time.
	trackPlanning bool
	// soak and historyRows, when set (non-zero), replace the mode's
	// SoakFor and HistoryRows.
	soak        time.Duration
	historyRows int
}

// relayConfig is the relay's tuning under test; the defaults are those of
// `hookrelay run`.
type relayConfig struct {
	PoolConns           int  `json:"pool_conns"`
	BatchSize           int  `json:"batch_size"`
	MaxInFlight         int  `json:"max_in_flight"`
	EndpointMaxInFlight int  `json:"endpoint_max_in_flight"`
	AsyncCommit         bool `json:"async_commit"`
}

// machine describes where the benchmark ran.
type machine struct {
	CPU       string  `json:"cpu"`
	Cores     int     `json:"cores"`
	MemoryGiB float64 `json:"memory_gib"`
	Virtual   bool    `json:"virtual"` // the CPU reports a hypervisor
	Postgres  string  `json:"postgres"`
	GoVersion string  `json:"go"`
	OS        string  `json:"os"`
}

// report is the JSON file's content.
type report struct {
	StartedAt time.Time   `json:"started_at"`
	Command   string      `json:"command"`
	Quick     bool        `json:"quick"`
	Runs      int         `json:"runs"`
	Sizes     sizes       `json:"sizes"`
	Relay     relayConfig `json:"relay_config"`
	Machine   machine     `json:"machine"`
	// LoadAtStart is /proc/loadavg when the run started: other work on a
	// shared machine.
	LoadAtStart string    `json:"load_at_start,omitempty"`
	Results     []*figure `json:"results"`
	// Targets are issue 18's targets, PASS or MISS from this run.
	Targets []goal `json:"targets"`
	// Diagnostics are the database costs per delivery of the first run of
	// each drain that captures them.
	Diagnostics []*diagnostics `json:"diagnostics"`
	// Profiles summarise the perf reports (--perf).
	Profiles []profile `json:"profiles,omitempty"`
	// Soak is the soak's samples (soak_binary).
	Soak *soakResult `json:"soak,omitempty"`
	// Failed lists the scenario groups that failed; the others ran.
	Failed []string `json:"failed,omitempty"`
	Notes  []string `json:"notes"`
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == receiverFlag {
		os.Exit(receiverMain(os.Args[2:]))
	}
	// The in-process relay runs like hookrelay run (the same collector
	// setting), so the two compare like for like; the receiver keeps Go's.
	sidecar.Main(run)
}

// run is the command without process exit: 0 on success, 1 on an error,
// 2 on bad usage.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hookbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	var scen string
	fs.BoolVar(&o.quick, "quick", false, "tiny sizes, one run: a smoke run under a minute")
	fs.IntVar(&o.runs, "runs", 3, "runs per scenario (the table shows the median and min–max)")
	fs.StringVar(&scen, "scenarios", "", "comma-separated scenarios (default: all; with --quick all but "+strings.Join(longScenarios, ",")+"): "+strings.Join(allScenarios, ","))
	fs.DurationVar(&o.soak, "soak", fullSizes.SoakFor, "how long soak_binary offers events (--quick: "+quickSizes.SoakFor.String()+" unless set)")
	fs.IntVar(&o.historyRows, "history-rows", fullSizes.HistoryRows, "finished deliveries of history at the history scenario's largest level (--quick: "+strconv.Itoa(quickSizes.HistoryRows)+" unless set)")
	fs.StringVar(&o.jsonPath, "json", "bench-results.json", "where to write the JSON results")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the first in-process drain run to this file")
	fs.StringVar(&o.hookrelayBin, "hookrelay-bin", "", "run this hookrelay executable in the *_binary scenarios instead of building ./cmd/hookrelay")
	fs.StringVar(&o.perfDir, "perf", "", "after the drains, profile one more drain_binary with `perf record` (whole machine) and write the reports to this directory")
	fs.BoolVar(&o.readme, "readme", false, "print the README's performance table (Markdown) on stdout; progress goes to stderr")
	fs.StringVar(&o.from, "from", "", "render this JSON results file (the table, or with --readme the Markdown) instead of running")
	fs.BoolVar(&o.pgss, "pg-stat-statements", true, "load pg_stat_statements into the throwaway cluster for the diagnostics")
	fs.BoolVar(&o.trackPlanning, "track-planning", false, "with pg_stat_statements, also time planning (pg_stat_statements.track_planning, which adds some contention of its own): the statement diagnostics gain a plan ms column")
	fs.IntVar(&o.relay.PoolConns, "pool-conns", 16, "the relay's database pool size (`hookrelay run` default 16)")
	fs.BoolVar(&o.relay.AsyncCommit, "async-commit", true, "the engine's statements commit asynchronously (HOOKRELAY_ASYNC_COMMIT default true)")
	fs.IntVar(&o.relay.BatchSize, "batch-size", 500, "relay BatchSize (HOOKRELAY_BATCH_SIZE default 500)")
	fs.IntVar(&o.relay.MaxInFlight, "max-in-flight", 256, "relay MaxInFlight (HOOKRELAY_MAX_IN_FLIGHT default 256)")
	fs.IntVar(&o.relay.EndpointMaxInFlight, "endpoint-max-in-flight", 16, "relay EndpointMaxInFlight (HOOKRELAY_ENDPOINT_MAX_IN_FLIGHT default 16)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.relay.PoolConns < 1 || o.relay.BatchSize < 1 || o.relay.MaxInFlight < 1 || o.relay.EndpointMaxInFlight < 1 {
		fmt.Fprintln(stderr, "hookbench: relay settings must be at least 1")
		return 2
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.quick && !set["runs"] {
		o.runs = 1
	}
	if !set["soak"] {
		o.soak = 0
	}
	if !set["history-rows"] {
		o.historyRows = 0
	}
	switch {
	case o.runs < 1:
		fmt.Fprintln(stderr, "hookbench: --runs must be at least 1")
		return 2
	case set["soak"] && o.soak < time.Second:
		fmt.Fprintln(stderr, "hookbench: --soak must be at least 1s")
		return 2
	case set["history-rows"] && o.historyRows < 10:
		fmt.Fprintln(stderr, "hookbench: --history-rows must be at least 10")
		return 2
	}
	if scen == "" {
		scen = strings.Join(defaultScenarios(o.quick), ",")
	}
	for _, s := range strings.Split(scen, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !slices.Contains(allScenarios, s) {
			fmt.Fprintf(stderr, "hookbench: unknown scenario %q (have %s)\n", s, strings.Join(allScenarios, ","))
			return 2
		}
		o.scenarios = append(o.scenarios, s)
	}
	if o.from != "" {
		if err := render(o, stdout); err != nil {
			fmt.Fprintln(stderr, "hookbench:", err)
			return 1
		}
		return 0
	}
	progress := stdout
	if o.readme {
		progress = stderr
	}
	rep, err := benchmark(ctx, o, args, progress)
	if o.readme && len(rep.Results) > 0 {
		printReadme(stdout, rep)
	}
	if err != nil {
		fmt.Fprintln(stderr, "hookbench:", err)
		return 1
	}
	return 0
}

// bench holds what the scenarios share.
type bench struct {
	o       options
	sz      sizes
	out     io.Writer
	srv     *pgcluster.Server
	admin   *pgxpool.Pool
	rc      *receiverProc
	secret  signature.Secret
	rawSec  string
	log     *zap.Logger
	figs    []*figure
	notes   []string
	seq     int
	profile bool // a CPU profile is still to be taken

	build    hookrelayBuild // the hookrelay binary of the *_binary scenarios
	pgss     bool           // pg_stat_statements is loaded
	diags    []*diagnostics
	profiles []profile
	soak     *soakResult
}

func benchmark(ctx context.Context, o options, args []string, out io.Writer) (report, error) {
	rep := report{StartedAt: time.Now().UTC(), Command: strings.TrimSpace("go run ./cmd/hookbench " + strings.Join(args, " ")), Quick: o.quick, Runs: o.runs}
	// The relay logs as `hookrelay run` does by default (JSON at info), into
	// io.Discard: encoding is counted, the terminal is not.
	relayLog := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()),
		zapcore.AddSync(io.Discard), zap.InfoLevel))
	b := &bench{o: o, sz: fullSizes, out: out, log: relayLog, profile: o.cpuprofile != ""}
	defer b.build.cleanup()
	if o.quick {
		b.sz = quickSizes
	}
	if o.soak > 0 {
		b.sz.SoakFor = o.soak
	}
	if o.historyRows > 0 {
		b.sz.HistoryRows = o.historyRows
	}
	rep.Sizes, rep.Relay = b.sz, o.relay
	raw, err := signature.GenerateSecret()
	if err != nil {
		return rep, fmt.Errorf("generate secret: %w", err)
	}
	if b.secret, err = signature.ParseSecret(raw); err != nil {
		return rep, fmt.Errorf("parse secret: %w", err)
	}
	b.rawSec = raw

	if err := b.startPostgres(ctx); err != nil {
		return rep, err
	}
	defer func() { _ = b.srv.Stop() }()
	defer b.admin.Close()
	if b.rc, err = startReceiver(ctx, raw); err != nil {
		return rep, err
	}
	defer b.rc.stop()

	rep.Machine = machineInfo(ctx, b.admin)
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		rep.LoadAtStart = strings.TrimSpace(string(data))
	}
	fmt.Fprintf(out, "hookbench: %s; receiver pid %d at %s\n", machineLine(rep.Machine), b.rc.pid(), b.rc.base)

	for _, group := range scenarioGroups {
		var names []string
		for _, s := range group {
			if slices.Contains(o.scenarios, s) {
				names = append(names, s)
			}
		}
		if len(names) == 0 {
			continue
		}
		start := time.Now()
		fmt.Fprintf(out, "hookbench: %s (%d run(s))\n", strings.Join(names, ", "), o.runs)
		if err := b.runGroup(ctx, names); err != nil {
			if ctx.Err() != nil {
				return rep, err
			}
			// The other scenarios still run: one that breaks is a finding,
			// reported with the figures.
			rep.Failed = append(rep.Failed, err.Error())
			fmt.Fprintf(out, "hookbench: FAILED: %v\n", err)
			continue
		}
		fmt.Fprintf(out, "hookbench: %s done in %s\n", strings.Join(names, ", "), time.Since(start).Round(100*time.Millisecond))
		if o.perfDir != "" && slices.Contains(names, "drain_binary") {
			if err := b.perfDrain(ctx); err != nil {
				return rep, fmt.Errorf("perf profile: %w", err)
			}
		}
	}
	b.derive()
	for _, f := range b.figs {
		f.finish()
	}
	rep.Results, rep.Notes, rep.Soak = b.figs, b.notes, b.soak
	rep.Targets, rep.Diagnostics, rep.Profiles = issueTargets(b.figs), b.diags, b.profiles
	printReport(out, rep)
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return rep, fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(o.jsonPath, append(data, '\n'), 0o644); err != nil {
		return rep, fmt.Errorf("write results: %w", err)
	}
	fmt.Fprintf(out, "hookbench: results written to %s\n", o.jsonPath)
	if len(rep.Failed) > 0 {
		return rep, fmt.Errorf("%d scenario group(s) failed (see the results)", len(rep.Failed))
	}
	return rep, nil
}

// startPostgres starts the durable throwaway cluster, with
// pg_stat_statements preloaded when o.pgss is set and the server has it,
// and opens the admin pool.
func (b *bench) startPostgres(ctx context.Context) error {
	fmt.Fprintln(b.out, "hookbench: starting PostgreSQL (durable: fsync, synchronous_commit, full_page_writes on)")
	opts := pgcluster.Options{Durable: true, ForceLocal: true}
	var err error
	if b.o.pgss {
		opts.Settings = map[string]string{"shared_preload_libraries": "pg_stat_statements"}
		if b.o.trackPlanning {
			opts.Settings["pg_stat_statements.track_planning"] = "on"
		}
		switch b.srv, err = pgcluster.Start(ctx, opts); {
		case err != nil:
			b.note("pg_stat_statements could not be preloaded, so the diagnostics lack statement costs: " + firstLine(err.Error()))
			opts.Settings = nil
		case b.o.trackPlanning:
			b.note("pg_stat_statements.track_planning is on (--track-planning): statement costs include planning time, and every scenario pays its contention alike")
		}
	}
	if b.srv == nil {
		if b.srv, err = pgcluster.Start(ctx, opts); err != nil {
			return fmt.Errorf("start postgres: %w", err)
		}
	}
	pc, err := pgxpool.ParseConfig(b.srv.URL())
	if err != nil {
		_ = b.srv.Stop()
		return fmt.Errorf("parse database url: %w", err)
	}
	pc.MaxConns = 4
	if b.admin, err = pgxpool.NewWithConfig(ctx, pc); err != nil {
		_ = b.srv.Stop()
		return fmt.Errorf("open admin pool: %w", err)
	}
	if opts.Settings != nil {
		if _, err := b.admin.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err != nil {
			b.note("pg_stat_statements is preloaded but CREATE EXTENSION failed, so the diagnostics lack statement costs: " + err.Error())
		} else {
			b.pgss = true
			b.note("PostgreSQL runs with pg_stat_statements preloaded (track = top) for the diagnostics, in every scenario alike")
		}
	}
	return nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// render prints an earlier run's results from o.from.
func render(o options, out io.Writer) error {
	data, err := os.ReadFile(o.from)
	if err != nil {
		return fmt.Errorf("read results: %w", err)
	}
	var rep report
	if err := json.Unmarshal(data, &rep); err != nil {
		return fmt.Errorf("%s is not a hookbench results file: %w", o.from, err)
	}
	if len(rep.Targets) == 0 {
		rep.Targets = issueTargets(rep.Results)
	}
	if o.readme {
		printReadme(out, rep)
		return nil
	}
	printReport(out, rep)
	return nil
}

// printReport writes the figures, issue 18's targets, the diagnostics and
// the profiles.
func printReport(out io.Writer, rep report) {
	printTable(out, rep)
	printTargets(out, rep.Targets)
	printSoak(out, rep.Soak)
	printDiagnostics(out, rep.Diagnostics)
	for _, p := range rep.Profiles {
		fmt.Fprintf(out, "profile: %s (%s)\n", p.Name, p.File)
		for _, l := range p.Top {
			fmt.Fprintln(out, "  ", l)
		}
		fmt.Fprintln(out)
	}
}

// scenarioFuncs are one scenario's steps.
type scenarioFuncs struct {
	prep    func(context.Context) error
	once    func(context.Context, int) error
	cleanup func()
}

// preparedScenario is a scenario with set-up shared by its runs.
type preparedScenario interface {
	prepare(context.Context) error
	run(context.Context, int) error
	cleanup()
}

// each is a scenario that is one method run on each run.
func each(f func(*bench, context.Context, int) error) func(*bench) scenarioFuncs {
	return func(b *bench) scenarioFuncs {
		return scenarioFuncs{once: func(ctx context.Context, run int) error { return f(b, ctx, run) }}
	}
}

// kinded is a scenario that is one method run with a relay kind.
func kinded(f func(*bench, context.Context, relayKind, int) error, kind relayKind) func(*bench) scenarioFuncs {
	return each(func(b *bench, ctx context.Context, run int) error { return f(b, ctx, kind, run) })
}

// prepared is a scenario with its own set-up and clean-up.
func prepared(mk func(*bench) preparedScenario) func(*bench) scenarioFuncs {
	return func(b *bench) scenarioFuncs {
		p := mk(b)
		return scenarioFuncs{prep: p.prepare, once: p.run, cleanup: p.cleanup}
	}
}

// scenarioSteps makes each scenario's steps.
var scenarioSteps = map[string]func(*bench) scenarioFuncs{
	"bare": each((*bench).bare), "baseline": each((*bench).baseline),
	"drain": kinded((*bench).drainKind, inProcess), "drain_binary": kinded((*bench).drainKind, binaryProcess),
	"fanout": kinded((*bench).fanoutKind, inProcess), "fanout_binary": kinded((*bench).fanoutKind, binaryProcess),
	"latency": kinded((*bench).latencyKind, inProcess), "latency_binary": kinded((*bench).latencyKind, binaryProcess),
	"halfrate_binary": each((*bench).halfRate), "soak_binary": each((*bench).soakBinary),
	"appcost": each((*bench).appCost), "isolation": each((*bench).isolation), "ordering": each((*bench).ordering),
	"history":         prepared(func(b *bench) preparedScenario { return &history{b: b} }),
	"tenants_binary":  prepared(func(b *bench) preparedScenario { return &tenants{b: b} }),
	"replicas_binary": each((*bench).replicas),
}

// scenarioFor returns a scenario's steps.
func (b *bench) scenarioFor(name string) (scenarioFuncs, error) {
	mk, ok := scenarioSteps[name]
	if !ok {
		return scenarioFuncs{}, fmt.Errorf("unknown scenario %q", name)
	}
	return mk(b), nil
}

// runGroup prepares the scenarios of a group, runs them o.runs times
// interleaved (in reverse order on odd runs), and cleans up.
func (b *bench) runGroup(ctx context.Context, names []string) error {
	steps := make([]scenarioFuncs, len(names))
	for i, n := range names {
		f, err := b.scenarioFor(n)
		if err != nil {
			return err
		}
		steps[i] = f
		if f.cleanup != nil {
			defer f.cleanup()
		}
		if f.prep != nil {
			if err := f.prep(ctx); err != nil {
				return fmt.Errorf("scenario %s: %w", n, err)
			}
		}
	}
	for run := range b.o.runs {
		for k := range names {
			i := k
			if run%2 == 1 {
				i = len(names) - 1 - k
			}
			if err := steps[i].once(ctx, run); err != nil {
				return fmt.Errorf("scenario %s: %w", names[i], err)
			}
			runtime.GC()
		}
	}
	return nil
}

// startProfile starts the CPU profile if one is still to be taken; the
// returned function stops it.
func (b *bench) startProfile() (func(), error) {
	if !b.profile {
		return func() {}, nil
	}
	b.profile = false
	f, err := os.Create(b.o.cpuprofile)
	if err != nil {
		return nil, fmt.Errorf("create cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("start cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
		fmt.Fprintf(b.out, "hookbench: CPU profile of the drain written to %s\n", b.o.cpuprofile)
	}, nil
}

// machineInfo gathers the CPU model, core count and server version.
func machineInfo(ctx context.Context, pool *pgxpool.Pool) machine {
	m := machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if m.CPU == "" {
		m.CPU = "unknown CPU"
	}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.Virtual = strings.Contains(string(data), " hypervisor")
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
				m.MemoryGiB = kb / (1 << 20)
			}
		}
	}
	if err := pool.QueryRow(ctx, "SHOW server_version").Scan(&m.Postgres); err != nil {
		m.Postgres = "unknown"
	}
	m.Postgres = "PostgreSQL " + m.Postgres
	return m
}
