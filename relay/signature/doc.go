// Package signature signs webhook deliveries in the Standard Webhooks format
// (https://www.standardwebhooks.com) and verifies them the way a receiver
// does.
//
// A delivery carries three headers: webhook-id (stable per event, the
// receiver's idempotency key), webhook-timestamp (unix seconds of the
// attempt) and webhook-signature, a space-separated list of
// "v1,<base64 HMAC-SHA256 of id.timestamp.body>" — one per valid secret, so
// that a secret can be rotated without downtime. Secrets are written as
// "whsec_" followed by the standard base64 of 24 to 64 random bytes; the
// HMAC key is the decoded bytes.
//
// Any Standard Webhooks library verifies what [Sign] produces. [Secret]
// never prints its key: String returns "whsec_REDACTED".
package signature
