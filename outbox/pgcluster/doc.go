// Package pgcluster starts a throwaway PostgreSQL cluster: for `hookrelay
// demo`, the benchmark command and (through outboxtest) the tests. It does
// not import testing, so the binary can link it.
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
package pgcluster
