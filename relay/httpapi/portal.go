package httpapi

import (
	"net/http"
	"strings"

	"github.com/hookrelay/hookrelay/relay/portal"
)

// createPortalSession answers POST /v1/portal/sessions: a one-time link
// to the customer portal for a tenant. A tenant token may ask only for its
// own tenant (the default when the body names none).
func (s *server) createPortalSession(w http.ResponseWriter, r *http.Request, p *principal) error {
	if s.o.Portal == nil {
		return &apiError{status: http.StatusNotFound, code: "portal_off", msg: "the customer portal is not served here"}
	}
	var req portal.SessionRequest
	if err := decodeBody(w, r, maxBody, false, &req); err != nil {
		return err
	}
	if tenant, scoped := p.store.Tenant(); scoped && req.Tenant == "" {
		req.Tenant = tenant
	}
	if err := p.store.CheckTenant(req.Tenant); err != nil {
		return err
	}
	link, err := s.o.Portal.CreateSession(r.Context(), r, req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, link)
	return nil
}

// portalDeadlines gives the portal's Test button, which waits for the
// receiver (up to HOOKRELAY_REQUEST_TIMEOUT), LongCallTimeout like the
// API's test route.
func portalDeadlines(h http.Handler) http.Handler {
	long := withDeadlines(LongCallTimeout, h.ServeHTTP)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/test") {
			long(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}
