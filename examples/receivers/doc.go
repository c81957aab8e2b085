// Package receivers holds minimal webhook receivers for hookrelay deliveries
// in Go (./go), Node.js (./node) and Python (./python). Each verifies the
// Standard Webhooks signature, de-duplicates by webhook-id and prints
// "verified <webhook-id> <type>" once per new event.
//
// The package itself has no code; its test runs the Node and Python
// receivers as subprocesses against real signed deliveries from hookrelay's
// sender. It needs node and python3 on PATH, and npm with access to the npm
// registry: it runs `npm ci` for the Node receiver when its node_modules is
// missing.
package receivers
