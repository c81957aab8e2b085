package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/relay/sidecar"
)

// openPool opens a small pool for the one-shot commands.
func openPool(ctx context.Context, cfg config.Config) (*pgxpool.Pool, error) {
	pc, err := sidecar.PoolConfig(cfg, 4)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("open database pool: %w", err)
	}
	return pool, nil
}

// openStore opens a small pool, makes sure the schema is current and
// returns the store of a one-shot command; the caller closes the pool with
// store.Pool().Close().
func openStore(ctx context.Context, cfg config.Config) (*outbox.Store, error) {
	pool, err := openPool(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := ensureSchema(ctx, pool, cfg); err != nil {
		pool.Close()
		return nil, err
	}
	store, err := sidecar.NewStore(pool, cfg)
	if err != nil {
		pool.Close()
		return nil, err
	}
	return store, nil
}

// ensureSchema checks that cfg.Schema is at the version this binary needs,
// migrating it first when it is behind and HOOKRELAY_MIGRATE_ON_START allows.
// Its errors come from outbox unwrapped: they already name the schema, or
// the database's address when it cannot be reached (*outbox.ConnectError).
func ensureSchema(ctx context.Context, pool *pgxpool.Pool, cfg config.Config) error {
	err := outbox.CheckSchema(ctx, pool, cfg.Schema)
	var outdated *outbox.SchemaOutdatedError
	if errors.As(err, &outdated) && cfg.MigrateOnStart {
		// Migrate's errors name the schema (or the database address).
		_, err = outbox.Migrate(ctx, pool, cfg.Schema)
	}
	return err
}

const migrateUsage = `
Usage: hookrelay migrate

Brings the schema named by HOOKRELAY_SCHEMA (default hookrelay) up to the
version this binary needs. Safe to run concurrently and repeatedly.
`

// runMigrate runs `hookrelay migrate`.
func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCommand("migrate", migrateUsage, stdout, stderr)
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("migrate takes no arguments, got %q", pos[0])
	}
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	pool, err := openPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	res, err := outbox.Migrate(ctx, pool, cfg.Schema)
	if err != nil {
		var tooNew *outbox.SchemaTooNewError
		if errors.As(err, &tooNew) {
			return tooNew
		}
		return err // it names the schema, or the database's address
	}
	if len(res.Applied) == 0 {
		fmt.Fprintf(stdout, "schema %s is up to date (version %d)\n", cfg.Schema, res.To)
		return nil
	}
	fmt.Fprintf(stdout, "schema %s migrated from version %d to %d\n", cfg.Schema, res.From, res.To)
	return nil
}
