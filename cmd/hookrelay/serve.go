package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

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
	"github.com/hookrelay/hookrelay/relay/httpapi"
)

const (
	// serveMaxConns is the pool size of `run`: the engine needs about three
	// connections (dispatch, claim, complete), the API the rest. The
	// listener uses its own connection.
	serveMaxConns = 16
	// startupRetryFor bounds how long `run` retries reaching the database
	// and preparing the schema before giving up.
	startupRetryFor = 30 * time.Second
	// httpShutdownTimeout bounds the HTTP server's graceful shutdown, after
	// the engine has drained.
	httpShutdownTimeout = 5 * time.Second
)

const runUsage = `
Usage: hookrelay [run]

Runs the relay: it applies migrations (unless HOOKRELAY_MIGRATE_ON_START is
false), tails the outbox, delivers webhooks, and serves health, metrics and
the admin API on HOOKRELAY_LISTEN_ADDR. SIGINT or SIGTERM drains in-flight
deliveries (for up to HOOKRELAY_SHUTDOWN_TIMEOUT) and exits 0.
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
func serve(ctx context.Context, cfg config.Config, log *zap.Logger) error {
	pc, err := poolConfig(cfg, serveMaxConns)
	if err != nil {
		return err
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return fmt.Errorf("open database pool: %w", err)
	}
	defer pool.Close()

	if err := prepareSchema(ctx, pool, cfg, log); err != nil {
		if ctx.Err() != nil {
			log.Info("interrupted during start-up")
			return nil
		}
		return err
	}
	store, err := newStore(pool, cfg)
	if err != nil {
		return err
	}
	if err := checkSecrets(ctx, store, log); err != nil {
		return err
	}
	// The engine's bookkeeping may commit asynchronously
	// (HOOKRELAY_ASYNC_COMMIT); the admin API's writes stay durable.
	engineStore := store
	if cfg.AsyncCommit {
		engineStore = store.AsyncCommit()
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	metrics := relay.NewMetrics(reg)

	sender, err := newSender(cfg)
	if err != nil {
		return err
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

	handler, err := httpapi.New(httpapi.Options{
		Store:  store,
		Sender: sender,
		Ready: func(context.Context) error {
			if !engine.Running() {
				return errors.New("engine not running")
			}
			return nil
		},
		AdminToken:            cfg.AdminToken,
		Gatherer:              reg,
		Registerer:            reg,
		ProxyUpstream:         cfg.ProxyUpstream,
		PortalPrefix:          cfg.PortalPrefix,
		MaxPayloadBytes:       cfg.MaxPayloadBytes,
		MaxEndpointsPerTenant: cfg.MaxEndpointsPerTenant,
		RotationGrace:         cfg.RotationGrace,
		Ops:                   ops,
		Log:                   log.Named("http"),
	})
	if err != nil {
		return fmt.Errorf("build http handler: %w", err)
	}

	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.ListenAddr, err)
	}
	addr := ln.Addr().String()
	log.Info("listening on "+addr, zap.String("addr", addr))
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}

	// The listener outlives the engine's drain; it stops after the engine.
	listenCtx, stopListener := context.WithCancel(context.WithoutCancel(ctx))
	defer stopListener()

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return listener.Run(listenCtx)
	})
	g.Go(func() error {
		err := engine.Run(gctx)
		// Readiness is already false (the engine is not running); keep
		// serving until the drain is over, then close the listener.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), httpShutdownTimeout)
		defer cancel()
		if serr := srv.Shutdown(sctx); serr != nil {
			log.Warn("http server shutdown", zap.Error(serr))
		}
		stopListener()
		if err != nil {
			return fmt.Errorf("engine: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		return maint.Run(gctx)
	})
	g.Go(func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve http on %s: %w", addr, err)
		}
		return nil
	})
	return g.Wait()
}

// prepareSchema migrates (HOOKRELAY_MIGRATE_ON_START) or checks the schema,
// retrying for up to startupRetryFor while the database is unreachable.
// Schema version problems are not retried.
func prepareSchema(ctx context.Context, pool *pgxpool.Pool, cfg config.Config, log *zap.Logger) error {
	b := retry.NewExponential(500 * time.Millisecond)
	b = retry.WithCappedDuration(5*time.Second, b)
	b = retry.WithMaxDuration(startupRetryFor, b)
	b = retry.WithJitterPercent(10, b)
	attempt := 0
	return retry.Do(ctx, b, func(ctx context.Context) error {
		attempt++
		err := migrateOrCheck(ctx, pool, cfg, log)
		if err == nil || outbox.IsSchemaError(err) || ctx.Err() != nil {
			return err
		}
		log.Warn("database not ready, retrying", zap.Int("attempt", attempt), zap.Error(err))
		return retry.RetryableError(err)
	})
}

func migrateOrCheck(ctx context.Context, pool *pgxpool.Pool, cfg config.Config, log *zap.Logger) error {
	if !cfg.MigrateOnStart {
		if err := outbox.CheckSchema(ctx, pool, cfg.Schema); err != nil {
			if outbox.IsSchemaError(err) {
				return err
			}
			return fmt.Errorf("check schema %s: %w", cfg.Schema, err)
		}
		log.Info("schema is up to date", zap.String("schema", cfg.Schema))
		return nil
	}
	res, err := outbox.Migrate(ctx, pool, cfg.Schema)
	if err != nil {
		if outbox.IsSchemaError(err) {
			return err
		}
		return fmt.Errorf("migrate schema %s: %w", cfg.Schema, err)
	}
	if len(res.Applied) > 0 {
		log.Info("schema migrated", zap.String("schema", cfg.Schema), zap.Int("from", res.From), zap.Int("to", res.To))
	} else {
		log.Info("schema is up to date", zap.String("schema", cfg.Schema), zap.Int("version", res.To))
	}
	return nil
}
