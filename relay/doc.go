// Package relay is hookrelay's engine: it turns committed outbox events into
// signed webhook deliveries.
//
// Two loops fetch work. The dispatcher wakes on a notification hint or a
// jittered poll (every few milliseconds while events keep coming), fans new
// events out to their endpoints and, in the same statement, leases the new
// deliveries it has room for ([outbox.Store.DispatchClaim]). The claimer
// leases the rest in batches: deliveries left pending, retries that came
// due and expired leases of crashed relays ([outbox.Store.Claim]). Leased
// deliveries wait in one queue per endpoint; long-lived workers (MaxInFlight
// of them) take from the endpoints in turn, never more than
// EndpointMaxInFlight at once to one endpoint, and send with no database
// transaction open. A fast endpoint may have more leased than in flight —
// about a second of its measured pace — so it is fed by few large claims;
// work not started within half its lease is given back. Outcomes are
// classified ([Classify]), scheduled for a retry by the [Policy], and
// recorded in batches ([outbox.Store.Complete]) guarded by the lease, so
// several relays can share one database and a crashed one's work is claimed
// again when its leases expire.
package relay
