package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/relay/sidecar"
	"github.com/hookrelay/hookrelay/relay/signature"
)

// relayRequestTimeout is the sender's timeout outside the isolation
// scenario (the `hookrelay run` default).
const relayRequestTimeout = 10 * time.Second

// env is one scenario run's schema with the relay's and the app's pools.
type env struct {
	b      *bench
	schema string
	pool   *pgxpool.Pool // the relay's
	app    *pgxpool.Pool // the application's
	st     *outbox.Store
	ids    []string // the endpoints setupWith registered, in order
}

// setup creates and migrates a fresh schema.
func (b *bench) setup(ctx context.Context, name string, appConns int32) (*env, error) {
	b.seq++
	e := &env{b: b, schema: fmt.Sprintf("hb_%s_%d", name, b.seq)}
	var err error
	if e.pool, err = b.pool(ctx, int32(b.o.relay.PoolConns)); err != nil {
		return nil, err
	}
	if e.app, err = b.pool(ctx, appConns); err != nil {
		e.pool.Close()
		return nil, err
	}
	if _, err := outbox.Migrate(ctx, e.pool, e.schema); err != nil {
		e.close()
		return nil, fmt.Errorf("migrate %s: %w", e.schema, err)
	}
	if e.st, err = outbox.NewStore(e.pool, e.schema); err != nil {
		e.close()
		return nil, fmt.Errorf("store: %w", err)
	}
	return e, nil
}

// setupWith is setup with an endpoint at each path on the receiver; their
// ids are e.ids.
func (b *bench) setupWith(ctx context.Context, name string, appConns int32, paths ...string) (*env, error) {
	e, err := b.setup(ctx, name, appConns)
	if err != nil {
		return nil, err
	}
	for _, p := range paths {
		id, err := e.endpoint(ctx, p)
		if err != nil {
			e.close()
			return nil, err
		}
		e.ids = append(e.ids, id)
	}
	return e, nil
}

// pool opens a pool of n connections to the benchmark server.
func (b *bench) pool(ctx context.Context, n int32) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(b.srv.URL())
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	pc.MaxConns = n
	p, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("open pool: %w", err)
	}
	return p, nil
}

// close drops the schema and closes the pools.
func (e *env) close() {
	e.pool.Close()
	e.app.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _ = e.b.admin.Exec(ctx, "DROP SCHEMA IF EXISTS "+e.ident()+" CASCADE")
}

func (e *env) ident() string { return pgx.Identifier{e.schema}.Sanitize() }

// endpoint registers an endpoint at path on the receiver, subscribed to
// types (none: all).
func (e *env) endpoint(ctx context.Context, path string, types ...string) (string, error) {
	ep, err := e.st.CreateEndpoint(ctx, outbox.EndpointInput{URL: e.b.rc.base + path, Secret: e.b.rawSec, EventTypes: types}, 0)
	if err != nil {
		return "", fmt.Errorf("create endpoint %s: %w", path, err)
	}
	return ep.ID, nil
}

// insertKeyed inserts n events in one statement, spread round robin over
// keys ordering keys (none when keys is 0).
func (e *env) insertKeyed(ctx context.Context, n, keys int) error {
	_, err := e.app.Exec(ctx, `INSERT INTO `+e.ident()+`.outbox (event_type, payload, ordering_key)
		SELECT 'bench.event', jsonb_build_object('n', g, 'email', 'user'||g||'@example.com'),
		       CASE WHEN $2 > 0 THEN 'participant:' || (g % $2) END
		  FROM generate_series(1, $1) g`, n, keys)
	if err != nil {
		return fmt.Errorf("insert backlog: %w", err)
	}
	return nil
}

// maxDeliveryID is the highest delivery id so far.
func (e *env) maxDeliveryID(ctx context.Context) (int64, error) {
	var id int64
	if err := e.b.admin.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM `+e.ident()+`.deliveries`).Scan(&id); err != nil {
		return 0, fmt.Errorf("max delivery id: %w", err)
	}
	return id, nil
}

// waitDelivered polls until n deliveries with id > after are delivered.
// It first asks whether any work is left, which the partial indexes answer
// cheaply, and counts only then: counting a 100k-row table every few
// milliseconds would steal the database's CPU from the relay under test.
func (e *env) waitDelivered(ctx context.Context, after int64, n int, timeout time.Duration) error {
	left := `SELECT EXISTS (SELECT 1 FROM ` + e.ident() + `.outbox WHERE dispatched_at IS NULL)
    OR EXISTS (SELECT 1 FROM ` + e.ident() + `.deliveries WHERE state = 'pending' AND attempts = 0)
    OR EXISTS (SELECT 1 FROM ` + e.ident() + `.deliveries WHERE state = 'in_flight')`
	q := `SELECT count(*) FROM ` + e.ident() + `.deliveries WHERE id > $1 AND state = 'delivered'`
	return poll(ctx, timeout, 10*time.Millisecond, func() (bool, error) {
		var busy bool
		if err := e.b.admin.QueryRow(ctx, left).Scan(&busy); err != nil {
			return false, fmt.Errorf("check for work left: %w", err)
		}
		if busy {
			return false, nil
		}
		var got int
		if err := e.b.admin.QueryRow(ctx, q, after).Scan(&got); err != nil {
			return false, fmt.Errorf("count delivered: %w", err)
		}
		return got >= n, nil
	}, func() string { return fmt.Sprintf("%d deliveries recorded as delivered", n) })
}

// poll calls cond every interval until it is true, fails, or timeout.
func poll(ctx context.Context, timeout, interval time.Duration, cond func() (bool, error), what func() string) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("timed out after %s waiting for %s", timeout, what())
		case <-tick.C:
		}
	}
}

// relayHandle is a relay running in this process: the same assembly as
// `hookrelay run` (relay/sidecar), configured like it.
type relayHandle struct {
	cancel  context.CancelFunc
	done    chan error
	started time.Time
}

// startRelay runs the relay on e's schema with the default settings of
// `hookrelay run` and the benchmark's tuning, and returns once its engine
// has started; started is taken then.
func (e *env) startRelay(ctx context.Context, timeout time.Duration) (*relayHandle, error) {
	b := e.b
	cfg := config.Default()
	cfg.DatabaseURL, cfg.Schema, cfg.ListenAddr = b.srv.URL(), e.schema, "127.0.0.1:0"
	cfg.RequestTimeout = timeout
	cfg.BatchSize, cfg.MaxInFlight, cfg.EndpointMaxInFlight = b.o.relay.BatchSize, b.o.relay.MaxInFlight, b.o.relay.EndpointMaxInFlight
	cfg.AsyncCommit = b.o.relay.AsyncCommit
	cfg.AllowPrivateDestinations = true // the receiver is on loopback
	cfg.RetrySchedule = []time.Duration{5 * time.Second, time.Minute, 5 * time.Minute}
	sc, err := sidecar.New(cfg, sidecar.Options{Log: b.log})
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	h := &relayHandle{cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- sc.Run(rctx) }()
	select {
	case <-sc.Started():
	case err := <-h.done:
		cancel()
		return nil, fmt.Errorf("relay stopped while starting: %w", err)
	}
	h.started = time.Now()
	return h, nil
}

// stop cancels the relay and waits for it to drain.
func (h *relayHandle) stop() error {
	h.cancel()
	if err := <-h.done; err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("relay: %w", err)
	}
	return nil
}

// meter is a CPU snapshot of this process, PostgreSQL and the receiver.
type meter struct {
	self, pg, recv float64 // CPU seconds
}

func (b *bench) meter() meter {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	self := float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
	return meter{self: self, pg: pgCPU(b.srv.PID()), recv: procCPU(b.rc.pid())}
}

// clkTck is USER_HZ, the unit of /proc/<pid>/stat CPU times.
const clkTck = 100

// procCPU is the CPU seconds (utime+stime) of pid, 0 when it is gone.
func procCPU(pid int) float64 {
	t, _ := procTimes(pid)
	return t.self
}

// pgCPU sums the CPU seconds of the postmaster, its live children
// (backends, walwriter, checkpointer, ...) and the children it has reaped
// (autovacuum workers, closed connections), so a process that ends between
// two samples still counts.
func pgCPU(postmaster int) float64 {
	s := pgCPUByKind(postmaster)
	total := s.reaped
	for _, p := range s.procs {
		total += p.cpu
	}
	return total
}

// resetPeakRSS resets this process's VmHWM (Linux clear_refs 5).
func resetPeakRSS() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// note adds a note once.
func (b *bench) note(s string) {
	if !slices.Contains(b.notes, s) {
		b.notes = append(b.notes, s)
	}
}

// drainKeyed drains n backlog events spread over keys ordering keys to
// the endpoint at path with the in-process relay and returns events/s.
func (b *bench) drainKeyed(ctx context.Context, e *env, path string, n, keys int) (float64, error) {
	r, err := b.drainRun(ctx, e, drainSpec{kind: inProcess, paths: []string{path}, events: n, keys: keys})
	return r.rate(), err
}

// ordering is the ordering-key scenario: the same backlog to one endpoint
// without keys, over many keys, and on one hot key (which the relay sends
// one at a time, a round trip each).
func (b *bench) ordering(ctx context.Context, _ int) error {
	e, err := b.setupWith(ctx, "ordering", 4, "/hook/ordering")
	if err != nil {
		return err
	}
	defer e.close()
	var rates [3]float64
	for i, d := range []struct{ events, keys int }{{b.sz.Ordering, 0}, {b.sz.Ordering, b.sz.OrderingKeys}, {b.sz.HotKey, 1}} {
		if rates[i], err = b.drainKeyed(ctx, e, "/hook/ordering", d.events, d.keys); err != nil {
			return err
		}
	}
	plain, keyed, hot := rates[0], rates[1], rates[2]
	b.record("ordering", "unkeyed_events_per_s", "events/s", plain)
	b.record("ordering", "keyed_events_per_s", "events/s", keyed)
	b.record("ordering", "keyed_loss", "%", 100*(1-keyed/plain))
	b.record("ordering", "hot_key_events_per_s", "events/s", hot)
	b.record("ordering", "hot_key_ms_per_event", "ms", 1000/hot)
	b.note(fmt.Sprintf("ordering: %d events unkeyed, then over %d keys, then %d on one key; one endpoint, default settings",
		b.sz.Ordering, b.sz.OrderingKeys, b.sz.HotKey))
	return nil
}

// warm opens n connections of pool.
func warm(ctx context.Context, pool *pgxpool.Pool, n int) error {
	conns := make([]*pgxpool.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	for range n {
		c, err := pool.Acquire(ctx)
		if err != nil {
			return fmt.Errorf("warm pool: %w", err)
		}
		conns = append(conns, c)
	}
	return nil
}

// appCost is scenario 4: outbox INSERT (trigger) vs a plain table with the
// same columns, with the relay delivering the outbox rows meanwhile and,
// on a fresh schema, with no relay.
func (b *bench) appCost(ctx context.Context, _ int) error {
	e, err := b.appCostSchema(ctx, "appcost")
	if err != nil {
		return err
	}
	defer e.close()
	h, err := e.startRelay(ctx, relayRequestTimeout)
	if err != nil {
		return err
	}
	err = b.appCostRates(ctx, e, func(suffix string, rates [2]float64) {
		b.record("appcost", "plain_inserts_per_s"+suffix, "inserts/s", rates[0])
		b.record("appcost", "outbox_inserts_per_s"+suffix, "inserts/s", rates[1])
		b.record("appcost", "overhead"+suffix, "%", 100*(rates[0]-rates[1])/rates[0])
	})
	if serr := h.stop(); err == nil {
		err = serr
	}
	if err != nil {
		return err
	}
	// The same without the relay: what the trigger alone costs.
	bare, err := b.appCostSchema(ctx, "appcost_norelay")
	if err != nil {
		return err
	}
	defer bare.close()
	if err := b.resetStatements(ctx); err != nil {
		return err
	}
	if err := b.appCostRates(ctx, bare, func(suffix string, rates [2]float64) {
		b.record("appcost", "overhead_relay_stopped"+suffix, "%", 100*(rates[0]-rates[1])/rates[0])
	}); err != nil {
		return err
	}
	if err := b.recordInsertCosts(ctx); err != nil {
		return err
	}
	b.note("appcost: autocommit single-row INSERTs, plain table = CREATE TABLE (LIKE outbox INCLUDING ALL) (same columns, defaults, checks and indexes, no trigger), each measured in alternating slices over the phase; the relay delivers the outbox rows meanwhile; overhead_relay_stopped_* is the same on a fresh schema with no relay running (the trigger's NOTIFY alone)")
	return nil
}

// appCostSchema is a fresh schema with one endpoint, the plain table
// beside the outbox and 16 application connections open.
func (b *bench) appCostSchema(ctx context.Context, name string) (*env, error) {
	e, err := b.setupWith(ctx, name, 16, "/hook/app")
	if err != nil {
		return nil, err
	}
	if _, err := e.app.Exec(ctx, `CREATE TABLE `+e.ident()+`.plain_events (LIKE `+e.ident()+`.outbox INCLUDING ALL)`); err != nil {
		e.close()
		return nil, fmt.Errorf("create plain table: %w", err)
	}
	if err := warm(ctx, e.app, 16); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

// appCostRates measures the plain and the outbox INSERT rates on e from
// 1 and 16 connections and hands each pair to record with the metric
// suffix ("_1conn", "_16conn").
func (b *bench) appCostRates(ctx context.Context, e *env, record func(suffix string, rates [2]float64)) error {
	q := `INSERT INTO ` + e.ident() + `.%s (event_type, payload) VALUES ('app.event', $1)`
	for _, conc := range []int{1, 16} {
		rates, err := interleavedRates(ctx, e.app, [2]string{fmt.Sprintf(q, "plain_events"), fmt.Sprintf(q, "outbox")}, conc, b.sz.AppCostFor)
		if err != nil {
			return err
		}
		record(fmt.Sprintf("_%dconn", conc), rates)
	}
	return nil
}

// insertLoop runs conc connections inserting for d; it returns inserts/s.
func insertLoop(ctx context.Context, pool *pgxpool.Pool, q string, conc int, d time.Duration) (float64, error) {
	lctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var n atomic.Int64
	errs := make(chan error, conc)
	start := time.Now()
	for i := range conc {
		go func() {
			payload := fmt.Sprintf(`{"worker": %d, "email": "user@example.com", "amount": 1234}`, i)
			for lctx.Err() == nil {
				if _, err := pool.Exec(lctx, q, payload); err != nil {
					if lctx.Err() != nil {
						break
					}
					errs <- fmt.Errorf("insert: %w", err)
					return
				}
				n.Add(1)
			}
			errs <- nil
		}()
	}
	var first error
	for range conc {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	if first != nil {
		return 0, first
	}
	return float64(n.Load()) / time.Since(start).Seconds(), nil
}

// isolation is scenario 5: a healthy endpoint's rate alone and next to
// one that never answers within the request timeout.
func (b *bench) isolation(ctx context.Context, _ int) error {
	rate := func(slow bool) (float64, error) {
		e, err := b.setup(ctx, "isolation", 4)
		if err != nil {
			return 0, err
		}
		defer e.close()
		if slow {
			if _, err := e.endpoint(ctx, "/slow/hang", "iso.hung"); err != nil {
				return 0, err
			}
		}
		if _, err := e.endpoint(ctx, "/hook/iso", "iso.healthy"); err != nil {
			return 0, err
		}
		if err := b.rc.reset(ctx); err != nil {
			return 0, err
		}
		// The same backlog both times: the healthy endpoint's events with
		// one for the hung endpoint after every ten (unsubscribed when it
		// is absent), enough to keep all its request slots hung.
		total := b.sz.Isolation + b.sz.Isolation/10
		if _, err := e.app.Exec(ctx, `INSERT INTO `+e.ident()+`.outbox (event_type, payload)
			SELECT CASE WHEN g % 11 = 0 THEN 'iso.hung' ELSE 'iso.healthy' END,
			       jsonb_build_object('n', g, 'email', 'user'||g||'@example.com')
			  FROM generate_series(1, $1) g`, total); err != nil {
			return 0, fmt.Errorf("insert backlog: %w", err)
		}
		h, err := e.startRelay(ctx, b.sz.IsoTimeout)
		if err != nil {
			return 0, err
		}
		timeout := 10 * time.Minute
		if slow {
			timeout = isolationCap
		}
		got, err := b.waitPartial(ctx, "/hook/iso", int64(b.sz.Isolation), timeout)
		elapsed := time.Since(h.started)
		if serr := h.stop(); err == nil {
			err = serr
		}
		if got < int64(b.sz.Isolation) {
			b.note(fmt.Sprintf("isolation: next to the hung endpoint the healthy one got %d of %d events in %s; its rate is what it got", got, b.sz.Isolation, isolationCap))
		}
		return float64(got) / elapsed.Seconds(), err
	}
	alone, err := rate(false)
	if err != nil {
		return err
	}
	with, err := rate(true)
	if err != nil {
		return err
	}
	b.record("isolation", "healthy_alone_events_per_s", "events/s", alone)
	b.record("isolation", "healthy_with_hung_events_per_s", "events/s", with)
	b.record("isolation", "healthy_loss", "%", 100*(alone-with)/alone)
	b.note(fmt.Sprintf("isolation: request timeout %s; a backlog of %d events for the healthy endpoint with one for the hung endpoint after every ten, the same backlog alone (no hung endpoint); the hung endpoint's receiver holds each request until the relay gives up", b.sz.IsoTimeout, b.sz.Isolation))
	return nil
}

// baseline is scenario 8: the hand-written relay, N workers each looping
// BEGIN; SELECT … FOR UPDATE SKIP LOCKED LIMIT 1; POST; UPDATE; COMMIT.
func (b *bench) baseline(ctx context.Context, _ int) error {
	for _, workers := range []int{16, 64} {
		e, err := b.setup(ctx, "baseline", int32(workers))
		if err != nil {
			return err
		}
		rate, m0, m1, err := b.baselineOnce(ctx, e, workers)
		e.close()
		if err != nil {
			return err
		}
		suffix := fmt.Sprintf("_%d_workers", workers)
		b.record("baseline", "events_per_s"+suffix, "events/s", rate)
		k := 10000 / float64(b.sz.Baseline)
		b.record("baseline", "cpu_s_per_10k"+suffix, "s", (m1.self-m0.self)*k)
		b.record("baseline", "pg_cpu_s_per_10k"+suffix, "s", (m1.pg-m0.pg)*k)
	}
	b.note("baseline: outbox_baseline(id bigserial, event_type, payload jsonb, state, created_at) with a partial index on id WHERE state = 'pending'; each worker holds one connection and one row lock across its POST (same signing, same receiver)")
	return nil
}

func (b *bench) baselineOnce(ctx context.Context, e *env, workers int) (float64, meter, meter, error) {
	s := e.ident()
	for _, q := range []string{
		`CREATE TABLE ` + s + `.outbox_baseline (id bigserial PRIMARY KEY, event_type text NOT NULL, payload jsonb NOT NULL,
			state text NOT NULL DEFAULT 'pending', created_at timestamptz NOT NULL DEFAULT now())`,
		`CREATE INDEX ON ` + s + `.outbox_baseline (id) WHERE state = 'pending'`,
		`INSERT INTO ` + s + `.outbox_baseline (event_type, payload)
			SELECT 'bench.event', jsonb_build_object('n', g, 'email', 'user'||g||'@example.com') FROM generate_series(1, ` + strconv.Itoa(b.sz.Baseline) + `) g`,
		`VACUUM ANALYZE ` + s + `.outbox_baseline`,
	} {
		if _, err := e.app.Exec(ctx, q); err != nil {
			return 0, meter{}, meter{}, fmt.Errorf("prepare baseline: %w", err)
		}
	}
	if err := warm(ctx, e.app, workers); err != nil {
		return 0, meter{}, meter{}, err
	}
	if err := b.rc.reset(ctx); err != nil {
		return 0, meter{}, meter{}, err
	}
	client := &http.Client{Timeout: relayRequestTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: workers, MaxIdleConns: workers}}
	defer client.CloseIdleConnections()
	url := b.rc.base + "/hook/base"
	sel := `SELECT id, event_type, payload::text, created_at FROM ` + s + `.outbox_baseline WHERE state = 'pending' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED`
	upd := `UPDATE ` + s + `.outbox_baseline SET state = 'done' WHERE id = $1`
	one := func() (bool, error) {
		tx, err := e.app.Begin(ctx)
		if err != nil {
			return false, err
		}
		defer func() { _ = tx.Rollback(ctx) }()
		var id int64
		var typ, payload string
		var created time.Time
		if err := tx.QueryRow(ctx, sel).Scan(&id, &typ, &payload, &created); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return false, nil
			}
			return false, err
		}
		body := signature.Body(typ, created, []byte(payload))
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return false, err
		}
		req.Header.Set("Content-Type", "application/json")
		signature.Headers(req.Header, "msg_"+strconv.FormatInt(id, 10), created, body, b.secret)
		resp, err := client.Do(req)
		if err != nil {
			return false, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return false, fmt.Errorf("receiver answered %d", resp.StatusCode)
		}
		if _, err := tx.Exec(ctx, upd, id); err != nil {
			return false, err
		}
		return true, tx.Commit(ctx)
	}
	m0 := b.meter()
	start := time.Now()
	errs := make(chan error, workers)
	for range workers {
		go func() {
			for {
				more, err := one()
				if err != nil || !more {
					errs <- err
					return
				}
			}
		}()
	}
	var first error
	for range workers {
		if err := <-errs; err != nil && first == nil {
			first = fmt.Errorf("baseline worker: %w", err)
		}
	}
	elapsed := time.Since(start)
	m1 := b.meter()
	if first != nil {
		return 0, m0, m1, first
	}
	st, err := b.rc.stats(ctx, false)
	if err != nil {
		return 0, m0, m1, err
	}
	if got := st.OK["/hook/base"]; got != int64(b.sz.Baseline) {
		return 0, m0, m1, fmt.Errorf("baseline: receiver verified %d of %d", got, b.sz.Baseline)
	}
	return float64(b.sz.Baseline) / elapsed.Seconds(), m0, m1, nil
}

// bare measures a bare signed-POST client (64 goroutines, no database)
// against the same receiver: the ceiling the relay is compared with.
func (b *bench) bare(ctx context.Context, _ int) error {
	const workers = 64
	if err := b.rc.reset(ctx); err != nil {
		return err
	}
	client := &http.Client{Timeout: relayRequestTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: workers, MaxIdleConns: workers}}
	defer client.CloseIdleConnections()
	url := b.rc.base + "/hook/bare"
	var next atomic.Int64
	errs := make(chan error, workers)
	m0 := b.meter()
	start := time.Now()
	for range workers {
		go func() {
			buf := make([]byte, 0, 256)
			for {
				i := next.Add(1)
				if i > int64(b.sz.Bare) {
					errs <- nil
					return
				}
				now := time.Now()
				payload := fmt.Appendf(nil, `{"n": %d, "email": "user%d@example.com"}`, i, i)
				body := signature.AppendBody(buf[:0], "bench.event", now, payload)
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
				if err != nil {
					errs <- err
					return
				}
				req.Header.Set("Content-Type", "application/json")
				signature.Headers(req.Header, "msg_"+strconv.FormatInt(i, 10), now, body, b.secret)
				resp, err := client.Do(req)
				if err != nil {
					errs <- fmt.Errorf("bare post: %w", err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode/100 != 2 {
					errs <- fmt.Errorf("bare post: receiver answered %d", resp.StatusCode)
					return
				}
			}
		}()
	}
	var first error
	for range workers {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	elapsed := time.Since(start)
	m1 := b.meter()
	if first != nil {
		return first
	}
	b.record("bare", "posts_per_s", "posts/s", float64(b.sz.Bare)/elapsed.Seconds())
	b.record("bare", "client_cpu_s_per_10k", "s", (m1.self-m0.self)*10000/float64(b.sz.Bare))
	b.record("bare", "receiver_cpu_s_per_10k", "s", (m1.recv-m0.recv)*10000/float64(b.sz.Bare))
	b.note("bare: 64 goroutines POSTing signed messages to the same receiver, no database — the HTTP ceiling on this machine")
	return nil
}

// debugFreeOSMemory returns freed memory to the OS so the peak RSS of the
// drain starts from the live heap.
func debugFreeOSMemory() { debug.FreeOSMemory() }
