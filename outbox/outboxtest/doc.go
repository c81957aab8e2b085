// Package outboxtest is the test layer over [pgcluster]: one shared
// throwaway PostgreSQL server per test binary, a fresh schema per test, and
// the inputs the tests share.
//
// # In tests
//
// A test binary starts one shared server in TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(outboxtest.Main(m)) }
//
// and each test isolates itself in its own schema with [NewSchema], or uses
// [Pool] for a connection pool (or [Store] for a migrated store) on the shared server. If no server can be
// started, Main fails the test binary with the reason and how to install
// PostgreSQL; it never skips.
package outboxtest
