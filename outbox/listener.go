package outbox

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sethvargo/go-retry"
	"go.uber.org/zap"
)

// Listener turns NOTIFYs on the outbox channel into wake-up hints. It holds
// one dedicated connection (never a pooled one), pings it when idle, and
// reconnects with jittered back-off when it drops. Every (re)connect also
// produces a hint, so the relay polls once after a gap in which
// notifications may have been lost. Notifications are only hints: the relay
// polls as well, so losing some (or running without LISTEN at all) delays
// nothing beyond the poll interval.
type Listener struct {
	connConfig *pgx.ConnConfig
	channel    string
	log        *zap.Logger
	wake       chan struct{}
	connected  atomic.Bool
	received   atomic.Int64
	// OnNotification, if set before Run, is called for each notification.
	OnNotification func()
}

// NewListener returns a listener for schema's outbox channel on a
// connection made from connConfig.
func NewListener(connConfig *pgx.ConnConfig, schema string, log *zap.Logger) *Listener {
	return &Listener{
		connConfig: connConfig,
		channel:    Channel(schema),
		log:        log,
		wake:       make(chan struct{}, 1),
	}
}

// Wake delivers a value when there may be new events. Hints are coalesced:
// many notifications while nobody reads become one.
func (l *Listener) Wake() <-chan struct{} { return l.wake }

// Connected reports whether the LISTEN connection is up.
func (l *Listener) Connected() bool { return l.connected.Load() }

// Received returns the number of notifications received so far.
func (l *Listener) Received() int64 { return l.received.Load() }

func (l *Listener) hint() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Run listens until ctx is done, reconnecting as needed; it returns nil
// when ctx ends.
func (l *Listener) Run(ctx context.Context) error {
	backoff := func() retry.Backoff {
		b := retry.NewExponential(200 * time.Millisecond)
		b = retry.WithCappedDuration(15*time.Second, b)
		return retry.WithJitterPercent(20, b)
	}
	b := backoff()
	for {
		err := l.session(ctx, func() { b = backoff() })
		l.connected.Store(false)
		if ctx.Err() != nil {
			return nil
		}
		wait, _ := b.Next()
		l.log.Warn("listen connection lost, reconnecting", zap.Error(err), zap.Duration("retry_in", wait))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// session connects, listens and waits for notifications until an error.
func (l *Listener) session(ctx context.Context, connected func()) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := pgx.ConnectConfig(cctx, l.connConfig)
	cancel()
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{l.channel}.Sanitize()); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	l.connected.Store(true)
	connected()
	l.log.Debug("listening for outbox notifications", zap.String("channel", l.channel))
	l.hint() // poll once: notifications may have been missed while down
	for {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := conn.PgConn().WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			l.received.Add(1)
			if l.OnNotification != nil {
				l.OnNotification()
			}
			l.hint()
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				return fmt.Errorf("ping: %w", err)
			}
		default:
			return fmt.Errorf("wait for notification: %w", err)
		}
	}
}

// SetIdle records whether the relay relayID is waiting for notifications
// (idle) or polling (busy). The outbox trigger only sends NOTIFYs while some
// relay is idle, so a busy relay spares the application the commit
// serialisation that NOTIFY costs. An idle relay calls it again at least
// every few seconds as a heartbeat: an idle mark older than 30 seconds is
// ignored (a crashed relay stops counting).
func (s *Store) SetIdle(ctx context.Context, relayID string, idle bool) error {
	_, err := s.pool.Exec(ctx, qualify(`INSERT INTO {{schema}}.relays (id, idle, seen_at) VALUES ($1, $2, now())
ON CONFLICT (id) DO UPDATE SET idle = excluded.idle, seen_at = excluded.seen_at`, s.schema), relayID, idle)
	if err != nil {
		return fmt.Errorf("mark relay idle=%v: %w", idle, translate(err))
	}
	return nil
}

// ForgetRelay removes the relay's row, and rows of relays not seen for a
// day.
func (s *Store) ForgetRelay(ctx context.Context, relayID string) error {
	_, err := s.pool.Exec(ctx, qualify(`DELETE FROM {{schema}}.relays WHERE id = $1 OR seen_at < now() - interval '1 day'`, s.schema), relayID)
	if err != nil {
		return fmt.Errorf("forget relay: %w", translate(err))
	}
	return nil
}
