// Enqueue a hookrelay webhook event from Node.js, in the same transaction as
// the business write that caused it (the transactional outbox): the event
// exists exactly when the signup commits, and hookrelay delivers it.
//
// Environment:
//   DATABASE_URL      the application's PostgreSQL, where `hookrelay migrate`
//                     has created the hookrelay schema (HOOKRELAY_DATABASE_URL
//                     when unset, as after the README's tour)
//   HOOKRELAY_SCHEMA  the schema hookrelay uses (default "hookrelay")
//
// Usage: node enqueue.js [email] [tenant]   (tenant defaults to "acme", the
// README tour's tenant; "" is the default tenant of hookrelay itself)
"use strict";

const { Client } = require("pg");

// A schema name is an identifier, never a bind parameter: quote it.
function quoteIdent(name) {
  return `"${name.replaceAll('"', '""')}"`;
}

async function main() {
  const email = process.argv[2] || `user${Date.now()}@example.com`;
  const tenant = process.argv[3] ?? "acme";
  const schema = process.env.HOOKRELAY_SCHEMA || "hookrelay";
  const outbox = schema === "hookrelay" ? "hookrelay.outbox" : `${quoteIdent(schema)}.outbox`;

  const connectionString = process.env.DATABASE_URL || process.env.HOOKRELAY_DATABASE_URL;
  if (!connectionString) {
    throw new Error("set DATABASE_URL to the application's PostgreSQL");
  }
  const client = new Client({ connectionString });
  await client.connect();
  try {
    // The example's business table; your application has its own.
    await client.query(`CREATE TABLE IF NOT EXISTS example_signups (
      id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      email      text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now()
    )`);

    await client.query("BEGIN");
    try {
      const signup = await client.query(
        "INSERT INTO example_signups (email) VALUES ($1) RETURNING id, created_at",
        [email],
      );
      const { id, created_at: createdAt } = signup.rows[0];

      // The whole hookrelay API: one INSERT in your transaction. payload is
      // jsonb; pass JSON text (node-postgres would turn a JS array into a
      // PostgreSQL array, so stringify explicitly).
      const event = await client.query(
        `INSERT INTO ${outbox} (event_type, tenant, payload) VALUES ($1, $2, $3) RETURNING uid`,
        ["signup.created", tenant, JSON.stringify({ user_id: String(id), email, signed_up_at: createdAt })],
      );
      await client.query("COMMIT");

      // The webhook-id receivers see: "msg_" + the uid without dashes.
      const webhookId = "msg_" + event.rows[0].uid.replaceAll("-", "");
      console.log(`signup ${id} committed; enqueued signup.created for tenant "${tenant}" as ${webhookId}`);
    } catch (err) {
      // Neither the signup nor the event is kept.
      await client.query("ROLLBACK");
      throw err;
    }
  } finally {
    await client.end();
  }
}

main().catch((err) => {
  console.error(`enqueue: ${err.message}`);
  process.exitCode = 1;
});
