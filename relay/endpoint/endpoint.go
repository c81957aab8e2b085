// Package endpoint holds the operations on webhook endpoints that every
// front end calls: the CLI (`hookrelay endpoints`), the admin API under
// /v1/endpoints, and next the tenant API and the portal. Each operation is
// written once here, so the front ends accept the same fields with the same
// rules, answer with the same errors (*outbox.FieldError naming the field),
// and write the same operational events.
package endpoint

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/signature"
)

// DefaultRotationGrace is how long a rotated secret keeps signing when
// neither the request nor Config.RotationGrace says otherwise.
const DefaultRotationGrace = 24 * time.Hour

// DefaultMaxPerTenant is the cap on one tenant's endpoints that hookrelay
// runs with unless configured otherwise; a zero Config.MaxPerTenant means
// no cap.
const DefaultMaxPerTenant = 10

// MaxGrace bounds the grace window of a rotated secret.
const MaxGrace = 90 * 24 * time.Hour

// Config is what a Service works with.
type Config struct {
	// Store runs the queries; required.
	Store *outbox.Store
	// Sender checks endpoint URLs against the destination guard and sends
	// test events; required.
	Sender *relay.Sender
	// Ops, when set, writes hookrelay.endpoint.enabled / .disabled when an
	// update flips an endpoint's enabled flag.
	Ops *relay.OpsEvents
	// MaxPerTenant caps the endpoints of one tenant (0: unlimited).
	MaxPerTenant int
	// RotationGrace is how long an old secret keeps signing by default
	// (DefaultRotationGrace when 0).
	RotationGrace time.Duration
	// RequireHTTPS refuses http:// URLs at create and update
	// (HOOKRELAY_REQUIRE_HTTPS).
	RequireHTTPS bool
	// DisableAfter and DisableAfterFailures are the auto-disable rule the
	// relay's maintenance applies (HOOKRELAY_DISABLE_AFTER, _FAILURES);
	// Get reports an endpoint's standing against it. DisableAfter 0 means
	// auto-disable is off.
	DisableAfter         time.Duration
	DisableAfterFailures int
}

// Service runs the endpoint operations. A Service returned by ForTenant
// acts for one tenant only.
type Service struct {
	c      Config
	tenant *string // see ForTenant
}

// New returns a Service, or an error naming a missing dependency.
func New(c Config) (*Service, error) {
	switch {
	case c.Store == nil:
		return nil, errors.New("endpoint: Config.Store is required")
	case c.Sender == nil:
		return nil, errors.New("endpoint: Config.Sender is required")
	case c.RotationGrace < 0 || c.RotationGrace > MaxGrace:
		return nil, fmt.Errorf("endpoint: Config.RotationGrace %s is outside 0–%s", c.RotationGrace, MaxGrace)
	}
	if c.RotationGrace == 0 {
		c.RotationGrace = DefaultRotationGrace
	}
	return &Service{c: c}, nil
}

// Store returns the store the service works on.
func (s *Service) Store() *outbox.Store { return s.c.Store }

// Input is what creating an endpoint takes; only URL is required. It is
// also the body of POST /v1/endpoints.
type Input struct {
	URL         string   `json:"url"`
	Tenant      string   `json:"tenant"`
	EventTypes  []string `json:"event_types"`
	Description string   `json:"description"`
	// Secret is the signing secret (whsec_...); one is generated when it
	// is empty.
	Secret      string `json:"secret"`
	MaxInFlight int    `json:"max_in_flight"`
	RateLimit   int    `json:"rate_limit"`
	// OrderingOnDead is outbox.OrderingSkip (default) or
	// outbox.OrderingBlock.
	OrderingOnDead string `json:"ordering_on_dead"`
}

// Patch changes the fields that are set. It is also the body of PATCH
// /v1/endpoints/{id}.
type Patch struct {
	URL            *string   `json:"url"`
	Description    *string   `json:"description"`
	EventTypes     *[]string `json:"event_types"`
	Enabled        *bool     `json:"enabled"`
	MaxInFlight    *int      `json:"max_in_flight"`
	RateLimit      *int      `json:"rate_limit"`
	OrderingOnDead *string   `json:"ordering_on_dead"`
	// Tenant cannot be changed: naming the endpoint's own tenant is
	// accepted (and changes nothing), another is refused
	// (outbox.ErrOtherTenant for a tenant-scoped service, a field error
	// otherwise).
	Tenant *string `json:"tenant"`
}

// IsEmpty reports whether the patch changes nothing.
func (p Patch) IsEmpty() bool { p.Tenant = nil; return p == Patch{} }

// Result is an endpoint as create and update answer it, with warnings
// (for example a URL whose host does not resolve yet: it is stored, and
// every delivery is still checked when it connects).
type Result struct {
	outbox.Endpoint
	Warnings []string `json:"warnings,omitempty"`
}

func withWarning(e outbox.Endpoint, warning string) Result {
	r := Result{Endpoint: e}
	if warning != "" {
		r.Warnings = []string{warning}
	}
	return r
}

// Create registers an endpoint: the fields are validated, the URL checked
// against the destination guard, a secret generated when none is given.
// The result carries the secret (shown once).
func (s *Service) Create(ctx context.Context, in Input) (Result, error) {
	if s.tenant != nil && in.Tenant == "" {
		in.Tenant = *s.tenant
	}
	if err := s.c.Store.CheckTenant(in.Tenant); err != nil {
		return Result{}, err
	}
	secret, err := secretOrNew(in.Secret)
	if err != nil {
		return Result{}, err
	}
	oi := outbox.EndpointInput{
		Tenant: in.Tenant, URL: in.URL, Description: in.Description, EventTypes: in.EventTypes,
		Secret: secret, MaxInFlight: in.MaxInFlight, RateLimit: in.RateLimit, OrderingOnDead: in.OrderingOnDead,
	}
	if oi.EventTypes == nil {
		oi.EventTypes = []string{}
	}
	if err := oi.Validate(); err != nil {
		return Result{}, err
	}
	if err := s.checkScheme(in.URL); err != nil {
		return Result{}, err
	}
	typeWarnings, err := s.checkCatalog(ctx, oi.EventTypes)
	if err != nil {
		return Result{}, err
	}
	warning, err := s.c.Sender.CheckEndpointURL(ctx, in.URL)
	if err != nil {
		return Result{}, err
	}
	e, err := s.c.Store.CreateEndpoint(ctx, oi, s.c.MaxPerTenant)
	if err != nil {
		return Result{}, err
	}
	r := withWarning(e, warning)
	r.Warnings = append(r.Warnings, typeWarnings...)
	return r, nil
}

// Update changes the fields the patch sets. Enabling or disabling the
// endpoint writes its operational event.
func (s *Service) Update(ctx context.Context, id string, p Patch) (Result, error) {
	if !outbox.ValidID(id) {
		return Result{}, fmt.Errorf("endpoint %s: %w", id, outbox.ErrNotFound)
	}
	if p.Tenant != nil {
		if err := s.checkMove(ctx, id, *p.Tenant); err != nil {
			return Result{}, err
		}
		p.Tenant = nil
	}
	if p.IsEmpty() {
		// An unknown endpoint is not found, whatever the patch says.
		if _, err := s.c.Store.GetEndpoint(ctx, id); err != nil {
			return Result{}, err
		}
		return Result{}, &outbox.FieldError{Field: "", Reason: "nothing to change: set at least one of url, description, event_types, enabled, max_in_flight, rate_limit, ordering_on_dead"}
	}
	if p.EventTypes != nil && *p.EventTypes == nil {
		*p.EventTypes = []string{}
	}
	op := outbox.EndpointPatch{
		URL: p.URL, Description: p.Description, EventTypes: p.EventTypes, Enabled: p.Enabled,
		MaxInFlight: p.MaxInFlight, RateLimit: p.RateLimit, OrderingOnDead: p.OrderingOnDead,
	}
	if err := op.Validate(); err != nil {
		return Result{}, err
	}
	var typeWarnings []string
	if p.EventTypes != nil {
		var err error
		if typeWarnings, err = s.checkCatalog(ctx, *p.EventTypes); err != nil {
			return Result{}, err
		}
	}
	var warning string
	if p.URL != nil {
		if err := s.checkScheme(*p.URL); err != nil {
			return Result{}, err
		}
		var err error
		if warning, err = s.c.Sender.CheckEndpointURL(ctx, *p.URL); err != nil {
			return Result{}, err
		}
	}
	var before outbox.Endpoint
	if p.Enabled != nil {
		var err error
		if before, err = s.c.Store.GetEndpoint(ctx, id); err != nil {
			return Result{}, err
		}
	}
	e, err := s.c.Store.UpdateEndpoint(ctx, id, op)
	if err != nil {
		return Result{}, err
	}
	if p.Enabled != nil && before.Enabled != e.Enabled && s.c.Ops != nil {
		if e.Enabled {
			s.c.Ops.EndpointEnabled(ctx, e)
		} else {
			s.c.Ops.OnDisabled(ctx, e.ID, e.DisabledReason)
		}
	}
	r := withWarning(e, warning)
	r.Warnings = append(r.Warnings, typeWarnings...)
	return r, nil
}

// Delete deletes an endpoint and cancels its unfinished deliveries.
func (s *Service) Delete(ctx context.Context, id string) error {
	return s.c.Store.DeleteEndpoint(ctx, id)
}

// Rotation is what rotating a secret takes. It is also the body of POST
// /v1/endpoints/{id}/rotate-secret (grace as a duration string there).
type Rotation struct {
	// Secret is the new secret; one is generated when it is nil.
	Secret *string
	// Grace is how long the old secret keeps signing alongside (0: it
	// stops at once); the service's default when nil. At most MaxGrace.
	Grace *time.Duration
}

// ParseGrace parses a grace window as the front ends take it ("24h",
// "0s"), with the bounds RotateSecret applies.
func ParseGrace(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, &outbox.FieldError{Field: "grace", Reason: fmt.Sprintf("%q is not a duration like \"24h\" or \"0s\"", s)}
	}
	return d, checkGrace(d)
}

func checkGrace(d time.Duration) error {
	if d < 0 || d > MaxGrace {
		return &outbox.FieldError{Field: "grace", Reason: fmt.Sprintf("must be from 0s (the old secret stops at once) to %s, got %s", MaxGrace, d)}
	}
	return nil
}

// RotateSecret makes a new secret the endpoint's signing secret; the old
// one keeps signing for the grace window. The result carries the new
// secret (shown once).
func (s *Service) RotateSecret(ctx context.Context, id string, r Rotation) (outbox.Endpoint, error) {
	if !outbox.ValidID(id) {
		return outbox.Endpoint{}, fmt.Errorf("endpoint %s: %w", id, outbox.ErrNotFound)
	}
	grace := s.c.RotationGrace
	if r.Grace != nil {
		if err := checkGrace(*r.Grace); err != nil {
			return outbox.Endpoint{}, err
		}
		grace = *r.Grace
	}
	var given string
	if r.Secret != nil {
		if *r.Secret == "" {
			return outbox.Endpoint{}, &outbox.FieldError{Field: "secret", Reason: "is empty: give a whsec_... secret, or none to have one generated"}
		}
		given = *r.Secret
	}
	secret, err := secretOrNew(given)
	if err != nil {
		return outbox.Endpoint{}, err
	}
	return s.c.Store.RotateSecret(ctx, id, secret, grace)
}

// Test sends a sample event to the endpoint now, records it in the
// endpoint's delivery log (marked test) and reports the outcome: the
// example of the first of the endpoint's event types that has one in the
// catalog, or a hookrelay.test sample (see TestEvent).
func (s *Service) Test(ctx context.Context, id string) (relay.TestResult, error) {
	return s.TestEvent(ctx, id, "")
}

// secretOrNew checks a given secret or generates one.
func secretOrNew(given string) (string, error) {
	if given == "" {
		sec, err := signature.GenerateSecret()
		if err != nil {
			return "", fmt.Errorf("generate secret: %w", err)
		}
		return sec, nil
	}
	if _, err := signature.ParseSecret(given); err != nil {
		reason := err.Error()
		var se *signature.SecretError
		if errors.As(err, &se) {
			reason = strings.TrimPrefix(se.Reason, "secret ")
		}
		return "", &outbox.FieldError{Field: "secret", Reason: reason}
	}
	return given, nil
}
