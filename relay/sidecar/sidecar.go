// Package sidecar assembles the running hookrelay process from its
// configuration: the database pool and store, the sender, the LISTEN
// connection, the engine, maintenance, operational events, the endpoint
// service, the customer portal and the HTTP handler with its listeners. `hookrelay run`, `hookrelay
// demo` and the benchmark command all run this one assembly, so the demo and
// the benchmark are the product; the one-shot CLI commands build their store
// and sender with the same functions (NewStore, NewSender, Endpoints).
//
// Start-up order: the listeners come first, with a start-up handler, so
// /healthz answers from the first moment and /readyz says why the process is
// not ready (the database unreachable, the schema being prepared) while Run
// keeps trying to reach the database. Once the engine is built the full
// handler takes over. On shutdown readiness goes false, claiming stops,
// in-flight work drains (cfg.ShutdownTimeout), then the listeners close.
package sidecar

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/httpapi"
	"github.com/hookrelay/hookrelay/relay/portal"
)

const (
	// PoolConns is the pool size of a running relay unless the database URL
	// sets pool_max_conns: the engine needs about three connections
	// (dispatch, claim, complete), the API the rest. The LISTEN connection
	// is its own.
	PoolConns = 16
	// httpShutdownTimeout bounds the HTTP servers' graceful shutdown, after
	// the engine has drained.
	httpShutdownTimeout = 5 * time.Second
)

// Options are what the environment does not say.
type Options struct {
	// Log receives the process's logs; required.
	Log *zap.Logger
	// Registry receives the metrics; nil makes one with the Go and process
	// collectors.
	Registry *prometheus.Registry
}

// Sidecar is one assembled hookrelay process. Create it with New and run it
// with Run, once.
type Sidecar struct {
	cfg config.Config
	log *zap.Logger
	reg *prometheus.Registry

	listening chan struct{} // closed once the listeners listen
	started   chan struct{} // closed when the engine starts
	addr      atomic.Pointer[string]
	mAddr     atomic.Pointer[string]
}

// New checks cfg (every problem at once, as *config.Error) and returns the
// sidecar; nothing is opened before Run.
func New(cfg config.Config, o Options) (*Sidecar, error) {
	if o.Log == nil {
		return nil, errors.New("sidecar: Options.Log is required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	reg := o.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return &Sidecar{cfg: cfg, log: o.Log, reg: reg, listening: make(chan struct{}), started: make(chan struct{})}, nil
}

// Listening is closed once the listeners listen (see Addr).
func (s *Sidecar) Listening() <-chan struct{} { return s.listening }

// Started is closed when the engine starts claiming work.
func (s *Sidecar) Started() <-chan struct{} { return s.started }

// Addr is the address the main listener listens on ("" before Listening).
func (s *Sidecar) Addr() string {
	if a := s.addr.Load(); a != nil {
		return *a
	}
	return ""
}

// MetricsAddr is the address of the metrics listener ("" when there is
// none, or before Listening).
func (s *Sidecar) MetricsAddr() string {
	if a := s.mAddr.Load(); a != nil {
		return *a
	}
	return ""
}

// Run runs the process until ctx ends (then it drains and returns nil) or a
// part fails.
func (s *Sidecar) Run(ctx context.Context) error {
	cfg, log := s.cfg, s.log
	pc, err := PoolConfig(cfg, PoolConns)
	if err != nil {
		return err
	}
	metrics := relay.NewMetrics(s.reg)
	apiOpts := httpapi.Options{
		AdminToken:      cfg.AdminToken,
		MetricsToken:    cfg.MetricsToken,
		MetricsSeparate: cfg.MetricsAddr != "",
		Gatherer:        s.reg,
		Registerer:      s.reg,
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

	servers, err := s.listen(&current)
	if err != nil {
		return err
	}
	close(s.listening)
	if cfg.ProxyUpstream != "" && cfg.MetricsAddr == "" && cfg.MetricsToken == "" {
		log.Info("/metrics answers loopback clients only while HOOKRELAY_PROXY_UPSTREAM is set; " +
			"set HOOKRELAY_METRICS_TOKEN or HOOKRELAY_METRICS_ADDR to scrape it from elsewhere")
	}

	g, gctx := errgroup.WithContext(ctx)
	for _, srv := range servers {
		g.Go(srv.serve)
	}
	var stopOnce sync.Once
	stopHTTP := func() {
		stopOnce.Do(func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), httpShutdownTimeout)
			defer cancel()
			for _, srv := range servers {
				if err := srv.srv.Shutdown(sctx); err != nil {
					log.Warn("http server shutdown", zap.String("addr", srv.addr), zap.Error(err))
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
	store, err := NewStore(pool, cfg)
	if err != nil {
		return abort(err)
	}
	if err := CheckSecrets(ctx, store, log); err != nil {
		return abort(err)
	}
	// The engine's bookkeeping may commit asynchronously
	// (HOOKRELAY_ASYNC_COMMIT); the admin API's writes stay durable.
	engineStore := store
	if cfg.AsyncCommit {
		engineStore = store.AsyncCommit()
	}
	sender, err := NewSender(cfg)
	if err != nil {
		return abort(err)
	}
	defer sender.Close()

	ops := newOps(cfg, store, log)
	listener := outbox.NewListener(pc.ConnConfig.Copy(), cfg.Schema, log.Named("listener"))
	engine, err := relay.New(relay.Config{
		BatchSize:           cfg.BatchSize,
		MaxInFlight:         cfg.MaxInFlight,
		EndpointMaxInFlight: cfg.EndpointMaxInFlight,
		PollInterval:        cfg.PollInterval,
		Lease:               cfg.Lease(),
		ShutdownTimeout:     cfg.ShutdownTimeout,
		Policy:              relay.Policy{Schedule: cfg.RetrySchedule},
		Listening:           listener.Connected,
		OnDisabled:          ops.OnDisabled,
		OnDead:              ops.OnDead,
	}, engineStore, sender, listener.Wake(), log.Named("engine"), metrics)
	if err != nil {
		return abort(err)
	}
	maint := &relay.Maintenance{
		Store:                store,
		Log:                  log.Named("maintenance"),
		DisableAfter:         cfg.DisableAfter,
		DisableAfterFailures: cfg.DisableAfterFailures,
		Retention:            cfg.Retention,
		OnDisabled:           ops.OnDisabled,
	}
	endpoints, err := endpointService(cfg, store, sender, ops)
	if err != nil {
		return abort(err)
	}
	apiOpts.Store, apiOpts.Endpoints = store, endpoints
	if apiOpts.Portal, err = portal.New(portal.Config{
		Store: store, Endpoints: endpoints, Prefix: cfg.PortalPrefix, PublicURL: cfg.PublicURL,
		FrameAncestors: cfg.PortalFrameAncestors, Title: cfg.PortalTitle, Accent: cfg.PortalAccent, Log: log,
	}); err != nil {
		return abort(err)
	}
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
		close(s.started)
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

// startPhase is what /readyz says while Run starts.
type startPhase struct{ reason atomic.Pointer[string] }

func (p *startPhase) set(reason string) { p.reason.Store(&reason) }
func (p *startPhase) get() string       { return *p.reason.Load() }

// failed records why an attempt to prepare the schema failed.
func (p *startPhase) failed(err error) {
	var connErr *pgconn.ConnectError
	var netErr net.Error
	var oce *outbox.ConnectError
	if errors.As(err, &connErr) || errors.As(err, &netErr) || errors.As(err, &oce) {
		p.set("database unreachable: " + err.Error())
		return
	}
	p.set("starting: " + err.Error())
}

// httpServer is one listener of the process and its server.
type httpServer struct {
	srv  *http.Server
	ln   net.Listener
	addr string
}

func (h httpServer) serve() error {
	if err := h.srv.Serve(h.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve http on %s: %w", h.addr, err)
	}
	return nil
}

// listen opens HOOKRELAY_LISTEN_ADDR and, when set, HOOKRELAY_METRICS_ADDR;
// their servers serve whatever handler current holds.
func (s *Sidecar) listen(current *atomic.Pointer[httpapi.Handler]) ([]httpServer, error) {
	type spec struct {
		envVar, addr string
		h            http.Handler
		got          *atomic.Pointer[string]
	}
	specs := []spec{{"HOOKRELAY_LISTEN_ADDR", s.cfg.ListenAddr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		current.Load().ServeHTTP(w, r)
	}), &s.addr}}
	if s.cfg.MetricsAddr != "" {
		specs = append(specs, spec{"HOOKRELAY_METRICS_ADDR", s.cfg.MetricsAddr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			current.Load().Metrics().ServeHTTP(w, r)
		}), &s.mAddr})
	}
	var servers []httpServer
	for _, sp := range specs {
		ln, err := net.Listen("tcp", sp.addr)
		if err != nil {
			for _, srv := range servers {
				_ = srv.ln.Close()
			}
			return nil, fmt.Errorf("listen on %s (%s): %w", sp.addr, sp.envVar, err)
		}
		addr := ln.Addr().String()
		sp.got.Store(&addr)
		if sp.envVar == "HOOKRELAY_METRICS_ADDR" {
			s.log.Info("serving metrics on "+addr, zap.String("metrics_addr", addr))
		} else {
			s.log.Info("listening on "+addr, zap.String("addr", addr))
		}
		servers = append(servers, httpServer{srv: httpapi.NewServer(sp.h, s.log.Named("http")), ln: ln, addr: addr})
	}
	return servers, nil
}
