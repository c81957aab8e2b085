// Package faulttest is hookrelay's fault-injection suite. It holds no
// library code: its tests (TestFault*) build the real hookrelay binary, run
// it as a subprocess against throwaway PostgreSQL servers and verifying
// webhook receivers, and break things on purpose — kill -9 of the relay,
// PostgreSQL restarts, cut database connections, receivers that are down or
// slow, replicas dying, SIGTERM mid-drain, and hostile input — asserting
// that no committed event is lost, every signature verifies, and duplicates
// appear only after a crash, bounded by in-flight work.
//
// Run it with:
//
//	go test -race -run Fault -v ./relay/faulttest/
//
// Each test logs its figures (events, duration, events/s, duplicates).
package faulttest
