// Command hookrelay is a sidecar that delivers the events an application
// writes to a PostgreSQL outbox table as signed Standard Webhooks, with
// durable retries, and manages the endpoints they go to.
//
// Usage:
//
//	hookrelay [command] [flags]
//
// The commands:
//
//	run        run the relay and its HTTP listener (the default command)
//	migrate    apply the schema migrations and exit
//	endpoints  manage endpoints: create, list, get, update, delete,
//	           rotate-secret, test, backfill
//	tokens     issue, list and revoke tenant API tokens (hrt_...)
//	event-types
//	           apply (JSON or YAML, idempotent) and list the event-type catalog
//	events     trace an event ("where is my event?") or replay it
//	deliveries list, show and retry deliveries
//	demo       a self-contained tour with a throwaway database and receiver
//	version    print the version
//	help       help for a command, or `hookrelay help env` for every
//	           environment variable with its default and meaning
//
// Configuration comes from HOOKRELAY_* environment variables only (see
// package config); flags carry only a command's own arguments, and may come
// before or after an endpoint ID. The one required variable is the database:
//
//	export HOOKRELAY_DATABASE_URL=postgres://app:secret@db:5432/app
//	hookrelay migrate
//	hookrelay endpoints create --url https://example.com/webhooks \
//	    --tenant acme --event-types signup.created,signup.deleted
//	hookrelay run
//
// endpoints create prints the endpoint with its signing secret (whsec_...),
// generated unless --secret gives one; rotate-secret prints the new one. Every
// endpoints command prints a readable table, or JSON with --output json: one
// endpoint object (id, tenant, url, event_types, enabled, ... and secret on
// create and rotate-secret), or {"endpoints": [...], "next_cursor": "..."} for
// list. endpoints test ID sends a test event now (the catalog example of the
// endpoint's type, or a hookrelay.test sample) through the same destination
// guard and proxy settings as the relay, records it in the endpoint's
// delivery log (marked test), and prints the status, latency and a response
// excerpt. The endpoints commands work on the
// database directly; they migrate an outdated schema first when
// HOOKRELAY_MIGRATE_ON_START is true (the default).
//
// run logs JSON to stderr (HOOKRELAY_LOG_FORMAT=console for text), starting
// with the configuration, secrets redacted. It serves /healthz, /readyz,
// /metrics and the admin API on HOOKRELAY_LISTEN_ADDR (metrics on
// HOOKRELAY_METRICS_ADDR when set) from the start; while the database is
// unreachable it keeps retrying, /healthz answers 200 and /readyz 503 with
// the reason. On SIGINT or SIGTERM readiness
// turns false, claiming stops, in-flight deliveries get up to
// HOOKRELAY_SHUTDOWN_TIMEOUT to finish (the rest are released for another
// relay), then the listener closes and hookrelay exits 0.
//
// Exit codes: 0 success; 1 a runtime failure (database unreachable, endpoint
// not found, test delivery failed, schema newer than the binary); 2 a usage
// or configuration error (unknown flag, bad environment variable, malformed
// URL, secret or event type), with a message naming the flag or variable.
package main
