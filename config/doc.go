// Package config holds hookrelay's configuration: one Config struct read
// from environment variables, and nothing else — no files, no flags.
//
// Every variable carries the HOOKRELAY_ prefix (HOOKRELAY_SCHEMA,
// HOOKRELAY_RETRY_SCHEDULE, ...); the one exception is the database URL,
// which falls back to the conventional DATABASE_URL when
// HOOKRELAY_DATABASE_URL is empty. An empty variable counts as unset, so
// its default applies.
//
// Each default is written once, as a constant of the component that uses
// it (relay.DefaultRequestTimeout, relay.DefaultRetrySchedule,
// outbox.DefaultSchema, endpoint.DefaultRotationGrace, ...); only the
// process-level ones (DefaultListenAddr, DefaultLogLevel, ...) are constants
// of this package. Default collects them into a Config, and Load starts
// from it. Vars describes every variable from the Config struct itself:
// its env tag names it, its desc tag says what it means, secret:"true"
// marks it secret, and Default supplies its default. The README
// configuration table and `hookrelay help env` come from Vars.
//
// The package is laid out by concern: config.go (Config, Default, Lease),
// load.go (Load, LoadFrom and the parsers), validate.go (Validate and its
// Problem and Error), describe.go (Vars) and redact.go (String,
// MarshalLogObject, RedactURL).
//
// Durations use Go syntax (500ms, 2s, 1h30m). There is no day unit: write
// 72h for three days. Lists (HOOKRELAY_RETRY_SCHEDULE,
// HOOKRELAY_ALLOWED_DESTINATION_CIDRS) are comma-separated.
//
// Load (or LoadFrom, with an explicit environment) parses and validates in
// one go and reports every problem at once, parse and validation problems
// together, as an *Error whose Problems each name the offending variable:
//
//	HOOKRELAY_POLL_INTERVAL: not a duration ("abc"): use Go duration syntax like 500ms or 2s
//	HOOKRELAY_ENDPOINT_MAX_IN_FLIGHT: must be at most HOOKRELAY_MAX_IN_FLIGHT (8), got 16
//
// so an operator fixes a bad deployment in one round trip rather than one
// variable per restart.
//
// Secrets (the admin token, the secret key and the database password) never
// leave the package: problem messages do not repeat them, and Config's
// String and MarshalLogObject (for zap) show them as REDACTED. RedactURL
// does the same for any PostgreSQL connection string.
package config
