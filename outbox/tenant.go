package outbox

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Tenant scoping and tenant API tokens.
//
// A tenant token (hrt_...) gives the application's customer access to its
// own rows through the /v1 API. The HTTP layer turns a token into a store
// limited to its tenant with [Store.ForTenant]; every query behind the
// tenant-facing operations then carries a tenant = $n predicate, so another
// tenant's rows are never read, rather than read and dropped in Go.

// ErrOtherTenant is returned when a tenant-scoped caller asks to create or
// move something for another tenant. It is not returned for reads or for
// ids of other tenants' rows: those are ErrNotFound, confirming nothing.
var ErrOtherTenant = errors.New("not allowed for another tenant")

// ForTenant returns a copy of the store whose tenant-facing queries see
// only tenant's rows: endpoints, events, deliveries, attempts, trace,
// replay, backfill and health. An id of another tenant's row reads as
// ErrNotFound, and creating an endpoint for another tenant is
// ErrOtherTenant. The engine's statements (fan-out, claim, outcomes) and
// the admin-only ones (tokens, the event-type catalog's writes) are not
// limited.
func (s *Store) ForTenant(tenant string) *Store {
	c := *s
	c.tenant = &tenant
	return &c
}

// Tenant reports the tenant the store is limited to, if any.
func (s *Store) Tenant() (tenant string, scoped bool) {
	if s.tenant == nil {
		return "", false
	}
	return *s.tenant, true
}

// tenantArg is the value of the tenant predicate's parameter: NULL for an
// unscoped store (every tenant), else the tenant. Queries write it as
// ($n::text IS NULL OR tenant = $n).
func (s *Store) tenantArg() *string { return s.tenant }

// CheckTenant refuses, for a scoped store, a write naming another tenant
// (ErrOtherTenant); an unscoped store accepts every tenant.
func (s *Store) CheckTenant(tenant string) error {
	if s.tenant != nil && *s.tenant != tenant {
		return fmt.Errorf("tenant %q: %w", tenant, ErrOtherTenant)
	}
	return nil
}

// TokenPrefix starts every tenant token value.
const TokenPrefix = "hrt_"

// tokenBytes is the randomness of a token value: 256 bits.
const tokenBytes = 32

// MaxTokenLifetime bounds TokenInput.ExpiresIn.
const MaxTokenLifetime = 10 * 365 * 24 * time.Hour

// Token is a tenant API token as listed: never its value, which only
// CreateToken returns (in Value), once.
type Token struct {
	ID          string `json:"id"`
	Tenant      string `json:"tenant"`
	ReadOnly    bool   `json:"read_only"`
	Description string `json:"description"`
	// ExpiresAt is nil for a token that does not expire.
	ExpiresAt *time.Time `json:"expires_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	// Value is the token itself ("hrt_..."), set only by CreateToken.
	Value string `json:"token,omitempty"`
}

// Active reports whether the token still authenticates at now.
func (t Token) Active(now time.Time) bool {
	return t.RevokedAt == nil && (t.ExpiresAt == nil || t.ExpiresAt.After(now))
}

// TokenInput is what creating a token takes.
type TokenInput struct {
	// Tenant is the tenant the token acts for; required.
	Tenant string
	// ReadOnly tokens may only read.
	ReadOnly bool
	// ExpiresIn is the token's lifetime; 0 means it does not expire.
	ExpiresIn   time.Duration
	Description string
}

// Validate checks the input's fields.
func (in TokenInput) Validate() error {
	if in.Tenant == "" {
		return &FieldError{Field: "tenant", Reason: "is required: a token acts for one tenant (the admin token sees all)"}
	}
	if err := validateText("tenant", in.Tenant, MaxTenantLen); err != nil {
		return err
	}
	if err := validateText("description", in.Description, MaxDescriptionLen); err != nil {
		return err
	}
	if in.ExpiresIn < 0 || in.ExpiresIn > MaxTokenLifetime {
		return &FieldError{Field: "expires_in", Reason: fmt.Sprintf("must be from 0 (no expiry) to %s, got %s", MaxTokenLifetime, in.ExpiresIn)}
	}
	return nil
}

// HashToken is what the tokens table keeps of a token value: its SHA-256.
// A value carries 256 random bits, so a fast hash is enough: nothing can be
// guessed from it, and looking a token up stays one index probe.
func HashToken(value string) []byte {
	h := sha256.Sum256([]byte(value))
	return h[:]
}

// IsTokenValue reports whether s has the form of a tenant token value.
func IsTokenValue(s string) bool {
	if !strings.HasPrefix(s, TokenPrefix) {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(s[len(TokenPrefix):])
	return err == nil && len(b) == tokenBytes
}

func newTokenValue() (string, error) {
	var b [tokenBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

const tokenColumns = `id::text, tenant, read_only, description, expires_at, revoked_at, created_at`

func scanToken(row pgx.Row) (Token, error) {
	var t Token
	err := row.Scan(&t.ID, &t.Tenant, &t.ReadOnly, &t.Description, &t.ExpiresAt, &t.RevokedAt, &t.CreatedAt)
	return t, err
}

// CreateToken issues a tenant token. The returned Token carries its value
// in Value; only the value's hash is stored.
func (s *Store) CreateToken(ctx context.Context, in TokenInput) (Token, error) {
	if err := in.Validate(); err != nil {
		return Token{}, err
	}
	value, err := newTokenValue()
	if err != nil {
		return Token{}, err
	}
	var expires *float64
	if in.ExpiresIn > 0 {
		secs := in.ExpiresIn.Seconds()
		expires = &secs
	}
	t, err := scanToken(s.pool.QueryRow(ctx, qualify(`INSERT INTO {{schema}}.tokens (tenant, token_hash, read_only, description, expires_at)
VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
RETURNING `+tokenColumns, s.schema), in.Tenant, HashToken(value), in.ReadOnly, in.Description, expires))
	if err != nil {
		return Token{}, fmt.Errorf("create token: %w", translate(err))
	}
	t.Value = value
	return t, nil
}

// ListTokens lists tokens (revoked and expired ones too), oldest first,
// of one tenant when tenant is not nil. At most 1000 are returned.
func (s *Store) ListTokens(ctx context.Context, tenant *string) ([]Token, error) {
	return queryList(ctx, s, "list tokens", `SELECT `+tokenColumns+` FROM {{schema}}.tokens
 WHERE ($1::text IS NULL OR tenant = $1)
 ORDER BY tenant, created_at, id
 LIMIT 1000`, func(r pgx.CollectableRow) (Token, error) { return scanToken(r) }, tenant)
}

// RevokeToken revokes a token at once: its next request, on any replica,
// is refused. Revoking a revoked token keeps the first revocation time.
func (s *Store) RevokeToken(ctx context.Context, id string) (Token, error) {
	if !ValidID(id) {
		return Token{}, fmt.Errorf("token %s: %w", id, ErrNotFound)
	}
	t, err := scanToken(s.pool.QueryRow(ctx, qualify(`UPDATE {{schema}}.tokens
   SET revoked_at = coalesce(revoked_at, now())
 WHERE id = $1
RETURNING `+tokenColumns, s.schema), id))
	if err != nil {
		return Token{}, fmt.Errorf("revoke token %s: %w", id, translate(err))
	}
	return t, nil
}

// Authenticate returns the active token whose value is value, or
// ErrNotFound for an unknown, revoked or expired one (which the caller
// answers alike). It reads the database on every call, so revocations
// and expiries hold at once on every replica.
func (s *Store) Authenticate(ctx context.Context, value string) (Token, error) {
	if !IsTokenValue(value) {
		return Token{}, ErrNotFound
	}
	t, err := scanToken(s.pool.QueryRow(ctx, qualify(`SELECT `+tokenColumns+` FROM {{schema}}.tokens
 WHERE token_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())`, s.schema), HashToken(value)))
	if err != nil {
		return Token{}, fmt.Errorf("authenticate token: %w", translate(err))
	}
	return t, nil
}
