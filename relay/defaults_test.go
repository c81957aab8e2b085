package relay_test

import (
	"slices"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/relay"
)

// TestConfigDefaults: a zero Config takes the exported defaults, and set
// fields are kept.
func TestConfigDefaults(t *testing.T) {
	got := relay.ConfigDefaults(relay.Config{})
	switch {
	case got.BatchSize != relay.DefaultBatchSize,
		got.MaxInFlight != relay.DefaultMaxInFlight,
		got.EndpointMaxInFlight != relay.DefaultEndpointMaxInFlight,
		got.PollInterval != relay.DefaultPollInterval,
		got.ShutdownTimeout != relay.DefaultShutdownTimeout,
		!slices.Equal(got.Policy.Schedule, relay.DefaultRetrySchedule()):
		t.Errorf("zero Config with defaults = %+v, want the Default* constants", got)
	}
	// The lease is derived from the sender's timeout by New (see
	// TestNewChecksTheLeaseAgainstTheSender).
	if l := relay.DefaultLease(relay.DefaultRequestTimeout); l <= relay.DefaultRequestTimeout+relay.MinLeaseMargin {
		t.Errorf("default lease %s does not outlast DefaultRequestTimeout %s", l, relay.DefaultRequestTimeout)
	}

	set := relay.Config{BatchSize: 7, MaxInFlight: 8, EndpointMaxInFlight: 2, PollInterval: time.Minute,
		ShutdownTimeout: time.Second, Policy: relay.Policy{Schedule: []time.Duration{time.Hour}}}
	got = relay.ConfigDefaults(set)
	if got.BatchSize != 7 || got.MaxInFlight != 8 || got.EndpointMaxInFlight != 2 || got.PollInterval != time.Minute ||
		got.ShutdownTimeout != time.Second || !slices.Equal(got.Policy.Schedule, []time.Duration{time.Hour}) {
		t.Errorf("Config with defaults = %+v, want the fields that were set kept", got)
	}
}

func TestDefaultRetrySchedule(t *testing.T) {
	s := relay.DefaultRetrySchedule()
	if len(s) != 11 {
		t.Fatalf("%d entries, want 11", len(s))
	}
	var total time.Duration
	for i, d := range s {
		if d <= 0 || (i > 0 && d < s[i-1]) {
			t.Errorf("entry %d (%s) is not positive and non-decreasing", i+1, d)
		}
		total += d
	}
	if lo, hi := 90*time.Hour, 100*time.Hour; total < lo || total > hi {
		t.Errorf("retries span %s, want about four days", total)
	}
	s[0] = time.Hour
	if relay.DefaultRetrySchedule()[0] != 5*time.Second {
		t.Error("DefaultRetrySchedule returned a shared slice: a caller's change shows in the next call")
	}
}
