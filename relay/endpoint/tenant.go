package endpoint

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/relay"
)

// ForTenant returns a copy of the service that acts for tenant only: its
// store is limited to the tenant (outbox.Store.ForTenant), so another
// tenant's endpoint reads as outbox.ErrNotFound, creating an endpoint for
// another tenant (or moving one) is outbox.ErrOtherTenant, and Create
// without a tenant creates the endpoint for this one. The admin API and
// the CLI use the service as New returns it; the tenant API and the portal
// use ForTenant.
func (s *Service) ForTenant(tenant string) *Service {
	c := *s
	c.c.Store = s.c.Store.ForTenant(tenant)
	c.tenant = &tenant
	return &c
}

// Tenant reports the tenant the service acts for, if any.
func (s *Service) Tenant() (tenant string, scoped bool) { return s.c.Store.Tenant() }

// checkScheme refuses an http:// URL when Config.RequireHTTPS is set.
func (s *Service) checkScheme(raw string) error {
	if !s.c.RequireHTTPS {
		return nil
	}
	if u, err := url.Parse(raw); err == nil && strings.EqualFold(u.Scheme, "http") {
		return &outbox.FieldError{Field: "url", Reason: "must use https: this server refuses http:// endpoint URLs (HOOKRELAY_REQUIRE_HTTPS)"}
	}
	return nil
}

// checkCatalog refuses event types missing from a non-empty event-type
// catalog (naming them) and warns about deprecated ones.
func (s *Service) checkCatalog(ctx context.Context, types []string) (warnings []string, err error) {
	if len(types) == 0 {
		return nil, nil
	}
	unknown, err := s.c.Store.UnknownEventTypes(ctx, types)
	if err != nil {
		return nil, err
	}
	if len(unknown) > 0 {
		quoted := make([]string, len(unknown))
		for i, u := range unknown {
			quoted[i] = fmt.Sprintf("%q", u)
		}
		noun := "type"
		if len(unknown) > 1 {
			noun = "types"
		}
		return nil, &outbox.FieldError{Field: "event_types", Reason: fmt.Sprintf("unknown event %s %s: not in the event-type catalog (GET /v1/event-types lists it)",
			noun, strings.Join(quoted, ", "))}
	}
	catalog, err := s.c.Store.ListEventTypes(ctx)
	if err != nil {
		return nil, err
	}
	for _, et := range catalog {
		if et.Deprecated && slices.Contains(types, et.Name) {
			warnings = append(warnings, fmt.Sprintf("event type %q is deprecated", et.Name))
		}
	}
	return warnings, nil
}

// checkMove accepts a patch's tenant when it is the endpoint's own.
func (s *Service) checkMove(ctx context.Context, id, tenant string) error {
	e, err := s.c.Store.GetEndpoint(ctx, id)
	if err != nil {
		return err
	}
	if tenant == e.Tenant {
		return nil
	}
	if s.tenant != nil {
		return fmt.Errorf("move endpoint %s to tenant %q: %w", id, tenant, outbox.ErrOtherTenant)
	}
	return &outbox.FieldError{Field: "tenant", Reason: "cannot be changed: create an endpoint for the other tenant instead"}
}

// TestEvent sends a test event to the endpoint now, records it in the
// endpoint's delivery log (marked test) and reports the outcome. The
// payload is the catalog example of eventType; with eventType empty, of
// the first of the endpoint's event types that has an example (the
// hookrelay.test sample when none has). A type that is not in a
// non-empty catalog is refused (a field error on event_type); with an
// empty catalog, or a type without an example, the sample payload is sent
// with that type.
func (s *Service) TestEvent(ctx context.Context, id, eventType string) (relay.TestResult, error) {
	ep, err := s.c.Store.GetEndpoint(ctx, id)
	if err != nil {
		return relay.TestResult{}, err
	}
	ev := relay.TestEvent{Type: eventType}
	if eventType != "" {
		if err := outbox.ValidateEventTypes([]string{eventType}); err != nil {
			return relay.TestResult{}, &outbox.FieldError{Field: "event_type", Reason: strings.TrimPrefix(err.Error(), "event_types: ")}
		}
		et, err := s.c.Store.GetEventType(ctx, eventType)
		switch {
		case err == nil:
			ev.Payload = et.Example
		case errors.Is(err, outbox.ErrNotFound):
			if unknown, err := s.c.Store.UnknownEventTypes(ctx, []string{eventType}); err != nil {
				return relay.TestResult{}, err
			} else if len(unknown) > 0 {
				return relay.TestResult{}, &outbox.FieldError{Field: "event_type", Reason: fmt.Sprintf("%q is not in the event-type catalog", eventType)}
			}
		default:
			return relay.TestResult{}, err
		}
	} else {
		catalog, err := s.c.Store.ListEventTypes(ctx)
		if err != nil {
			return relay.TestResult{}, err
		}
		examples := map[string]outbox.EventType{}
		var first string // the catalog's first type with an example, by name
		for _, et := range catalog {
			if len(et.Example) > 0 {
				examples[et.Name] = et
				if first == "" {
					first = et.Name
				}
			}
		}
		pick := ""
		for _, t := range ep.EventTypes {
			if _, ok := examples[t]; ok {
				pick = t
				break
			}
		}
		if len(ep.EventTypes) == 0 {
			pick = first
		}
		if pick != "" {
			ev = relay.TestEvent{Type: pick, Payload: examples[pick].Example}
		}
	}
	return relay.SendTestEvent(ctx, s.c.Store, s.c.Sender, ep.ID, ev)
}

// Details is an endpoint as GET /v1/endpoints/{id} shows it: with its
// health.
type Details struct {
	outbox.Endpoint
	Health Health `json:"health"`
}

// Health is how an endpoint has been doing and where it stands against
// auto-disable.
type Health struct {
	outbox.EndpointHealth
	ConsecutiveFailures int         `json:"consecutive_failures"`
	AutoDisable         AutoDisable `json:"auto_disable"`
}

// The states of AutoDisable.State.
const (
	AutoDisableOff      = "off"      // auto-disable is turned off (HOOKRELAY_DISABLE_AFTER=0)
	AutoDisableHealthy  = "healthy"  // no failure since the last success
	AutoDisableFailing  = "failing"  // failing, not yet past both thresholds
	AutoDisableDue      = "due"      // past both thresholds: the next maintenance sweep disables it
	AutoDisableDisabled = "disabled" // disabled (by auto-disable, a 410, or an operator)
)

// AutoDisable says where an endpoint stands against the auto-disable rule:
// an enabled endpoint with at least FailuresThreshold consecutive failures
// and no success for After (counted from its creation when it never had
// one) is disabled.
type AutoDisable struct {
	State             string `json:"state"`
	After             string `json:"after,omitempty"`
	FailuresThreshold int    `json:"failures_threshold,omitempty"`
	// DisablesAt is when the endpoint is disabled if it keeps failing (and
	// has reached the failure threshold by then).
	DisablesAt     *time.Time `json:"disables_at,omitempty"`
	DisabledReason string     `json:"disabled_reason,omitempty"`
	DisabledAt     *time.Time `json:"disabled_at,omitempty"`
}

// Get returns an endpoint with its health: success rate and p95 latency
// over the last hour and day, the last error, consecutive failures and the
// state of auto-disable.
func (s *Service) Get(ctx context.Context, id string) (Details, error) {
	e, err := s.c.Store.GetEndpoint(ctx, id)
	if err != nil {
		return Details{}, err
	}
	h, err := s.c.Store.EndpointHealth(ctx, id)
	if err != nil {
		return Details{}, err
	}
	return Details{Endpoint: e, Health: Health{EndpointHealth: h, ConsecutiveFailures: e.ConsecutiveFailures,
		AutoDisable: s.autoDisable(e)}}, nil
}

func (s *Service) autoDisable(e outbox.Endpoint) AutoDisable {
	a := AutoDisable{}
	if s.c.DisableAfter > 0 {
		a.After, a.FailuresThreshold = s.c.DisableAfter.String(), s.c.DisableAfterFailures
	}
	switch {
	case !e.Enabled:
		a.State, a.DisabledReason, a.DisabledAt = AutoDisableDisabled, e.DisabledReason, e.DisabledAt
	case s.c.DisableAfter <= 0:
		a.State = AutoDisableOff
	case e.ConsecutiveFailures == 0:
		a.State = AutoDisableHealthy
	default:
		from := e.CreatedAt
		if e.LastSuccessAt != nil {
			from = *e.LastSuccessAt
		}
		at := from.Add(s.c.DisableAfter)
		a.DisablesAt = &at
		a.State = AutoDisableFailing
		if e.ConsecutiveFailures >= s.c.DisableAfterFailures && !at.After(time.Now()) {
			a.State = AutoDisableDue
		}
	}
	return a
}

// Backfill sends past events of the endpoint's tenant to the endpoint,
// once (see outbox.Store.Backfill).
func (s *Service) Backfill(ctx context.Context, id string, in outbox.BackfillInput) (outbox.BackfillResult, error) {
	return s.c.Store.Backfill(ctx, id, in)
}
