package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// latencyConns is how many application connections offer a steady load.
const latencyConns = 16

// offer is a steady load: events offered at a rate into the outbox from
// the application's pool, perTx events per autocommit INSERT (one
// transaction), each payload carrying its seq and the time just before the
// INSERT was sent ("t", unix ns), so the receiver can pair its receipts
// with the commits.
type offer struct {
	total int
	// perTx is how many events one INSERT (one transaction) carries.
	perTx int
	// committed is, per seq, when the INSERT's commit returned to the
	// application (unix ns; 0 until then).
	committed []atomic.Int64
	// inserting is, per seq, the INSERT's round trip (ns); read it after
	// run has returned.
	inserting []int64
	// rate is the rate actually offered (events/s), set by run.
	rate float64
}

func newOffer(total, perTx int) *offer {
	return &offer{total: total, perTx: max(perTx, 1), committed: make([]atomic.Int64, total), inserting: make([]int64, total)}
}

// eventsPerTx is how many events each transaction carries when rate
// events/s are offered: one, up to maxCommitRate; above it, enough that
// the application commits maxCommitRate times a second. An application
// writing thousands of events a second does not commit each alone on a
// 2-core box: one durable commit per event would be the application's own
// bottleneck (appcost measures that), not the relay's.
func eventsPerTx(rate float64) int {
	return max(int(math.Ceil(rate/maxCommitRate)), 1)
}

// maxCommitRate is the most transactions a second a steady load commits.
const maxCommitRate = 1000

// run offers o.total events at rate per second into e's outbox and
// returns once every INSERT has returned.
func (o *offer) run(ctx context.Context, e *env, rate float64) error {
	// One event keeps the VALUES form the single-event scenarios have
	// always measured; several go in one statement.
	one := `INSERT INTO ` + e.ident() + `.outbox (event_type, payload) VALUES ('lat.event', $1)`
	many := `INSERT INTO ` + e.ident() + `.outbox (event_type, payload) SELECT 'lat.event', p::jsonb FROM unnest($1::text[]) AS p`
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	for sent := 0; sent < o.total; {
		select {
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		case now := <-tick.C:
			due := min(o.total, int(now.Sub(start).Seconds()*rate)+1)
			for sent < due {
				first, n := sent, min(o.perTx, due-sent)
				sent += n
				wg.Add(1)
				go func() {
					defer wg.Done()
					// One INSERT is one transaction: t is taken just before
					// it is sent, the commit time when it returns.
					t0 := time.Now()
					payloads := make([]string, n)
					for i := range payloads {
						payloads[i] = `{"seq": ` + strconv.Itoa(first+i) + `, "t": ` + strconv.FormatInt(t0.UnixNano(), 10) + `}`
					}
					var err error
					if n == 1 {
						_, err = e.app.Exec(ctx, one, payloads[0])
					} else {
						_, err = e.app.Exec(ctx, many, payloads)
					}
					if err != nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err)
					}
					t1 := time.Now()
					for seq := first; seq < first+n; seq++ {
						o.committed[seq].Store(t1.UnixNano())
						o.inserting[seq] = int64(t1.Sub(t0))
					}
				}()
			}
		}
	}
	wg.Wait()
	o.rate = float64(o.total) / time.Since(start).Seconds()
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d inserts failed: %v", n, firstErr.Load())
	}
	return nil
}

// fromCommit pairs receipts (seq, received at unix ns) with the commits:
// it returns each receipt's commit → receipt time in µs (a receipt can come
// before the application has heard back from its COMMIT; that counts as
// 0) and, apart, the receipts whose commit has not returned yet.
func (o *offer) fromCommit(seq, received []int64) (us, waitSeq, waitRcv []int64) {
	us = make([]int64, 0, len(seq))
	for i, s := range seq {
		if s < 0 || s >= int64(o.total) {
			continue
		}
		c := o.committed[s].Load()
		if c == 0 {
			waitSeq, waitRcv = append(waitSeq, s), append(waitRcv, received[i])
			continue
		}
		us = append(us, max(received[i]-c, 0)/1000)
	}
	return us, waitSeq, waitRcv
}

// quantileMS is the p quantile (0–1) of sorted µs values, in ms (0 when
// there are none).
func quantileMS(sorted []int64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return float64(sorted[int(float64(len(sorted)-1)*p)]) / 1000
}

// latencyKind is scenario 3: 1,000 events/s (quick: fewer), commit →
// receipt percentiles.
func (b *bench) latencyKind(ctx context.Context, kind relayKind, _ int) error {
	return b.latencyRun(ctx, "latency"+kind.suffix(), kind, float64(b.sz.LatencyRate), b.sz.LatencyFor)
}

// latencyRun offers a steady rate for d, one INSERT per committed
// transaction, and records commit → receipt percentiles under name.
func (b *bench) latencyRun(ctx context.Context, name string, kind relayKind, rate float64, d time.Duration) error {
	rig, err := b.startSteady(ctx, name, kind, nil)
	if err != nil {
		return err
	}
	defer rig.close()
	o := newOffer(max(int(rate*d.Seconds()), 1), eventsPerTx(rate))
	c0, m0 := rig.rel.cpu(), b.meter()
	if err := o.run(ctx, rig.e, rate); err != nil {
		return err
	}
	if err := b.rc.waitCount(ctx, rig.path, int64(o.total), time.Minute); err != nil {
		return err
	}
	c1, m1 := rig.rel.cpu(), b.meter()
	if kind == binaryProcess {
		// In-process, this process's CPU is the application's too.
		b.record(name, "relay_cpu_s_per_10k", "s", (c1-c0)*1e4/float64(o.total))
	}
	b.record(name, "pg_cpu_s_per_10k", "s", (m1.pg-m0.pg)*1e4/float64(o.total))
	st, err := b.rc.stats(ctx, true)
	if err != nil {
		return err
	}
	if len(st.LatencyUS) == 0 || len(st.Seq) != len(st.ReceivedNS) {
		return errors.New("no latency samples")
	}
	fromCommit, _, _ := o.fromCommit(st.Seq, st.ReceivedNS)
	inserting := make([]int64, len(o.inserting))
	for i, ns := range o.inserting {
		inserting[i] = ns / 1000
	}
	for _, s := range []struct {
		prefix string
		lat    []int64
	}{{"", fromCommit}, {"from_insert_", st.LatencyUS}, {"insert_", inserting}} {
		slices.Sort(s.lat)
		for _, q := range []struct {
			metric string
			p      float64
		}{{"p50", 0.50}, {"p95", 0.95}, {"p99", 0.99}, {"max", 1}} {
			b.record(name, s.prefix+q.metric, "ms", quantileMS(s.lat, q.p))
		}
	}
	b.record(name, "offered_rate", "events/s", o.rate)
	b.record(name, "events_per_tx", "events", float64(o.perTx))
	committed := make([]int64, o.total)
	for i := range committed {
		committed[i] = o.committed[i].Load()
	}
	if err := b.latencyPhases(ctx, rig.e, name, committed, st); err != nil {
		return err
	}
	if err := rig.probe.finish(ctx, o.total, rig.stop); err != nil {
		return err
	}
	b.note(fmt.Sprintf("latency, latency_binary, halfrate_binary, soak_binary: autocommit INSERTs from %d app connections, one event each up to %d events/s, above that as many events each as keep the commits at %[2]d a second (events_per_tx); p50–max run from the moment the INSERT's durable commit returned to the application to the receiver's verified receipt; from_insert_* from just before the INSERT was sent; insert_* is the INSERT's own round trip; in all but the soak, relay_cpu_s_per_10k (the binary's) and pg_cpu_s_per_10k (the application's INSERTs included) are CPU seconds from the first offer to the last receipt per 10k events", latencyConns, maxCommitRate))
	return nil
}

// halfRate is halfrate_binary: commit → receipt of the binary when offered
// half its maximum drain rate, which is the drain_binary median of this run
// when there is one, else a drain of its own (on the first run).
func (b *bench) halfRate(ctx context.Context, _ int) error {
	const name = "halfrate_binary"
	top := b.find("drain_binary", "events_per_s")
	var maxRate float64
	switch {
	case top != nil:
		maxRate = top.Median
		b.note(name + ": half of this run's drain_binary median is offered")
	case b.find(name, "max_drain_events_per_s") != nil:
		maxRate = b.find(name, "max_drain_events_per_s").Median
	default:
		r, err := b.drainFresh(ctx, "halfrate_drain", drainSpec{kind: binaryProcess, events: b.sz.Drain})
		if err != nil {
			return err
		}
		maxRate = r.rate()
		b.note(fmt.Sprintf("%s: drain_binary did not run, so a %d-event drain of the binary measured its maximum rate first", name, b.sz.Drain))
	}
	b.record(name, "max_drain_events_per_s", "events/s", maxRate)
	return b.latencyRun(ctx, name, binaryProcess, maxRate/2, b.sz.HalfRateFor)
}

// steadyRig is a steady load's set-up: a fresh schema with one endpoint at
// path, the application's connections open, the relay started and ready,
// the receiver reset, and (for the binary) the latency probe started.
type steadyRig struct {
	e     *env
	path  string
	rel   runningRelay
	stop  func() error // stops the relay, once
	probe *latencyProbe
}

// startSteady sets up a steady load named name; seed, if set, runs before
// the relay starts; extra are the binary's own settings (KEY=value).
func (b *bench) startSteady(ctx context.Context, name string, kind relayKind, seed func(*env) error, extra ...string) (*steadyRig, error) {
	e, err := b.setupWith(ctx, name, latencyConns, "/hook/"+name)
	if err != nil {
		return nil, err
	}
	r := &steadyRig{e: e, path: "/hook/" + name}
	if err := r.start(ctx, b, name, kind, seed, extra); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

func (r *steadyRig) start(ctx context.Context, b *bench, name string, kind relayKind, seed func(*env) error, extra []string) error {
	if seed != nil {
		if err := seed(r.e); err != nil {
			return err
		}
	}
	if err := warm(ctx, r.e.app, latencyConns); err != nil {
		return err
	}
	rel, err := b.startRelayKind(ctx, r.e, kind, 1, relayRequestTimeout, extra...)
	if err != nil {
		return err
	}
	r.rel, r.stop = rel, sync.OnceValue(rel.stop)
	if err := b.rc.reset(ctx); err != nil {
		return err
	}
	r.probe, err = b.startLatencyProbe(ctx, r.e, name, rel)
	return err
}

// close stops the relay (if it still runs) and drops the schema.
func (r *steadyRig) close() {
	if r.stop != nil {
		_ = r.stop()
	}
	r.e.close()
}
