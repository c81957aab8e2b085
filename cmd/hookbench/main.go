// Command hookbench runs hookrelay's reproducible performance benchmark
// (issue 8): it starts a throwaway durable PostgreSQL, a signature-verifying
// receiver in a subprocess and the relay in this process, runs the
// scenarios, prints a table with each figure against its target and writes
// the results as JSON.
//
//	go run ./cmd/hookbench                 # full run, 3 runs per scenario
//	go run ./cmd/hookbench --quick         # smoke run (CI), under a minute
//	go run ./cmd/hookbench --scenarios drain,latency --runs 5
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/hookrelay/hookrelay/outbox/pgcluster"
	"github.com/hookrelay/hookrelay/relay/signature"
)

// allScenarios lists the scenarios in the order they run.
var allScenarios = []string{"bare", "baseline", "drain", "fanout", "latency", "appcost", "isolation", "history", "ordering"}

// sizes are the workload sizes of one mode.
type sizes struct {
	Drain         int           `json:"drain_events"`
	FanoutEvents  int           `json:"fanout_events"`
	FanoutEPs     int           `json:"fanout_endpoints"`
	LatencyRate   int           `json:"latency_rate"`
	LatencyFor    time.Duration `json:"latency_duration_ns"`
	AppCostFor    time.Duration `json:"appcost_phase_duration_ns"`
	Isolation     int           `json:"isolation_events"`
	IsoTimeout    time.Duration `json:"isolation_request_timeout_ns"`
	HistoryRows   int           `json:"history_rows"`
	HistoryEvents int           `json:"history_drain_events"`
	Baseline      int           `json:"baseline_events"`
	Bare          int           `json:"bare_posts"`
	Ordering      int           `json:"ordering_events"`
	OrderingKeys  int           `json:"ordering_keys"`
	HotKey        int           `json:"hot_key_events"`
}

var (
	fullSizes = sizes{
		Drain: 100_000, FanoutEvents: 10_000, FanoutEPs: 10, LatencyRate: 1000, LatencyFor: 30 * time.Second,
		AppCostFor: 5 * time.Second, Isolation: 40_000, IsoTimeout: 2 * time.Second,
		HistoryRows: 1_000_000, HistoryEvents: 50_000, Baseline: 20_000, Bare: 100_000,
		Ordering: 100_000, OrderingKeys: 10_000, HotKey: 2000,
	}
	quickSizes = sizes{
		Drain: 2000, FanoutEvents: 200, FanoutEPs: 5, LatencyRate: 200, LatencyFor: 5 * time.Second,
		AppCostFor: time.Second, Isolation: 1000, IsoTimeout: 2 * time.Second,
		HistoryRows: 50_000, HistoryEvents: 2000, Baseline: 1000, Bare: 2000,
		Ordering: 2000, OrderingKeys: 200, HotKey: 100,
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
	CPU       string `json:"cpu"`
	Cores     int    `json:"cores"`
	Postgres  string `json:"postgres"`
	GoVersion string `json:"go"`
	OS        string `json:"os"`
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
	Results   []*figure   `json:"results"`
	Notes     []string    `json:"notes"`
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == receiverFlag {
		os.Exit(receiverMain(os.Args[2:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
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
	fs.StringVar(&scen, "scenarios", strings.Join(allScenarios, ","), "comma-separated scenarios: "+strings.Join(allScenarios, ","))
	fs.StringVar(&o.jsonPath, "json", "bench-results.json", "where to write the JSON results")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the first drain run to this file")
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
	runsSet := false
	fs.Visit(func(f *flag.Flag) { runsSet = runsSet || f.Name == "runs" })
	if o.quick && !runsSet {
		o.runs = 1
	}
	if o.runs < 1 {
		fmt.Fprintln(stderr, "hookbench: --runs must be at least 1")
		return 2
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
	if err := benchmark(ctx, o, args, stdout); err != nil {
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
}

func benchmark(ctx context.Context, o options, args []string, out io.Writer) error {
	rep := report{StartedAt: time.Now().UTC(), Command: strings.TrimSpace("hookbench " + strings.Join(args, " ")), Quick: o.quick, Runs: o.runs}
	// The relay logs as `hookrelay run` does by default (JSON at info), into
	// io.Discard: encoding is counted, the terminal is not.
	relayLog := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()),
		zapcore.AddSync(io.Discard), zap.InfoLevel))
	b := &bench{o: o, sz: fullSizes, out: out, log: relayLog, profile: o.cpuprofile != ""}
	if o.quick {
		b.sz = quickSizes
	}
	rep.Sizes, rep.Relay = b.sz, o.relay
	raw, err := signature.GenerateSecret()
	if err != nil {
		return fmt.Errorf("generate secret: %w", err)
	}
	if b.secret, err = signature.ParseSecret(raw); err != nil {
		return fmt.Errorf("parse secret: %w", err)
	}
	b.rawSec = raw

	fmt.Fprintln(out, "hookbench: starting PostgreSQL (durable: fsync, synchronous_commit, full_page_writes on)")
	b.srv, err = pgcluster.Start(ctx, pgcluster.Options{Durable: true, ForceLocal: true})
	if err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	defer func() { _ = b.srv.Stop() }()
	pc, err := pgxpool.ParseConfig(b.srv.URL())
	if err != nil {
		return fmt.Errorf("parse database url: %w", err)
	}
	pc.MaxConns = 4
	if b.admin, err = pgxpool.NewWithConfig(ctx, pc); err != nil {
		return fmt.Errorf("open admin pool: %w", err)
	}
	defer b.admin.Close()
	if b.rc, err = startReceiver(ctx, raw); err != nil {
		return err
	}
	defer b.rc.stop()

	rep.Machine = machineInfo(ctx, b.admin)
	fmt.Fprintf(out, "hookbench: %s, %d cores, %s, %s; receiver pid %d at %s\n",
		rep.Machine.CPU, rep.Machine.Cores, rep.Machine.Postgres, rep.Machine.GoVersion, b.rc.pid(), b.rc.base)

	for _, s := range allScenarios {
		if !slices.Contains(o.scenarios, s) {
			continue
		}
		start := time.Now()
		fmt.Fprintf(out, "hookbench: scenario %s (%d run(s))\n", s, o.runs)
		if err := b.scenario(ctx, s); err != nil {
			return fmt.Errorf("scenario %s: %w", s, err)
		}
		fmt.Fprintf(out, "hookbench: scenario %s done in %s\n", s, time.Since(start).Round(100*time.Millisecond))
	}
	b.derive()
	for _, f := range b.figs {
		f.finish()
	}
	rep.Results, rep.Notes = b.figs, b.notes
	printTable(out, rep)
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(o.jsonPath, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	fmt.Fprintf(out, "hookbench: results written to %s\n", o.jsonPath)
	return nil
}

// scenario runs one scenario o.runs times (history prepares once).
func (b *bench) scenario(ctx context.Context, name string) error {
	var prep func(context.Context) error
	var once func(context.Context, int) error
	switch name {
	case "bare":
		once = b.bare
	case "baseline":
		once = b.baseline
	case "drain":
		once = b.drain
	case "fanout":
		once = b.fanout
	case "latency":
		once = b.latency
	case "appcost":
		once = b.appCost
	case "isolation":
		once = b.isolation
	case "ordering":
		once = b.ordering
	case "history":
		h := &history{b: b}
		prep, once = h.prepare, h.run
		defer h.cleanup()
	default:
		return errors.New("unknown scenario")
	}
	if prep != nil {
		if err := prep(ctx); err != nil {
			return err
		}
	}
	for i := range b.o.runs {
		if err := once(ctx, i); err != nil {
			return err
		}
		runtime.GC()
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
	if err := pool.QueryRow(ctx, "SHOW server_version").Scan(&m.Postgres); err != nil {
		m.Postgres = "unknown"
	}
	m.Postgres = "PostgreSQL " + m.Postgres
	return m
}
