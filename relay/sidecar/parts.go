package sidecar

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sethvargo/go-retry"
	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/secretbox"
	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/destguard"
	"github.com/hookrelay/hookrelay/relay/endpoint"
)

// The parts a running relay and the one-shot commands build the same way.

// startupRetryCap caps the back-off between attempts to reach the database
// at start-up; Run keeps trying (and /readyz says why it is not ready)
// until it succeeds or is stopped.
const startupRetryCap = 5 * time.Second

// defaultConnectTimeout bounds one connection attempt when the database URL
// does not set connect_timeout.
const defaultConnectTimeout = 10 * time.Second

// PoolConfig parses the database URL and applies hookrelay's pool defaults:
// maxConns connections unless the URL sets pool_max_conns, and a connect
// timeout unless the URL sets connect_timeout.
func PoolConfig(cfg config.Config, maxConns int32) (*pgxpool.Config, error) {
	pc, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		// pgx redacts the password in its parse errors.
		return nil, &config.Error{Problems: []config.Problem{{
			Var: "HOOKRELAY_DATABASE_URL", Message: fmt.Sprintf("cannot be parsed: %v", err),
		}}}
	}
	if !strings.Contains(cfg.DatabaseURL, "pool_max_conns") {
		pc.MaxConns = maxConns
	}
	if !strings.Contains(cfg.DatabaseURL, "connect_timeout") {
		pc.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	return pc, nil
}

// NewStore returns the store for cfg.Schema. A running relay and the
// one-shot commands open their store here, so at-rest secret encryption
// (HOOKRELAY_SECRET_KEY, via Store.SetSecretCodec) is wired in one place.
func NewStore(pool *pgxpool.Pool, cfg config.Config) (*outbox.Store, error) {
	store, err := outbox.NewStore(pool, cfg.Schema)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if cfg.SecretKey != "" {
		box, err := secretbox.FromConfig(cfg.SecretKey, cfg.PreviousSecretKeys...)
		if err != nil {
			// Validate checked both variables; this only names which one.
			return nil, fmt.Errorf("open store: %w", err)
		}
		store.SetSecretCodec(box)
	}
	return store, nil
}

// NewSender builds the delivery sender of cfg, destination
// guard and outbound proxy included.
func NewSender(cfg config.Config) (*relay.Sender, error) {
	// No per-host connection cap: endpoints of many tenants share a host
	// (and, through HOOKRELAY_HTTP_PROXY, every request goes to one), so a
	// per-host cap would let one hung endpoint take the connections its
	// neighbours need. The scheduler caps requests per endpoint instead.
	sc := relay.SenderConfig{
		Timeout: cfg.RequestTimeout,
		Guard:   destguard.New(cfg.AllowPrivateDestinations, cfg.AllowedDestinationCIDRs),
	}
	if cfg.HTTPProxy != "" {
		u, err := url.Parse(cfg.HTTPProxy)
		if err != nil {
			return nil, &config.Error{Problems: []config.Problem{{Var: "HOOKRELAY_HTTP_PROXY", Message: "not a URL"}}}
		}
		sc.Proxy = u
	}
	return relay.NewSender(sc), nil
}

// CheckSecrets opens every stored endpoint secret once at start-up and
// refuses to start when the configuration cannot sign at all: sealed
// secrets without HOOKRELAY_SECRET_KEY, or a key that opens none of them.
// A few secrets that do not open (one tampered value, one sealed with a
// retired key) do not stop the relay: they are logged, and only their
// endpoints' deliveries wait (see relay.SecretRetryAfter).
func CheckSecrets(ctx context.Context, store *outbox.Store, log *zap.Logger) error {
	c, err := store.CheckSecrets(ctx)
	if err != nil {
		return err
	}
	switch {
	case c.Sealed > 0 && !store.HasCodec():
		return &config.Error{Problems: []config.Problem{{
			Var: "HOOKRELAY_SECRET_KEY",
			Message: fmt.Sprintf("is not set, but %d stored endpoint secrets are sealed (encrypted at rest); "+
				"set it to the key they were sealed with", c.Sealed),
		}}}
	case c.Sealed > 0 && c.Opened == 0:
		return &config.Error{Problems: []config.Problem{{
			Var: "HOOKRELAY_SECRET_KEY",
			Message: fmt.Sprintf("opens none of the %d sealed endpoint secrets (%v); set the key they were sealed with, "+
				"or list it in HOOKRELAY_PREVIOUS_SECRET_KEYS", c.Sealed, firstCause(c)),
		}}}
	}
	for _, f := range c.Failed {
		log.Error("endpoint signing secret does not open; deliveries to this endpoint wait until it is fixed "+
			"(rotate its secret, or supply the key)", zap.String("endpoint_id", f.EndpointID), zap.Error(f.Err))
	}
	if more := c.FailedCount - len(c.Failed); more > 0 {
		log.Error("more endpoint signing secrets do not open", zap.Int("count", more))
	}
	switch {
	case c.Plain > 0 && !store.HasCodec():
		log.Warn("HOOKRELAY_SECRET_KEY is not set: endpoint signing secrets are stored in plain text in the database",
			zap.Int("plain_secrets", c.Plain))
	case c.Plain > 0:
		log.Warn("some endpoint signing secrets are still stored in plain text; run `hookrelay rotate-secret-key` to seal them",
			zap.Int("plain_secrets", c.Plain))
	case !store.HasCodec():
		log.Info("HOOKRELAY_SECRET_KEY is not set: new endpoint signing secrets will be stored in plain text")
	}
	return nil
}

// firstCause describes why the sealed secrets did not open, by the first
// failure (they share a cause when none opens).
func firstCause(c outbox.SecretCensus) string {
	if len(c.Failed) == 0 {
		return "no detail"
	}
	err := c.Failed[0].Err
	var msg string
	if errors.Is(err, outbox.ErrSecretSealed) {
		msg = "no key"
	} else {
		msg = err.Error()
	}
	return strings.TrimPrefix(msg, "secretbox: ")
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

// Endpoints returns the endpoint service of cfg, with operational events
// written through log when cfg turns them on.
func Endpoints(cfg config.Config, store *outbox.Store, sender *relay.Sender, log *zap.Logger) (*endpoint.Service, error) {
	return endpointService(cfg, store, sender, newOps(cfg, store, log))
}

func endpointService(cfg config.Config, store *outbox.Store, sender *relay.Sender, ops *relay.OpsEvents) (*endpoint.Service, error) {
	return endpoint.New(endpoint.Config{
		Store: store, Sender: sender, Ops: ops,
		MaxPerTenant: cfg.MaxEndpointsPerTenant, RotationGrace: cfg.RotationGrace,
		RequireHTTPS: cfg.RequireHTTPS, DisableAfter: cfg.DisableAfter, DisableAfterFailures: cfg.DisableAfterFailures,
	})
}

// newOps returns the operational-event writer, or nil when cfg turns the
// events off (a nil *relay.OpsEvents writes nothing).
func newOps(cfg config.Config, store *outbox.Store, log *zap.Logger) *relay.OpsEvents {
	if !cfg.OperationalEvents {
		return nil
	}
	return relay.NewOpsEvents(store, cfg.OperationalTenant, log.Named("ops"))
}
