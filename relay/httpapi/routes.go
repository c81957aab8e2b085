package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/signature"
)

// route is one admin API route; the table both registers the routes and is
// checked against the OpenAPI document.
type route struct {
	method  string
	pattern string
	handle  func(w http.ResponseWriter, r *http.Request) error
}

func (s *server) routes() []route {
	return []route{
		{"GET", "/v1/openapi.json", s.openAPI},
		{"GET", "/v1/endpoints", s.listEndpoints},
		{"POST", "/v1/endpoints", s.createEndpoint},
		{"GET", "/v1/endpoints/{id}", s.getEndpoint},
		{"PATCH", "/v1/endpoints/{id}", s.updateEndpoint},
		{"DELETE", "/v1/endpoints/{id}", s.deleteEndpoint},
		{"POST", "/v1/endpoints/{id}/rotate-secret", s.rotateSecret},
		{"POST", "/v1/endpoints/{id}/test", s.testEndpoint},
		{"POST", "/v1/endpoints/{id}/recover", s.recoverEndpoint},
		{"GET", "/v1/events", s.listEvents},
		{"POST", "/v1/events", s.publishEvent},
		{"GET", "/v1/events/{id}", s.getEvent},
		{"GET", "/v1/deliveries", s.listDeliveries},
		{"GET", "/v1/deliveries/{id}", s.getDelivery},
		{"GET", "/v1/deliveries/{id}/attempts", s.listAttempts},
		{"POST", "/v1/deliveries/{id}/retry", s.retryDelivery},
	}
}

// maxGrace bounds the grace window of a rotated secret.
const maxGrace = 90 * 24 * time.Hour

type createEndpointBody struct {
	URL         string   `json:"url"`
	Tenant      string   `json:"tenant"`
	EventTypes  []string `json:"event_types"`
	Description string   `json:"description"`
	Secret      string   `json:"secret"`
	MaxInFlight int      `json:"max_in_flight"`
	RateLimit   int      `json:"rate_limit"`
}

func (s *server) createEndpoint(w http.ResponseWriter, r *http.Request) error {
	var b createEndpointBody
	if err := decodeBody(w, r, maxBody, false, &b); err != nil {
		return err
	}
	if err := firstErr(noNUL("tenant", b.Tenant), noNUL("description", b.Description)); err != nil {
		return err
	}
	warning, err := s.o.Sender.CheckEndpointURL(r.Context(), b.URL)
	if err != nil {
		return err
	}
	secret, err := s.secretOrNew(b.Secret, b.Secret != "")
	if err != nil {
		return err
	}
	e, err := s.o.Store.CreateEndpoint(r.Context(), outbox.EndpointInput{
		Tenant: b.Tenant, URL: b.URL, Description: b.Description, EventTypes: b.EventTypes,
		Secret: secret, MaxInFlight: b.MaxInFlight, RateLimit: b.RateLimit,
	}, s.o.MaxEndpointsPerTenant)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, withWarning(e, warning))
	return nil
}

// endpointWithWarnings is an endpoint as create and update answer it, with
// "warnings" when its URL's host could not be looked up (see
// relay.Sender.CheckEndpointURL).
type endpointWithWarnings struct {
	outbox.Endpoint
	Warnings []string `json:"warnings,omitempty"`
}

func withWarning(e outbox.Endpoint, warning string) endpointWithWarnings {
	out := endpointWithWarnings{Endpoint: e}
	if warning != "" {
		out.Warnings = []string{warning}
	}
	return out
}

// secretOrNew validates a given secret or generates one.
func (s *server) secretOrNew(given string, isGiven bool) (string, error) {
	if !isGiven {
		sec, err := signature.GenerateSecret()
		if err != nil {
			return "", err
		}
		return sec, nil
	}
	if _, err := signature.ParseSecret(given); err != nil {
		return "", badField("secret", "%v", err)
	}
	return given, nil
}

type endpointList struct {
	Endpoints  []outbox.Endpoint `json:"endpoints"`
	NextCursor string            `json:"next_cursor,omitempty"`
}

func (s *server) listEndpoints(w http.ResponseWriter, r *http.Request) error {
	q := newQuery(r)
	f := outbox.EndpointFilter{Tenant: q.str("tenant"), Enabled: q.boolean("enabled"), Limit: q.limit(), After: q.cursor()}
	if q.err != nil {
		return q.err
	}
	eps, next, err := s.o.Store.ListEndpoints(r.Context(), f)
	if err != nil {
		return err
	}
	if eps == nil {
		eps = []outbox.Endpoint{}
	}
	writeJSON(w, http.StatusOK, endpointList{Endpoints: eps, NextCursor: next})
	return nil
}

func (s *server) getEndpoint(w http.ResponseWriter, r *http.Request) error {
	e, err := s.o.Store.GetEndpoint(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, e)
	return nil
}

type updateEndpointBody struct {
	URL         *string   `json:"url"`
	Description *string   `json:"description"`
	EventTypes  *[]string `json:"event_types"`
	Enabled     *bool     `json:"enabled"`
	MaxInFlight *int      `json:"max_in_flight"`
	RateLimit   *int      `json:"rate_limit"`
}

func (s *server) updateEndpoint(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if !outbox.ValidID(id) {
		return outbox.ErrNotFound
	}
	var b updateEndpointBody
	if err := decodeBody(w, r, maxBody, false, &b); err != nil {
		return err
	}
	if err := noNUL("description", deref(b.Description)); err != nil {
		return err
	}
	if b.EventTypes != nil && *b.EventTypes == nil {
		*b.EventTypes = []string{}
	}
	var warning string
	if b.URL != nil {
		var err error
		if warning, err = s.o.Sender.CheckEndpointURL(r.Context(), *b.URL); err != nil {
			return err
		}
	}
	var wasEnabled bool
	if b.Enabled != nil && s.o.Ops != nil {
		before, err := s.o.Store.GetEndpoint(r.Context(), id)
		if err != nil {
			return err
		}
		wasEnabled = before.Enabled
	}
	e, err := s.o.Store.UpdateEndpoint(r.Context(), id, outbox.EndpointPatch{
		URL: b.URL, Description: b.Description, EventTypes: b.EventTypes, Enabled: b.Enabled,
		MaxInFlight: b.MaxInFlight, RateLimit: b.RateLimit,
	})
	if err != nil {
		return err
	}
	if b.Enabled != nil && s.o.Ops != nil && wasEnabled != e.Enabled {
		if e.Enabled {
			s.o.Ops.EndpointEnabled(r.Context(), e)
		} else {
			s.o.Ops.OnDisabled(r.Context(), e.ID, e.DisabledReason)
		}
	}
	writeJSON(w, http.StatusOK, withWarning(e, warning))
	return nil
}

func (s *server) deleteEndpoint(w http.ResponseWriter, r *http.Request) error {
	if err := s.o.Store.DeleteEndpoint(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type rotateBody struct {
	Secret *string `json:"secret"`
	Grace  *string `json:"grace"`
}

func (s *server) rotateSecret(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if !outbox.ValidID(id) {
		return outbox.ErrNotFound
	}
	var b rotateBody
	if err := decodeBody(w, r, maxBody, true, &b); err != nil {
		return err
	}
	grace := s.o.RotationGrace
	if b.Grace != nil {
		d, err := time.ParseDuration(*b.Grace)
		if err != nil || d < 0 || d > maxGrace {
			return badField("grace", `must be a duration from "0s" to "2160h", like "24h"`)
		}
		grace = d
	}
	secret, err := s.secretOrNew(deref(b.Secret), b.Secret != nil)
	if err != nil {
		return err
	}
	e, err := s.o.Store.RotateSecret(r.Context(), id, secret, grace)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, e)
	return nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func (s *server) testEndpoint(w http.ResponseWriter, r *http.Request) error {
	if s.o.Sender == nil {
		return &apiError{status: http.StatusServiceUnavailable, code: "unavailable", msg: "test sends are not configured on this server"}
	}
	res, err := relay.SendTest(r.Context(), s.o.Store, s.o.Sender, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

type recoverBody struct {
	Since *string `json:"since"`
	Until *string `json:"until"`
}

func (s *server) recoverEndpoint(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if !outbox.ValidID(id) {
		return outbox.ErrNotFound
	}
	var b recoverBody
	if err := decodeBody(w, r, maxBody, false, &b); err != nil {
		return err
	}
	if b.Since == nil {
		return badField("since", "is required (an RFC 3339 time)")
	}
	since, err := time.Parse(time.RFC3339Nano, *b.Since)
	if err != nil {
		return badField("since", "must be an RFC 3339 time like 2024-05-01T12:00:00Z")
	}
	until := time.Now()
	if b.Until != nil {
		if until, err = time.Parse(time.RFC3339Nano, *b.Until); err != nil {
			return badField("until", "must be an RFC 3339 time like 2024-05-01T12:00:00Z")
		}
	}
	if !until.After(since) {
		return badField("until", "must be after since")
	}
	n, err := s.o.Store.RecoverEndpoint(r.Context(), id, since, until)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]int{"requeued": n})
	return nil
}

type eventList struct {
	Events     []outbox.StoredEvent `json:"events"`
	NextCursor string               `json:"next_cursor,omitempty"`
}

func (s *server) listEvents(w http.ResponseWriter, r *http.Request) error {
	q := newQuery(r)
	f := outbox.EventFilter{Tenant: q.str("tenant"), Type: q.str("type"), Since: q.time("since"), Until: q.time("until"),
		Limit: q.limit(), After: q.cursor()}
	if q.err != nil {
		return q.err
	}
	evs, next, err := s.o.Store.ListEvents(r.Context(), f)
	if err != nil {
		return err
	}
	if evs == nil {
		evs = []outbox.StoredEvent{}
	}
	writeJSON(w, http.StatusOK, eventList{Events: evs, NextCursor: next})
	return nil
}

type eventWithDeliveries struct {
	outbox.StoredEvent
	Deliveries []outbox.Delivery `json:"deliveries"`
}

func (s *server) getEvent(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	ev, err := s.o.Store.GetEvent(r.Context(), id)
	if err != nil {
		return err
	}
	ds, err := s.o.Store.EventDeliveries(r.Context(), id)
	if err != nil {
		return err
	}
	if ds == nil {
		ds = []outbox.Delivery{}
	}
	writeJSON(w, http.StatusOK, eventWithDeliveries{StoredEvent: ev, Deliveries: ds})
	return nil
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

func (s *server) publishEvent(w http.ResponseWriter, r *http.Request) error {
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
		ep, err := s.o.Store.GetEndpoint(r.Context(), ev.EndpointID)
		switch {
		case errors.Is(err, outbox.ErrNotFound) || err == nil && ep.Tenant != ev.Tenant:
			return badField("endpoint_id", "tenant %q has no endpoint with this id", ev.Tenant)
		case err != nil:
			return err
		case len(ep.EventTypes) > 0 && !slices.Contains(ep.EventTypes, ev.Type):
			return badField("endpoint_id", "the endpoint is not subscribed to event type %q", ev.Type)
		}
	}
	res, err := outbox.Enqueue(r.Context(), s.o.Store.Pool(), ev, outbox.Options{Schema: s.o.Store.Schema(), MaxPayloadBytes: s.o.MaxPayloadBytes})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, publishResult{ID: res.ID, WebhookID: res.WebhookID, Duplicate: res.Duplicate})
	return nil
}

type deliveryList struct {
	Deliveries []outbox.Delivery `json:"deliveries"`
	NextCursor string            `json:"next_cursor,omitempty"`
}

func (s *server) listDeliveries(w http.ResponseWriter, r *http.Request) error {
	q := newQuery(r)
	f := outbox.DeliveryFilter{State: q.str("state"), EndpointID: q.str("endpoint_id"), EventID: q.id("event_id"),
		Limit: q.limit(), After: q.cursor()}
	if q.err != nil {
		return q.err
	}
	ds, next, err := s.o.Store.ListDeliveries(r.Context(), f)
	if err != nil {
		return err
	}
	if ds == nil {
		ds = []outbox.Delivery{}
	}
	writeJSON(w, http.StatusOK, deliveryList{Deliveries: ds, NextCursor: next})
	return nil
}

func (s *server) getDelivery(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	d, err := s.o.Store.GetDelivery(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

func (s *server) listAttempts(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	as, err := s.o.Store.ListAttempts(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string][]outbox.Attempt{"attempts": as})
	return nil
}

func (s *server) retryDelivery(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	d, err := s.o.Store.RetryDelivery(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}
