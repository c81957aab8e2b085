// Package outboxtest starts a throwaway PostgreSQL cluster for tests, for
// `hookrelay demo` and for the benchmark command.
//
// # Mechanism
//
// [Start] finds the server binaries (initdb and postgres on PATH, else the
// highest version under /usr/lib/postgresql/*/bin), runs initdb into a fresh
// temporary directory (os.MkdirTemp("", "hookrelay-pg-*")) and starts the
// postmaster directly as a child process (not through pg_ctl) on a free
// loopback TCP port:
//
//	postgres -D <dir>/data -p <port> -c listen_addresses=127.0.0.1 \
//	    -c unix_socket_directories=<dir> -c max_connections=300 ...
//
// It then polls with pgx until the server accepts connections, with a
// deadline rather than a fixed sleep. The server's log goes to
// <dir>/postgres.log; when start-up fails, the tail of that log is part of
// the error. By default durability is switched off (fsync, synchronous_commit
// and full_page_writes off) for speed; [Options.Durable] switches it back on
// for benchmarks.
//
// PostgreSQL refuses to run as root. When the calling process is root,
// initdb and postgres run as the "postgres" system user and the temporary
// directory is handed to that user.
//
// [Server.Stop] asks for a fast shutdown (SIGINT), waits with a deadline,
// kills the process group if the postmaster did not exit, and removes the
// temporary directory. On Linux the postmaster also gets SIGQUIT (immediate
// shutdown) if the process that started it dies, and the next [Start] removes
// temporary directories left behind by processes that no longer exist.
//
// # An existing server
//
// If the environment variable HOOKRELAY_TEST_DATABASE_URL ([EnvURL]) is set,
// [Start] starts nothing and returns a [Server] wrapping that URL; Stop is
// then a no-op, and Restart and Kill return [ErrExternal].
//
// # In tests
//
// A test binary starts one shared server in TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(outboxtest.Main(m)) }
//
// and each test isolates itself in its own schema with [NewSchema], or uses
// [Pool] for a connection pool on the shared server. If no server can be
// started, Main fails the test binary with the reason and how to install
// PostgreSQL; it never skips.
package outboxtest
