package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// TestOpenAPIMatchesRoutes loads the embedded document, validates it, and
// checks that it describes exactly the routes the server registers: every
// route is documented and every documented operation exists.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	if len(strings.TrimSpace(string(OpenAPI))) == 0 {
		t.Fatal("openapi.yaml is empty")
	}
	loader := openapi3.NewLoader()
	loader.IsExternalRefsAllowed = false
	doc, err := loader.LoadFromData(OpenAPI)
	if err != nil {
		t.Fatalf("openapi.yaml does not load: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Errorf("openapi.yaml is not a valid OpenAPI 3 document: %v", err) // keep going: the route check is independent
	}

	e := (&Server{}).Handler(slog.New(slog.DiscardHandler), nil)
	routes := map[string]bool{}
	for _, r := range e.Routes() {
		switch r.Method {
		case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete,
			http.MethodHead, http.MethodOptions:
		default:
			continue // echo's internal not-found/any routes
		}
		// echo writes path parameters as :name, OpenAPI as {name}.
		parts := strings.Split(r.Path, "/")
		for i, p := range parts {
			if strings.HasPrefix(p, ":") {
				parts[i] = "{" + p[1:] + "}"
			}
		}
		routes[r.Method+" "+strings.Join(parts, "/")] = true
	}
	if len(routes) == 0 {
		t.Fatal("no routes registered")
	}

	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			documented[strings.ToUpper(method)+" "+path] = true
			if len(op.Responses.Map()) == 0 {
				t.Errorf("%s %s documents no responses", method, path)
			}
		}
	}

	var missing, extra []string
	for r := range routes {
		if !documented[r] {
			missing = append(missing, r)
		}
	}
	for d := range documented {
		if !routes[d] {
			extra = append(extra, d)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("routes not in openapi.yaml: %v", missing)
	}
	if len(extra) > 0 {
		t.Errorf("operations in openapi.yaml the server does not serve: %v", extra)
	}
}
