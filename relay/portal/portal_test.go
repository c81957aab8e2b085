package portal_test

import (
	"context"
	"encoding/json"
	"errors"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
	"github.com/hookrelay/hookrelay/relay/endpoint"
	"github.com/hookrelay/hookrelay/relay/portal"
	"github.com/hookrelay/hookrelay/relay/relaytest"
)

func TestMain(m *testing.M) { os.Exit(outboxtest.Main(m)) }

const prefix = "/hookrelay"

// env is a portal on a fresh schema behind an httptest server.
type env struct {
	relaytest.Front
	t      *testing.T
	portal *portal.Portal
}

// newEnv is a portal; mod (when not nil) changes its configuration.
func newEnv(t *testing.T, mod func(*portal.Config)) *env {
	t.Helper()
	e := &env{t: t}
	e.Front = relaytest.NewFront(t, relaytest.FrontConfig{
		Handler: func(st *outbox.Store, svc *endpoint.Service) (http.Handler, error) {
			c := portal.Config{Store: st, Endpoints: svc, Prefix: prefix, Title: "Acme webhooks"}
			if mod != nil {
				mod(&c)
			}
			p, err := portal.New(c)
			e.portal = p
			return p, err
		}})
	return e
}

// link asks for a session link as POST /v1/portal/sessions does.
func (e *env) link(req portal.SessionRequest) portal.SessionLink {
	e.t.Helper()
	r := httptest.NewRequest("POST", e.Server.URL+"/v1/portal/sessions", nil)
	r.Host = strings.TrimPrefix(e.Server.URL, "http://")
	l, err := e.portal.CreateSession(context.Background(), r, req)
	if err != nil {
		e.t.Fatalf("create session: %v", err)
	}
	return l
}

// client is a browser-like client: a cookie jar, redirects not followed.
type client struct {
	t    *testing.T
	e    *env
	http *http.Client
	csrf string
}

func (e *env) anonymous() *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: e.t, e: e, http: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

// login opens a session link for tenant and returns the signed-in client.
func (e *env) login(tenant string, readOnly bool) *client {
	e.t.Helper()
	c := e.anonymous()
	l := e.link(portal.SessionRequest{Tenant: tenant, ReadOnly: readOnly})
	resp := c.do("GET", l.URL, nil, nil)
	if resp.status != http.StatusSeeOther || resp.header.Get("Location") != prefix+"/endpoints" {
		e.t.Fatalf("login: %d to %q; want 303 to %s/endpoints\n%s", resp.status, resp.header.Get("Location"), prefix, resp.body)
	}
	page := c.get("/endpoints")
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page.body)
	if m == nil {
		e.t.Fatalf("no CSRF token on the endpoints page:\n%s", page.body)
	}
	c.csrf = html.UnescapeString(m[1])
	return c
}

type response struct {
	status int
	header http.Header
	body   string
}

func (c *client) do(method, target string, form url.Values, hdr http.Header) response {
	c.t.Helper()
	if strings.HasPrefix(target, "/") {
		target = c.e.Server.URL + prefix + target
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func (c *client) get(path string) response { c.t.Helper(); return c.do("GET", path, nil, nil) }

// post sends a form with the session's CSRF token.
func (c *client) post(path string, form url.Values) response {
	c.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", c.csrf)
	}
	return c.do("POST", path, form, nil)
}

func want(t *testing.T, r response, status int, contains ...string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body:\n%s", r.status, status, r.body)
	}
	for _, s := range contains {
		if !strings.Contains(r.body, s) && !strings.Contains(html.UnescapeString(r.body), s) {
			t.Fatalf("the page does not contain %q:\n%s", s, r.body)
		}
	}
}

func (e *env) endpoint(tenant, url string) outbox.Endpoint {
	e.t.Helper()
	res, err := e.Endpoints.Create(context.Background(), endpoint.Input{Tenant: tenant, URL: url})
	if err != nil {
		e.t.Fatal(err)
	}
	return res.Endpoint
}

// testSend records a test send to ep: a delivery with one attempt.
func (e *env) testSend(ep outbox.Endpoint, delivered bool) int64 {
	e.t.Helper()
	var uid [16]byte
	copy(uid[:], ep.ID+time.Now().String())
	_, d, err := e.Store.RecordTestSend(context.Background(), outbox.TestSend{EndpointID: ep.ID, UID: uid, EventType: "signup.created",
		Payload: []byte(`{"email":"ada@example.com","n":1}`), StartedAt: time.Now(), Duration: 12 * time.Millisecond,
		StatusCode: map[bool]int{true: 204, false: 500}[delivered], Delivered: delivered, Response: "<b>nope</b>"})
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

func (e *env) exec(sql string, args ...any) {
	e.t.Helper()
	if _, err := e.Store.Pool().Exec(context.Background(), outboxtest.SQL(e.Store.Schema(), sql), args...); err != nil {
		e.t.Fatal(err)
	}
}

func TestLoginCodeWorksOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	l := e.link(portal.SessionRequest{Tenant: "acme"})
	if !strings.HasPrefix(l.URL, e.Server.URL+prefix+"/login?code=") {
		t.Fatalf("session URL %q: want it on the request's host under the prefix", l.URL)
	}
	if d := time.Until(l.ExpiresAt); d < 50*time.Minute || d > time.Hour {
		t.Errorf("session expires in %s, want the default 1h", d)
	}
	if d := time.Until(l.LinkExpiresAt); d <= 0 || d > portal.CodeTTL {
		t.Errorf("link expires in %s, want within %s", d, portal.CodeTTL)
	}
	c := e.anonymous()
	r := c.do("GET", l.URL, nil, nil)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != prefix+"/endpoints" {
		t.Fatalf("login answered %d to %q", r.status, r.header.Get("Location"))
	}
	cookie := r.header.Get("Set-Cookie")
	for _, attr := range []string{portal.CookieName + "=", "Path=" + prefix, "HttpOnly", "SameSite=Lax"} {
		if !strings.Contains(cookie, attr) {
			t.Errorf("Set-Cookie %q lacks %s", cookie, attr)
		}
	}
	if strings.Contains(cookie, "Secure") {
		t.Errorf("Set-Cookie %q is Secure on an http public URL", cookie)
	}
	want(t, c.get("/endpoints"), http.StatusOK, "Endpoints", "acme")

	// Used, forged, expired: an error page and no session.
	again := e.anonymous()
	r = again.do("GET", l.URL, nil, nil)
	want(t, r, http.StatusBadRequest, "This link does not open the portal")
	if r.header.Get("Set-Cookie") != "" {
		t.Errorf("a used link set a cookie: %q", r.header.Get("Set-Cookie"))
	}
	want(t, again.get("/endpoints"), http.StatusUnauthorized, "Not signed in")
	want(t, again.get("/login?code=forged"), http.StatusBadRequest, "This link does not open the portal")
	want(t, again.get("/login?code=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), http.StatusBadRequest, "This link does not open the portal")
	late := e.link(portal.SessionRequest{Tenant: "acme"})
	e.exec(`UPDATE {{schema}}.portal_sessions SET code_expires_at = now() - interval '1 second' WHERE code_used_at IS NULL`)
	want(t, again.do("GET", late.URL, nil, nil), http.StatusBadRequest, "This link does not open the portal")
	want(t, again.get("/endpoints"), http.StatusUnauthorized)

	// Only hashes are stored.
	var n int
	if err := e.Store.Pool().QueryRow(context.Background(), outboxtest.SQL(e.Store.Schema(), `SELECT count(*) FROM {{schema}}.portal_sessions
 WHERE length(code_hash) = 32 AND (session_hash IS NULL OR length(session_hash) = 32)`)).Scan(&n); err != nil || n != 2 {
		t.Errorf("sessions with hashed code and token: %d, %v; want 2", n, err)
	}
}

func TestSecureCookieAndPublicURL(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *portal.Config) { c.PublicURL = "https://app.example.com/" })
	l := e.link(portal.SessionRequest{Tenant: "acme"})
	if !strings.HasPrefix(l.URL, "https://app.example.com"+prefix+"/login?code=") {
		t.Fatalf("session URL %q: want it on the public URL", l.URL)
	}
	u, _ := url.Parse(l.URL)
	r := e.anonymous().do("GET", e.Server.URL+u.RequestURI(), nil, nil)
	if !strings.Contains(r.header.Get("Set-Cookie"), "Secure") {
		t.Errorf("Set-Cookie %q is not Secure on an https public URL", r.header.Get("Set-Cookie"))
	}
}

func TestCreateSessionRefusesBadFields(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	r := httptest.NewRequest("POST", "/v1/portal/sessions", nil)
	for _, tc := range []struct {
		req   portal.SessionRequest
		field string
	}{
		{portal.SessionRequest{}, "tenant"},
		{portal.SessionRequest{Tenant: "acme", ExpiresIn: "forever"}, "expires_in"},
		{portal.SessionRequest{Tenant: "acme", ExpiresIn: "48h"}, "expires_in"},
		{portal.SessionRequest{Tenant: "acme", ReturnURL: "javascript:alert(1)"}, "return_url"},
		{portal.SessionRequest{Tenant: "acme", ReturnURL: "//evil.example/"}, "return_url"},
		{portal.SessionRequest{Tenant: "acme", ReturnURL: "https://user:pw@evil.example/"}, "return_url"},
	} {
		_, err := e.portal.CreateSession(context.Background(), r, tc.req)
		var fe *outbox.FieldError
		if !errorsAs(err, &fe) || fe.Field != tc.field {
			t.Errorf("%+v: error %v, want a field error on %s", tc.req, err, tc.field)
		}
	}
	if _, err := e.portal.CreateSession(context.Background(), r, portal.SessionRequest{Tenant: "acme", ExpiresIn: "30m", ReturnURL: "/account"}); err != nil {
		t.Errorf("a valid request: %v", err)
	}
}

func TestSessionEnds(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	l := e.link(portal.SessionRequest{Tenant: "acme", ReturnURL: "https://app.example.com/settings"})
	c := e.anonymous()
	c.do("GET", l.URL, nil, nil)
	want(t, c.get("/endpoints"), http.StatusOK, `href="https://app.example.com/settings"`)
	e.exec(`UPDATE {{schema}}.portal_sessions SET expires_at = now() - interval '1 second'`)
	want(t, c.get("/endpoints"), http.StatusUnauthorized, "Session ended", `href="https://app.example.com/settings"`)
	want(t, c.do("POST", "/endpoints", url.Values{"url": {"https://x.example/h"}}, nil), http.StatusUnauthorized)

	d := e.login("acme", false)
	want(t, d.post("/logout", nil), http.StatusOK, "Signed out")
	want(t, d.get("/endpoints"), http.StatusUnauthorized)
}

func TestPagesRenderWithSecurityHeaders(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	if _, _, err := e.Store.PutEventType(context.Background(), outbox.EventType{Name: "signup.created", Description: "Someone joined the waitlist",
		Example: json.RawMessage(`{"email":"ada@example.com"}`)}); err != nil {
		t.Fatal(err)
	}
	ep := e.endpoint("acme", "https://hooks.acme.test/in")
	d := e.testSend(ep, false)
	e.exec(`UPDATE {{schema}}.endpoints SET consecutive_failures = 3`)
	c := e.login("acme", false)
	for _, tc := range []struct {
		path     string
		contains []string
	}{
		{"/endpoints", []string{"https://hooks.acme.test/in", "Failing", "Add endpoint", "HTTP 500"}},
		{"/endpoints/new", []string{"Endpoint URL", "signup.created", "Someone joined the waitlist"}},
		{"/endpoints/" + ep.ID, []string{"Health", "Reveal secret", "Rotate secret", "Send test", ep.ID}},
		{"/endpoints/" + ep.ID + "/edit", []string{"Save changes", `value="https://hooks.acme.test/in"`}},
		{"/endpoints/" + ep.ID + "/delete", []string{"Delete this endpoint?"}},
		{"/deliveries", []string{"Delivery log", "signup.created", "HTTP 500"}},
		{"/deliveries/" + itoa(d), []string{"Attempts", "&#34;email&#34;: &#34;ada@example.com&#34;", "&lt;b&gt;nope&lt;/b&gt;", "Resend"}},
		{"/event-types", []string{"signup.created", "Someone joined the waitlist"}},
		{"/verify", []string{"standardwebhooks", "Endpoint " + ep.ID, `"/in"`}},
	} {
		r := c.get(tc.path)
		want(t, r, http.StatusOK, tc.contains...)
		csp := r.header.Get("Content-Security-Policy")
		for _, d := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, d) {
				t.Errorf("%s: CSP %q lacks %s", tc.path, csp, d)
			}
		}
		if r.header.Get("X-Frame-Options") != "DENY" || r.header.Get("Cache-Control") != "no-store" || r.header.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s: headers %v", tc.path, r.header)
		}
		if strings.Contains(r.body, "<script>") || strings.Contains(r.body, " style=") || strings.Contains(r.body, " on") && regexp.MustCompile(` on[a-z]+=`).MatchString(r.body) {
			t.Errorf("%s has inline script or style", tc.path)
		}
	}
	want(t, c.get("/nowhere"), http.StatusNotFound, "Page not found")
	want(t, c.get("/endpoints/"+ep.ID+"x"), http.StatusNotFound)
	want(t, c.get("/deliveries/0"), http.StatusNotFound)
}

func TestFrameAncestorsConfigurable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *portal.Config) { c.FrameAncestors = []string{"'self'", "https://app.example.com"} })
	r := e.login("acme", false).get("/endpoints")
	if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'self' https://app.example.com") {
		t.Errorf("CSP %q", csp)
	}
	if r.header.Get("X-Frame-Options") != "" {
		t.Errorf("X-Frame-Options %q with frame ancestors set", r.header.Get("X-Frame-Options"))
	}
	if _, err := portal.New(portal.Config{Store: e.Store, Endpoints: e.Endpoints, Prefix: prefix, FrameAncestors: []string{"https://a.example; script-src *"}}); err == nil {
		t.Error("a frame ancestor with a directive in it was accepted")
	}
	if _, err := portal.New(portal.Config{Store: e.Store, Endpoints: e.Endpoints, Prefix: prefix, Accent: "red;}body{"}); err == nil {
		t.Error("an accent that is not a colour was accepted")
	}
}

func TestAssetsAreCached(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *portal.Config) { c.Accent = "#b45309" })
	c := e.login("acme", false)
	page := c.get("/endpoints").body
	for _, name := range []string{"portal.css", "portal.js", "theme.css"} {
		m := regexp.MustCompile(regexp.QuoteMeta(prefix+"/assets/") + `[0-9a-f]+/` + regexp.QuoteMeta(name)).FindString(page)
		if m == "" {
			t.Fatalf("the page links no %s", name)
		}
		r := e.anonymous().do("GET", e.Server.URL+m, nil, nil)
		if r.status != http.StatusOK || !strings.Contains(r.header.Get("Cache-Control"), "immutable") {
			t.Errorf("%s: %d %q", m, r.status, r.header.Get("Cache-Control"))
		}
		if name == "theme.css" && !strings.Contains(r.body, "#b45309") {
			t.Errorf("theme.css = %q, want the accent", r.body)
		}
	}
}

func TestEndpointLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := context.Background()
	c := e.login("acme", false)

	r := c.post("/endpoints", url.Values{"url": {"not a url"}})
	want(t, r, http.StatusBadRequest, `role="alert"`, "url", `value="not a url"`)
	r = c.post("/endpoints", url.Values{"url": {"https://hooks.acme.test/a"}, "description": {"orders <prod>"},
		"event_types": {"signup.created, signup.deleted"}, "rate_limit": {"5"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("create: %d\n%s", r.status, r.body)
	}
	loc := r.header.Get("Location")
	id := strings.TrimSuffix(strings.TrimPrefix(loc, prefix+"/endpoints/"), "?notice=created")
	ep, err := e.Store.GetEndpoint(ctx, id)
	if err != nil || ep.Tenant != "acme" || ep.RateLimit != 5 || len(ep.EventTypes) != 2 || ep.Description != "orders <prod>" {
		t.Fatalf("created endpoint %+v, %v", ep, err)
	}
	want(t, c.get(strings.TrimPrefix(loc, prefix)), http.StatusOK, "Endpoint created", "orders &lt;prod&gt;")

	r = c.post("/endpoints/"+id, url.Values{"url": {"https://hooks.acme.test/b"}, "description": {""}, "rate_limit": {""}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("update: %d\n%s", r.status, r.body)
	}
	if ep, _ = e.Store.GetEndpoint(ctx, id); ep.URL != "https://hooks.acme.test/b" || len(ep.EventTypes) != 0 || ep.RateLimit != 0 {
		t.Fatalf("updated endpoint %+v", ep)
	}
	want(t, c.post("/endpoints/"+id, url.Values{"url": {"https://x.test/"}, "rate_limit": {"-1"}}), http.StatusBadRequest, "rate_limit")

	if r = c.post("/endpoints/"+id+"/disable", nil); r.status != http.StatusSeeOther {
		t.Fatalf("disable: %d", r.status)
	}
	if ep, _ = e.Store.GetEndpoint(ctx, id); ep.Enabled {
		t.Fatal("still enabled after Disable")
	}
	want(t, c.get("/endpoints/"+id+"?notice=disabled"), http.StatusOK, "Disabled", ">Enable<")
	c.post("/endpoints/"+id+"/enable", nil)
	if ep, _ = e.Store.GetEndpoint(ctx, id); !ep.Enabled {
		t.Fatal("still disabled after Enable")
	}

	want(t, c.post("/endpoints/"+id+"/recover", url.Values{"since": {"2020-01-01T00:00"}}), http.StatusSeeOther)
	want(t, c.post("/endpoints/"+id+"/recover", url.Values{"since": {"yesterday"}}), http.StatusBadRequest, "since")

	if r = c.post("/endpoints/"+id+"/delete", nil); r.status != http.StatusSeeOther || r.header.Get("Location") != prefix+"/endpoints?notice=deleted" {
		t.Fatalf("delete: %d %q", r.status, r.header.Get("Location"))
	}
	if _, err := e.Store.GetEndpoint(ctx, id); err == nil {
		t.Fatal("the endpoint is still there after Delete")
	}
}

func TestSecretRevealAndRotate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := context.Background()
	ep := e.endpoint("acme", "https://hooks.acme.test/a")
	c := e.login("acme", false)
	secrets, _ := e.Store.EndpointSecrets(ctx, ep.ID)
	if strings.Contains(html.UnescapeString(c.get("/endpoints/"+ep.ID).body), secrets[0]) {
		t.Fatal("the secret is on the page before Reveal")
	}
	want(t, c.post("/endpoints/"+ep.ID+"/secret", nil), http.StatusOK, secrets[0])

	r := c.post("/endpoints/"+ep.ID+"/rotate", url.Values{"grace": {"24h"}})
	want(t, r, http.StatusOK, "New secret", "The previous secret still signs")
	now, _ := e.Store.EndpointSecrets(ctx, ep.ID)
	if len(now) != 2 || now[1] != secrets[0] {
		t.Fatalf("after rotate %d secrets sign", len(now))
	}
	want(t, r, http.StatusOK, now[0])
	want(t, c.post("/endpoints/"+ep.ID+"/rotate", url.Values{"grace": {"0s"}}), http.StatusOK, "New secret")
	if now, _ = e.Store.EndpointSecrets(ctx, ep.ID); len(now) != 1 {
		t.Fatalf("after a rotation without grace %d secrets sign", len(now))
	}
	want(t, c.post("/endpoints/"+ep.ID+"/rotate", url.Values{"grace": {"9999h"}}), http.StatusBadRequest, "grace")
}

func TestTestButtonShowsResultInPlace(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	rc := relaytest.NewReceiver(t)
	res, err := e.Endpoints.Create(context.Background(), endpoint.Input{Tenant: "acme", URL: rc.URL(), Secret: rc.Secret})
	if err != nil {
		t.Fatal(err)
	}
	c := e.login("acme", false)
	r := c.post("/endpoints/"+res.ID+"/test", nil)
	want(t, r, http.StatusOK, "Delivered", "HTTP 204", "in the log", "<html")
	if rc.Unique() != 1 {
		t.Fatalf("the receiver got %d requests", rc.Unique())
	}
	frag := c.do("POST", "/endpoints/"+res.ID+"/test", url.Values{"csrf": {c.csrf}}, http.Header{"X-Portal-Fragment": {"test"}})
	want(t, frag, http.StatusOK, "Delivered")
	if strings.Contains(frag.body, "<html") {
		t.Fatalf("the fragment is a whole page:\n%s", frag.body)
	}
	want(t, c.get("/deliveries?endpoint="+res.ID), http.StatusOK, "hookrelay.test", "test</span>")

	rc.Down()
	want(t, c.post("/endpoints/"+res.ID+"/test", nil), http.StatusOK, "Not delivered", "no response")
}

func TestDeliveryLogFiltersPagesAndResends(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := context.Background()
	ep := e.endpoint("acme", "https://hooks.acme.test/a")
	var last int64
	for i := range 52 {
		last = e.testSend(ep, i%2 == 0)
	}
	c := e.login("acme", false)
	page := c.get("/deliveries")
	want(t, page, http.StatusOK, `rel="next"`)
	if n := strings.Count(page.body, `<tr>`) - 1; n != 50 {
		t.Fatalf("first page has %d rows, want 50", n)
	}
	next := html.UnescapeString(regexp.MustCompile(`href="([^"]+)" rel="next"`).FindStringSubmatch(page.body)[1])
	older := c.get(strings.TrimPrefix(next, prefix))
	want(t, older, http.StatusOK, "Newest")
	if n := strings.Count(older.body, `<tr>`) - 1; n != 2 || strings.Contains(older.body, `rel="next"`) {
		t.Fatalf("second page has %d rows (next link: %v), want 2 and none", n, strings.Contains(older.body, `rel="next"`))
	}
	dead := c.get("/deliveries?state=dead")
	if n := strings.Count(dead.body, "state-dead\">dead"); n != 26 {
		t.Fatalf("state=dead lists %d dead deliveries, want 26", n)
	}
	if strings.Contains(dead.body, "state-delivered\">") {
		t.Fatal("state=dead lists a delivered one")
	}
	want(t, c.get("/deliveries?event_type=order.paid"), http.StatusOK, "No deliveries")
	want(t, c.get("/deliveries?since=2999-01-01T00:00"), http.StatusOK, "No deliveries")
	want(t, c.get("/deliveries?since=soon"), http.StatusBadRequest, "since")
	want(t, c.get("/deliveries?state=lost"), http.StatusBadRequest, "state")
	want(t, c.get("/deliveries?after=bogus"), http.StatusBadRequest, "not valid")

	r := c.post("/deliveries/"+itoa(last)+"/resend", nil)
	if r.status != http.StatusSeeOther {
		t.Fatalf("resend: %d\n%s", r.status, r.body)
	}
	d, _ := e.Store.GetDelivery(ctx, last)
	if d.Replays != 1 || d.State != outbox.StatePending {
		t.Fatalf("after Resend the delivery is %s with %d replays", d.State, d.Replays)
	}
	want(t, c.get("/deliveries/"+itoa(last)+"?notice=resent"), http.StatusOK, "Resent", "1 resend")
}

func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	theirs := e.endpoint("bravo", "https://hooks.bravo.test/secret-path")
	d := e.testSend(theirs, true)
	e.endpoint("acme", "https://hooks.acme.test/a")
	c := e.login("acme", false)
	for _, path := range []string{"/endpoints/" + theirs.ID, "/endpoints/" + theirs.ID + "/edit", "/endpoints/" + theirs.ID + "/delete",
		"/deliveries/" + itoa(d), "/verify?endpoint=" + theirs.ID} {
		want(t, c.get(path), http.StatusNotFound, "Not found")
	}
	for _, path := range []string{"/endpoints/" + theirs.ID, "/endpoints/" + theirs.ID + "/enable", "/endpoints/" + theirs.ID + "/disable",
		"/endpoints/" + theirs.ID + "/delete", "/endpoints/" + theirs.ID + "/secret", "/endpoints/" + theirs.ID + "/rotate",
		"/endpoints/" + theirs.ID + "/test", "/endpoints/" + theirs.ID + "/recover", "/deliveries/" + itoa(d) + "/resend"} {
		form := url.Values{"url": {"https://evil.test/"}, "grace": {"0s"}, "since": {"2020-01-01T00:00"}}
		r := c.post(path, form)
		if r.status != http.StatusNotFound {
			t.Errorf("POST %s for another tenant: %d, want 404", path, r.status)
		}
	}
	for _, path := range []string{"/endpoints", "/deliveries", "/verify", "/deliveries?endpoint=" + theirs.ID} {
		if r := c.get(path); strings.Contains(r.body, "bravo.test") || strings.Contains(r.body, theirs.ID) && !strings.Contains(path, theirs.ID) {
			t.Errorf("%s shows tenant bravo's endpoint", path)
		}
	}
	if r := c.get("/deliveries?endpoint=" + theirs.ID); strings.Contains(r.body, "state-delivered") {
		t.Error("the delivery log filtered on another tenant's endpoint lists its deliveries")
	}
	e.unchanged(theirs, "tenant bravo's endpoint")
}

func TestPostsNeedTheCSRFToken(t *testing.T) {
	t.Parallel()
	e, ep, d := acmeWithDelivery(t)
	c := e.login("acme", false)
	other := e.login("acme", false)
	for _, path := range append(writePaths(ep, d), "/logout") {
		for name, token := range map[string]string{"none": "", "another session's": other.csrf} {
			form := url.Values{"url": {"https://evil.test/"}, "grace": {"0s"}, "since": {"2020-01-01T00:00"}, "csrf": {token}}
			if r := c.post(path, form); r.status != http.StatusForbidden || !strings.Contains(r.body, "Form expired") {
				t.Errorf("POST %s with %s CSRF token: %d, want 403", path, name, r.status)
			}
		}
	}
	e.unchanged(ep, "the endpoint")
	want(t, c.get("/endpoints"), http.StatusOK) // still signed in
}

func TestReadOnlySession(t *testing.T) {
	t.Parallel()
	e, ep, d := acmeWithDelivery(t)
	c := e.login("acme", true)
	for _, path := range []string{"/endpoints", "/endpoints/" + ep.ID, "/deliveries", "/deliveries/" + itoa(d), "/event-types", "/verify"} {
		r := c.get(path)
		want(t, r, http.StatusOK, "read-only")
		for _, control := range []string{"Add endpoint", "Reveal secret", "Rotate secret", "Send test", ">Resend<", ">Disable<", "Delete", "/recover", ">Edit<"} {
			if strings.Contains(r.body, control) {
				t.Errorf("read-only %s shows %q", path, control)
			}
		}
		if n := strings.Count(r.body, `method="post"`); n != 1 {
			t.Errorf("read-only %s has %d post forms, want only Sign out", path, n)
		}
	}
	for _, path := range []string{"/endpoints/new", "/endpoints/" + ep.ID + "/edit", "/endpoints/" + ep.ID + "/delete"} {
		want(t, c.get(path), http.StatusForbidden, "Read-only session")
	}
	for _, path := range writePaths(ep, d) {
		form := url.Values{"url": {"https://evil.test/"}, "grace": {"0s"}, "since": {"2020-01-01T00:00"}}
		want(t, c.post(path, form), http.StatusForbidden, "Read-only session")
	}
	e.unchanged(ep, "the endpoint, after a read-only session,")
	want(t, c.post("/logout", nil), http.StatusOK, "Signed out")
}

// acmeWithDelivery is a portal with an endpoint of tenant acme and one
// test delivery to it.
func acmeWithDelivery(t *testing.T) (*env, outbox.Endpoint, int64) {
	t.Helper()
	e := newEnv(t, nil)
	ep := e.endpoint("acme", "https://hooks.acme.test/a")
	return e, ep, e.testSend(ep, false)
}

// writePaths are the portal's POST routes that change endpoint ep or
// delivery d.
func writePaths(ep outbox.Endpoint, d int64) []string {
	paths := []string{"/endpoints", "/deliveries/" + itoa(d) + "/resend"}
	for _, sub := range []string{"", "/enable", "/disable", "/delete", "/secret", "/rotate", "/test", "/recover"} {
		paths = append(paths, "/endpoints/"+ep.ID+sub)
	}
	return paths
}

// unchanged fails the test when ep's URL or enabled state is no longer
// what it was; what names ep in the message.
func (e *env) unchanged(ep outbox.Endpoint, what string) {
	e.t.Helper()
	after, err := e.Store.GetEndpoint(context.Background(), ep.ID)
	if err != nil || after.URL != ep.URL || after.Enabled != ep.Enabled {
		e.t.Fatalf("%s changed: %+v, %v", what, after, err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func errorsAs(err error, target any) bool { return errors.As(err, target) }
