package relay

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/outbox"
)

// Maintenance defaults.
const (
	// DefaultMaintenanceInterval is the time between sweeps (jittered by
	// ±10%).
	DefaultMaintenanceInterval = time.Minute
	// DefaultRetentionInterval is the least time between two retention
	// passes of one process.
	DefaultRetentionInterval = 10 * time.Minute
	// DefaultPurgeBatch is the most rows one retention transaction deletes.
	DefaultPurgeBatch = 1000
	// DefaultRetention is the retention period hookrelay runs with unless
	// configured otherwise (30 days); a zero Maintenance.Retention means
	// no retention.
	DefaultRetention = 30 * 24 * time.Hour
	// DefaultDisableAfter is the auto-disable period hookrelay runs with
	// unless configured otherwise (5 days); a zero
	// Maintenance.DisableAfter means no auto-disable.
	DefaultDisableAfter = 5 * 24 * time.Hour
	// DefaultDisableAfterFailures is the least number of consecutive
	// failures before auto-disable that hookrelay runs with unless
	// configured otherwise.
	DefaultDisableAfterFailures = 10
	// staleBatch is the most endpoints one sweep disables.
	staleBatch = 100
)

// Maintenance is the background housekeeping of one process: it disables
// endpoints that keep failing (auto-disable) and deletes finished history
// older than the retention period. Each sweep runs under the schema's
// maintenance lock (a session-level PostgreSQL advisory lock held on a
// dedicated connection for the sweep), so with several replicas at most
// one sweeps at a time and the others skip; a replica that dies mid-sweep
// loses its session and with it the lock. Retention deletes in batches of
// PurgeBatch rows, each its own short transaction, so it never holds locks
// for long, and it never touches pending or in-flight work.
//
// Set the fields before Run; zero values take the defaults noted.
type Maintenance struct {
	// Store is the database.
	Store *outbox.Store
	// Log receives one line per sweep that did something.
	Log *zap.Logger
	// Interval is the time between sweeps (default 1m, jittered ±10%).
	Interval time.Duration
	// DisableAfter and DisableAfterFailures drive auto-disable: an enabled
	// endpoint with at least DisableAfterFailures consecutive failures and
	// no success for DisableAfter (counted from its creation if it never
	// had one) is disabled. DisableAfter 0 turns auto-disable off.
	DisableAfter         time.Duration
	DisableAfterFailures int
	// Retention is how long finished history is kept; 0 turns retention
	// off.
	Retention time.Duration
	// RetentionInterval is the least time between retention passes
	// (default 10m); the first sweep always runs one.
	RetentionInterval time.Duration
	// PurgeBatch is the most rows per retention transaction (default 1000).
	PurgeBatch int
	// OnDisabled, when set, is called for each endpoint auto-disabled
	// (OpsEvents.OnDisabled fits).
	OnDisabled func(ctx context.Context, endpointID, reason string)

	lastRetention time.Time
}

// SweepResult says what one sweep did.
type SweepResult struct {
	// Skipped is true when another session held the maintenance lock and
	// nothing was done.
	Skipped bool
	// Disabled is the number of endpoints auto-disabled.
	Disabled int
	// Retention is true when a retention pass ran.
	Retention bool
	// Purged counts the rows the retention pass deleted.
	Purged outbox.Purged
}

func (m *Maintenance) interval() time.Duration {
	if m.Interval > 0 {
		return m.Interval
	}
	return DefaultMaintenanceInterval
}

// Run sweeps every Interval until ctx ends; it returns nil then. A failed
// sweep is logged and tried again at the next interval.
func (m *Maintenance) Run(ctx context.Context) error {
	log := m.logger()
	if m.DisableAfter <= 0 && m.Retention <= 0 {
		log.Info("maintenance off: auto-disable and retention are both disabled")
		<-ctx.Done()
		return nil
	}
	timer := time.NewTimer(jitter(m.interval()))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		if _, err := m.Sweep(ctx); err != nil && ctx.Err() == nil {
			log.Warn("maintenance sweep failed; trying again later", zap.Error(err))
		}
		timer.Reset(jitter(m.interval()))
	}
}

// Sweep runs one sweep now, if the maintenance lock is free: auto-disable,
// then (when due) a retention pass. Run calls it; tests and tools may too,
// but not concurrently on one Maintenance.
func (m *Maintenance) Sweep(ctx context.Context) (SweepResult, error) {
	var res SweepResult
	ran, err := m.Store.TryMaintenance(ctx, func(ctx context.Context) error {
		var errs []error
		if m.DisableAfter > 0 {
			n, err := m.autoDisable(ctx)
			res.Disabled = n
			if err != nil {
				errs = append(errs, err)
			}
		}
		every := m.RetentionInterval
		if every <= 0 {
			every = DefaultRetentionInterval
		}
		if m.Retention > 0 && (m.lastRetention.IsZero() || time.Since(m.lastRetention) >= every) {
			res.Retention = true
			p, err := m.purge(ctx)
			res.Purged = p
			if err != nil {
				errs = append(errs, err)
			} else {
				m.lastRetention = time.Now()
			}
		}
		return errors.Join(errs...)
	})
	res.Skipped = !ran && err == nil
	log := m.logger()
	switch {
	case res.Skipped:
		log.Debug("maintenance skipped: another replica holds the lock")
	case res.Disabled > 0 || res.Purged != (outbox.Purged{}):
		log.Info("maintenance sweep", zap.Int("endpoints_disabled", res.Disabled),
			zap.Int("events_deleted", res.Purged.Events), zap.Int("deliveries_deleted", res.Purged.Deliveries),
			zap.Int("attempts_deleted", res.Purged.Attempts))
	}
	if err != nil {
		return res, fmt.Errorf("maintenance sweep: %w", err)
	}
	return res, nil
}

// AutoDisableReason is the disabled_reason auto-disable records.
func AutoDisableReason(after time.Duration, failures int) string {
	return fmt.Sprintf("auto-disabled: no successful delivery for %s and %d consecutive failures", after, failures)
}

func (m *Maintenance) autoDisable(ctx context.Context) (int, error) {
	failures := m.DisableAfterFailures
	if failures <= 0 {
		failures = 1
	}
	stale, err := m.Store.StaleEndpoints(ctx, failures, m.DisableAfter, staleBatch)
	if err != nil {
		return 0, fmt.Errorf("auto-disable: %w", err)
	}
	n := 0
	for _, e := range stale {
		reason := AutoDisableReason(m.DisableAfter, e.ConsecutiveFailures)
		was, err := m.Store.DisableEndpoint(ctx, e.ID, reason)
		if err != nil {
			if errors.Is(err, outbox.ErrNotFound) {
				continue // deleted meanwhile
			}
			return n, fmt.Errorf("auto-disable endpoint %s: %w", e.ID, err)
		}
		if !was {
			continue
		}
		n++
		m.logger().Warn("endpoint auto-disabled", zap.String("endpoint_id", e.ID), zap.String("reason", reason))
		if m.OnDisabled != nil {
			m.OnDisabled(ctx, e.ID, reason)
		}
	}
	return n, nil
}

// purge deletes finished history older than Retention, batch by batch,
// until a batch comes back short or ctx ends.
func (m *Maintenance) purge(ctx context.Context) (outbox.Purged, error) {
	batch := m.PurgeBatch
	if batch <= 0 {
		batch = DefaultPurgeBatch
	}
	cutoff := time.Now().Add(-m.Retention)
	var total outbox.Purged
	err := inBatches(ctx, batch, func() (int, error) {
		p, err := m.Store.PurgeDeliveries(ctx, cutoff, batch)
		total.Attempts += p.Attempts
		total.Deliveries += p.Deliveries
		return p.Deliveries, err
	})
	if err == nil {
		err = inBatches(ctx, batch, func() (int, error) {
			n, err := m.Store.PurgeEvents(ctx, cutoff, batch)
			total.Events += n
			return n, err
		})
	}
	if err != nil {
		return total, fmt.Errorf("retention: %w", err)
	}
	return total, nil
}

// inBatches calls purge, which deletes up to batch rows and says how many
// it deleted, until a batch comes back short, purge fails or ctx ends.
func inBatches(ctx context.Context, batch int, purge func() (int, error)) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := purge()
		if err != nil || n < batch {
			return err
		}
	}
}

func (m *Maintenance) logger() *zap.Logger {
	if m.Log == nil {
		return zap.NewNop()
	}
	return m.Log
}

// jitter spreads d by ±10%.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()*0.2-0.1)*float64(d))
}
