package integration

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

// rawRequest sends one request to base+path with every header line as
// given (repeated names stay separate lines) and returns the answer.
func rawRequest(t *testing.T, c *client, method, base, path, token, body string, lines ...string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(lines); i += 2 {
		req.Header.Add(lines[i], lines[i+1])
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// A planned or estimated count is the planner's estimate over every row of
// a table, not only the caller's: with statistics in place, `HEAD
// /audit_events?user_id=eq.<victim>` and `Prefer: count=planned` told
// another user how many events the victim has. nginx once dropped only the
// first `count=planned` of a header, so `count=planned, count=planned` got
// through. Now the database gate refuses any planned or estimated count,
// whatever the spelling, method or endpoint, with 400 count_not_allowed;
// nginx answers the common spellings the same way before PostgREST is asked.
func TestPlannedCountsRefused(t *testing.T) {
	s := need(t)
	victim, attacker := newClient(t), newClient(t)
	uv := victim.Signup("user")
	victim.Login(uv)
	victim.Login(uv) // audit rows for the victim: sign-up and two logins
	sa := attacker.Login(attacker.Signup("user"))
	// Statistics over every row, the victim's included, as autovacuum
	// would gather them.
	if _, err := db(t).Exec(context.Background(), `ANALYZE api.audit_events`); err != nil {
		t.Fatal(err)
	}
	path := "/rest/audit_events?select=id&user_id=eq." + uv.ID

	// Control: an exact count runs under RLS and counts none of the
	// victim's rows.
	r := rawRequest(t, attacker, "HEAD", s.GatewayURL(), path, sa.AccessToken, "", "Prefer", "count=exact")
	expectStatus(t, r, http.StatusOK, "exact count")
	if got := r.Header.Get("Content-Range"); got != "*/0" {
		t.Fatalf("exact count of another user's events: Content-Range %q, want */0", got)
	}

	spellings := []string{
		"count=planned", "count=estimated",
		"count=planned, count=planned", "count=estimated, count=estimated",
		"count=planned,count=planned", "count=estimated,count=estimated",
		"COUNT=Planned", "Count=ESTIMATED", "count = planned", "count=\tplanned", `count="planned"`,
		"return=minimal, count=planned", "count=exact, count=planned",
	}
	refused := func(r response, what string, get bool) {
		t.Helper()
		if get {
			expectRefusal(t, r, http.StatusBadRequest, "count_not_allowed", what)
		} else {
			expectStatus(t, r, http.StatusBadRequest, what)
		}
		if cr := r.Header.Get("Content-Range"); cr != "" {
			t.Fatalf("%s: refused, yet Content-Range %q", what, cr)
		}
	}
	for _, p := range spellings {
		for _, m := range []string{"GET", "HEAD"} {
			// Through the gateway (nginx answers first) and straight at
			// PostgREST, where only the database gate stands.
			refused(rawRequest(t, attacker, m, s.GatewayURL(), path, sa.AccessToken, "", "Prefer", p), "gateway "+m+" Prefer: "+p, m == "GET")
			refused(rawRequest(t, attacker, m, s.PostgrestURL(), strings.TrimPrefix(path, "/rest"), sa.AccessToken, "", "Prefer", p), "PostgREST "+m+" Prefer: "+p, m == "GET")
		}
	}
	// Anonymous requests and RPC: the same refusal.
	refused(rawRequest(t, attacker, "GET", s.PostgrestURL(), "/audit_events?select=id", "", "", "Prefer", "count=planned"), "anonymous GET", true)
	rpc := `{"webhook_id":"00000000-0000-4000-8000-000000000000"}`
	refused(rawRequest(t, attacker, "POST", s.GatewayURL(), "/rest/rpc/test_webhook", sa.AccessToken, rpc, "Prefer", "count=planned"), "gateway RPC", true)
	refused(rawRequest(t, attacker, "POST", s.PostgrestURL(), "/rpc/test_webhook", sa.AccessToken, rpc, "Prefer", "count=estimated"), "PostgREST RPC", true)

	// A spelling nginx lets pass reaches the gate, which refuses it: the
	// body is then PostgREST's (details and hint, no request_id).
	r = rawRequest(t, attacker, "GET", s.GatewayURL(), path, sa.AccessToken, "", "Prefer", "co unt=planned")
	refused(r, "gateway, spelling only the gate normalises", true)
	if !strings.Contains(string(r.Body), `"hint"`) {
		t.Fatalf("the refusal did not come from the database gate: %s", r.Body)
	}

	// Several Prefer lines: exactly one goes on from the gateway, so the
	// gate sees everything PostgREST acts on. nginx 1.22 passes the first
	// line; later releases join all of them (and refuse).
	r = rawRequest(t, attacker, "HEAD", s.GatewayURL(), path, sa.AccessToken, "", "Prefer", "return=minimal", "Prefer", "count=planned", "Prefer", "handling=lenient")
	switch {
	case r.Status == http.StatusBadRequest:
	case r.Status == http.StatusOK && r.Header.Get("Content-Range") == "*/*":
	default:
		t.Fatalf("two Prefer lines through the gateway: status %d, Content-Range %q", r.Status, r.Header.Get("Content-Range"))
	}
}
