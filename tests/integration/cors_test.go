package integration

import (
	"net/http"
	"testing"
)

// PostgREST 12 answers CORS requests from any origin with
// `Access-Control-Allow-Origin: *`, so any web page could drive /rest with
// a token it got hold of. The gateway drops PostgREST's CORS headers and
// answers only the origins the deployment names: by default the desktop
// app's (tauri://localhost, http://tauri.localhost).
func TestCORSOnlyNamedOrigins(t *testing.T) {
	s := need(t)
	c := newClient(t)
	sess := c.Login(c.Signup("user"))
	corsHeaders := []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Methods", "Access-Control-Allow-Headers",
		"Access-Control-Allow-Credentials", "Access-Control-Expose-Headers", "Access-Control-Max-Age"}
	noCORS := func(r response, what string) {
		t.Helper()
		for _, h := range corsHeaders {
			if v := r.Header.Get(h); v != "" {
				t.Errorf("%s: %s: %q, want none", what, h, v)
			}
		}
	}
	preflight := func(origin, path string) response {
		return rawRequest(t, c, "OPTIONS", s.GatewayURL(), path, "", "",
			"Origin", origin, "Access-Control-Request-Method", "DELETE", "Access-Control-Request-Headers", "authorization, content-type")
	}
	for _, origin := range []string{"https://evil.example", "null", "http://localhost", "https://tauri.localhost.evil.example", "tauri://localhost.evil"} {
		r := rawRequest(t, c, "GET", s.GatewayURL(), "/rest/vaults", sess.AccessToken, "", "Origin", origin)
		expectStatus(t, r, http.StatusOK, "GET from "+origin)
		noCORS(r, "GET from "+origin)
		noCORS(preflight(origin, "/rest/vaults"), "preflight from "+origin)
	}
	// No Origin at all (the CLI): no CORS headers either.
	noCORS(c.Do("GET", "/rest/vaults", sess.AccessToken, nil), "GET without Origin")

	for _, origin := range []string{"tauri://localhost", "http://tauri.localhost"} {
		r := rawRequest(t, c, "GET", s.GatewayURL(), "/rest/vaults", sess.AccessToken, "", "Origin", origin)
		expectStatus(t, r, http.StatusOK, "GET from "+origin)
		if got := r.Header.Get("Access-Control-Allow-Origin"); got != origin {
			t.Errorf("GET from %s: Access-Control-Allow-Origin %q", origin, got)
		}
		if got := r.Header.Get("Vary"); got != "Origin" {
			t.Errorf("GET from %s: Vary %q, want Origin", origin, got)
		}
		p := preflight(origin, "/rest/vaults")
		if p.Status/100 != 2 || p.Header.Get("Access-Control-Allow-Origin") != origin ||
			p.Header.Get("Access-Control-Allow-Methods") == "" || p.Header.Get("Access-Control-Allow-Headers") == "" {
			t.Errorf("preflight from %s: %d %v", origin, p.Status, p.Header)
		}
		if p.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("preflight from %s allows credentials", origin)
		}
		// Only /rest answers CORS; the auth endpoints do not.
		noCORS(preflight(origin, "/auth/v1/login/init"), "auth preflight from "+origin)
	}
}
