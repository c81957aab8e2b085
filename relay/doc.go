// Package relay is hookrelay's engine: it turns committed outbox events into
// signed webhook deliveries.
//
// One fetch loop per process wakes on a notification hint, a jittered poll
// timer, or freed capacity; it fans new events out to their endpoints
// ([outbox.Store.Dispatch]) and claims due deliveries in batches with a
// lease ([outbox.Store.Claim]). Each claimed delivery is sent by its own
// goroutine (at most MaxInFlight overall and EndpointMaxInFlight per
// endpoint) without any database transaction open; outcomes are classified
// ([Classify]), scheduled for a retry by the [Policy], and recorded in
// batches ([outbox.Store.Complete]) guarded by the lease, so several relays
// can share one database and a crashed one's work is claimed again when its
// leases expire.
package relay
