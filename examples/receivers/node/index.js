// Minimal hookrelay webhook receiver for Node.js.
//
// Verifies every delivery's Standard Webhooks signature with the npm package
// `standardwebhooks`, de-duplicates by webhook-id (hookrelay delivers at least
// once, always with the same id) and answers fast: 204 for a verified or
// already-seen webhook, 400 for a bad signature.
//
// Environment:
//   WEBHOOK_SECRET  the endpoint's secret, "whsec_..." (required)
//   PORT            port to listen on (default 8000; 0 picks a free one)
//   HOST            address to bind (default 0.0.0.0)
//
// Prints one line per new verified event: "verified <webhook-id> <type>".
"use strict";

const http = require("node:http");
const { Webhook } = require("standardwebhooks");

const MAX_BODY = 1 << 20; // hookrelay's default payload limit is 256 KiB
const DEDUPE_SIZE = 10000;

const secret = process.env.WEBHOOK_SECRET;
if (!secret) {
  console.error("WEBHOOK_SECRET is required (the endpoint's whsec_... secret)");
  process.exit(2);
}
const webhook = new Webhook(secret);

// Remembers the last DEDUPE_SIZE webhook-ids; a Set iterates in insertion
// order, so the first entry is the oldest. A real receiver stores ids in its
// database, in the same transaction as the work the event triggers.
const seen = new Set();
function firstTime(id) {
  if (seen.has(id)) return false;
  if (seen.size >= DEDUPE_SIZE) seen.delete(seen.values().next().value);
  seen.add(id);
  return true;
}

const server = http.createServer((req, res) => {
  if (req.method !== "POST") {
    res.writeHead(405, { allow: "POST" }).end();
    return;
  }
  const chunks = [];
  let size = 0;
  req.on("data", (chunk) => {
    size += chunk.length;
    if (size > MAX_BODY) {
      res.writeHead(413).end();
      req.destroy();
      return;
    }
    chunks.push(chunk);
  });
  req.on("end", () => {
    if (res.writableEnded) return;
    // Verify the raw bytes exactly as received: re-serialised JSON would
    // not match the signature.
    const body = Buffer.concat(chunks).toString("utf8");
    let event;
    try {
      event = webhook.verify(body, req.headers);
    } catch (err) {
      res.writeHead(400, { "content-type": "text/plain" }).end("invalid signature\n");
      return;
    }
    const id = req.headers["webhook-id"];
    if (firstTime(id)) {
      // Keep this quick: hand slow work to a queue, then answer.
      console.log(`verified ${id} ${event.type}`);
    }
    // A duplicate is acknowledged with 2xx so hookrelay stops retrying it.
    res.writeHead(204).end();
  });
});

server.listen(Number(process.env.PORT || 8000), process.env.HOST || "0.0.0.0", () => {
  const { address, port } = server.address();
  console.error(`listening on ${address}:${port}`);
});

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
