package httpapi

import (
	"encoding/json"
	"net/http"
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
	responses["403"] = errRef("AdminDisabled")
	return o
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
		}}
	event := obj{"type": "object", "required": []string{"id", "webhook_id", "type", "tenant", "payload", "created_at"},
		"properties": obj{
			"id": obj{"type": "integer", "format": "int64"}, "webhook_id": str("The webhook-id header receivers see."),
			"type": str(""), "tenant": str(""), "payload": obj{"description": "Any JSON value."},
			"endpoint_id": obj{"type": "string", "format": "uuid"}, "idempotency_key": str(""), "ordering_key": str(""),
			"created_at": obj{"type": "string", "format": "date-time"}, "dispatched_at": obj{"type": "string", "format": "date-time"},
			"delivery_count": obj{"type": "integer"},
			"dispatch_error": str("Why the event reached no endpoint (its endpoint_id names none of the tenant's endpoints subscribed to its type), or, while dispatched_at is absent, why the fan-out set it aside."),
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
	testResult := obj{"type": "object", "required": []string{"webhook_id", "delivered", "latency_ms"}, "properties": obj{
		"webhook_id": str(""), "delivered": obj{"type": "boolean"}, "status_code": obj{"type": "integer"},
		"latency_ms": obj{"type": "integer"}, "error_class": str(""), "error": str(""), "response": str("Response excerpt."),
	}}
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
			"get":        op("Get an endpoint.", nil, nil, notFound(ok("The endpoint.", ref("Endpoint")))),
			"patch":      op("Update an endpoint.", nil, jsonBody(updateBody, true), bad(notFound(ok("The endpoint.", ref("Endpoint"))))),
			"delete":     op("Delete an endpoint; its unfinished deliveries are cancelled.", nil, nil, notFound(obj{"204": answer("Deleted.", nil)})),
		},
		"/v1/endpoints/{id}/rotate-secret": obj{
			"parameters": []any{pathIDUUID},
			"post": op("Rotate the signing secret; the old one keeps signing during the grace window.", nil, jsonBody(rotateBody, false),
				bad(notFound(ok("The endpoint, with its new secret.", ref("Endpoint"))))),
		},
		"/v1/endpoints/{id}/test": obj{
			"parameters": []any{pathIDUUID},
			"post":       op("Send a sample event now.", nil, nil, notFound(ok("The outcome.", testResult))),
		},
		"/v1/endpoints/{id}/recover": obj{
			"parameters": []any{pathIDUUID},
			"post": op("Re-queue the endpoint's dead deliveries and waiting retries created in [since, until).", nil, jsonBody(recoverBody, true),
				bad(notFound(ok("How many were re-queued.", obj{"type": "object", "required": []string{"requeued"},
					"properties": obj{"requeued": obj{"type": "integer"}}})))),
		},
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
		"/v1/events/{id}": obj{
			"parameters": []any{pathIDInt},
			"get":        op("Get an event with its deliveries.", nil, nil, notFound(ok("The event.", eventDetail))),
		},
		"/v1/deliveries": obj{
			"get": op("List deliveries, newest first.", with(pageParams,
				queryParam("state", "", obj{"type": "string", "enum": []string{"pending", "in_flight", "delivered", "dead", "cancelled"}}),
				queryParam("endpoint_id", "", obj{"type": "string", "format": "uuid"}),
				queryParam("event_id", "", obj{"type": "integer", "format": "int64"})),
				nil, bad(ok("A page of deliveries.", page("deliveries", "Delivery")))),
		},
		"/v1/deliveries/{id}": obj{
			"parameters": []any{pathIDInt},
			"get":        op("Get a delivery.", nil, nil, notFound(ok("The delivery.", ref("Delivery")))),
		},
		"/v1/deliveries/{id}/attempts": obj{
			"parameters": []any{pathIDInt},
			"get": op("List a delivery's attempts in order.", nil, nil, notFound(ok("The attempts.", obj{"type": "object",
				"required": []string{"attempts"}, "properties": obj{"attempts": arrayOf(ref("Attempt"))}}))),
		},
		"/v1/deliveries/{id}/retry": obj{
			"parameters": []any{pathIDInt},
			"post": op("Re-queue a pending or dead delivery now.", nil, nil,
				notFound(obj{"200": answer("The delivery.", ref("Delivery")), "409": errRef("Conflict")})),
		},
		"/v1/deliveries/{id}/cancel": obj{
			"parameters": []any{pathIDInt},
			"post": op("Cancel a pending or dead delivery: it is never attempted again, and the next delivery of its ordering key (if any) goes on. 409 for a delivery in flight, delivered or cancelled.", nil, nil,
				notFound(obj{"200": answer("The delivery.", ref("Delivery")), "409": errRef("Conflict")})),
		},
	}
	errResp := func(desc string) obj { return answer(desc, ref("Error")) }
	return obj{
		"openapi": "3.1.0",
		"info": obj{"title": "hookrelay admin API", "version": "1",
			"description": "Manage webhook endpoints, events and deliveries. Every route, this document included, needs " +
				"`Authorization: Bearer <HOOKRELAY_ADMIN_TOKEN>`; with no token configured the API answers 403 admin_disabled. " +
				"Errors have one shape: {\"error\": {\"code\", \"message\", \"field\"?}}. Unknown request fields are rejected."},
		"security": []any{obj{"bearer": []any{}}},
		"paths":    paths,
		"components": obj{
			"securitySchemes": obj{"bearer": obj{"type": "http", "scheme": "bearer"}},
			"schemas":         obj{"Endpoint": endpoint, "Delivery": delivery, "Event": event, "Attempt": attempt, "Error": errorSchema},
			"responses": obj{
				"BadRequest":    errResp("Bad JSON, an unknown field or an invalid value (field names it)."),
				"Unauthorized":  errResp("Missing or wrong bearer token."),
				"AdminDisabled": errResp("No admin token is configured: the admin API is off."),
				"NotFound":      errResp("No such object."),
				"Conflict":      errResp("The change conflicts with the current state or a limit."),
				"TooLarge":      errResp("The request body is too large."),
			},
		},
	}
}

var openAPIJSON = sync.OnceValue(func() []byte {
	b, err := json.MarshalIndent(openAPIDoc(), "", "  ")
	if err != nil {
		panic("httpapi: encode OpenAPI document: " + err.Error())
	}
	return b
})

func (s *server) openAPI(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPIJSON())
	return nil
}
