// Package outbox is the only part of hookrelay that speaks SQL.
//
// It holds the embedded, versioned schema migrations ([Migrate]), the small
// API an application calls to enqueue an event inside its own transaction
// ([Enqueue], [EnqueueBatch]), the [Store] with one method per query the
// relay and its admin surface run, and the [Listener] that turns
// PostgreSQL notifications into wake-up hints.
//
// Everything lives in one schema (hookrelay by default). The application's
// only duty is an INSERT into that schema's outbox table in its own
// transaction, from Go through [Enqueue] or from any language with plain SQL:
//
//	INSERT INTO hookrelay.outbox (event_type, tenant, payload) VALUES ($1, $2, $3)
//
// A statement-level trigger sends one NOTIFY per inserting statement (and
// PostgreSQL folds identical notifications within a transaction), so a
// transaction that inserts a thousand rows wakes the relay once, and a
// rolled-back one not at all.
package outbox
