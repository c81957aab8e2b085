package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/sethvargo/go-retry"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sync/errgroup"

	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/endpoint"
	"github.com/hookrelay/hookrelay/relay/httpapi"
)

const (
	// serveMaxConns is the pool size of `run`: the engine needs about three
	// connections (dispatch, claim, complete), the API the rest. The
	// listener uses its own connection.
	serveMaxConns = 16
	// startupRetryCap caps the back-off between attempts to reach the
	// database at start-up; `run` keeps trying (and /readyz says why it is
	// not ready) until it succeeds or is stopped.
	startupRetryCap = 5 * time.Second
	// httpShutdownTimeout bounds the HTTP server's graceful shutdown, after
	// the engine has drained.
	httpShutdownTimeout = 5 * time.Second
)

const runUsage = `
Usage: hookrelay [run]

Runs the relay: it serves health, metrics and the admin API on
HOOKRELAY_LISTEN_ADDR (metrics on HOOKRELAY_METRICS_ADDR when set) from the
start, waits for the database, applies migrations (unless
HOOKRELAY_MIGRATE_ON_START is false), tails the outbox and delivers webhooks.
SIGINT or SIGTERM drains in-flight deliveries (for up to
HOOKRELAY_SHUTDOWN_TIMEOUT) and exits 0.
`

// runServe runs `hookrelay run`.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCommand("run", runUsage, stdout, stderr)
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("run takes no arguments, got %q", pos[0])
	}
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	log, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	log.Info("starting hookrelay", zap.String("version", relay.Version), zap.Object("config", cfg))
	if err := serve(ctx, cfg, log); err != nil {
		log.Error("hookrelay stopped with an error", zap.Error(err))
		return err
	}
	log.Info("hookrelay stopped")
	return nil
}

// newLogger builds the process logger: JSON (or console) on w at
// cfg.LogLevel.
func newLogger(cfg config.Config, w io.Writer) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(cfg.LogLevel)
	if err != nil {
		return nil, &config.Error{Problems: []config.Problem{{Var: "HOOKRELAY_LOG_LEVEL", Message: err.Error()}}}
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	encCfg.TimeKey = "time"
	var enc zapcore.Encoder
	if cfg.LogFormat == "console" {
		encCfg.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	} else {
		enc = zapcore.NewJSONEncoder(encCfg)
	}
	core := zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), level)
	return zap.New(core, zap.ErrorOutput(zapcore.Lock(zapcore.AddSync(w)))), nil
}

// serve wires the components and runs them until ctx ends or one fails.
//
// The listeners come first, with the start-up handler: /healthz answers
// from the first moment and /readyz says why the process is not ready
// (the database unreachable, the schema being prepared) while serve keeps
// trying to reach the database. Once the engine is built the full handler
// takes over.
func serve(ctx context.Context, cfg config.Config, log *zap.Logger) error {
	pc, err := poolConfig(cfg, serveMaxConns)
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	metrics := relay.NewMetrics(reg)

	apiOpts := httpapi.Options{
		AdminToken:      cfg.AdminToken,
		MetricsToken:    cfg.MetricsToken,
		MetricsSeparate: cfg.MetricsAddr != "",
		Gatherer:        reg,
		Registerer:      reg,
		ProxyUpstream:   cfg.ProxyUpstream,
		PortalPrefix:    cfg.PortalPrefix,
		MaxPayloadBytes: cfg.MaxPayloadBytes,
		Log:             log.Named("http"),
	}
	var phase startPhase
	phase.set("starting: connecting to the database")
	starting, err := httpapi.Starting(apiOpts, phase.get)
	if err != nil {
		return fmt.Errorf("build http handler: %w", err)
	}
	var current atomic.Pointer[httpapi.Handler]
	current.Store(starting)

	servers, err := listen(cfg, &current, log)
	if err != nil {
		return err
	}
	if cfg.ProxyUpstream != "" && cfg.MetricsAddr == "" && cfg.MetricsToken == "" {
		log.Info("/metrics answers loopback clients only while HOOKRELAY_PROXY_UPSTREAM is set; " +
			"set HOOKRELAY_METRICS_TOKEN or HOOKRELAY_METRICS_ADDR to scrape it from elsewhere")
	}

	g, gctx := errgroup.WithContext(ctx)
	for _, s := range servers {
		g.Go(s.serve)
	}
	var stopOnce sync.Once
	stopHTTP := func() {
		stopOnce.Do(func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), httpShutdownTimeout)
			defer cancel()
			for _, s := range servers {
				if err := s.srv.Shutdown(sctx); err != nil {
					log.Warn("http server shutdown", zap.String("addr", s.addr), zap.Error(err))
				}
			}
		})
	}
	// abort ends a start-up that cannot go on: err, or the error of the
	// server that failed, or nil when ctx ended.
	abort := func(err error) error {
		stopHTTP()
		if werr := g.Wait(); err == nil {
			err = werr
		}
		return err
	}

	pool, err := pgxpool.NewWithConfig(gctx, pc)
	if err != nil {
		return abort(fmt.Errorf("open database pool: %w", err))
	}
	defer pool.Close()

	if err := prepareSchema(gctx, pool, cfg, log, &phase); err != nil {
		if gctx.Err() != nil {
			if ctx.Err() != nil {
				log.Info("interrupted during start-up")
			}
			return abort(nil)
		}
		return abort(err)
	}
	phase.set("starting: schema ready, starting the engine")
	store, err := newStore(pool, cfg)
	if err != nil {
		return abort(err)
	}
	if err := checkSecrets(ctx, store, log); err != nil {
		return abort(err)
	}
	// The engine's bookkeeping may commit asynchronously
	// (HOOKRELAY_ASYNC_COMMIT); the admin API's writes stay durable.
	engineStore := store
	if cfg.AsyncCommit {
		engineStore = store.AsyncCommit()
	}

	sender, err := newSender(cfg)
	if err != nil {
		return abort(err)
	}
	defer sender.Close()

	listener := outbox.NewListener(pc.ConnConfig.Copy(), cfg.Schema, log.Named("listener"))
	engine := relay.New(relay.Config{
		BatchSize:           cfg.BatchSize,
		MaxInFlight:         cfg.MaxInFlight,
		EndpointMaxInFlight: cfg.EndpointMaxInFlight,
		PollInterval:        cfg.PollInterval,
		Lease:               cfg.Lease(),
		ShutdownTimeout:     cfg.ShutdownTimeout,
		Policy:              relay.Policy{Schedule: cfg.RetrySchedule},
	}, engineStore, sender, listener.Wake(), log.Named("engine"), metrics)
	engine.Listening = listener.Connected

	maint := &relay.Maintenance{
		Store:                store,
		Log:                  log.Named("maintenance"),
		DisableAfter:         cfg.DisableAfter,
		DisableAfterFailures: cfg.DisableAfterFailures,
		Retention:            cfg.Retention,
	}
	var ops *relay.OpsEvents
	if cfg.OperationalEvents {
		ops = relay.NewOpsEvents(store, cfg.OperationalTenant, log.Named("ops"))
		engine.OnDisabled, engine.OnDead, maint.OnDisabled = ops.OnDisabled, ops.OnDead, ops.OnDisabled
	}

	endpoints, err := endpoint.New(endpoint.Config{
		Store: store, Sender: sender, Ops: ops,
		MaxPerTenant: cfg.MaxEndpointsPerTenant, RotationGrace: cfg.RotationGrace,
	})
	if err != nil {
		return abort(err)
	}
	apiOpts.Store, apiOpts.Endpoints = store, endpoints
	apiOpts.Ready = func(context.Context) error {
		if !engine.Running() {
			return errors.New("engine not running")
		}
		return engine.Health() // the fan-out or the claim failing for over relay.UnhealthyAfter
	}
	handler, err := httpapi.New(apiOpts)
	if err != nil {
		return abort(fmt.Errorf("build http handler: %w", err))
	}
	current.Store(handler)

	// The listener outlives the engine's drain; it stops after the engine.
	listenCtx, stopListener := context.WithCancel(context.WithoutCancel(ctx))
	defer stopListener()

	g.Go(func() error {
		return listener.Run(listenCtx)
	})
	g.Go(func() error {
		err := engine.Run(gctx)
		// Readiness is already false (the engine is not running); keep
		// serving until the drain is over, then close the listeners.
		stopHTTP()
		stopListener()
		if err != nil {
			return fmt.Errorf("engine: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		return maint.Run(gctx)
	})
	return g.Wait()
}

// startPhase is what /readyz says while serve starts.
type startPhase struct{ reason atomic.Pointer[string] }

func (p *startPhase) set(reason string) { p.reason.Store(&reason) }
func (p *startPhase) get() string       { return *p.reason.Load() }

// failed records why an attempt to prepare the schema failed.
func (p *startPhase) failed(err error) {
	var connErr *pgconn.ConnectError
	var netErr net.Error
	if errors.As(err, &connErr) || errors.As(err, &netErr) {
		p.set("database unreachable: " + err.Error())
		return
	}
	p.set("starting: " + err.Error())
}

// httpServer is one listener of `run` and its server.
type httpServer struct {
	srv  *http.Server
	ln   net.Listener
	addr string
}

func (s httpServer) serve() error {
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve http on %s: %w", s.addr, err)
	}
	return nil
}

// listen opens HOOKRELAY_LISTEN_ADDR and, when set, HOOKRELAY_METRICS_ADDR;
// their servers serve whatever handler current holds.
func listen(cfg config.Config, current *atomic.Pointer[httpapi.Handler], log *zap.Logger) ([]httpServer, error) {
	type spec struct {
		envVar, addr string
		h            http.Handler
	}
	specs := []spec{{"HOOKRELAY_LISTEN_ADDR", cfg.ListenAddr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		current.Load().ServeHTTP(w, r)
	})}}
	if cfg.MetricsAddr != "" {
		specs = append(specs, spec{"HOOKRELAY_METRICS_ADDR", cfg.MetricsAddr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			current.Load().Metrics().ServeHTTP(w, r)
		})})
	}
	var servers []httpServer
	for _, sp := range specs {
		ln, err := net.Listen("tcp", sp.addr)
		if err != nil {
			for _, s := range servers {
				_ = s.ln.Close()
			}
			return nil, fmt.Errorf("listen on %s (%s): %w", sp.addr, sp.envVar, err)
		}
		addr := ln.Addr().String()
		if sp.envVar == "HOOKRELAY_METRICS_ADDR" {
			log.Info("serving metrics on "+addr, zap.String("metrics_addr", addr))
		} else {
			log.Info("listening on "+addr, zap.String("addr", addr))
		}
		servers = append(servers, httpServer{srv: httpapi.NewServer(sp.h, log.Named("http")), ln: ln, addr: addr})
	}
	return servers, nil
}

// prepareSchema migrates (HOOKRELAY_MIGRATE_ON_START) or checks the schema,
// retrying with a capped back-off while the database is unreachable, until
// it succeeds or ctx ends; phase shows each failure on /readyz. Schema
// version problems are not retried.
func prepareSchema(ctx context.Context, pool *pgxpool.Pool, cfg config.Config, log *zap.Logger, phase *startPhase) error {
	b := retry.NewExponential(500 * time.Millisecond)
	b = retry.WithCappedDuration(startupRetryCap, b)
	b = retry.WithJitterPercent(10, b)
	attempt := 0
	return retry.Do(ctx, b, func(ctx context.Context) error {
		attempt++
		err := migrateOrCheck(ctx, pool, cfg, log)
		if err == nil || outbox.IsSchemaError(err) || ctx.Err() != nil {
			return err
		}
		phase.failed(err)
		log.Warn("database not ready, retrying", zap.Int("attempt", attempt), zap.Error(err))
		return retry.RetryableError(err)
	})
}

func migrateOrCheck(ctx context.Context, pool *pgxpool.Pool, cfg config.Config, log *zap.Logger) error {
	if !cfg.MigrateOnStart {
		if err := outbox.CheckSchema(ctx, pool, cfg.Schema); err != nil {
			return err // it names the schema, or the database's address
		}
		log.Info("schema is up to date", zap.String("schema", cfg.Schema))
		return nil
	}
	res, err := outbox.Migrate(ctx, pool, cfg.Schema)
	if err != nil {
		return err // it names the schema, or the database's address
	}
	if len(res.Applied) > 0 {
		log.Info("schema migrated", zap.String("schema", cfg.Schema), zap.Int("from", res.From), zap.Int("to", res.To))
	} else {
		log.Info("schema is up to date", zap.String("schema", cfg.Schema), zap.Int("version", res.To))
	}
	return nil
}
