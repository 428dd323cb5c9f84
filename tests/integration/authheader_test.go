package integration

import (
	"net/http"
	"testing"
)

// PostgREST verifies the first Authorization header of a request, while
// the JSON of request.headers, where the gate reads the kid of a token
// without a kid claim, keeps the last. Through the gateway there is only
// ever one: nginx refuses a request that carries two (400 bad_request), in
// either order and with a valid token among them.
func TestGatewayRefusesTwoAuthorizationHeaders(t *testing.T) {
	s := need(t)
	c := newClient(t)
	sess := c.Login(c.Signup("user"))
	valid, junk := "Bearer "+sess.AccessToken, "Bearer x.y.z"
	for name, lines := range map[string][]string{
		"valid first": {"Authorization", valid, "Authorization", junk},
		"valid last":  {"Authorization", junk, "Authorization", valid},
		"twice valid": {"Authorization", valid, "Authorization", valid},
	} {
		r := rawRequest(t, c, "GET", s.GatewayURL(), "/rest/vaults", "", "", lines...)
		expectRefusal(t, r, http.StatusBadRequest, "bad_request", name)
	}
	// Control: one header works.
	expectStatus(t, rawRequest(t, c, "GET", s.GatewayURL(), "/rest/vaults", sess.AccessToken, ""), http.StatusOK, "one Authorization header")
}
