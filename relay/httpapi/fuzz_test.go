package httpapi_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/relay/endpoint"
	"github.com/hookrelay/hookrelay/relay/httpapi"
	"github.com/hookrelay/hookrelay/relay/relaytest"
)

// fuzzHandler is an API on a real store, called in-process.
func fuzzHandler(f *testing.F) (http.Handler, *outbox.Store) {
	fr := relaytest.NewFront(f, relaytest.FrontConfig{Handler: func(st *outbox.Store, svc *endpoint.Service) (http.Handler, error) {
		return httpapi.New(httpapi.Options{Store: st, Endpoints: svc, AdminToken: token, Registerer: prometheus.NewRegistry(), Log: zap.NewNop()})
	}})
	return fr.Server.Config.Handler, fr.Store
}

func serve(t *testing.T, h http.Handler, method, target string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code >= 500 {
		t.Fatalf("%s %s %q: status %d: %s", method, target, body, rec.Code, rec.Body)
	}
	return rec
}

var bodySeeds = []string{
	``, `{}`, `null`, `[]`, `"x"`, `{"url":"https://a.test"}`, `{"url":"https://a.test","tenant":"t","event_types":["a.b"],"description":"d","max_in_flight":3,"rate_limit":5}`,
	`{"url":"https://a.test","secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}`, `{"url":"https://a.test","secret":"whsec_"}`,
	`{"url":"http://[::1]:99999/"}`, `{"url":"https://a.test","event_types":null}`, `{"url":"https://a.test","tenant":"\xff"}`,
	`{"url":1}`, `{"url":"https://a.test","max_in_flight":1e99}`, `{"enabled":true}`, `{"enabled":false,"event_types":[]}`,
	`{"url":"https://a.test","description":"\u0000"}`, `{"url":"https://a.test"}{}`, `{"type":"a","tenant":"\u0000","payload":{}}`, `{"type":"a","payload":"\u0000"}`,
	`{"type":"a","payload":"\\u0000"}`, `{"type":"a","payload":{},"ordering_key":"\u0000"}`, `{"url":"https://a.test","tenant":"\u0000"}`, `{"x":1}`, `{"url":"https://a.test","rate_limit":-5}`,
	// Not UTF-8: refused, never repaired.
	"{\"url\":\"https://a.test\",\"description\":\"\xff\"}", "{\"type\":\"a\",\"payload\":{\"k\":\"\xc3\x28\"}}",
	"{\"type\":\"a\",\"tenant\":\"\xed\xa0\x80\",\"payload\":{}}", "\xef\xbb\xbf{\"url\":\"https://a.test\"}",
}

func FuzzCreateEndpointBody(f *testing.F) {
	h, _ := fuzzHandler(f)
	for _, s := range bodySeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		serve(t, h, "POST", "/v1/endpoints", body)
	})
}

func FuzzUpdateEndpointBody(f *testing.F) {
	h, store := fuzzHandler(f)
	ep, err := store.CreateEndpoint(f.Context(), outbox.EndpointInput{URL: "https://a.test", Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, 0)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range bodySeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		serve(t, h, "PATCH", "/v1/endpoints/"+ep.ID, body)
		serve(t, h, "POST", "/v1/endpoints/"+ep.ID+"/rotate-secret", body)
		serve(t, h, "POST", "/v1/endpoints/"+ep.ID+"/recover", body)
		serve(t, h, "POST", "/v1/events", body)
	})
}

func FuzzCursor(f *testing.F) {
	h, _ := fuzzHandler(f)
	for _, s := range []string{"", "AAAA", "aTE", "aS0x", "aTk5OTk5OTk5OTk5OTk5OTk5OTk5", "MTcwMDAwMDAwMDAwMDAwMF8xMjM",
		"MTcwMDAwMDAwMDAwMDAwMF8wMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDE", "%%%", "=", "\x00", "LTFfeA"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cursor string) {
		q := url.QueryEscape(cursor)
		for _, path := range []string{"/v1/endpoints", "/v1/events", "/v1/deliveries"} {
			serve(t, h, "GET", path+"?cursor="+q, nil)
		}
	})
}

// FuzzQueryParams sends arbitrary text in every string query parameter of
// the list routes: never a 5xx (NUL and invalid UTF-8 are 400s naming the
// parameter).
func FuzzQueryParams(f *testing.F) {
	h, _ := fuzzHandler(f)
	for _, s := range []string{"", "acme", "\x00", "a\x00b", "\xff", "\xc3\x28", "\xed\xa0\x80", "pending", "dead",
		"00000000-0000-0000-0000-000000000001", "%", "'; drop table x; --", "\u2028", "💥"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		q := url.QueryEscape(v)
		for _, target := range []string{"/v1/endpoints?tenant=" + q, "/v1/endpoints?enabled=" + q, "/v1/events?tenant=" + q + "&type=" + q,
			"/v1/events?since=" + q, "/v1/deliveries?state=" + q, "/v1/deliveries?endpoint_id=" + q, "/v1/deliveries?event_id=" + q,
			"/v1/endpoints?limit=" + q} {
			rec := serve(t, h, "GET", target, nil)
			if rec.Code == 400 && !bytes.Contains(rec.Body.Bytes(), []byte(`"field"`)) {
				t.Errorf("GET %s: 400 without the field: %s", target, rec.Body)
			}
		}
	})
}
