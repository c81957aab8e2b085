package httpapi

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/hookrelay/hookrelay/outbox"
)

// The routes of tenant access: tokens, the event-type catalog, and the
// answers to "where is my event?" (trace, replay, backfill, attempts).

// tokenBody is the body of POST /v1/tokens.
type tokenBody struct {
	Tenant      string  `json:"tenant"`
	ReadOnly    bool    `json:"read_only"`
	ExpiresIn   *string `json:"expires_in"`
	Description string  `json:"description"`
}

func (s *server) createToken(w http.ResponseWriter, r *http.Request, p *principal) error {
	var b tokenBody
	if err := decodeBody(w, r, maxBody, false, &b); err != nil {
		return err
	}
	in := outbox.TokenInput{Tenant: b.Tenant, ReadOnly: b.ReadOnly, Description: b.Description}
	if b.ExpiresIn != nil {
		d, err := time.ParseDuration(*b.ExpiresIn)
		if err != nil {
			return badField("expires_in", `must be a duration like "720h"`)
		}
		if d <= 0 {
			return badField("expires_in", `must be positive; leave it out for a token that does not expire`)
		}
		in.ExpiresIn = d
	}
	t, err := p.store.CreateToken(r.Context(), in)
	return reply(w, http.StatusCreated, t, err)
}

func (s *server) listTokens(w http.ResponseWriter, r *http.Request, p *principal) error {
	q := newQuery(r)
	tenant := q.str("tenant")
	if q.err != nil {
		return q.err
	}
	ts, err := p.store.ListTokens(r.Context(), tenant)
	return reply(w, http.StatusOK, map[string][]outbox.Token{"tokens": ts}, err)
}

func (s *server) revokeToken(w http.ResponseWriter, r *http.Request, p *principal) error {
	t, err := p.store.RevokeToken(r.Context(), r.PathValue("id"))
	return reply(w, http.StatusOK, t, err)
}

func (s *server) listEventTypes(w http.ResponseWriter, r *http.Request, p *principal) error {
	ets, err := p.store.ListEventTypes(r.Context())
	return reply(w, http.StatusOK, map[string][]outbox.EventType{"event_types": ets}, err)
}

func (s *server) getEventType(w http.ResponseWriter, r *http.Request, p *principal) error {
	et, err := p.store.GetEventType(r.Context(), r.PathValue("name"))
	return reply(w, http.StatusOK, et, err)
}

// eventTypeBody is the body of PUT /v1/event-types/{name}.
type eventTypeBody struct {
	Description string          `json:"description"`
	Example     json.RawMessage `json:"example"`
	Schema      json.RawMessage `json:"schema"`
	Deprecated  bool            `json:"deprecated"`
}

func (s *server) putEventType(w http.ResponseWriter, r *http.Request, p *principal) error {
	var b eventTypeBody
	if err := decodeBody(w, r, 3*outbox.MaxSchemaBytes, false, &b); err != nil {
		return err
	}
	et, created, err := p.store.PutEventType(r.Context(), outbox.EventType{Name: r.PathValue("name"), Description: b.Description,
		Example: b.Example, Schema: b.Schema, Deprecated: b.Deprecated})
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, et)
	return nil
}

func (s *server) deleteEventType(w http.ResponseWriter, r *http.Request, p *principal) error {
	if err := p.store.DeleteEventType(r.Context(), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *server) traceEvent(w http.ResponseWriter, r *http.Request, p *principal) error {
	return onID(w, r, p.store.TraceEvent)
}

// replayBody is the optional body of POST /v1/events/{id}/replay.
type replayBody struct {
	EndpointID string `json:"endpoint_id"`
}

func (s *server) replayEvent(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	var b replayBody
	if err := decodeBody(w, r, maxBody, true, &b); err != nil {
		return err
	}
	res, err := p.store.ReplayEvent(r.Context(), id, b.EndpointID)
	return reply(w, http.StatusOK, res, err)
}

// backfillBody is the body of POST /v1/endpoints/{id}/backfill.
type backfillBody struct {
	timeRange
	EventTypes []string `json:"event_types"`
}

func (s *server) backfillEndpoint(w http.ResponseWriter, r *http.Request, p *principal) error {
	var b backfillBody
	id, since, until, err := endpointRange(w, r, &b)
	if err != nil {
		return err
	}
	res, err := p.endpoints.Backfill(r.Context(), id, outbox.BackfillInput{Since: since, Until: until, EventTypes: b.EventTypes})
	return reply(w, http.StatusOK, res, err)
}

func (s *server) listAllAttempts(w http.ResponseWriter, r *http.Request, p *principal) error {
	q := newQuery(r)
	f := outbox.AttemptFilter{EndpointID: q.str("endpoint_id"), DeliveryID: q.id("delivery_id"), Tenant: q.str("tenant"),
		EventType: q.str("event_type"), Outcome: q.str("outcome"), Since: q.time("since"), Until: q.time("until"),
		Limit: q.limit(), After: q.cursor()}
	return listPage(w, r, q, "attempts", f, p.store.ListAttemptsFiltered)
}
