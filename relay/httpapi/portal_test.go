package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/relay/httpapi"
	"github.com/hookrelay/hookrelay/relay/portal"
)

// withPortal serves the customer portal under /hookrelay; for newEnv's
// mod, which gets the options with Store and Endpoints set.
func withPortal(t *testing.T, o *httpapi.Options) {
	t.Helper()
	p, err := portal.New(portal.Config{Store: o.Store, Endpoints: o.Endpoints, Prefix: "/hookrelay"})
	if err != nil {
		t.Fatal(err)
	}
	o.PortalPrefix, o.Portal = "/hookrelay", p
}

func TestPortalSessionsRoute(t *testing.T) {
	e := newEnv(t, func(o *httpapi.Options) { withPortal(t, o) })
	var link portal.SessionLink
	e.do("POST", "/v1/portal/sessions", `{"tenant": "acme", "expires_in": "30m", "return_url": "/settings"}`).must(t, 201).json(t, &link)
	if !strings.HasPrefix(link.URL, e.Server.URL+"/hookrelay/login?code=") || link.ExpiresAt.IsZero() {
		t.Fatalf("link %+v", link)
	}
	for body, field := range map[string]string{`{}`: "tenant", `{"tenant": "acme", "expires_in": "9d"}`: "expires_in",
		`{"tenant": "acme", "return_url": "javascript:x"}`: "return_url"} {
		r := e.do("POST", "/v1/portal/sessions", body).must(t, 400)
		if _, f := r.err(t); f != field {
			t.Errorf("%s: field %q, want %q", body, f, field)
		}
	}

	// The link opens the portal through the API's own listener, once.
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(link.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Set-Cookie"), portal.CookieName) {
		t.Fatalf("opening the link: %d, cookie %q", resp.StatusCode, resp.Header.Get("Set-Cookie"))
	}
	if resp, err = c.Get(link.URL); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("opening the link twice: %d", resp.StatusCode)
	}

	off := newEnv(t, nil)
	if code, _ := off.do("POST", "/v1/portal/sessions", `{"tenant": "acme"}`).must(t, 404).err(t); code != "portal_off" {
		t.Errorf("without a portal: %s", code)
	}
}
