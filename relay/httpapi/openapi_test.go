package httpapi

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// TestOpenAPIMatchesRoutes checks the document against the route table both
// ways: no route without a spec entry, no spec entry without a route.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc struct {
		OpenAPI  string                                `json:"openapi"`
		Paths    map[string]map[string]json.RawMessage `json:"paths"`
		Security []map[string][]string                 `json:"security"`
	}
	if err := json.Unmarshal(openAPIJSON(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" || len(doc.Security) != 1 || doc.Security[0]["bearer"] == nil {
		t.Errorf("openapi %q, security %v", doc.OpenAPI, doc.Security)
	}
	var inSpec, inMux []string
	for path, ops := range doc.Paths {
		for method := range ops {
			if method != "parameters" {
				inSpec = append(inSpec, strings.ToUpper(method)+" "+path)
			}
		}
	}
	for _, rt := range (&server{}).routes() {
		inMux = append(inMux, rt.method+" "+rt.pattern)
	}
	slices.Sort(inSpec)
	slices.Sort(inMux)
	for _, r := range inMux {
		if !slices.Contains(inSpec, r) {
			t.Errorf("route %s has no OpenAPI entry", r)
		}
	}
	for _, r := range inSpec {
		if !slices.Contains(inMux, r) {
			t.Errorf("OpenAPI entry %s has no route", r)
		}
	}
	if len(inMux) != len(inSpec) {
		t.Errorf("%d routes, %d spec operations", len(inMux), len(inSpec))
	}
}
