// Package enqueue holds examples of what an application does to send a
// webhook with hookrelay: one INSERT into the outbox table in the same
// transaction as its business write, from Node.js (./node, node-postgres),
// a shell (./psql) and Python (./python, psycopg 3).
//
// The package itself has no code; its test runs the Node and psql examples
// against a throwaway PostgreSQL and checks both rows, and that a failed
// event insert rolls the business row back too. It needs node, npm (with
// access to the npm registry: it runs `npm ci` when node_modules is missing)
// and psql on PATH. The Python example needs psycopg from PyPI, which this
// project's CI cannot reach: it is only parsed, not run.
package enqueue
