package integration

import (
	"net/http"
	"strings"
	"testing"
)

// The gateway answers /healthz itself (GET and HEAD only) and never routes
// /readyz, which pings PostgreSQL and Redis; authsvc serves both on its own
// listener (authsvc/httpapi/openapi.yaml says so per path).
func TestGatewayHealthRoutes(t *testing.T) {
	c := newClient(t)
	r := c.Do("GET", "/healthz", "", nil)
	expectStatus(t, r, http.StatusOK, "gateway /healthz")
	if strings.TrimSpace(string(r.Body)) != `{"status":"ok"}` {
		t.Errorf("gateway /healthz body %s", r.Body)
	}
	expectRefusal(t, c.Do("GET", "/readyz", "", nil), http.StatusNotFound, "not_found", "gateway /readyz")
	r = c.Do("POST", "/healthz", "", nil)
	expectRefusal(t, r, http.StatusMethodNotAllowed, "method_not_allowed", "POST /healthz")
	if got := r.Header.Get("Allow"); got != "GET, HEAD" {
		t.Errorf("POST /healthz: Allow %q", got)
	}

	resp, err := c.HTTP.Get(need(t).AuthsvcURL() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("authsvc's own /readyz: %d", resp.StatusCode)
	}
}

// Every 405 carries Allow (RFC 9110), whoever answers: nginx for TRACE and
// CONNECT, authsvc for its routes, PostgREST (which names none) for /rest.
func TestMethodNotAllowedNamesTheMethods(t *testing.T) {
	c := newClient(t)
	for _, tc := range []struct{ method, path, allow string }{
		{"TRACE", "/auth/v1/signup", "OPTIONS, POST"},
		{"TRACE", "/auth/v1/sessions", "OPTIONS, GET"},
		{"TRACE", "/auth/v1/sessions/0190a3b4-0000-4000-8000-000000000000", "OPTIONS, DELETE"},
		{"TRACE", "/.well-known/jwks.json", "OPTIONS, GET"},
		{"TRACE", "/rest/vaults", "OPTIONS, GET, HEAD, POST, PUT, PATCH, DELETE"},
		{"PUT", "/auth/v1/signup", "OPTIONS, POST"},
		{"POST", "/.well-known/jwks.json", "OPTIONS, GET"},
		{"DELETE", "/auth/v1/openapi.yaml", "OPTIONS, GET"},
		{"PUT", "/rest/rpc/invitations", "OPTIONS, GET, HEAD, POST"},
		{"PUT", "/rest/", "OPTIONS, GET, HEAD"},
		{"POST", "/rest/", "OPTIONS, GET, HEAD"},
	} {
		r := c.Do(tc.method, tc.path, "", nil)
		if r.Status != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: %d, want 405", tc.method, tc.path, r.Status)
			continue
		}
		if got := r.Header.Values("Allow"); len(got) != 1 || got[0] != tc.allow {
			t.Errorf("%s %s: Allow %q, want exactly %q", tc.method, tc.path, got, tc.allow)
		}
	}
}

// PostgREST 12.0.2 answers 500 to a header value or a percent-decoded URL
// that is not UTF-8. The gateway forwards only the headers PostgREST needs
// and refuses non-ASCII in those and in the URL with 400.
func TestRestRefusesBytesPostgRESTCannotDecode(t *testing.T) {
	c := newClient(t)
	s := c.Login(c.Signup("user"))
	for _, tc := range []struct {
		what string
		path string
		hdr  []string
	}{
		{"a Range header that is not UTF-8", "/rest/vaults", []string{"Range", "0-\xfd"}},
		{"a Prefer header that is not UTF-8", "/rest/vaults", []string{"Prefer", "count=\xfd"}},
		{"an Accept header that is not UTF-8", "/rest/vaults", []string{"Accept", "application/\xfd"}},
		{"a filter value that decodes to a byte above 0x7f", "/rest/vaults?id=eq.%FD", nil},
		{"a select that decodes to a byte above 0x7f", "/rest/vaults?select=%fd", nil},
	} {
		expectRefusal(t, c.Do("GET", tc.path, s.AccessToken, nil, tc.hdr...), http.StatusBadRequest, "malformed_request", tc.what)
	}
	// Headers PostgREST does not need never reach it, whatever they hold.
	expectStatus(t, c.Do("GET", "/rest/vaults", s.AccessToken, nil, "X-Anything", "\xfd", "User-Agent", "x\xfd"), http.StatusOK, "an unused header that is not UTF-8")
	// What the protocol sends still works.
	r := c.Do("GET", "/rest/vaults?select=id&limit=1", s.AccessToken, nil, "Prefer", "count=exact", "Range", "0-0")
	expectStatus(t, r, http.StatusOK, "an ordinary read")
	if r.Header.Get("Content-Range") == "" {
		t.Error("Range and Prefer did not reach PostgREST")
	}
}

// PostgREST's document at /rest/ lists what the caller may use; without a
// bearer token that is nothing, and the document declares the token
// required: the gateway answers 401 (with WWW-Authenticate) rather than an
// empty document. PostgREST takes any other Authorization scheme as no token.
func TestRestDocumentNeedsAToken(t *testing.T) {
	c := newClient(t)
	for _, auth := range []string{"", "Basic dXNlcjpwYXNz", "Token abc"} {
		var hdr []string
		if auth != "" {
			hdr = []string{"Authorization", auth}
		}
		r := c.Do("GET", "/rest/", "", nil, hdr...)
		expectRefusal(t, r, http.StatusUnauthorized, "invalid_token", "the API document with Authorization "+auth)
		if got := r.Header.Values("WWW-Authenticate"); len(got) != 1 || got[0] != "Bearer" {
			t.Errorf("WWW-Authenticate %q", got)
		}
	}
	// A CORS preflight carries no token.
	r := c.Do("OPTIONS", "/rest/", "", nil, "Origin", "tauri://localhost", "Access-Control-Request-Method", "GET")
	if r.Status >= 300 || r.Header.Get("Access-Control-Allow-Origin") != "tauri://localhost" {
		t.Errorf("CORS preflight of the document: %d, Access-Control-Allow-Origin %q", r.Status, r.Header.Get("Access-Control-Allow-Origin"))
	}
	s := c.Login(c.Signup("user"))
	r = c.Do("GET", "/rest/", s.AccessToken, nil)
	expectStatus(t, r, http.StatusOK, "the API document with a token")
	if !strings.Contains(string(r.Body), `"/vaults"`) {
		t.Error("the document lists no /vaults for a signed-in user")
	}
	// The gate's own 401 keeps its single WWW-Authenticate.
	r = c.Do("GET", "/rest/vaults", "garbage", nil)
	if got := r.Header.Values("WWW-Authenticate"); r.Status != http.StatusUnauthorized || len(got) != 1 {
		t.Errorf("a bad token at /rest/vaults: %d, WWW-Authenticate %q", r.Status, got)
	}
}
