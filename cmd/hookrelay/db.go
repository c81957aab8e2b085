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

// withPool opens a small pool on cfg's database for a one-shot command,
// runs fn with it and closes it.
func withPool(ctx context.Context, cfg config.Config, fn func(*pgxpool.Pool) error) error {
	pool, err := openPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	return fn(pool)
}

// withStore opens a small pool, makes sure the schema is current and runs
// fn with the store of a one-shot command; the pool is closed after.
func withStore(ctx context.Context, cfg config.Config, fn func(*outbox.Store) error) error {
	return withPool(ctx, cfg, func(pool *pgxpool.Pool) error {
		if err := ensureSchema(ctx, pool, cfg); err != nil {
			return err
		}
		store, err := sidecar.NewStore(pool, cfg)
		if err != nil {
			return err
		}
		return fn(store)
	})
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
	cfg, err := newCommand("migrate", migrateUsage, stdout, stderr).parseConfig(args)
	if err != nil {
		return err
	}
	return withPool(ctx, cfg, func(pool *pgxpool.Pool) error { return migrate(ctx, pool, cfg.Schema, stdout) })
}

// migrate brings schema up to date on pool and says what it did on stdout.
func migrate(ctx context.Context, pool *pgxpool.Pool, schema string, stdout io.Writer) error {
	res, err := outbox.Migrate(ctx, pool, schema)
	if err != nil {
		var tooNew *outbox.SchemaTooNewError
		if errors.As(err, &tooNew) {
			return tooNew
		}
		return err // it names the schema, or the database's address
	}
	if len(res.Applied) == 0 {
		fmt.Fprintf(stdout, "schema %s is up to date (version %d)\n", schema, res.To)
		return nil
	}
	fmt.Fprintf(stdout, "schema %s migrated from version %d to %d\n", schema, res.From, res.To)
	return nil
}
