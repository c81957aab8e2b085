package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/relay/endpoint"
)

// route is one /v1 route; the table registers the routes, says who may
// call each (see access), and is checked against the OpenAPI document and
// the route×token matrix test.
type route struct {
	method  string
	pattern string
	access  access
	handle  func(w http.ResponseWriter, r *http.Request, p *principal) error
}

func (s *server) routes() []route {
	return []route{
		{"GET", "/v1/openapi.json", tenantRead, s.openAPI},
		{"GET", "/v1/endpoints", tenantRead, s.listEndpoints},
		{"POST", "/v1/endpoints", tenantWrite, s.createEndpoint},
		{"GET", "/v1/endpoints/{id}", tenantRead, s.getEndpoint},
		{"PATCH", "/v1/endpoints/{id}", tenantWrite, s.updateEndpoint},
		{"DELETE", "/v1/endpoints/{id}", tenantWrite, s.deleteEndpoint},
		{"POST", "/v1/endpoints/{id}/rotate-secret", tenantWrite, s.rotateSecret},
		{"POST", "/v1/endpoints/{id}/test", tenantWrite, s.testEndpoint},
		{"POST", "/v1/endpoints/{id}/recover", tenantWrite, s.recoverEndpoint},
		{"POST", "/v1/endpoints/{id}/backfill", tenantWrite, s.backfillEndpoint},
		{"GET", "/v1/endpoints/{id}/blocked-keys", tenantRead, s.blockedKeys},
		{"GET", "/v1/events", tenantRead, s.listEvents},
		{"POST", "/v1/events", adminOnly, s.publishEvent},
		{"GET", "/v1/events/{id}", tenantRead, s.getEvent},
		{"GET", "/v1/events/{id}/trace", tenantRead, s.traceEvent},
		{"POST", "/v1/events/{id}/replay", tenantWrite, s.replayEvent},
		{"GET", "/v1/deliveries", tenantRead, s.listDeliveries},
		{"GET", "/v1/deliveries/{id}", tenantRead, s.getDelivery},
		{"GET", "/v1/deliveries/{id}/attempts", tenantRead, s.listAttempts},
		{"POST", "/v1/deliveries/{id}/retry", tenantWrite, s.retryDelivery},
		{"POST", "/v1/deliveries/{id}/cancel", tenantWrite, s.cancelDelivery},
		{"GET", "/v1/attempts", tenantRead, s.listAllAttempts},
		{"POST", "/v1/tokens", adminOnly, s.createToken},
		{"GET", "/v1/tokens", adminOnly, s.listTokens},
		{"DELETE", "/v1/tokens/{id}", adminOnly, s.revokeToken},
		{"GET", "/v1/event-types", tenantRead, s.listEventTypes},
		{"GET", "/v1/event-types/{name}", tenantRead, s.getEventType},
		{"PUT", "/v1/event-types/{name}", adminOnly, s.putEventType},
		{"DELETE", "/v1/event-types/{name}", adminOnly, s.deleteEventType},
		{"POST", "/v1/portal/sessions", tenantWrite, s.createPortalSession},
	}
}

// reply ends a handler: err for wrap to answer, or v as JSON with status.
func reply(w http.ResponseWriter, status int, v any, err error) error {
	if err != nil {
		return err
	}
	writeJSON(w, status, v)
	return nil
}

// onID answers a route on a bigint {id} with what op returns for it.
func onID[T any](w http.ResponseWriter, r *http.Request, op func(context.Context, int64) (T, error)) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	v, err := op(r.Context(), id)
	return reply(w, http.StatusOK, v, err)
}

// nonNil returns xs, or an empty slice for nil: a list answers [], not null.
func nonNil[T any](xs []T) []T {
	if xs == nil {
		return []T{}
	}
	return xs
}

// endpointRange reads the endpoint {id} of the route's path and decodes
// the JSON body into b, whose [since, until) range it returns (until nil
// when the body leaves it out); an id no endpoint can have is not found.
func endpointRange(w http.ResponseWriter, r *http.Request, b interface {
	parse() (time.Time, *time.Time, error)
}) (id string, since time.Time, until *time.Time, err error) {
	id = r.PathValue("id")
	if !outbox.ValidID(id) {
		return "", since, nil, outbox.ErrNotFound
	}
	if err = decodeBody(w, r, maxBody, false, b); err != nil {
		return "", since, nil, err
	}
	since, until, err = b.parse()
	return id, since, until, err
}

// listPage answers a filtered list route: the query's first error, or one
// page of list(f) as {key: [...], "next_cursor": ...}, the items an empty
// array rather than null and next_cursor left out on the last page.
func listPage[F, T any](w http.ResponseWriter, r *http.Request, q *query, key string, f F,
	list func(context.Context, F) ([]T, string, error)) error {
	if q.err != nil {
		return q.err
	}
	items, next, err := list(r.Context(), f)
	if err != nil {
		return err
	}
	body := map[string]any{key: nonNil(items)} // every key sorts before next_cursor, as the fields did
	if next != "" {
		body["next_cursor"] = next
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

// bodyTime parses a required RFC 3339 time from the body field named field.
func bodyTime(field string, s *string) (time.Time, error) {
	if s == nil {
		return time.Time{}, badField(field, "is required (an RFC 3339 time)")
	}
	t, err := time.Parse(time.RFC3339Nano, *s)
	if err != nil {
		return time.Time{}, badField(field, "must be an RFC 3339 time like 2024-05-01T12:00:00Z")
	}
	return t, nil
}

func (s *server) createEndpoint(w http.ResponseWriter, r *http.Request, p *principal) error {
	var in endpoint.Input
	if err := decodeBody(w, r, maxBody, false, &in); err != nil {
		return err
	}
	res, err := p.endpoints.Create(r.Context(), in)
	return reply(w, http.StatusCreated, res, err)
}

func (s *server) listEndpoints(w http.ResponseWriter, r *http.Request, p *principal) error {
	q := newQuery(r)
	f := outbox.EndpointFilter{Tenant: q.str("tenant"), Enabled: q.boolean("enabled"), Limit: q.limit(), After: q.cursor()}
	return listPage(w, r, q, "endpoints", f, p.store.ListEndpoints)
}

func (s *server) getEndpoint(w http.ResponseWriter, r *http.Request, p *principal) error {
	d, err := p.endpoints.Get(r.Context(), r.PathValue("id"))
	return reply(w, http.StatusOK, d, err)
}

func (s *server) updateEndpoint(w http.ResponseWriter, r *http.Request, p *principal) error {
	var patch endpoint.Patch
	if err := decodeBody(w, r, maxBody, false, &patch); err != nil {
		return err
	}
	res, err := p.endpoints.Update(r.Context(), r.PathValue("id"), patch)
	return reply(w, http.StatusOK, res, err)
}

func (s *server) deleteEndpoint(w http.ResponseWriter, r *http.Request, p *principal) error {
	if err := p.endpoints.Delete(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// rotateBody is the body of POST /v1/endpoints/{id}/rotate-secret.
type rotateBody struct {
	Secret *string `json:"secret"`
	Grace  *string `json:"grace"`
}

func (s *server) rotateSecret(w http.ResponseWriter, r *http.Request, p *principal) error {
	var b rotateBody
	if err := decodeBody(w, r, maxBody, true, &b); err != nil {
		return err
	}
	rot := endpoint.Rotation{Secret: b.Secret}
	if b.Grace != nil {
		d, err := endpoint.ParseGrace(*b.Grace)
		if err != nil {
			return err
		}
		rot.Grace = &d
	}
	e, err := p.endpoints.RotateSecret(r.Context(), r.PathValue("id"), rot)
	return reply(w, http.StatusOK, e, err)
}

// testBody is the optional body of POST /v1/endpoints/{id}/test.
type testBody struct {
	EventType string `json:"event_type"`
}

func (s *server) testEndpoint(w http.ResponseWriter, r *http.Request, p *principal) error {
	var b testBody
	if err := decodeBody(w, r, maxBody, true, &b); err != nil {
		return err
	}
	res, err := p.endpoints.TestEvent(r.Context(), r.PathValue("id"), b.EventType)
	return reply(w, http.StatusOK, res, err)
}

// timeRange is the body of POST /v1/endpoints/{id}/recover and the
// window of a backfill: since is required, until optional.
type timeRange struct {
	Since *string `json:"since"`
	Until *string `json:"until"`
}

// parse reads the range; until is nil when the body leaves it out.
func (t timeRange) parse() (since time.Time, until *time.Time, err error) {
	if since, err = bodyTime("since", t.Since); err != nil || t.Until == nil {
		return since, nil, err
	}
	u, err := bodyTime("until", t.Until)
	return since, &u, err
}

func (s *server) recoverEndpoint(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, since, u, err := endpointRange(w, r, &timeRange{})
	if err != nil {
		return err
	}
	until := time.Now()
	if u != nil {
		until = *u
	}
	if !until.After(since) {
		return badField("until", "must be after since")
	}
	n, err := p.store.RecoverEndpoint(r.Context(), id, since, until)
	return reply(w, http.StatusOK, map[string]int{"requeued": n}, err)
}

func (s *server) listEvents(w http.ResponseWriter, r *http.Request, p *principal) error {
	q := newQuery(r)
	f := outbox.EventFilter{Tenant: q.str("tenant"), Type: q.str("type"), Since: q.time("since"), Until: q.time("until"),
		Limit: q.limit(), After: q.cursor()}
	return listPage(w, r, q, "events", f, p.store.ListEvents)
}

type eventWithDeliveries struct {
	outbox.StoredEvent
	Deliveries []outbox.Delivery `json:"deliveries"`
}

func (s *server) getEvent(w http.ResponseWriter, r *http.Request, p *principal) error {
	return onID(w, r, func(ctx context.Context, id int64) (eventWithDeliveries, error) {
		ev, err := p.store.GetEvent(ctx, id)
		if err != nil {
			return eventWithDeliveries{}, err
		}
		ds, err := p.store.EventDeliveries(ctx, id)
		return eventWithDeliveries{StoredEvent: ev, Deliveries: nonNil(ds)}, err
	})
}

type publishBody struct {
	Type           string          `json:"type"`
	Tenant         string          `json:"tenant"`
	Payload        json.RawMessage `json:"payload"`
	EndpointID     string          `json:"endpoint_id"`
	IdempotencyKey string          `json:"idempotency_key"`
	OrderingKey    string          `json:"ordering_key"`
}

type publishResult struct {
	ID        int64  `json:"id"`
	WebhookID string `json:"webhook_id"`
	Duplicate bool   `json:"duplicate"`
}

func (s *server) publishEvent(w http.ResponseWriter, r *http.Request, p *principal) error {
	var b publishBody
	if err := decodeBody(w, r, int64(s.o.MaxPayloadBytes)+maxBody, false, &b); err != nil {
		return err
	}
	ev := outbox.Event{Type: b.Type, Tenant: b.Tenant, Payload: b.Payload, EndpointID: b.EndpointID,
		IdempotencyKey: b.IdempotencyKey, OrderingKey: b.OrderingKey}
	if err := ev.Validate(s.o.MaxPayloadBytes); err != nil {
		return err
	}
	if len(b.Tenant) > outbox.MaxTenantLen {
		return badField("tenant", "is %d bytes, at most %d allowed", len(b.Tenant), outbox.MaxTenantLen)
	}
	if err := firstErr(noNUL("tenant", b.Tenant), noNUL("idempotency_key", b.IdempotencyKey), noNUL("ordering_key", b.OrderingKey)); err != nil {
		return err
	}
	if jsonHasNUL(b.Payload) {
		return badField("payload", `must not contain \u0000 (PostgreSQL cannot store it)`)
	}
	if ev.EndpointID != "" {
		// endpoint_id narrows the fan-out to one of the tenant's endpoints
		// subscribed to the type; it never reaches another. Another
		// tenant's endpoint reads as none, confirming nothing.
		ep, err := p.store.GetEndpoint(r.Context(), ev.EndpointID)
		switch {
		case errors.Is(err, outbox.ErrNotFound) || err == nil && ep.Tenant != ev.Tenant:
			return badField("endpoint_id", "tenant %q has no endpoint with this id", ev.Tenant)
		case err != nil:
			return err
		case len(ep.EventTypes) > 0 && !slices.Contains(ep.EventTypes, ev.Type):
			return badField("endpoint_id", "the endpoint is not subscribed to event type %q", ev.Type)
		}
	}
	res, err := outbox.Enqueue(r.Context(), p.store.Pool(), ev, outbox.Options{Schema: p.store.Schema(), MaxPayloadBytes: s.o.MaxPayloadBytes})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, publishResult{ID: res.ID, WebhookID: res.WebhookID, Duplicate: res.Duplicate})
	return nil
}

func (s *server) listDeliveries(w http.ResponseWriter, r *http.Request, p *principal) error {
	q := newQuery(r)
	f := outbox.DeliveryFilter{State: q.str("state"), EndpointID: q.str("endpoint_id"), EventID: q.id("event_id"),
		Tenant: q.str("tenant"), EventType: q.str("event_type"), Since: q.time("since"), Until: q.time("until"),
		Limit: q.limit(), After: q.cursor()}
	return listPage(w, r, q, "deliveries", f, p.store.ListDeliveries)
}

func (s *server) getDelivery(w http.ResponseWriter, r *http.Request, p *principal) error {
	return onID(w, r, p.store.GetDelivery)
}

func (s *server) listAttempts(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	as, err := p.store.ListAttempts(r.Context(), id)
	return reply(w, http.StatusOK, map[string][]outbox.Attempt{"attempts": as}, err)
}

func (s *server) retryDelivery(w http.ResponseWriter, r *http.Request, p *principal) error {
	return onID(w, r, p.store.RetryDelivery)
}

func (s *server) cancelDelivery(w http.ResponseWriter, r *http.Request, p *principal) error {
	return onID(w, r, p.store.CancelDelivery)
}

func (s *server) blockedKeys(w http.ResponseWriter, r *http.Request, p *principal) error {
	id := r.PathValue("id")
	// Another tenant's endpoint is not found, like any other route.
	if _, err := p.store.GetEndpoint(r.Context(), id); err != nil {
		return err
	}
	keys, err := p.store.BlockedKeys(r.Context(), id)
	return reply(w, http.StatusOK, map[string]any{"blocked_keys": nonNil(keys)}, err)
}
