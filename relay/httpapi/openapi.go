package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
)

// obj is a JSON object in the OpenAPI document.
type obj = map[string]any

func ref(name string) obj { return obj{"$ref": "#/components/schemas/" + name} }

func str(desc string) obj { return obj{"type": "string", "description": desc} }

func arrayOf(items obj) obj { return obj{"type": "array", "items": items} }

func jsonBody(schema obj, required bool) obj {
	return obj{"required": required, "content": obj{"application/json": obj{"schema": schema}}}
}

func answer(desc string, schema obj) obj {
	r := obj{"description": desc}
	if schema != nil {
		r["content"] = obj{"application/json": obj{"schema": schema}}
	}
	return r
}

func errRef(name string) obj { return obj{"$ref": "#/components/responses/" + name} }

func queryParam(name, desc string, schema obj) obj {
	return obj{"name": name, "in": "query", "required": false, "description": desc, "schema": schema}
}

var pathIDUUID = obj{"name": "id", "in": "path", "required": true, "description": "Endpoint id.", "schema": obj{"type": "string", "format": "uuid"}}
var pathIDInt = obj{"name": "id", "in": "path", "required": true, "schema": obj{"type": "integer", "format": "int64", "minimum": 1}}

var pageParams = []any{
	queryParam("limit", "Page size, 1–500 (default 50).", obj{"type": "integer", "minimum": 1, "maximum": 500}),
	queryParam("cursor", "The next_cursor of the previous page.", obj{"type": "string"}),
}

func op(summary string, params []any, body obj, responses obj) obj {
	o := obj{"summary": summary, "responses": responses}
	if len(params) > 0 {
		o["parameters"] = params
	}
	if body != nil {
		o["requestBody"] = body
	}
	// Every operation can answer these.
	responses["401"] = errRef("Unauthorized")
	responses["403"] = errRef("Forbidden")
	return o
}

// idPath is the path item of a route under one {id} path parameter with
// one operation, method.
func idPath(id any, method string, operation obj) obj {
	return obj{"parameters": []any{id}, method: operation}
}

func with(base []any, more ...any) []any { return append(append([]any{}, base...), more...) }

// openAPIDoc builds the OpenAPI 3.1 document of the admin API.
func openAPIDoc() obj {
	orderingOnDead := obj{"type": "string", "enum": []string{"skip", "block"},
		"description": "What a dead delivery does to the later deliveries of its ordering key: skip lets the next go (default), block holds the key until the dead one is retried or cancelled."}
	endpoint := obj{"type": "object", "required": []string{"id", "tenant", "url", "event_types", "enabled", "created_at", "updated_at"},
		"properties": obj{
			"id": obj{"type": "string", "format": "uuid"}, "tenant": str(""), "url": obj{"type": "string", "format": "uri"},
			"description": str(""), "event_types": arrayOf(str("Event types to receive; empty means all.")),
			"enabled": obj{"type": "boolean"}, "disabled_reason": str(""), "disabled_at": obj{"type": "string", "format": "date-time"},
			"max_in_flight": obj{"type": "integer"}, "rate_limit": obj{"type": "integer"},
			"ordering_on_dead": orderingOnDead,
			"last_success_at":  obj{"type": "string", "format": "date-time"}, "last_failure_at": obj{"type": "string", "format": "date-time"},
			"consecutive_failures": obj{"type": "integer"},
			"created_at":           obj{"type": "string", "format": "date-time"}, "updated_at": obj{"type": "string", "format": "date-time"},
			"secret":   str("The signing secret (whsec_...); only in the answers of create and rotate-secret."),
			"warnings": arrayOf(str("Only in the answers of create and of an update of url: e.g. the URL's host could not be looked up (the endpoint was stored; every delivery checks the address it connects to).")),
		}}
	delivery := obj{"type": "object", "required": []string{"id", "event_id", "endpoint_id", "state", "attempts", "held", "created_at", "updated_at"},
		"properties": obj{
			"id": obj{"type": "integer", "format": "int64"}, "event_id": obj{"type": "integer", "format": "int64"},
			"endpoint_id": obj{"type": "string", "format": "uuid"},
			"state":       obj{"type": "string", "enum": []string{"pending", "in_flight", "delivered", "dead", "cancelled"}},
			"attempts":    obj{"type": "integer"}, "next_attempt_at": obj{"type": "string", "format": "date-time"},
			"held":        obj{"type": "boolean", "description": "Held while the endpoint is disabled."},
			"last_status": obj{"type": "integer"}, "last_error": str(""), "last_attempt_at": obj{"type": "string", "format": "date-time"},
			"created_at": obj{"type": "string", "format": "date-time"}, "updated_at": obj{"type": "string", "format": "date-time"},
			"finished_at": obj{"type": "string", "format": "date-time"},
			"event_type":  str("The event's type."), "webhook_id": str("The event's webhook-id."), "tenant": str("The event's tenant."),
			"ordering_key": str("The event's ordering key."),
			"test":         obj{"type": "boolean", "description": "A test send (the Test button), tried once."},
			"replays":      obj{"type": "integer", "description": "How many times the delivery was replayed; each replay starts a new attempt series."},
			"replayed_at":  obj{"type": "string", "format": "date-time", "description": "When the last replay started; attempts before it belong to earlier series."},
		}}
	event := obj{"type": "object", "required": []string{"id", "webhook_id", "type", "tenant", "payload", "created_at"},
		"properties": obj{
			"id": obj{"type": "integer", "format": "int64"}, "webhook_id": str("The webhook-id header receivers see."),
			"type": str(""), "tenant": str(""), "payload": obj{"description": "Any JSON value."},
			"endpoint_id": obj{"type": "string", "format": "uuid"}, "idempotency_key": str(""), "ordering_key": str(""),
			"created_at": obj{"type": "string", "format": "date-time"}, "dispatched_at": obj{"type": "string", "format": "date-time"},
			"delivery_count": obj{"type": "integer"},
			"dispatch_error": str("Why the event reached no endpoint (its endpoint_id names none of the tenant's endpoints subscribed to its type), or, while dispatched_at is absent, why the fan-out set it aside."),
			"test":           obj{"type": "boolean", "description": "A test send's event."},
		}}
	eventDetail := obj{"allOf": []any{ref("Event"), obj{"type": "object", "required": []string{"deliveries"},
		"properties": obj{"deliveries": arrayOf(ref("Delivery"))}}}}
	attempt := obj{"type": "object", "required": []string{"id", "delivery_id", "attempt", "started_at", "duration_ms", "outcome"},
		"properties": obj{
			"id": obj{"type": "integer", "format": "int64"}, "delivery_id": obj{"type": "integer", "format": "int64"},
			"attempt": obj{"type": "integer"}, "started_at": obj{"type": "string", "format": "date-time"},
			"duration_ms": obj{"type": "integer"}, "status_code": obj{"type": "integer"},
			"outcome": str("delivered, retry or dead."), "error_class": str("e.g. timeout, connection_refused, http_status."),
			"error": str(""), "response_excerpt": str("The start of the response body (capped)."),
			"event_id":    obj{"type": "integer", "format": "int64", "description": "In GET /v1/attempts."},
			"endpoint_id": obj{"type": "string", "format": "uuid", "description": "In GET /v1/attempts."},
			"event_type":  str("In GET /v1/attempts."), "test": obj{"type": "boolean", "description": "In GET /v1/attempts: a test send's attempt."},
		}}
	errorSchema := obj{"type": "object", "required": []string{"error"}, "properties": obj{"error": obj{
		"type": "object", "required": []string{"code", "message"},
		"properties": obj{"code": str("Machine-readable code."), "message": str(""), "field": str("The offending field, for validation errors.")},
	}}}
	page := func(key, item string) obj {
		return obj{"type": "object", "required": []string{key}, "properties": obj{
			key: arrayOf(ref(item)), "next_cursor": str("Cursor of the next page; absent on the last page."),
		}}
	}
	createBody := obj{"type": "object", "required": []string{"url"}, "additionalProperties": false, "properties": obj{
		"url": obj{"type": "string", "format": "uri", "maxLength": 2048}, "tenant": str(""), "description": str(""),
		"event_types": arrayOf(obj{"type": "string"}), "secret": str("whsec_...; generated when absent."),
		"max_in_flight": obj{"type": "integer", "minimum": 0}, "rate_limit": obj{"type": "integer", "minimum": 0},
		"ordering_on_dead": orderingOnDead,
	}}
	updateBody := obj{"type": "object", "additionalProperties": false, "properties": obj{
		"url": obj{"type": "string", "format": "uri"}, "description": str(""), "event_types": arrayOf(obj{"type": "string"}),
		"enabled":          obj{"type": "boolean", "description": "Enabling releases the deliveries held while disabled."},
		"max_in_flight":    obj{"type": "integer", "minimum": 0, "description": "0 clears."},
		"rate_limit":       obj{"type": "integer", "minimum": 0, "description": "0 clears."},
		"ordering_on_dead": orderingOnDead,
	}}
	rotateBody := obj{"type": "object", "additionalProperties": false, "properties": obj{
		"secret": str("whsec_...; generated when absent."),
		"grace":  str(`How long the old secret keeps signing, a Go duration like "24h" (default 24h); "0s" stops it now.`),
	}}
	recoverBody := obj{"type": "object", "required": []string{"since"}, "additionalProperties": false, "properties": obj{
		"since": obj{"type": "string", "format": "date-time"}, "until": obj{"type": "string", "format": "date-time", "description": "Default: now."},
	}}
	publishBody := obj{"type": "object", "required": []string{"type", "payload"}, "additionalProperties": false, "properties": obj{
		"type": str("Event type: letters, digits, _ . -"), "tenant": str(""), "payload": obj{"description": "Any JSON value."},
		"endpoint_id": obj{"type": "string", "format": "uuid"}, "idempotency_key": str("Unique per tenant."), "ordering_key": str(""),
	}}
	testResult := obj{"type": "object", "required": []string{"webhook_id", "event_type", "delivered", "latency_ms", "event_id", "delivery_id"}, "properties": obj{
		"webhook_id": str(""), "event_type": str("The type sent: the body's, else the first of the endpoint's types with a catalog example, else hookrelay.test."),
		"delivered": obj{"type": "boolean"}, "status_code": obj{"type": "integer"},
		"latency_ms": obj{"type": "integer"}, "error_class": str(""), "error": str(""), "response": str("Response excerpt."),
		"event_id":    obj{"type": "integer", "format": "int64", "description": "The test's event in the delivery log (marked test)."},
		"delivery_id": obj{"type": "integer", "format": "int64", "description": "The test's delivery in the endpoint's delivery log."},
	}}
	testBody := obj{"type": "object", "additionalProperties": false, "properties": obj{
		"event_type": str("The catalog type whose example to send (default: the first of the endpoint's types with an example)."),
	}}
	window := obj{"type": "object", "required": []string{"attempts", "succeeded", "success_rate", "p95_latency_ms"}, "properties": obj{
		"attempts":  obj{"type": "integer", "description": "Attempts started in the window (test sends excluded)."},
		"succeeded": obj{"type": "integer"}, "success_rate": obj{"type": []string{"number", "null"}},
		"p95_latency_ms": obj{"type": []string{"integer", "null"}},
		"sampled":        obj{"type": "boolean", "description": "The figures are those of the newest 10,000 attempts of the window."},
	}}
	health := obj{"type": "object", "required": []string{"last_hour", "last_day", "last_error", "consecutive_failures", "auto_disable"}, "properties": obj{
		"last_hour": window, "last_day": window,
		"last_error": obj{"type": []string{"object", "null"}, "properties": obj{
			"at": obj{"type": "string", "format": "date-time"}, "delivery_id": obj{"type": "integer", "format": "int64"},
			"status_code": obj{"type": "integer"}, "error_class": str(""), "error": str(""),
		}},
		"consecutive_failures": obj{"type": "integer"},
		"auto_disable": obj{"type": "object", "required": []string{"state"}, "properties": obj{
			"state": obj{"type": "string", "enum": []string{"off", "healthy", "failing", "due", "disabled"}},
			"after": str("HOOKRELAY_DISABLE_AFTER."), "failures_threshold": obj{"type": "integer"},
			"disables_at":     obj{"type": "string", "format": "date-time", "description": "When it is disabled if it keeps failing."},
			"disabled_reason": str(""), "disabled_at": obj{"type": "string", "format": "date-time"},
		}},
	}}
	endpointDetail := obj{"allOf": []any{ref("Endpoint"), obj{"type": "object", "required": []string{"health"},
		"properties": obj{"health": health}}}}
	token := obj{"type": "object", "required": []string{"id", "tenant", "read_only", "description", "expires_at", "created_at"}, "properties": obj{
		"id": obj{"type": "string", "format": "uuid"}, "tenant": str(""), "read_only": obj{"type": "boolean"}, "description": str(""),
		"expires_at": obj{"type": []string{"string", "null"}, "format": "date-time", "description": "null: does not expire."},
		"revoked_at": obj{"type": "string", "format": "date-time"}, "created_at": obj{"type": "string", "format": "date-time"},
		"token": str("The token (hrt_...), only in the answer of POST /v1/tokens: it is stored hashed and shown once."),
	}}
	tokenBody := obj{"type": "object", "required": []string{"tenant"}, "additionalProperties": false, "properties": obj{
		"tenant": str("The tenant the token acts for."), "read_only": obj{"type": "boolean", "description": "403 on every write."},
		"expires_in":  str(`A Go duration like "720h"; absent: the token does not expire.`),
		"description": str(""),
	}}
	eventType := obj{"type": "object", "required": []string{"name", "description", "deprecated", "created_at", "updated_at"}, "properties": obj{
		"name": str(""), "description": str(""), "example": obj{"description": "A realistic payload; test sends carry it."},
		"schema":     obj{"type": "object", "description": "A JSON Schema (2020-12 unless it says otherwise) every payload of the type must match (POST /v1/events and outbox.Enqueue; plain SQL is not checked)."},
		"deprecated": obj{"type": "boolean"}, "created_at": obj{"type": "string", "format": "date-time"}, "updated_at": obj{"type": "string", "format": "date-time"},
	}}
	eventTypeBody := obj{"type": "object", "additionalProperties": false, "properties": obj{
		"description": str(""), "example": obj{"description": "Must match schema when both are given."},
		"schema": obj{"type": "object"}, "deprecated": obj{"type": "boolean"},
	}}
	trace := obj{"type": "object", "required": []string{"event", "endpoints"}, "properties": obj{
		"event": ref("Event"),
		"endpoints": arrayOf(obj{"type": "object", "required": []string{"endpoint_id", "enabled", "matched"}, "properties": obj{
			"endpoint_id": obj{"type": "string", "format": "uuid"}, "url": str(""), "enabled": obj{"type": "boolean"},
			"matched": obj{"type": "boolean", "description": "The event has a delivery to the endpoint."},
			"reason": obj{"type": "string", "enum": []string{"event_type_not_subscribed", "targeted_at_another_endpoint", "endpoint_created_after_event",
				"subscription_changed_after_event", "event_not_fanned_out_yet", "endpoint_disabled", "endpoint_deleted"}},
			"detail":   str("The reason in a sentence (since when an endpoint is disabled, and so on)."),
			"delivery": ref("Delivery"), "attempts": arrayOf(ref("Attempt")),
		}}),
	}}
	replayBody := obj{"type": "object", "additionalProperties": false, "properties": obj{
		"endpoint_id": obj{"type": "string", "format": "uuid", "description": "Replay to this endpoint only (creating its delivery if it has none)."},
	}}
	replayResult := obj{"type": "object", "required": []string{"event_id", "webhook_id", "deliveries", "skipped"}, "properties": obj{
		"event_id": obj{"type": "integer", "format": "int64"}, "webhook_id": str("The same webhook-id as the first time."),
		"deliveries": arrayOf(ref("Delivery")),
		"skipped": arrayOf(obj{"type": "object", "properties": obj{
			"delivery_id": obj{"type": "integer", "format": "int64"}, "endpoint_id": obj{"type": "string", "format": "uuid"}, "reason": str(""),
		}}),
	}}
	backfillBody := obj{"type": "object", "required": []string{"since"}, "additionalProperties": false, "properties": obj{
		"since": obj{"type": "string", "format": "date-time"}, "until": obj{"type": "string", "format": "date-time", "description": "Default: now."},
		"event_types": arrayOf(obj{"type": "string", "description": "Only these types (within the endpoint's subscription)."}),
	}}
	backfillResult := obj{"type": "object", "required": []string{"matched", "created"}, "properties": obj{
		"matched": obj{"type": "integer", "description": "Events in the range the endpoint receives."},
		"created": obj{"type": "integer", "description": "Deliveries created; the rest existed already (a second backfill creates none)."},
	}}
	timeRange := []any{
		queryParam("since", "Created (started, for attempts) at or after.", obj{"type": "string", "format": "date-time"}),
		queryParam("until", "Created (started) before.", obj{"type": "string", "format": "date-time"}),
	}
	ok := func(desc string, schema obj) obj { return obj{"200": answer(desc, schema)} }
	notFound := func(r obj) obj { r["404"] = errRef("NotFound"); return r }
	bad := func(r obj) obj { r["400"] = errRef("BadRequest"); r["413"] = errRef("TooLarge"); return r }

	paths := obj{
		"/v1/openapi.json": obj{"get": op("This document.", nil, nil, ok("The OpenAPI document.", obj{"type": "object"}))},
		"/v1/endpoints": obj{
			"get": op("List endpoints, oldest first.", with(pageParams,
				queryParam("tenant", "Only this tenant's.", obj{"type": "string"}),
				queryParam("enabled", "Only enabled (true) or disabled (false).", obj{"type": "boolean"})),
				nil, bad(ok("A page of endpoints.", page("endpoints", "Endpoint")))),
			"post": op("Create an endpoint; the answer carries its secret (shown once).", nil, jsonBody(createBody, true),
				bad(obj{"201": answer("The endpoint, with its secret.", ref("Endpoint")), "409": errRef("Conflict")})),
		},
		"/v1/endpoints/{id}": obj{
			"parameters": []any{pathIDUUID},
			"get":        op("Get an endpoint with its health.", nil, nil, notFound(ok("The endpoint.", endpointDetail))),
			"patch":      op("Update an endpoint.", nil, jsonBody(updateBody, true), bad(notFound(ok("The endpoint.", ref("Endpoint"))))),
			"delete":     op("Delete an endpoint; its unfinished deliveries are cancelled.", nil, nil, notFound(obj{"204": answer("Deleted.", nil)})),
		},
		"/v1/endpoints/{id}/rotate-secret": idPath(pathIDUUID, "post", op("Rotate the signing secret; the old one keeps signing during the grace window.", nil, jsonBody(rotateBody, false),
			bad(notFound(ok("The endpoint, with its new secret.", ref("Endpoint")))))),
		"/v1/endpoints/{id}/test": idPath(pathIDUUID, "post", op("Send a test event now (the catalog example of the endpoint's type) and record it in the endpoint's delivery log, marked test.", nil,
			jsonBody(testBody, false), bad(notFound(ok("The outcome.", testResult))))),
		"/v1/endpoints/{id}/recover": idPath(pathIDUUID, "post", op("Re-queue the endpoint's dead deliveries and waiting retries created in [since, until).", nil, jsonBody(recoverBody, true),
			bad(notFound(ok("How many were re-queued.", obj{"type": "object", "required": []string{"requeued"},
				"properties": obj{"requeued": obj{"type": "integer"}}}))))),
		"/v1/events": obj{
			"get": op("List events, newest first.", with(pageParams,
				queryParam("tenant", "", obj{"type": "string"}), queryParam("type", "Event type.", obj{"type": "string"}),
				queryParam("since", "Created at or after.", obj{"type": "string", "format": "date-time"}),
				queryParam("until", "Created before.", obj{"type": "string", "format": "date-time"})),
				nil, bad(ok("A page of events.", page("events", "Event")))),
			"post": op("Publish an event (same validation and idempotency as outbox.Enqueue).", nil, jsonBody(publishBody, true),
				bad(obj{"202": answer("Accepted.", obj{"type": "object", "required": []string{"id", "webhook_id", "duplicate"}, "properties": obj{
					"id": obj{"type": "integer", "format": "int64"}, "webhook_id": str(""),
					"duplicate": obj{"type": "boolean", "description": "An event with this idempotency key already existed."},
				}})})),
		},
		"/v1/events/{id}": idPath(pathIDInt, "get", op("Get an event with its deliveries.", nil, nil, notFound(ok("The event.", eventDetail)))),
		"/v1/deliveries": obj{
			"get": op("List deliveries, newest first.", with(pageParams,
				queryParam("state", "", obj{"type": "string", "enum": []string{"pending", "in_flight", "delivered", "dead", "cancelled"}}),
				queryParam("endpoint_id", "", obj{"type": "string", "format": "uuid"}),
				queryParam("event_id", "", obj{"type": "integer", "format": "int64"}),
				queryParam("event_type", "", obj{"type": "string"}),
				queryParam("tenant", "Admin: only this tenant's (a tenant token sees its own only).", obj{"type": "string"}),
				timeRange[0], timeRange[1]),
				nil, bad(ok("A page of deliveries, newest first by creation.", page("deliveries", "Delivery")))),
		},
		"/v1/attempts": obj{
			"get": op("List attempts across deliveries, newest first. The admin token needs endpoint_id, delivery_id or tenant.", with(pageParams,
				queryParam("endpoint_id", "", obj{"type": "string", "format": "uuid"}),
				queryParam("delivery_id", "", obj{"type": "integer", "format": "int64"}),
				queryParam("tenant", "", obj{"type": "string"}),
				queryParam("event_type", "", obj{"type": "string"}),
				queryParam("outcome", "failed is every outcome but delivered.", obj{"type": "string", "enum": []string{"delivered", "retry", "dead", "failed"}}),
				timeRange[0], timeRange[1]),
				nil, bad(ok("A page of attempts.", page("attempts", "Attempt")))),
		},
		"/v1/endpoints/{id}/backfill": idPath(pathIDUUID, "post", op("Send the tenant's past events in [since, until) to the endpoint, once: events it already has are left out.", nil,
			jsonBody(backfillBody, true), bad(notFound(ok("What was created.", backfillResult))))),
		"/v1/events/{id}/trace": idPath(pathIDInt, "get", op("Where is my event: for each endpoint of the event's tenant, whether it matched and why not, with the delivery and every attempt.", nil, nil,
			notFound(ok("The trace.", trace)))),
		"/v1/events/{id}/replay": idPath(pathIDInt, "post", op("Send the event again, with the same webhook-id, to its endpoints (delivered ones included) or one endpoint_id. Each delivery starts a new attempt series and keeps its place in its ordering key. 409 not_dispatched before the fan-out.", nil,
			jsonBody(replayBody, false), bad(notFound(obj{"200": answer("The replayed deliveries.", replayResult), "409": errRef("Conflict")})))),
		"/v1/tokens": obj{
			"post": op("Issue a tenant token; the answer carries the token (shown once, stored hashed).", nil, jsonBody(tokenBody, true),
				bad(obj{"201": answer("The token, with its value.", ref("Token"))})),
			"get": op("List tokens (never their values), revoked and expired ones too.", []any{queryParam("tenant", "Only this tenant's.", obj{"type": "string"})},
				nil, bad(ok("The tokens.", obj{"type": "object", "required": []string{"tokens"}, "properties": obj{"tokens": arrayOf(ref("Token"))}}))),
		},
		"/v1/tokens/{id}": obj{
			"parameters": []any{obj{"name": "id", "in": "path", "required": true, "schema": obj{"type": "string", "format": "uuid"}}},
			"delete":     op("Revoke a token at once, on every replica.", nil, nil, notFound(ok("The revoked token.", ref("Token")))),
		},
		"/v1/portal/sessions": obj{
			"post": op("A one-time link to the customer portal for a tenant (a tenant token: its own tenant, the default). Opening the link within link_expires_at sets the session cookie; the session ends at expires_at.", nil,
				jsonBody(obj{"type": "object", "required": []string{"tenant"}, "properties": obj{
					"tenant":     str("The tenant the session acts for."),
					"expires_in": str("The session's lifetime, 1m to 24h (default 1h)."),
					"read_only":  obj{"type": "boolean", "description": "The session may look but not change anything."},
					"return_url": str("Where the portal's back link goes: an absolute http(s) URL or a path."),
				}}, true),
				bad(obj{"201": answer("The link.", obj{"type": "object", "required": []string{"url", "expires_at", "link_expires_at"}, "properties": obj{
					"url":             obj{"type": "string", "format": "uri", "description": "Opens the portal once."},
					"expires_at":      obj{"type": "string", "format": "date-time"},
					"link_expires_at": obj{"type": "string", "format": "date-time"},
				}})})),
		},
		"/v1/event-types": obj{
			"get": op("The event-type catalog. Once it is not empty, endpoints may subscribe only to its types.", nil, nil,
				ok("The catalog.", obj{"type": "object", "required": []string{"event_types"}, "properties": obj{"event_types": arrayOf(ref("EventType"))}})),
		},
		"/v1/event-types/{name}": obj{
			"parameters": []any{obj{"name": "name", "in": "path", "required": true, "schema": obj{"type": "string"}}},
			"get":        op("Get a catalog entry.", nil, nil, notFound(ok("The entry.", ref("EventType")))),
			"put": op("Create or replace a catalog entry (idempotent).", nil, jsonBody(eventTypeBody, true),
				bad(obj{"200": answer("Replaced (or unchanged).", ref("EventType")), "201": answer("Created.", ref("EventType"))})),
			"delete": op("Remove a catalog entry; subscribed endpoints keep their subscription.", nil, nil, notFound(obj{"204": answer("Deleted.", nil)})),
		},
		"/v1/deliveries/{id}": idPath(pathIDInt, "get", op("Get a delivery.", nil, nil, notFound(ok("The delivery.", ref("Delivery"))))),
		"/v1/deliveries/{id}/attempts": idPath(pathIDInt, "get", op("List a delivery's attempts in order.", nil, nil, notFound(ok("The attempts.", obj{"type": "object",
			"required": []string{"attempts"}, "properties": obj{"attempts": arrayOf(ref("Attempt"))}})))),
		"/v1/deliveries/{id}/retry": idPath(pathIDInt, "post", op("Re-queue a pending or dead delivery now.", nil, nil,
			notFound(obj{"200": answer("The delivery.", ref("Delivery")), "409": errRef("Conflict")}))),
		"/v1/endpoints/{id}/blocked-keys": idPath(pathIDUUID, "get", op("The ordering keys a dead delivery holds on this endpoint (ordering_on_dead = block): their later events wait until the delivery is retried or cancelled.", nil, nil,
			notFound(obj{"200": answer("The blocked keys.", obj{"type": "object", "required": []string{"blocked_keys"}, "properties": obj{
				"blocked_keys": arrayOf(obj{"type": "object", "required": []string{"ordering_key", "delivery_id", "event_id", "dead_at"}, "properties": obj{
					"ordering_key": str(""), "delivery_id": obj{"type": "integer", "format": "int64"},
					"event_id": obj{"type": "integer", "format": "int64"}, "dead_at": obj{"type": "string", "format": "date-time"},
				}}),
			}})}))),
		"/v1/deliveries/{id}/cancel": idPath(pathIDInt, "post", op("Cancel a pending or dead delivery: it is never attempted again, and the next delivery of its ordering key (if any) goes on. 409 for a delivery in flight, delivered or cancelled.", nil, nil,
			notFound(obj{"200": answer("The delivery.", ref("Delivery")), "409": errRef("Conflict")}))),
	}
	errResp := func(desc string) obj { return answer(desc, ref("Error")) }
	// Who may call each operation, from the route table.
	for _, rt := range (&server{}).routes() {
		if ops, ok := paths[rt.pattern].(obj); ok {
			if o, ok := ops[strings.ToLower(rt.method)].(obj); ok {
				o["x-hookrelay-access"] = map[access]string{adminOnly: "admin", tenantRead: "tenant-read", tenantWrite: "tenant-write"}[rt.access]
			}
		}
	}
	return obj{
		"openapi": "3.1.0",
		"info": obj{"title": "hookrelay API", "version": "1",
			"description": "Manage webhook endpoints, events and deliveries. Every route, this document included, needs a bearer token: " +
				"the admin token (HOOKRELAY_ADMIN_TOKEN), which sees every tenant, or a tenant token (hrt_..., POST /v1/tokens), " +
				"which sees its tenant's rows only: another tenant's ids answer 404, creating or moving anything for another tenant 403 other_tenant, " +
				"a read-only token 403 read_only on every write, and the admin-only routes (x-hookrelay-access: admin) 403 admin_only. " +
				"A revoked or expired token answers 401. With no admin token configured, only tenant tokens work. " +
				"Errors have one shape: {\"error\": {\"code\", \"message\", \"field\"?}}. Unknown request fields are rejected."},
		"security": []any{obj{"bearer": []any{}}},
		"paths":    paths,
		"components": obj{
			"securitySchemes": obj{"bearer": obj{"type": "http", "scheme": "bearer"}},
			"schemas": obj{"Endpoint": endpoint, "Delivery": delivery, "Event": event, "Attempt": attempt, "Error": errorSchema,
				"Token": token, "EventType": eventType},
			"responses": obj{
				"BadRequest":   errResp("Bad JSON, an unknown field or an invalid value (field names it)."),
				"Unauthorized": errResp("Missing or wrong bearer token."),
				"Forbidden": errResp("admin_only: the route needs the admin token; read_only: a read-only tenant token on a write; " +
					"other_tenant: a tenant token creating or moving something for another tenant; admin_disabled: no admin token is configured."),
				"NotFound": errResp("No such object."),
				"Conflict": errResp("The change conflicts with the current state or a limit."),
				"TooLarge": errResp("The request body is too large."),
			},
		},
	}
}

var openAPIOnce struct {
	sync.Once
	b []byte
}

// openAPIJSON is the document, encoded once.
func openAPIJSON() []byte {
	openAPIOnce.Do(func() {
		b, err := json.MarshalIndent(openAPIDoc(), "", "  ")
		if err != nil {
			panic("httpapi: encode OpenAPI document: " + err.Error())
		}
		openAPIOnce.b = b
	})
	return openAPIOnce.b
}

func (s *server) openAPI(w http.ResponseWriter, r *http.Request, p *principal) error {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPIJSON())
	return nil
}
