package httpapi

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/relay/endpoint"
)

// Who may call a /v1 route.
//
// The admin token (HOOKRELAY_ADMIN_TOKEN) may call every route and sees
// every tenant. A tenant token (hrt_..., POST /v1/tokens) works on the
// routes marked tenantRead or tenantWrite, limited to its tenant: its
// handlers get a store and an endpoint service scoped to the tenant, so
// lists show the tenant's rows only and another tenant's ids answer 404
// (from the queries, which carry the tenant predicate). Creating or moving
// something for another tenant answers 403 other_tenant, a read-only token
// answers 403 read_only on every tenantWrite route, and every adminOnly
// route answers a tenant token 403 admin_only.
type access int

const (
	adminOnly   access = iota // the admin token only
	tenantRead                // any token; tenant tokens see their own rows
	tenantWrite               // the admin and tenant tokens that are not read-only
)

func (a access) String() string {
	switch a {
	case tenantRead:
		return "tenant read"
	case tenantWrite:
		return "tenant write"
	}
	return "admin only"
}

// principal is who makes a /v1 request, with what it may use.
type principal struct {
	// token is the tenant token, nil for the admin.
	token *outbox.Token
	// store and endpoints are scoped to the token's tenant (the whole
	// store for the admin). Handlers use these, never Options.Store.
	store     *outbox.Store
	endpoints *endpoint.Service
}

// admin reports whether the admin token made the request.
func (p *principal) admin() bool { return p.token == nil }

type principalKey struct{}

// authenticate says who made a /v1 request, or answers it (401, 403
// admin_disabled, 503) and returns nil. A tenant token is looked up in the
// database on every request, so a revoked or expired one is refused at
// once on every replica. Token values are never logged.
func (s *server) authenticate(w http.ResponseWriter, r *http.Request) *principal {
	tok, hasBearer := bearer(r)
	if len(s.token) > 0 && hasBearer && subtle.ConstantTimeCompare([]byte(tok), s.token) == 1 {
		return &principal{store: s.o.Store, endpoints: s.o.Endpoints}
	}
	if hasBearer && strings.HasPrefix(tok, outbox.TokenPrefix) {
		t, err := s.o.Store.Authenticate(r.Context(), tok)
		switch {
		case errors.Is(err, outbox.ErrNotFound):
			w.Header().Set("WWW-Authenticate", `Bearer realm="hookrelay", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "invalid, expired or revoked tenant token", "")
			return nil
		case err != nil:
			if r.Context().Err() == nil {
				s.log.Error("check tenant token", zap.String("path", r.URL.Path), zap.Error(err))
			}
			w.Header().Set("Retry-After", "5")
			writeError(w, http.StatusServiceUnavailable, "unavailable", "the token cannot be checked now", "")
			return nil
		}
		return &principal{token: &t, store: s.o.Store.ForTenant(t.Tenant), endpoints: s.o.Endpoints.ForTenant(t.Tenant)}
	}
	if len(s.token) == 0 {
		writeError(w, http.StatusForbidden, "admin_disabled", "the admin API is off: set HOOKRELAY_ADMIN_TOKEN to enable it (tenant tokens work without it)", "")
		return nil
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="hookrelay"`)
	msg := "invalid bearer token"
	if r.Header.Get("Authorization") == "" {
		msg = "missing bearer token"
	}
	writeError(w, http.StatusUnauthorized, "unauthorized", msg, "")
	return nil
}

// bearer returns the request's bearer token.
func bearer(r *http.Request) (string, bool) {
	scheme, tok, found := strings.Cut(r.Header.Get("Authorization"), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// allow answers a request that p may not make on a route of access a
// (403) and reports whether it may go on.
func allow(w http.ResponseWriter, p *principal, a access) bool {
	if p.admin() {
		return true
	}
	switch {
	case a == adminOnly:
		writeError(w, http.StatusForbidden, "admin_only", "this route needs the admin token", "")
		return false
	case a == tenantWrite && p.token.ReadOnly:
		writeError(w, http.StatusForbidden, "read_only", "this token is read-only", "")
		return false
	}
	return true
}

// withPrincipal stores p in r's context.
func withPrincipal(r *http.Request, p *principal) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
}

// principalOf returns the principal serveV1 stored.
func principalOf(r *http.Request) *principal {
	p, _ := r.Context().Value(principalKey{}).(*principal)
	return p
}
