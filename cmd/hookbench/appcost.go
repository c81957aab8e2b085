package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// appCostSlices is how many slices each table's insert time is cut into.
const appCostSlices = 10

// interleavedRates measures the insert rate of two statements over d each,
// in alternating slices (A B B A A B …) after one unmeasured slice of each,
// so that a drift of the machine or the disk over the phase (WAL segments
// being created, a checkpoint, a neighbour's load) falls on both alike
// rather than on whichever ran first. It returns each statement's mean
// rate over its slices.
func interleavedRates(ctx context.Context, pool *pgxpool.Pool, q [2]string, conc int, d time.Duration) ([2]float64, error) {
	var sum [2]float64
	slice := max(d/appCostSlices, 50*time.Millisecond)
	for i := -1; i < appCostSlices; i++ {
		order := [2]int{0, 1}
		if i%2 != 0 {
			order = [2]int{1, 0}
		}
		for _, k := range order {
			r, err := insertLoop(ctx, pool, q[k], conc, slice)
			if err != nil {
				return sum, err
			}
			if i >= 0 { // slice -1 warms both up
				sum[k] += r
			}
		}
	}
	return [2]float64{sum[0] / appCostSlices, sum[1] / appCostSlices}, nil
}

// resetStatements clears pg_stat_statements (when loaded).
func (b *bench) resetStatements(ctx context.Context) error {
	if !b.pgss {
		return nil
	}
	if _, err := b.admin.Exec(ctx, `SELECT pg_stat_statements_reset()`); err != nil {
		return fmt.Errorf("reset pg_stat_statements: %w", err)
	}
	return nil
}

// recordInsertCosts records, from pg_stat_statements since the last
// reset, the mean execution time and WAL bytes of the INSERT into each
// table of the app cost scenario: what the trigger adds inside the
// statement (the commit's WAL flush is outside it).
func (b *bench) recordInsertCosts(ctx context.Context) error {
	if !b.pgss {
		return nil
	}
	for _, t := range []struct{ table, prefix string }{{"plain_events", "plain"}, {"outbox", "outbox"}} {
		var us, wal float64
		err := b.admin.QueryRow(ctx, `SELECT coalesce(sum(total_exec_time) * 1000 / nullif(sum(calls), 0), 0),
			coalesce(sum(wal_bytes)::float8 / nullif(sum(calls), 0), 0)
			  FROM pg_stat_statements WHERE query LIKE 'INSERT INTO %.' || $1 || ' (event_type, payload) VALUES%'`, t.table).Scan(&us, &wal)
		if err != nil {
			return fmt.Errorf("read insert costs: %w", err)
		}
		b.record("appcost", t.prefix+"_insert_exec_us", "µs", us)
		b.record("appcost", t.prefix+"_insert_wal_bytes", "B", wal)
	}
	return nil
}
