package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// drainSpec is one backlog drain: the relay is started first and ready,
// then the backlog is committed in one transaction, and the drain is timed
// from that COMMIT until every delivery reached the receiver and is
// recorded as delivered.
type drainSpec struct {
	kind     relayKind
	replicas int      // binary replicas (1 in-process)
	paths    []string // every event reaches the endpoint at each path
	events   int
	keys     int    // ordering keys to spread the events over (0: none)
	profile  bool   // take the --cpuprofile (in-process only)
	diag     string // capture diagnostics under this label ("" for none)
	// hook, if set, runs once the relay is ready, before the backlog is
	// inserted; the function it returns runs when the drain is over,
	// before the relay stops.
	hook func(runningRelay) (func(), error)
}

// drainResult is what one drain measured.
type drainResult struct {
	events     int
	deliveries int
	elapsed    time.Duration
	// CPU seconds during the drain: the relay (all replicas; in-process
	// this process, the driver's polling included), PostgreSQL (postmaster
	// and children) and the receiver.
	relayCPU, pgCPU, recvCPU float64
	// otherCPU is what the rest of the machine used meanwhile: every
	// CPU's busy time less the relay, PostgreSQL, the receiver and
	// hookbench itself (other users of a shared machine).
	otherCPU float64
	peakRSS  float64 // MiB, the largest replica's VmHWM
}

// rate is deliveries per second.
func (r drainResult) rate() float64 { return float64(r.deliveries) / r.elapsed.Seconds() }

// per10k scales CPU seconds to 10k deliveries.
func (r drainResult) per10k(s float64) float64 { return s * 10000 / float64(r.deliveries) }

// drainRun runs one drain on e.
func (b *bench) drainRun(ctx context.Context, e *env, s drainSpec) (drainResult, error) {
	var res drainResult
	if s.replicas == 0 {
		s.replicas = 1
	}
	if err := b.rc.reset(ctx); err != nil {
		return res, err
	}
	after, err := e.maxDeliveryID(ctx)
	if err != nil {
		return res, err
	}
	rel, err := b.startRelayKind(ctx, e, s.kind, s.replicas, relayRequestTimeout)
	if err != nil {
		return res, err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = rel.stop()
		}
	}()
	var dw *diagWindow
	if s.diag != "" {
		if dw, err = b.beginDiag(ctx, e, s.diag); err != nil {
			return res, err
		}
		defer dw.stopSampling()
	}
	if s.kind == inProcess {
		debugFreeOSMemory()
		if !resetPeakRSS() {
			b.note("peak RSS could not be reset (/proc/self/clear_refs); it is the process's lifetime peak")
		}
	} else {
		for _, pid := range rel.pids() {
			if !resetPeakRSSOf(pid) {
				b.note("a relay's peak RSS could not be reset (/proc/<pid>/clear_refs); it is the process's lifetime peak")
			}
		}
	}
	stopProf := func() {}
	if s.profile && s.kind == inProcess {
		if stopProf, err = b.startProfile(); err != nil {
			return res, err
		}
	}
	stopHook := func() {}
	if s.hook != nil {
		if stopHook, err = s.hook(rel); err != nil {
			stopProf()
			return res, err
		}
	}
	if err := e.insertKeyed(ctx, s.events, s.keys); err != nil {
		stopProf()
		stopHook()
		return res, err
	}
	t0 := time.Now()
	m0, c0, sys0, self0 := b.meter(), rel.cpu(), machineBusy(), selfCPU()
	if dw != nil {
		dw.committed(ctx)
	}
	res.events, res.deliveries = s.events, s.events*len(s.paths)
	for _, p := range s.paths {
		if err = b.rc.waitCount(ctx, p, int64(s.events), 10*time.Minute); err != nil {
			break
		}
	}
	if err == nil {
		err = e.waitDelivered(ctx, after, res.deliveries, 5*time.Minute)
	}
	res.elapsed = time.Since(t0)
	m1, c1, sys1, self1 := b.meter(), rel.cpu(), machineBusy(), selfCPU()
	stopProf()
	stopHook()
	if err != nil {
		return res, err
	}
	res.relayCPU, res.pgCPU, res.recvCPU = c1-c0, m1.pg-m0.pg, m1.recv-m0.recv
	res.otherCPU = sys1 - sys0 - res.relayCPU - res.pgCPU - res.recvCPU
	if s.kind != inProcess {
		res.otherCPU -= self1 - self0 // the driver
	}
	for _, pid := range rel.pids() {
		res.peakRSS = max(res.peakRSS, peakRSSOf(pid))
	}
	if dw != nil {
		dw.drained(ctx, res)
	}
	stopped = true
	if err := rel.stop(); err != nil {
		return res, err
	}
	if dw != nil {
		dw.finish(ctx)
	}
	return res, nil
}

// recordDrain records a drain's CPU per 10k deliveries (suffix appended to
// each metric) and, when rss is set, its peak RSS.
func (b *bench) recordDrain(scenario, suffix string, r drainResult, rss bool) {
	b.record(scenario, "relay_cpu_s_per_10k"+suffix, "s", r.per10k(r.relayCPU))
	b.record(scenario, "pg_cpu_s_per_10k"+suffix, "s", r.per10k(r.pgCPU))
	b.record(scenario, "receiver_cpu_s_per_10k"+suffix, "s", r.per10k(r.recvCPU))
	b.record(scenario, "other_load_cores"+suffix, "cores", max(r.otherCPU, 0)/r.elapsed.Seconds())
	if rss {
		b.record(scenario, "peak_rss"+suffix, "MiB", r.peakRSS)
	}
}

// machineBusy is the CPU seconds all CPUs have spent busy (not idle or
// waiting for I/O) since boot, from /proc/stat.
func machineBusy() float64 {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	busy := 0.0
	for i, v := range f[1:] {
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest time is already in user
			continue
		}
		n, _ := strconv.ParseFloat(v, 64)
		busy += n
	}
	return busy / clkTck
}

// diagLabel is label on a scenario's first run (diagnostics are taken
// once), else "".
func diagLabel(run int, label string) string {
	if run == 0 {
		return label
	}
	return ""
}

// drainNotes say how each kind of drain was measured.
var drainNotes = map[relayKind]string{
	inProcess:     "drain: the relay runs in the hookbench process with the driver; the driver only polls during the drain, so relay CPU and peak RSS (VmHWM, reset before the drain) are the relay's plus a little; the receiver and PostgreSQL are separate processes",
	binaryProcess: "drain_binary, latency_binary, fanout_binary, tenants_binary, replicas_binary, halfrate_binary, soak_binary: `hookrelay run` built from ./cmd/hookrelay (CGO_ENABLED=0, -trimpath, symbols kept), a separate process configured only through the environment (database URL, schema, listen address, private destinations allowed for the loopback receiver, migrations on start, log level warn; every other setting its default unless the scenario's note names one); relay CPU and peak RSS are that process's (/proc/<pid>)",
}

// drainKind is scenario 1 (and 7): a backlog to one endpoint, in-process
// or with `hookrelay run`.
func (b *bench) drainKind(ctx context.Context, kind relayKind, run int) error {
	name := "drain" + kind.suffix()
	r, err := b.drainFresh(ctx, name, drainSpec{kind: kind, events: b.sz.Drain, profile: true, diag: diagLabel(run, name)})
	if err != nil {
		return err
	}
	b.record(name, "events_per_s", "events/s", r.rate())
	b.recordDrain(name, "", r, true)
	b.note(drainNotes[kind])
	return nil
}

// drainFresh runs the drain spec on a fresh schema named name with an
// endpoint at each of spec's paths (one at /hook/<name> when it names
// none), and drops the schema.
func (b *bench) drainFresh(ctx context.Context, name string, spec drainSpec) (drainResult, error) {
	if len(spec.paths) == 0 {
		spec.paths = []string{"/hook/" + name}
	}
	e, err := b.setupWith(ctx, name, 4, spec.paths...)
	if err != nil {
		return drainResult{}, err
	}
	defer e.close()
	return b.drainRun(ctx, e, spec)
}

// fanoutKind is the fan-out scenario: events × endpoints.
func (b *bench) fanoutKind(ctx context.Context, kind relayKind, run int) error {
	name := "fanout" + kind.suffix()
	spec := drainSpec{kind: kind, events: b.sz.FanoutEvents}
	for i := range b.sz.FanoutEPs {
		spec.paths = append(spec.paths, fmt.Sprintf("/hook/fan%d", i))
	}
	if kind == binaryProcess {
		spec.diag = diagLabel(run, name)
	}
	r, err := b.drainFresh(ctx, name, spec)
	if err != nil {
		return err
	}
	b.record(name, "deliveries_per_s", "deliveries/s", r.rate())
	b.recordDrain(name, "", r, false)
	return nil
}

// tenants compares the one-endpoint drain with and without 100k enabled
// endpoints of other tenants in the table, interleaved.
type tenants struct {
	b         *bench
	one, many *env
}

func (t *tenants) prepare(ctx context.Context) error {
	b := t.b
	var err error
	if t.one, err = b.setupWith(ctx, "tenants_one", 4, "/hook/tenants1"); err != nil {
		return err
	}
	if t.many, err = b.setupWith(ctx, "tenants_many", 4, "/hook/tenantsN"); err != nil {
		return err
	}
	id := t.many.ids[0]
	start := time.Now()
	s := t.many.ident()
	// Copies of the drained endpoint, spread over other tenants, enabled
	// and subscribed to every type: the fan-out and the claim see them,
	// none receives an event.
	if _, err := t.many.app.Exec(ctx, `INSERT INTO `+s+`.endpoints (tenant, url, description, secret, secret_key_id)
		SELECT 'tenant-' || (g % $2), e.url || '-' || g, 'hookbench tenants', e.secret, e.secret_key_id
		  FROM `+s+`.endpoints e, generate_series(1, $1) g WHERE e.id = $3::uuid`,
		b.sz.TenantEndpoints, b.sz.Tenants, id); err != nil {
		return fmt.Errorf("create other tenants' endpoints: %w", err)
	}
	if _, err := t.many.app.Exec(ctx, `VACUUM ANALYZE `+s+`.endpoints`); err != nil {
		return fmt.Errorf("vacuum endpoints: %w", err)
	}
	fmt.Fprintf(b.out, "hookbench: created %d endpoints of %d other tenants in %s\n", b.sz.TenantEndpoints, b.sz.Tenants, time.Since(start).Round(100*time.Millisecond))
	b.note(fmt.Sprintf("tenants_binary: %d-event drains to one endpoint, in a schema with that endpoint alone and in one with %d more enabled endpoints of %d other tenants (subscribed to every type, receiving nothing); the two alternate which goes first from run to run", b.sz.TenantsEvents, b.sz.TenantEndpoints, b.sz.Tenants))
	return nil
}

func (t *tenants) run(ctx context.Context, run int) error {
	b := t.b
	type phase struct {
		e      *env
		path   string
		suffix string
	}
	phases := []phase{{t.one, "/hook/tenants1", "_one_endpoint"}, {t.many, "/hook/tenantsN", "_many_endpoints"}}
	if run%2 == 1 {
		phases[0], phases[1] = phases[1], phases[0]
	}
	rates := map[string]float64{}
	for _, p := range phases {
		r, err := b.drainRun(ctx, p.e, drainSpec{kind: binaryProcess, paths: []string{p.path}, events: b.sz.TenantsEvents,
			diag: diagLabel(run, "tenants_binary"+p.suffix)})
		if err != nil {
			return err
		}
		rates[p.suffix] = r.rate()
		b.record("tenants_binary", "events_per_s"+p.suffix, "events/s", r.rate())
		b.recordDrain("tenants_binary", p.suffix, r, false)
	}
	one, many := rates["_one_endpoint"], rates["_many_endpoints"]
	b.record("tenants_binary", "loss", "%", 100*(one-many)/one)
	return nil
}

func (t *tenants) cleanup() {
	if t.one != nil {
		t.one.close()
	}
	if t.many != nil {
		t.many.close()
	}
}

// replicaCount is how many binaries the replicas scenario runs against
// the one.
const replicaCount = 4

// replicas drains the same backlog with one `hookrelay run` and with
// replicaCount of them on one schema, interleaved.
func (b *bench) replicas(ctx context.Context, run int) error {
	counts := []int{1, replicaCount}
	if run%2 == 1 {
		counts[0], counts[1] = counts[1], counts[0]
	}
	pg := map[int]float64{}
	for _, n := range counts {
		suffix := fmt.Sprintf("_%dr", n)
		r, err := b.drainFresh(ctx, fmt.Sprintf("replicas%d", n), drainSpec{kind: binaryProcess, replicas: n, events: b.sz.ReplicaEvents,
			diag: diagLabel(run, "replicas_binary"+suffix)})
		if err != nil {
			return err
		}
		pg[n] = r.per10k(r.pgCPU)
		b.record("replicas_binary", "events_per_s"+suffix, "events/s", r.rate())
		b.recordDrain("replicas_binary", suffix, r, false)
	}
	b.record("replicas_binary", "pg_cpu_increase", "%", 100*(pg[replicaCount]-pg[1])/pg[1])
	b.note(fmt.Sprintf("replicas_binary: a %d-event backlog to one endpoint drained by one `hookrelay run` and by %d on the same schema (each with its default settings: %d in flight per endpoint per replica); PostgreSQL CPU per event compared", b.sz.ReplicaEvents, replicaCount, b.o.relay.EndpointMaxInFlight))
	return nil
}

// isolationCap bounds the isolation scenario's run beside the hung
// endpoint: when the hung endpoint holds the healthy one back, the rate
// is what the healthy one got by then, not a failed benchmark.
const isolationCap = 2 * time.Minute

// waitPartial waits like receiverProc.waitCount but, when the time runs
// out, returns how many deliveries path got instead of an error.
func (b *bench) waitPartial(ctx context.Context, path string, n int64, timeout time.Duration) (int64, error) {
	err := b.rc.waitCount(ctx, path, n, timeout)
	if err == nil {
		return n, nil
	}
	if ctx.Err() != nil {
		return 0, err
	}
	st, serr := b.rc.stats(ctx, false)
	if serr != nil || st.Bad > 0 || st.OK[path] >= n {
		return 0, err
	}
	return st.OK[path], nil
}
