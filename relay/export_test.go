package relay

import (
	"crypto/tls"
	"crypto/x509"
	"sync/atomic"
	"time"
)

// TrustRoots makes s trust certificates signed by roots, for tests against
// httptest TLS servers.
func TrustRoots(s *Sender, roots *x509.CertPool) {
	s.tr.TLSClientConfig = &tls.Config{RootCAs: roots}
}

// BackdateFailures moves the start of the engine's current failure streaks
// (if any) d into the past, so tests need not wait UnhealthyAfter.
func BackdateFailures(e *Engine, d time.Duration) {
	for _, a := range []*atomic.Int64{&e.dispatchFailing, &e.claimFailing} {
		if v := a.Load(); v != 0 {
			a.CompareAndSwap(v, v-int64(d))
		}
	}
}

// SenderTimeout is the time limit of s's attempts.
func SenderTimeout(s *Sender) time.Duration { return s.timeout }

// ConfigDefaults is c with the defaults New applies.
func ConfigDefaults(c Config) Config { c.defaults(); return c }
