// Package portal is the customer portal: the webhook pages an application
// hands to its customers (tenants), served by hookrelay under
// HOOKRELAY_PORTAL_PREFIX, so that adding webhooks to an application is one
// link.
//
// # Sessions
//
// The application's backend asks for a session when its logged-in customer
// clicks "Webhooks" (POST /v1/portal/sessions, answered through
// [Portal.CreateSession]) and redirects the customer to the returned URL.
// The URL carries a one-time login code, valid for [CodeTTL]; opening it
// spends the code, sets an HttpOnly, SameSite=Lax session cookie (Secure
// when HOOKRELAY_PUBLIC_URL is https) and redirects to the portal without
// the code. A used, expired or forged code gets a plain error page and no
// session. Sessions live in PostgreSQL (hashes only: outbox's
// portal_sessions), so a link works on whichever replica serves it.
//
// # Pages
//
// Server-rendered with html/template; every asset (one stylesheet, one
// small script that only enhances) is embedded and served with long-lived
// cache headers under a content-hashed path. The pages work without the
// script.
//
//   - endpoints: list with state and the last day's success rate and last
//     error; create, edit, enable and disable, delete after a confirmation
//     page; the signing secret revealed on demand and rotated with a grace
//     window (the page says when the old one stops signing); Test, with the
//     result shown in place; recover failed deliveries since a time;
//   - delivery log: newest first, filtered by state, endpoint, event type
//     and time range, cursor-paged; a delivery's attempts and the event's
//     payload, and Resend (a replay with the same webhook-id);
//   - event types: the catalog with descriptions, examples and schemas;
//   - verification help for Node, Python and Go, with the tenant's endpoint
//     id filled in.
//
// Every operation goes through the tenant-scoped endpoint service and store
// (endpoint.Service.ForTenant, outbox.Store.ForTenant), so another tenant's
// id answers 404 like the API.
//
// # Security
//
// Every form carries a CSRF token derived from the session token; every
// POST without it is refused (403). Read-only sessions see no mutating
// control and get 403 if they post anyway. The Content-Security-Policy
// allows scripts and styles from the portal itself only (no inline script
// or style); frame-ancestors is 'none' unless HOOKRELAY_PORTAL_FRAME_ANCESTORS
// names who may frame the portal. Pages are never cached; the Referrer-Policy
// is no-referrer.
package portal
