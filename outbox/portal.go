package outbox

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Customer portal sessions, and the reads only the portal's pages make.
//
// A portal session starts as a one-time login code (CreatePortalSession)
// that the application hands its customer inside a link; opening the link
// redeems the code once (RedeemPortalCode) for a session token that the
// browser keeps in a cookie, and each request reads the session by that
// token (PortalSession). The table keeps only SHA-256 hashes of the code
// and the token: both carry 256 random bits, so a fast hash is enough and
// each lookup is one index probe.

// ErrCodeUsed is returned by RedeemPortalCode for a code that was already
// redeemed, ErrCodeExpired for one past its lifetime. Any other code that
// opens nothing is ErrNotFound. The portal answers all three alike.
var (
	ErrCodeUsed    = errors.New("the portal link was already used")
	ErrCodeExpired = errors.New("the portal link has expired")
)

// portalSecretBytes is the randomness of a login code and a session token.
const portalSecretBytes = 32

// purgeSessionsBatch bounds how many expired sessions one
// CreatePortalSession removes.
const purgeSessionsBatch = 100

// PortalSession is a customer portal session.
type PortalSession struct {
	ID        string
	Tenant    string
	ReadOnly  bool
	ReturnURL string
	// ExpiresAt ends the session; CodeExpiresAt ends the login code.
	ExpiresAt     time.Time
	CodeExpiresAt time.Time
	CreatedAt     time.Time
	// Code is the one-time login code, set only by CreatePortalSession;
	// Token the session token, set only by RedeemPortalCode.
	Code  string
	Token string
}

// Expired reports whether the session has ended at now.
func (p PortalSession) Expired(now time.Time) bool { return !p.ExpiresAt.After(now) }

// PortalSessionInput is what creating a portal session takes.
type PortalSessionInput struct {
	// Tenant is the tenant the session acts for; required.
	Tenant   string
	ReadOnly bool
	// ReturnURL is where the portal's "back" link goes ("" for none); the
	// caller checks it.
	ReturnURL string
	// TTL is the session's lifetime from its creation, CodeTTL the login
	// code's; both > 0.
	TTL, CodeTTL time.Duration
}

func newPortalSecret() (string, error) {
	var b [portalSecretBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate portal secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// IsPortalSecret reports whether s has the form of a login code or a
// session token, so a forged value costs no query.
func IsPortalSecret(s string) bool {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == portalSecretBytes
}

const portalSessionColumns = `id::text, tenant, read_only, return_url, expires_at, code_expires_at, created_at`

func scanPortalSession(row pgx.Row) (PortalSession, error) {
	var p PortalSession
	err := row.Scan(&p.ID, &p.Tenant, &p.ReadOnly, &p.ReturnURL, &p.ExpiresAt, &p.CodeExpiresAt, &p.CreatedAt)
	return p, err
}

// CreatePortalSession makes a session for in.Tenant and returns it with
// its login code (in Code). It also removes a batch of sessions that
// ended over a day ago.
func (s *Store) CreatePortalSession(ctx context.Context, in PortalSessionInput) (PortalSession, error) {
	if in.Tenant == "" {
		return PortalSession{}, &FieldError{Field: "tenant", Reason: "is required: a portal session acts for one tenant"}
	}
	if err := validateText("tenant", in.Tenant, MaxTenantLen); err != nil {
		return PortalSession{}, err
	}
	if err := s.CheckTenant(in.Tenant); err != nil {
		return PortalSession{}, err
	}
	if in.TTL <= 0 || in.CodeTTL <= 0 {
		return PortalSession{}, &FieldError{Field: "expires_in", Reason: "must be more than 0"}
	}
	code, err := newPortalSecret()
	if err != nil {
		return PortalSession{}, err
	}
	p, err := scanPortalSession(s.pool.QueryRow(ctx, qualify(`WITH purge AS (
    DELETE FROM {{schema}}.portal_sessions WHERE id IN (
        SELECT id FROM {{schema}}.portal_sessions WHERE expires_at < now() - interval '1 day'
         ORDER BY expires_at LIMIT $7)
)
INSERT INTO {{schema}}.portal_sessions (tenant, read_only, return_url, code_hash, code_expires_at, expires_at)
VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5), now() + make_interval(secs => $6))
RETURNING `+portalSessionColumns, s.schema),
		in.Tenant, in.ReadOnly, in.ReturnURL, HashToken(code), min(in.CodeTTL, in.TTL).Seconds(), in.TTL.Seconds(), purgeSessionsBatch))
	if err != nil {
		return PortalSession{}, fmt.Errorf("create portal session: %w", translate(err))
	}
	p.Code = code
	return p, nil
}

// RedeemPortalCode trades a login code for the session's token (in
// Token), once: a second redemption is ErrCodeUsed, a late one
// ErrCodeExpired, an unknown code ErrNotFound. The code is spent in the
// same statement that checks it, so two replicas racing on one link give
// one session.
func (s *Store) RedeemPortalCode(ctx context.Context, code string) (PortalSession, error) {
	if !IsPortalSecret(code) {
		return PortalSession{}, ErrNotFound
	}
	token, err := newPortalSecret()
	if err != nil {
		return PortalSession{}, err
	}
	var redeemed bool
	var usedAt *time.Time
	row := s.pool.QueryRow(ctx, qualify(`WITH redeem AS (
    UPDATE {{schema}}.portal_sessions SET code_used_at = now(), session_hash = $2
     WHERE code_hash = $1 AND code_used_at IS NULL AND code_expires_at > now() AND expires_at > now()
    RETURNING `+portalSessionColumns+`
)
SELECT true, `+portalSessionColumns+`, NULL::timestamptz FROM redeem
UNION ALL
SELECT false, `+portalSessionColumns+`, code_used_at FROM {{schema}}.portal_sessions
 WHERE code_hash = $1 AND NOT EXISTS (SELECT 1 FROM redeem)`, s.schema), HashToken(code), HashToken(token))
	var p PortalSession
	err = row.Scan(&redeemed, &p.ID, &p.Tenant, &p.ReadOnly, &p.ReturnURL, &p.ExpiresAt, &p.CodeExpiresAt, &p.CreatedAt, &usedAt)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return PortalSession{}, ErrNotFound
	case err != nil:
		return PortalSession{}, fmt.Errorf("redeem portal code: %w", translate(err))
	case redeemed:
		p.Token = token
		return p, nil
	case usedAt != nil:
		return p, ErrCodeUsed
	default:
		return p, ErrCodeExpired
	}
}

// PortalSession returns the session whose token is token, ended or not
// (see PortalSession.Expired), or ErrNotFound.
func (s *Store) PortalSession(ctx context.Context, token string) (PortalSession, error) {
	if !IsPortalSecret(token) {
		return PortalSession{}, ErrNotFound
	}
	p, err := scanPortalSession(s.pool.QueryRow(ctx, qualify(`SELECT `+portalSessionColumns+`
  FROM {{schema}}.portal_sessions WHERE session_hash = $1`, s.schema), HashToken(token)))
	if err != nil {
		return PortalSession{}, fmt.Errorf("portal session: %w", translate(err))
	}
	return p, nil
}

// EndPortalSession ends a session at once (signing out).
func (s *Store) EndPortalSession(ctx context.Context, id string) error {
	if !ValidID(id) {
		return ErrNotFound
	}
	_, err := s.pool.Exec(ctx, qualify(`UPDATE {{schema}}.portal_sessions SET expires_at = least(expires_at, now())
 WHERE id = $1`, s.schema), id)
	if err != nil {
		return fmt.Errorf("end portal session %s: %w", id, translate(err))
	}
	return nil
}

// EndpointSummary is what the portal's endpoint list shows of an
// endpoint's last day beside its own columns.
type EndpointSummary struct {
	// Attempts counts the attempts started in the last day (test sends
	// excluded, newest HealthSample at most), Succeeded those that
	// delivered.
	Attempts, Succeeded int
	// LastError is the newest failed attempt's error class and status
	// (nil when none failed).
	LastError *LastError
}

// SuccessRate is Succeeded/Attempts, or -1 without attempts.
func (e EndpointSummary) SuccessRate() float64 {
	if e.Attempts == 0 {
		return -1
	}
	return float64(e.Succeeded) / float64(e.Attempts)
}

// EndpointSummaries reads, in one statement, the last day's record of the
// given endpoints (ids of another tenant, for a scoped store, are left
// out), by endpoint id.
func (s *Store) EndpointSummaries(ctx context.Context, ids []string) (map[string]EndpointSummary, error) {
	out := map[string]EndpointSummary{}
	valid := make([]string, 0, len(ids))
	for _, id := range ids {
		if ValidID(id) {
			valid = append(valid, id)
		}
	}
	if len(valid) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, qualify(`SELECT e.id::text, w.n, w.ok, f.started_at, f.delivery_id, f.status_code, f.error_class, f.error
  FROM {{schema}}.endpoints e
  CROSS JOIN LATERAL (
    SELECT count(*)::int AS n, count(*) FILTER (WHERE a.outcome = 'delivered')::int AS ok FROM (
        SELECT a.outcome FROM {{schema}}.attempts a
         WHERE a.endpoint_id = e.id AND a.started_at > now() - interval '1 day'
           AND NOT EXISTS (SELECT 1 FROM {{schema}}.outbox o WHERE o.id = a.event_id AND o.test)
         ORDER BY a.started_at DESC LIMIT $3) a) w
  LEFT JOIN LATERAL (
    SELECT a.started_at, a.delivery_id, a.status_code, a.error_class, a.error FROM {{schema}}.attempts a
     WHERE a.endpoint_id = e.id AND a.outcome <> 'delivered'
     ORDER BY a.started_at DESC, a.id DESC LIMIT 1) f ON true
 WHERE e.id = ANY ($1::uuid[]) AND ($2::text IS NULL OR e.tenant = $2)`, s.schema), valid, s.tenantArg(), HealthSample)
	if err != nil {
		return nil, fmt.Errorf("endpoint summaries: %w", translate(err))
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var sum EndpointSummary
		var at *time.Time
		var deliveryID *int64
		var le LastError
		var class, text *string
		if err := rows.Scan(&id, &sum.Attempts, &sum.Succeeded, &at, &deliveryID, &le.StatusCode, &class, &text); err != nil {
			return nil, fmt.Errorf("endpoint summaries: %w", translate(err))
		}
		if at != nil {
			le.At, le.DeliveryID, le.ErrorClass, le.Error = *at, *deliveryID, *class, *text
			sum.LastError = &le
		}
		out[id] = sum
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("endpoint summaries: %w", translate(err))
	}
	return out, nil
}

// SecretWindows returns when each of an endpoint's old secrets stops
// signing (those still signing, soonest first), or ErrNotFound.
func (s *Store) SecretWindows(ctx context.Context, id string) ([]time.Time, error) {
	if !ValidID(id) {
		return nil, ErrNotFound
	}
	var ends []time.Time
	err := s.pool.QueryRow(ctx, qualify(`SELECT ARRAY(SELECT (x->>'expires_at')::timestamptz FROM jsonb_array_elements(old_secrets) x
       WHERE (x->>'expires_at')::timestamptz > now() ORDER BY 1)
  FROM {{schema}}.endpoints WHERE id = $1 AND ($2::text IS NULL OR tenant = $2)`, s.schema), id, s.tenantArg()).Scan(&ends)
	if err != nil {
		return nil, fmt.Errorf("secret windows of endpoint %s: %w", id, translate(err))
	}
	return ends, nil
}
