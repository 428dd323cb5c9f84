package integration

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
)

// Each refresh spends the presented token and hands out a new one; using a
// spent token again revokes the session, so the newest token and every
// access token of that session stop working too.
func TestRefreshRotationAndReuseDetection(t *testing.T) {
	c := newClient(t)
	u := c.Signup("user")
	s1 := c.Login(u)
	ctx := context.Background()

	s2, err := c.Auth.Refresh(ctx, s1.RefreshToken)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if s2.RefreshToken == s1.RefreshToken || s2.SessionID != s1.SessionID || s2.AccessToken == "" {
		t.Fatalf("refresh did not rotate within the session: %v -> %v", s1, s2)
	}
	expectStatus(t, c.Do("GET", "/rest/vaults", s2.AccessToken, nil), http.StatusOK, "new access token")

	// Stored hashed: the raw token is nowhere in the table.
	var n int
	if err := db(t).QueryRow(ctx, `SELECT count(*) FROM auth.refresh_tokens WHERE token_hash = convert_to($1, 'UTF8')`, s2.RefreshToken).Scan(&n); err != nil || n != 0 {
		t.Fatalf("raw refresh token found in the database (%d, %v)", n, err)
	}

	// The thief replays the spent token.
	_, err = c.Auth.Refresh(ctx, s1.RefreshToken)
	if e := apiErr(t, err); e.Status != http.StatusUnauthorized || e.Code != "invalid_refresh_token" {
		t.Fatalf("reused refresh token: %v", err)
	}
	// Now the whole session is gone, for the rightful holder too.
	_, err = c.Auth.Refresh(ctx, s2.RefreshToken)
	if e := apiErr(t, err); e.Code != "invalid_refresh_token" {
		t.Fatalf("newest refresh token after reuse: %v", err)
	}
	r := c.Do("GET", "/rest/vaults", s2.AccessToken, nil)
	expectRefusal(t, r, http.StatusUnauthorized, "session_revoked", "access token after reuse")
	var reason string
	if err := db(t).QueryRow(ctx, `SELECT revoked_reason FROM auth.sessions WHERE id = $1`, s1.SessionID).Scan(&reason); err != nil || reason != "refresh_token_reuse" {
		t.Fatalf("session revoked_reason %q (%v)", reason, err)
	}
}

// Two refreshes racing with one token: exactly one wins.
func TestConcurrentRefreshHasOneWinner(t *testing.T) {
	c := newClient(t)
	u := c.Signup("user")
	s := c.Login(u)
	var wg sync.WaitGroup
	results := make([]error, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, results[i] = c.Auth.Refresh(context.Background(), s.RefreshToken)
		}()
	}
	wg.Wait()
	wins := 0
	for _, err := range results {
		if err == nil {
			wins++
		} else if e := apiErr(t, err); e.Code != "invalid_refresh_token" {
			t.Errorf("racing refresh failed oddly: %v", err)
		}
	}
	if wins > 1 {
		t.Fatalf("%d refreshes won with one token", wins)
	}
}

// Logout ends the session at once: its access token is refused on the very
// next request, long before it expires.
func TestLogoutRevokesAtOnce(t *testing.T) {
	c := newClient(t)
	u := c.Signup("user")
	s := c.Login(u)
	other := c.Login(u) // a second device stays logged in
	expectStatus(t, c.Do("GET", "/rest/vaults", s.AccessToken, nil), http.StatusOK, "before logout")
	if err := c.Auth.Logout(context.Background(), s.RefreshToken); err != nil {
		t.Fatalf("logout: %v", err)
	}
	r := c.Do("GET", "/rest/vaults", s.AccessToken, nil)
	expectRefusal(t, r, http.StatusUnauthorized, "session_revoked", "access token after logout")
	if got := r.Header.Get("WWW-Authenticate"); got == "" {
		t.Error("401 without WWW-Authenticate")
	}
	_, err := c.Auth.Refresh(context.Background(), s.RefreshToken)
	if e := apiErr(t, err); e.Code != "invalid_refresh_token" {
		t.Fatalf("refresh after logout: %v", err)
	}
	expectStatus(t, c.Do("GET", "/rest/vaults", other.AccessToken, nil), http.StatusOK, "the other device")
	// Garbage refresh tokens get the same answer, without a database trip.
	for _, tok := range []string{"", "zsmrt_", "zsmrt_" + randHex(10), "eyJhbGciOi.x.y"} {
		err := c.Auth.Logout(context.Background(), tok)
		if e := apiErr(t, err); e.Status != http.StatusUnauthorized || e.Code != "invalid_refresh_token" {
			t.Fatalf("logout with %q: %v", tok, err)
		}
	}
}

// Logout is idempotent (docs/auth.md, openapi.yaml): any refresh token
// authsvc issued names its session, and 204 means that session has ended.
// A second logout, and a logout with a token already spent by a refresh,
// are 204; the spent token's session is ended, so the newer token a thief
// may hold stops working too.
func TestLogoutIsIdempotent(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	u := c.Signup("user")
	s := c.Login(u)
	if err := c.Auth.Logout(ctx, s.RefreshToken); err != nil {
		t.Fatalf("first logout: %v", err)
	}
	if err := c.Auth.Logout(ctx, s.RefreshToken); err != nil {
		t.Fatalf("second logout of the same session: %v, want 204", err)
	}

	s2 := c.Login(u)
	next, err := c.Auth.Refresh(ctx, s2.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	expectStatus(t, c.Do("GET", "/rest/vaults", next.AccessToken, nil), http.StatusOK, "after refresh")
	if err := c.Auth.Logout(ctx, s2.RefreshToken); err != nil {
		t.Fatalf("logout with a spent refresh token: %v, want 204", err)
	}
	expectRefusal(t, c.Do("GET", "/rest/vaults", next.AccessToken, nil), http.StatusUnauthorized, "session_revoked",
		"the newer access token after a logout with the spent one")
	if _, err := c.Auth.Refresh(ctx, next.RefreshToken); apiErr(t, err).Code != "invalid_refresh_token" {
		t.Fatalf("the newer refresh token after a logout with the spent one: %v", err)
	}
}

// A device label is kept as text: cut to 512 bytes at a character
// boundary, and a User-Agent that is not UTF-8 is made so. Both ended the
// login with a 500 before (PostgreSQL refuses text that is not UTF-8).
func TestDeviceLabelsAreStoredSafely(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	u := c.Signup("user")

	c.Auth.DeviceLabel = strings.Repeat("a", 511) + "é"
	s := c.Login(u)
	c.Auth.DeviceLabel = "phone\x00x"
	c.Login(u)
	c.Auth.DeviceLabel = ""
	c.HTTP.Transport = userAgent{"zsm-test\xff", c.HTTP.Transport}
	c.Login(u)

	list, err := c.Auth.ListSessions(ctx, s.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	var labels []string
	for _, si := range list {
		if si.DeviceLabel != nil {
			labels = append(labels, *si.DeviceLabel)
		}
	}
	want := []string{strings.Repeat("a", 511), "phone\uFFFDx", "zsm-test\uFFFD"}
	for _, w := range want {
		if !slices.Contains(labels, w) {
			t.Errorf("session labels %q do not include %q", labels, w)
		}
	}
}

type userAgent struct {
	ua   string
	next http.RoundTripper
}

func (u userAgent) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("User-Agent", u.ua)
	return u.next.RoundTrip(r)
}
