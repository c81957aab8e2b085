package outbox

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// Endpoint is a customer's webhook destination. Secret is only filled when
// the endpoint is created or its secret rotated.
type Endpoint struct {
	ID             string     `json:"id"`
	Tenant         string     `json:"tenant"`
	URL            string     `json:"url"`
	Description    string     `json:"description"`
	EventTypes     []string   `json:"event_types"`
	Enabled        bool       `json:"enabled"`
	DisabledReason string     `json:"disabled_reason,omitempty"`
	DisabledAt     *time.Time `json:"disabled_at,omitempty"`
	MaxInFlight    int        `json:"max_in_flight,omitempty"`
	RateLimit      int        `json:"rate_limit,omitempty"`
	// OrderingOnDead is what a dead delivery does to the later deliveries
	// of its ordering key: OrderingSkip lets the next go, OrderingBlock
	// holds the key until the dead one is retried or cancelled.
	OrderingOnDead      string     `json:"ordering_on_dead"`
	LastSuccessAt       *time.Time `json:"last_success_at,omitempty"`
	LastFailureAt       *time.Time `json:"last_failure_at,omitempty"`
	ConsecutiveFailures int        `json:"consecutive_failures"`
	CreatedAt           time.Time  `json:"created_at"`
	UpdatedAt           time.Time  `json:"updated_at"`
	Secret              string     `json:"secret,omitempty"`
}

// EndpointInput is what creating an endpoint takes. Secret must already be
// a valid "whsec_" secret (the caller generates one when none was given).
type EndpointInput struct {
	Tenant      string
	URL         string
	Description string
	EventTypes  []string
	Secret      string
	MaxInFlight int
	RateLimit   int
	// OrderingOnDead is OrderingSkip (the default when empty) or
	// OrderingBlock.
	OrderingOnDead string
}

// What a dead head does to its ordering key (Endpoint.OrderingOnDead).
const (
	OrderingSkip  = "skip"
	OrderingBlock = "block"
)

// validateOrderingOnDead checks an ordering_on_dead value ("" means skip).
func validateOrderingOnDead(v string) error {
	switch v {
	case "", OrderingSkip, OrderingBlock:
		return nil
	}
	return &FieldError{Field: "ordering_on_dead", Reason: fmt.Sprintf("%q: use %q or %q", v, OrderingSkip, OrderingBlock)}
}

// EndpointPatch changes the fields that are not nil.
type EndpointPatch struct {
	URL         *string
	Description *string
	EventTypes  *[]string
	Enabled     *bool
	MaxInFlight *int // 0 clears the endpoint's own cap
	RateLimit   *int // 0 clears the rate limit
	// OrderingOnDead sets what a dead head does to its key ("" is skip).
	OrderingOnDead *string
}

// FieldError says which input field is wrong and why.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

// Limits on endpoint fields.
const (
	MaxURLLen         = 2048
	MaxDescriptionLen = 1024
	MaxTenantLen      = 255
	MaxEventTypes     = 100
)

// ValidateURL checks an endpoint URL: absolute http or https, a host, no
// user info, no fragment, ASCII only (internationalised hosts must be given
// in punycode), at most MaxURLLen bytes.
func ValidateURL(raw string) error {
	bad := func(reason string) error { return &FieldError{Field: "url", Reason: reason} }
	switch {
	case raw == "":
		return bad("is required")
	case len(raw) > MaxURLLen:
		return bad(fmt.Sprintf("is %d bytes, at most %d allowed", len(raw), MaxURLLen))
	}
	for _, r := range raw {
		if r > 0x7e || r < 0x21 {
			return bad("must be ASCII without spaces or control characters (give international host names in punycode)")
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return bad("is not a valid URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return bad(fmt.Sprintf("scheme %q is not allowed: use http or https", u.Scheme))
	case u.Opaque != "" || u.Host == "":
		return bad("must be absolute with a host, like https://example.com/webhooks")
	case u.User != nil:
		return bad("must not contain user info (user:password@)")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return bad("must not contain a fragment (#...)")
	case u.Hostname() == "":
		return bad("has an empty host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return bad(fmt.Sprintf("port %q is not valid", p))
		}
	}
	return nil
}

// ValidateEventTypes checks an event-type filter (empty means all types).
func ValidateEventTypes(types []string) error {
	if len(types) > MaxEventTypes {
		return &FieldError{Field: "event_types", Reason: fmt.Sprintf("has %d entries, at most %d allowed", len(types), MaxEventTypes)}
	}
	for i, t := range types {
		if t == "" || len(t) > MaxEventTypeLen || !eventTypePattern.MatchString(t) {
			return &FieldError{Field: "event_types", Reason: fmt.Sprintf("entry %d (%q) is not an event type: 1–%d letters, digits, '_', '.' or '-'", i+1, t, MaxEventTypeLen)}
		}
	}
	return nil
}

func validateText(field, s string, maxLen int) error {
	if len(s) > maxLen {
		return &FieldError{Field: field, Reason: fmt.Sprintf("is %d bytes, at most %d allowed", len(s), maxLen)}
	}
	if !utf8.ValidString(s) {
		return &FieldError{Field: field, Reason: "is not valid UTF-8"}
	}
	if strings.ContainsRune(s, 0) {
		return &FieldError{Field: field, Reason: "must not contain NUL characters"}
	}
	return nil
}

func validateLimit(field string, n int) error {
	if n < 0 || n > 100000 {
		return &FieldError{Field: field, Reason: "must be between 0 (none) and 100000"}
	}
	return nil
}

// Validate checks the input's fields (not the secret's encoding, which the
// signing package checks).
func (in EndpointInput) Validate() error {
	if err := ValidateURL(in.URL); err != nil {
		return err
	}
	if err := validateText("tenant", in.Tenant, MaxTenantLen); err != nil {
		return err
	}
	if err := validateText("description", in.Description, MaxDescriptionLen); err != nil {
		return err
	}
	if err := ValidateEventTypes(in.EventTypes); err != nil {
		return err
	}
	if err := validateLimit("max_in_flight", in.MaxInFlight); err != nil {
		return err
	}
	if err := validateLimit("rate_limit", in.RateLimit); err != nil {
		return err
	}
	if err := validateOrderingOnDead(in.OrderingOnDead); err != nil {
		return err
	}
	if !strings.HasPrefix(in.Secret, "whsec_") {
		return &FieldError{Field: "secret", Reason: `must start with "whsec_"`}
	}
	return nil
}

// Validate checks the fields the patch sets.
func (p EndpointPatch) Validate() error {
	if p.URL != nil {
		if err := ValidateURL(*p.URL); err != nil {
			return err
		}
	}
	if p.Description != nil {
		if err := validateText("description", *p.Description, MaxDescriptionLen); err != nil {
			return err
		}
	}
	if p.EventTypes != nil {
		if err := ValidateEventTypes(*p.EventTypes); err != nil {
			return err
		}
	}
	if p.MaxInFlight != nil {
		if err := validateLimit("max_in_flight", *p.MaxInFlight); err != nil {
			return err
		}
	}
	if p.RateLimit != nil {
		if err := validateLimit("rate_limit", *p.RateLimit); err != nil {
			return err
		}
	}
	if p.OrderingOnDead != nil {
		if err := validateOrderingOnDead(*p.OrderingOnDead); err != nil {
			return err
		}
	}
	return nil
}

// TooManyEndpointsError is returned when a tenant already has the maximum
// number of endpoints.
type TooManyEndpointsError struct {
	Tenant string
	Max    int
}

func (e *TooManyEndpointsError) Error() string {
	return fmt.Sprintf("tenant %q already has %d endpoints, the maximum (HOOKRELAY_MAX_ENDPOINTS_PER_TENANT)", e.Tenant, e.Max)
}

// Unwrap makes the error match ErrConflict.
func (e *TooManyEndpointsError) Unwrap() error { return ErrConflict }

const endpointColumns = `id::text, tenant, url, description, event_types, enabled, disabled_reason, disabled_at,
       coalesce(max_in_flight, 0), coalesce(rate_limit, 0), last_success_at, last_failure_at,
       consecutive_failures, created_at, updated_at, ordering_on_dead`

func scanEndpoint(row pgx.Row) (Endpoint, error) {
	var e Endpoint
	err := row.Scan(&e.ID, &e.Tenant, &e.URL, &e.Description, &e.EventTypes, &e.Enabled, &e.DisabledReason,
		&e.DisabledAt, &e.MaxInFlight, &e.RateLimit, &e.LastSuccessAt, &e.LastFailureAt,
		&e.ConsecutiveFailures, &e.CreatedAt, &e.UpdatedAt, &e.OrderingOnDead)
	if e.EventTypes == nil {
		e.EventTypes = []string{}
	}
	return e, err
}

func dedupe(ss []string) []string {
	out := make([]string, 0, len(ss))
	seen := map[string]bool{}
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// CreateEndpoint validates in and stores a new endpoint. maxPerTenant > 0
// caps the endpoints of one tenant (*TooManyEndpointsError). The returned
// endpoint carries its secret.
func (s *Store) CreateEndpoint(ctx context.Context, in EndpointInput, maxPerTenant int) (Endpoint, error) {
	if err := in.Validate(); err != nil {
		return Endpoint{}, err
	}
	if err := s.CheckTenant(in.Tenant); err != nil {
		return Endpoint{}, err
	}
	sealed, err := s.sealSecret(in.Secret)
	if err != nil {
		return Endpoint{}, fmt.Errorf("create endpoint: seal secret: %w", err)
	}
	var e Endpoint
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if maxPerTenant > 0 {
			// Serialise creations per tenant so the cap holds under concurrency.
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 7))`, s.schema+"/"+in.Tenant); err != nil {
				return err
			}
			var n int
			if err := tx.QueryRow(ctx, qualify(`SELECT count(*) FROM {{schema}}.endpoints WHERE tenant = $1`, s.schema), in.Tenant).Scan(&n); err != nil {
				return err
			}
			if n >= maxPerTenant {
				return &TooManyEndpointsError{Tenant: in.Tenant, Max: maxPerTenant}
			}
		}
		var err error
		e, err = scanEndpoint(tx.QueryRow(ctx, qualify(`INSERT INTO {{schema}}.endpoints
    (tenant, url, description, event_types, secret, max_in_flight, rate_limit, ordering_on_dead)
VALUES ($1, $2, $3, $4, $5, nullif($6, 0), nullif($7, 0), coalesce(nullif($8, ''), 'skip'))
RETURNING `+endpointColumns, s.schema),
			in.Tenant, in.URL, in.Description, dedupe(in.EventTypes), sealed, in.MaxInFlight, in.RateLimit, in.OrderingOnDead))
		return err
	})
	if err != nil {
		var tooMany *TooManyEndpointsError
		if errors.As(err, &tooMany) {
			return Endpoint{}, err
		}
		return Endpoint{}, fmt.Errorf("create endpoint: %w", translate(err))
	}
	e.Secret = in.Secret
	return e, nil
}

// GetEndpoint returns one endpoint (without its secret) or ErrNotFound.
func (s *Store) GetEndpoint(ctx context.Context, id string) (Endpoint, error) {
	if !ValidID(id) {
		return Endpoint{}, ErrNotFound
	}
	e, err := scanEndpoint(s.pool.QueryRow(ctx, qualify(`SELECT `+endpointColumns+` FROM {{schema}}.endpoints
 WHERE id = $1 AND ($2::text IS NULL OR tenant = $2)`, s.schema), id, s.tenantArg()))
	if err != nil {
		return Endpoint{}, fmt.Errorf("get endpoint %s: %w", id, translate(err))
	}
	return e, nil
}

// EndpointSecrets returns an endpoint's current secret followed by the old
// ones still inside their rotation window.
func (s *Store) EndpointSecrets(ctx context.Context, id string) ([]string, error) {
	if !ValidID(id) {
		return nil, ErrNotFound
	}
	var secrets []string
	err := s.pool.QueryRow(ctx, qualify(`SELECT ARRAY[secret] || ARRAY(SELECT x->>'secret' FROM jsonb_array_elements(old_secrets) x
       WHERE (x->>'expires_at')::timestamptz > now()) FROM {{schema}}.endpoints
 WHERE id = $1 AND ($2::text IS NULL OR tenant = $2)`, s.schema), id, s.tenantArg()).Scan(&secrets)
	if err != nil {
		return nil, fmt.Errorf("read endpoint secrets %s: %w", id, translate(err))
	}
	if err := s.openSecrets(secrets); err != nil {
		return nil, fmt.Errorf("read endpoint secrets %s: %w", id, err)
	}
	return secrets, nil
}

// EndpointFilter selects endpoints to list.
type EndpointFilter struct {
	Tenant  *string
	Enabled *bool
	// After is the cursor returned with the previous page ("" for the first).
	After string
	// Limit is the page size (default 50, at most 500).
	Limit int
}

// ErrBadCursor is returned for a cursor that this server did not produce.
var ErrBadCursor = errors.New("invalid cursor")

func encodeCursor(t time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(t.UnixMicro(), 10) + "_" + id))
}

func decodeCursor(c string) (time.Time, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, "", ErrBadCursor
	}
	ts, id, ok := strings.Cut(string(b), "_")
	micros, err := strconv.ParseInt(ts, 10, 64)
	if !ok || err != nil || id == "" {
		return time.Time{}, "", ErrBadCursor
	}
	return time.UnixMicro(micros), id, nil
}

func pageLimit(n int) int {
	switch {
	case n <= 0:
		return 50
	case n > 500:
		return 500
	}
	return n
}

// ListEndpoints returns a page of endpoints oldest first, and the cursor of
// the next page ("" at the end). Keyset pagination on (created_at, id) keeps
// pages stable while endpoints are added.
func (s *Store) ListEndpoints(ctx context.Context, f EndpointFilter) ([]Endpoint, string, error) {
	limit := pageLimit(f.Limit)
	var afterT *time.Time
	afterID := "00000000-0000-0000-0000-000000000000"
	if f.After != "" {
		t, id, err := decodeCursor(f.After)
		if err != nil || !ValidID(id) {
			return nil, "", ErrBadCursor
		}
		afterT, afterID = &t, id
	}
	out, err := queryList(ctx, s, "list endpoints", `SELECT `+endpointColumns+` FROM {{schema}}.endpoints
 WHERE ($1::text IS NULL OR tenant = $1) AND ($2::boolean IS NULL OR enabled = $2)
   AND ($3::timestamptz IS NULL OR (date_trunc('microseconds', created_at), id) > ($3, $4::uuid))
   AND ($6::text IS NULL OR tenant = $6)
 ORDER BY created_at, id
 LIMIT $5`, func(r pgx.CollectableRow) (Endpoint, error) { return scanEndpoint(r) },
		f.Tenant, f.Enabled, afterT, afterID, limit+1, s.tenantArg())
	if err != nil {
		return nil, "", err
	}
	out, next := cutPage(out, limit, func(e Endpoint) string { return encodeCursor(e.CreatedAt, e.ID) })
	return out, next, nil
}

// UpdateEndpoint applies p. Enabling a disabled endpoint releases the
// deliveries held while it was disabled; disabling holds its pending ones.
func (s *Store) UpdateEndpoint(ctx context.Context, id string, p EndpointPatch) (Endpoint, error) {
	if !ValidID(id) {
		return Endpoint{}, ErrNotFound
	}
	if err := p.Validate(); err != nil {
		return Endpoint{}, err
	}
	var types []string
	if p.EventTypes != nil {
		types = dedupe(*p.EventTypes)
	}
	var e Endpoint
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var wasEnabled bool
		if err := tx.QueryRow(ctx, qualify(`SELECT enabled FROM {{schema}}.endpoints
 WHERE id = $1 AND ($2::text IS NULL OR tenant = $2) FOR UPDATE`, s.schema), id, s.tenantArg()).Scan(&wasEnabled); err != nil {
			return err
		}
		var err error
		e, err = scanEndpoint(tx.QueryRow(ctx, qualify(`UPDATE {{schema}}.endpoints SET
    url = coalesce($2, url),
    description = coalesce($3, description),
    event_types = coalesce($4, event_types),
    enabled = coalesce($5, enabled),
    disabled_reason = CASE WHEN $5 IS NULL THEN disabled_reason WHEN $5 THEN '' WHEN enabled THEN 'disabled by operator' ELSE disabled_reason END,
    disabled_at = CASE WHEN $5 IS NULL THEN disabled_at WHEN $5 THEN NULL WHEN enabled THEN now() ELSE disabled_at END,
    consecutive_failures = CASE WHEN $5 AND NOT enabled THEN 0 ELSE consecutive_failures END,
    max_in_flight = CASE WHEN $6::int IS NULL THEN max_in_flight ELSE nullif($6, 0) END,
    rate_limit = CASE WHEN $7::int IS NULL THEN rate_limit ELSE nullif($7, 0) END,
    ordering_on_dead = CASE WHEN $8::text IS NULL THEN ordering_on_dead ELSE coalesce(nullif($8, ''), 'skip') END,
    updated_at = now()
 WHERE id = $1 AND ($9::text IS NULL OR tenant = $9)
RETURNING `+endpointColumns, s.schema), id, p.URL, p.Description, typesArg(p.EventTypes, types), p.Enabled, p.MaxInFlight, p.RateLimit, p.OrderingOnDead,
			s.tenantArg()))
		if err != nil {
			return err
		}
		switch {
		case e.Enabled && (!wasEnabled || p.OrderingOnDead != nil):
			// Held deliveries are due again, except those that wait for an
			// earlier delivery of their ordering key.
			_, err = tx.Exec(ctx, qualify(`UPDATE {{schema}}.deliveries d SET next_attempt_at = now(), updated_at = now()
 WHERE d.endpoint_id = $1 AND d.state = 'pending' AND d.next_attempt_at = 'infinity' AND NOT (`+waitsSQL+`)`, s.schema), id)
		case !e.Enabled && wasEnabled:
			_, err = tx.Exec(ctx, qualify(`UPDATE {{schema}}.deliveries SET next_attempt_at = 'infinity', updated_at = now()
 WHERE endpoint_id = $1 AND state = 'pending'`, s.schema), id)
		}
		return err
	})
	if err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			return Endpoint{}, err
		}
		return Endpoint{}, fmt.Errorf("update endpoint %s: %w", id, translate(err))
	}
	return e, nil
}

func typesArg(p *[]string, types []string) any {
	if p == nil {
		return nil
	}
	return types
}

// DeleteEndpoint removes an endpoint and cancels its unfinished deliveries.
func (s *Store) DeleteEndpoint(ctx context.Context, id string) error {
	if !ValidID(id) {
		return ErrNotFound
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, qualify(`DELETE FROM {{schema}}.endpoints
 WHERE id = $1 AND ($2::text IS NULL OR tenant = $2)`, s.schema), id, s.tenantArg())
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return pgx.ErrNoRows
		}
		_, err = tx.Exec(ctx, qualify(`UPDATE {{schema}}.deliveries
   SET state = 'cancelled', lease_token = NULL, lease_expires_at = NULL, finished_at = now(), updated_at = now(),
       last_error = 'endpoint deleted'
 WHERE endpoint_id = $1 AND state IN ('pending', 'in_flight')`, s.schema), id)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete endpoint %s: %w", id, translate(err))
	}
	return nil
}

// RotateSecret makes newSecret the endpoint's signing secret; the previous
// one keeps signing (a second signature) for grace. Old secrets past their
// window are dropped; a grace of 0 drops every old secret at once (the
// "secret leaked" case). The returned endpoint carries the new secret.
func (s *Store) RotateSecret(ctx context.Context, id, newSecret string, grace time.Duration) (Endpoint, error) {
	if !ValidID(id) {
		return Endpoint{}, ErrNotFound
	}
	if !strings.HasPrefix(newSecret, "whsec_") {
		return Endpoint{}, &FieldError{Field: "secret", Reason: `must start with "whsec_"`}
	}
	sealed, err := s.sealSecret(newSecret)
	if err != nil {
		return Endpoint{}, fmt.Errorf("rotate secret: seal: %w", err)
	}
	e, err := scanEndpoint(s.pool.QueryRow(ctx, qualify(`UPDATE {{schema}}.endpoints SET
    old_secrets = (SELECT coalesce(jsonb_agg(x), '[]'::jsonb) FROM jsonb_array_elements(old_secrets) x
                    WHERE $3 > 0 AND (x->>'expires_at')::timestamptz > now())
                  || CASE WHEN $3 > 0 THEN jsonb_build_array(jsonb_build_object('secret', secret,
                         'expires_at', now() + make_interval(secs => $3))) ELSE '[]'::jsonb END,
    secret = $2, updated_at = now()
 WHERE id = $1 AND ($4::text IS NULL OR tenant = $4)
RETURNING `+endpointColumns, s.schema), id, sealed, grace.Seconds(), s.tenantArg()))
	if err != nil {
		return Endpoint{}, fmt.Errorf("rotate secret of endpoint %s: %w", id, translate(err))
	}
	e.Secret = newSecret
	return e, nil
}
