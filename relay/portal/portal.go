package portal

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/relay/endpoint"
)

// Session lifetimes.
const (
	// DefaultSessionTTL is a session's lifetime when the request does not
	// say (expires_in).
	DefaultSessionTTL = time.Hour
	// MaxSessionTTL bounds expires_in.
	MaxSessionTTL = 24 * time.Hour
	// CodeTTL is how long a session's login link can be opened (once).
	CodeTTL = 10 * time.Minute
)

// Branding defaults.
const (
	// DefaultTitle is the portal's title (HOOKRELAY_PORTAL_TITLE).
	DefaultTitle = "Webhooks"
	// DefaultAccent is the colour of links and buttons
	// (HOOKRELAY_PORTAL_ACCENT); white text on it has a contrast above 4.5:1.
	DefaultAccent = "#1d4ed8"
)

// CookieName is the session cookie's name.
const CookieName = "hookrelay_portal"

// maxForm caps a form post's body.
const maxForm = 64 << 10

// Config is what a Portal works with.
type Config struct {
	// Store runs the queries; required. The portal scopes it to the
	// session's tenant.
	Store *outbox.Store
	// Endpoints runs the endpoint operations; required. The portal scopes
	// it to the session's tenant.
	Endpoints *endpoint.Service
	// Prefix is the path the portal is served under (HOOKRELAY_PORTAL_PREFIX):
	// starts with "/", does not end with "/"; required.
	Prefix string
	// PublicURL is the scheme and host (and optional path) the portal's
	// links start with (HOOKRELAY_PUBLIC_URL), e.g. https://app.example.com;
	// "" builds them from the request's Host. An https URL makes the
	// session cookie Secure.
	PublicURL string
	// FrameAncestors are the sources that may frame the portal
	// (HOOKRELAY_PORTAL_FRAME_ANCESTORS); none means it may not be framed.
	FrameAncestors []string
	// Title and Accent brand the pages (DefaultTitle, DefaultAccent when
	// empty). Accent is a #rgb or #rrggbb colour.
	Title, Accent string
	// Log receives request errors.
	Log *zap.Logger
}

// Portal serves the customer portal. Create it with New.
type Portal struct {
	c      Config
	log    *zap.Logger
	mux    *http.ServeMux
	pages  *pages
	secure bool
	csp    string
}

var accentPattern = regexp.MustCompile(`^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$`)

// CheckAccent reports what is wrong with an accent colour ("" when it is
// a #rgb or #rrggbb colour).
func CheckAccent(s string) string {
	if !accentPattern.MatchString(s) {
		return fmt.Sprintf("%q is not a colour like #1d4ed8 or #15c", s)
	}
	return ""
}

var sourcePattern = regexp.MustCompile(`^('self'|(https?://)?(\*\.)?[A-Za-z0-9.-]+(:[0-9]{1,5}|:\*)?|https?:)$`)

// CheckFrameAncestor reports what is wrong with a frame-ancestors source
// ("" when it is 'self', a scheme (https:) or a host source such as
// https://app.example.com or https://*.example.com).
func CheckFrameAncestor(s string) string {
	if !sourcePattern.MatchString(s) {
		return fmt.Sprintf("%q is not a frame-ancestors source: use 'self' or an origin like https://app.example.com", s)
	}
	return ""
}

// New returns the portal, or an error naming what is missing or wrong.
func New(c Config) (*Portal, error) {
	switch {
	case c.Store == nil:
		return nil, errors.New("portal: Config.Store is required")
	case c.Endpoints == nil:
		return nil, errors.New("portal: Config.Endpoints is required")
	case !strings.HasPrefix(c.Prefix, "/") || strings.HasSuffix(c.Prefix, "/"):
		return nil, fmt.Errorf("portal: prefix %q must start with / and not end with /", c.Prefix)
	}
	if c.Title == "" {
		c.Title = DefaultTitle
	}
	if c.Accent == "" {
		c.Accent = DefaultAccent
	}
	if msg := CheckAccent(c.Accent); msg != "" {
		return nil, errors.New("portal: accent " + msg)
	}
	for _, a := range c.FrameAncestors {
		if msg := CheckFrameAncestor(a); msg != "" {
			return nil, errors.New("portal: " + msg)
		}
	}
	secure := false
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("portal: public URL %q is not an absolute http(s) URL", c.PublicURL)
		}
		secure = u.Scheme == "https"
		c.PublicURL = strings.TrimSuffix(c.PublicURL, "/")
	}
	if c.Log == nil {
		c.Log = zap.NewNop()
	}
	pg, err := newPages(c)
	if err != nil {
		return nil, err
	}
	p := &Portal{c: c, log: c.Log.Named("portal"), pages: pg, secure: secure}
	ancestors := "'none'"
	if len(c.FrameAncestors) > 0 {
		ancestors = strings.Join(c.FrameAncestors, " ")
	}
	p.csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
		"form-action 'self'; base-uri 'none'; frame-ancestors " + ancestors
	p.routes()
	return p, nil
}

// ServeHTTP serves the portal's paths (the prefix and everything under it).
func (p *Portal) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", p.csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	if len(p.c.FrameAncestors) == 0 {
		h.Set("X-Frame-Options", "DENY")
	}
	_, pattern := p.mux.Handler(r)
	if pattern == "" {
		p.pages.errorPage(w, r, http.StatusNotFound, "Page not found", "There is no such page in the webhook portal.")
		return
	}
	p.mux.ServeHTTP(w, r)
}

// SessionRequest is the body of POST /v1/portal/sessions.
type SessionRequest struct {
	// Tenant is the tenant the session acts for; required.
	Tenant string `json:"tenant"`
	// ExpiresIn is the session's lifetime ("1h" when empty), at most
	// MaxSessionTTL.
	ExpiresIn string `json:"expires_in"`
	// ReadOnly sessions may look but not change anything.
	ReadOnly bool `json:"read_only"`
	// ReturnURL, when set, is where the portal's "back" link goes: an
	// absolute http(s) URL or a path.
	ReturnURL string `json:"return_url"`
}

// SessionLink is the answer of POST /v1/portal/sessions.
type SessionLink struct {
	// URL opens the portal once, within CodeTTL.
	URL string `json:"url"`
	// ExpiresAt is when the session ends.
	ExpiresAt time.Time `json:"expires_at"`
	// LinkExpiresAt is when the URL stops opening it.
	LinkExpiresAt time.Time `json:"link_expires_at"`
}

// CreateSession makes a portal session for req.Tenant and returns its
// one-time link. r is the API request: without a public URL the link
// starts with its Host. Errors on the request's fields are
// *outbox.FieldError.
func (p *Portal) CreateSession(ctx context.Context, r *http.Request, req SessionRequest) (SessionLink, error) {
	ttl := DefaultSessionTTL
	if req.ExpiresIn != "" {
		d, err := time.ParseDuration(req.ExpiresIn)
		if err != nil {
			return SessionLink{}, &outbox.FieldError{Field: "expires_in", Reason: fmt.Sprintf("%q is not a duration like \"1h\" or \"30m\"", req.ExpiresIn)}
		}
		if d < time.Minute || d > MaxSessionTTL {
			return SessionLink{}, &outbox.FieldError{Field: "expires_in", Reason: fmt.Sprintf("must be from 1m to %s, got %s", MaxSessionTTL, d)}
		}
		ttl = d
	}
	if err := checkReturnURL(req.ReturnURL); err != nil {
		return SessionLink{}, err
	}
	s, err := p.c.Store.CreatePortalSession(ctx, outbox.PortalSessionInput{
		Tenant: req.Tenant, ReadOnly: req.ReadOnly, ReturnURL: req.ReturnURL, TTL: ttl, CodeTTL: CodeTTL,
	})
	if err != nil {
		return SessionLink{}, err
	}
	return SessionLink{
		URL:           p.base(r) + p.c.Prefix + "/login?code=" + url.QueryEscape(s.Code),
		ExpiresAt:     s.ExpiresAt.UTC(),
		LinkExpiresAt: s.CodeExpiresAt.UTC(),
	}, nil
}

// base is the scheme and host the portal's absolute links start with.
func (p *Portal) base(r *http.Request) string {
	if p.c.PublicURL != "" {
		return p.c.PublicURL
	}
	scheme := "http"
	if r != nil && r.TLS != nil {
		scheme = "https"
	}
	host := "localhost"
	if r != nil && r.Host != "" {
		host = r.Host
	}
	return scheme + "://" + host
}

func checkReturnURL(s string) error {
	if s == "" {
		return nil
	}
	bad := &outbox.FieldError{Field: "return_url", Reason: "must be an absolute http(s) URL or a path starting with /"}
	if len(s) > 2048 || strings.ContainsAny(s, "\x00\r\n") {
		return bad
	}
	u, err := url.Parse(s)
	if err != nil {
		return bad
	}
	switch {
	case u.Scheme == "http" || u.Scheme == "https":
		if u.Host == "" || u.User != nil {
			return bad
		}
	case u.Scheme == "" && u.Host == "" && strings.HasPrefix(s, "/") && !strings.HasPrefix(s, "//") && !strings.HasPrefix(s, "/\\"):
	default:
		return bad
	}
	return nil
}

// session is the request's portal session with what the pages need.
type session struct {
	outbox.PortalSession
	csrf      string
	store     *outbox.Store
	endpoints *endpoint.Service
}

type sessionKey struct{}

func sessionOf(r *http.Request) *session {
	s, _ := r.Context().Value(sessionKey{}).(*session)
	return s
}

// csrfToken derives the session's CSRF token from its (secret) token, so
// nothing more is stored and no other session's token matches.
func csrfToken(sessionToken string) string {
	m := hmac.New(sha256.New, []byte(sessionToken))
	m.Write([]byte("hookrelay portal csrf"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// authed wraps a page that needs a session: no session or an ended one
// gets an error page; a POST needs the CSRF token and a session that may
// write.
func (p *Portal) authed(h func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		c, err := r.Cookie(CookieName)
		if err != nil || c.Value == "" {
			p.pages.errorPage(w, r, http.StatusUnauthorized, "Not signed in",
				"Open the webhook portal from the application: its links sign you in.")
			return
		}
		ps, err := p.c.Store.PortalSession(r.Context(), c.Value)
		switch {
		case errors.Is(err, outbox.ErrNotFound):
			p.clearCookie(w)
			p.pages.errorPage(w, r, http.StatusUnauthorized, "Not signed in",
				"Open the webhook portal from the application: its links sign you in.")
			return
		case err != nil:
			p.fail(w, r, err)
			return
		case ps.Expired(time.Now()):
			p.clearCookie(w)
			p.pages.render(w, r, http.StatusUnauthorized, "error", nil, errorData{Title: "Session ended",
				Message: "Your webhook portal session has ended. Open the portal again from the application.", ReturnURL: ps.ReturnURL})
			return
		}
		s := &session{PortalSession: ps, csrf: csrfToken(c.Value),
			store: p.c.Store.ForTenant(ps.Tenant), endpoints: p.c.Endpoints.ForTenant(ps.Tenant)}
		r = r.WithContext(context.WithValue(r.Context(), sessionKey{}, s))
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
			if err := r.ParseForm(); err != nil {
				p.pages.errorPage(w, r, http.StatusBadRequest, "Bad request", "The form could not be read.")
				return
			}
			if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(s.csrf)) != 1 {
				p.pages.errorPage(w, r, http.StatusForbidden, "Form expired",
					"The form was not sent from this portal session. Go back, reload the page and try again.")
				return
			}
			if s.ReadOnly && r.URL.Path != p.c.Prefix+"/logout" {
				p.pages.errorPage(w, r, http.StatusForbidden, "Read-only session",
					"This session can look but not change anything.")
				return
			}
		}
		if err := h(w, r); err != nil {
			p.fail(w, r, err)
		}
	}
}

// fail answers an error of a page: not found for another tenant's or an
// unknown id, the message of a refused field, else a logged internal
// error.
func (p *Portal) fail(w http.ResponseWriter, r *http.Request, err error) {
	var fe *outbox.FieldError
	var se *outbox.StateError
	var tooMany *outbox.TooManyEndpointsError
	switch {
	case errors.Is(err, outbox.ErrNotFound):
		p.pages.errorPage(w, r, http.StatusNotFound, "Not found", "There is nothing here: it may have been deleted.")
	case errors.Is(err, outbox.ErrOtherTenant):
		p.pages.errorPage(w, r, http.StatusForbidden, "Not allowed", "That is not allowed from this session.")
	case errors.As(err, &fe):
		p.pages.errorPage(w, r, http.StatusBadRequest, "Not accepted", fe.Error())
	case errors.As(err, &se), errors.As(err, &tooMany), errors.Is(err, outbox.ErrNotDispatched):
		p.pages.errorPage(w, r, http.StatusConflict, "Not possible now", err.Error())
	case r.Context().Err() != nil:
		p.pages.errorPage(w, r, http.StatusServiceUnavailable, "Cancelled", "The request was cancelled.")
	default:
		p.log.Error("portal request failed", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err))
		p.pages.errorPage(w, r, http.StatusInternalServerError, "Something went wrong",
			"The page could not be shown. Try again in a moment.")
	}
}

func (p *Portal) setCookie(w http.ResponseWriter, token string, expires time.Time) {
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: token, Path: p.c.Prefix, Expires: expires,
		MaxAge: max(int(time.Until(expires).Seconds()), 1), HttpOnly: true, Secure: p.secure, SameSite: http.SameSiteLaxMode,
	})
}

func (p *Portal) clearCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: p.c.Prefix, MaxAge: -1,
		HttpOnly: true, Secure: p.secure, SameSite: http.SameSiteLaxMode})
}

// login redeems a one-time code: the session cookie, and a redirect to
// the endpoints without the code in the address bar.
func (p *Portal) login(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	s, err := p.c.Store.RedeemPortalCode(r.Context(), r.URL.Query().Get("code"))
	switch {
	case err == nil:
	case errors.Is(err, outbox.ErrNotFound), errors.Is(err, outbox.ErrCodeUsed), errors.Is(err, outbox.ErrCodeExpired):
		p.pages.render(w, r, http.StatusBadRequest, "error", nil, errorData{Title: "This link does not open the portal",
			Message:   "Portal links work once and for a few minutes. Open the webhook portal again from the application.",
			ReturnURL: s.ReturnURL})
		return
	default:
		p.fail(w, r, err)
		return
	}
	p.setCookie(w, s.Token, s.ExpiresAt)
	http.Redirect(w, r, p.c.Prefix+"/endpoints", http.StatusSeeOther)
}

// logout ends the session.
func (p *Portal) logout(w http.ResponseWriter, r *http.Request) error {
	s := sessionOf(r)
	if err := p.c.Store.EndPortalSession(r.Context(), s.ID); err != nil {
		return err
	}
	p.clearCookie(w)
	p.pages.render(w, r, http.StatusOK, "error", nil, errorData{Title: "Signed out",
		Message: "You have left the webhook portal.", ReturnURL: s.ReturnURL})
	return nil
}
