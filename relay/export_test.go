package relay

import (
	"sync/atomic"
	"time"
)

// BackdateFailures moves the start of the engine's current failure streaks
// (if any) d into the past, so tests need not wait UnhealthyAfter.
func BackdateFailures(e *Engine, d time.Duration) {
	for _, a := range []*atomic.Int64{&e.dispatchFailing, &e.claimFailing} {
		if v := a.Load(); v != 0 {
			a.CompareAndSwap(v, v-int64(d))
		}
	}
}
