package relay

import (
	"time"

	"github.com/sethvargo/go-retry"
)

// Retry-After values are clamped to this window.
const (
	MinRetryAfter = time.Second
	MaxRetryAfter = 24 * time.Hour
)

// DefaultJitterPercent is how far a Policy without JitterPercent spreads
// each delay, in ± percent.
const DefaultJitterPercent = 20

// DefaultRetrySchedule returns the default delays before each retry: eleven
// retries spread over about four days (5s, 1m, 5m, 15m, 1h, 3h, 6h,
// 12h, then 24h three times). Each call returns a new slice.
func DefaultRetrySchedule() []time.Duration {
	return []time.Duration{
		5 * time.Second, time.Minute, 5 * time.Minute, 15 * time.Minute,
		time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour,
		24 * time.Hour, 24 * time.Hour, 24 * time.Hour,
	}
}

// Policy decides when a failed delivery is tried again.
type Policy struct {
	// Schedule holds the delay before each retry: Schedule[0] after the
	// first failed attempt, and so on. After len(Schedule)+1 failed
	// attempts the delivery is dead. The engine gives an empty Schedule
	// DefaultRetrySchedule.
	Schedule []time.Duration
	// JitterPercent spreads each delay by ± this many percent
	// (DefaultJitterPercent when 0).
	JitterPercent uint64
}

// MaxAttempts is the number of attempts before a delivery is dead.
func (p Policy) MaxAttempts() int { return len(p.Schedule) + 1 }

// Next returns the delay after failed attempt number attempt (1-based), or
// false when the schedule is exhausted. retryAfter, when positive (the
// receiver's Retry-After), replaces the scheduled delay, clamped to
// [MinRetryAfter, MaxRetryAfter].
func (p Policy) Next(attempt int, retryAfter time.Duration) (time.Duration, bool) {
	if attempt < 1 || attempt > len(p.Schedule) {
		return 0, false
	}
	if retryAfter > 0 {
		return min(max(retryAfter, MinRetryAfter), MaxRetryAfter), true
	}
	base := p.Schedule[attempt-1]
	jitter := p.JitterPercent
	if jitter == 0 {
		jitter = DefaultJitterPercent
	}
	b := retry.WithJitterPercent(jitter, retry.BackoffFunc(func() (time.Duration, bool) { return base, false }))
	d, _ := b.Next()
	return d, true
}
