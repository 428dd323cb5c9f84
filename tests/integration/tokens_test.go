package integration

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"zsm.dev/zsm/authsvc/signer"
)

// Every way of getting a token PostgREST would take but zsm must not, each
// checked for its exact refusal.
func TestForgedTokensAreRefused(t *testing.T) {
	s := need(t)
	c := newClient(t)
	u := c.Signup("user")
	sess := c.Login(u)
	kid, key := currentKey(t)

	now := time.Now().Unix()
	good := func() map[string]any {
		return map[string]any{
			"iss": s.GatewayURL(), "aud": "zsm-api", "sub": u.ID, "role": "app_user",
			"sid": sess.SessionID, "iat": now, "exp": now + 300,
		}
	}
	with := func(change func(map[string]any)) map[string]any {
		c := good()
		change(c)
		return c
	}
	hdr := map[string]any{"alg": "EdDSA", "typ": "JWT", "kid": kid}

	// Control: a hand-made token with the real key and valid claims works,
	// so every refusal below is down to the one thing that was changed.
	r := c.Do("GET", "/rest/vaults", signEdDSA(hdr, good(), key), nil)
	expectStatus(t, r, http.StatusOK, "control token")

	jwks := c.Do("GET", "/.well-known/jwks.json", "", nil)
	expectStatus(t, jwks, http.StatusOK, "jwks")
	_, foreign, _ := ed25519.GenerateKey(rand.Reader)

	hs256 := func(secret []byte, claims map[string]any) string {
		in := b64(map[string]any{"alg": "HS256", "typ": "JWT"}) + "." + b64(claims)
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(in))
		return in + "." + b64(m.Sum(nil))
	}
	none := b64(map[string]any{"alg": "none", "typ": "JWT"}) + "." + b64(good()) + "."

	cases := []struct {
		name   string
		token  string
		status int
		code   string
	}{
		{"HS256 keyed with the JWKS text", hs256(jwks.Body, good()), 401, "PGRST301"},
		{"HS256 keyed with the public key", hs256(key.Public().(ed25519.PublicKey), good()), 401, "PGRST301"},
		{"alg none", none, 401, "PGRST301"},
		{"unknown key, real kid", signEdDSA(hdr, good(), foreign), 401, "PGRST301"},
		{"unknown key, unknown kid", signEdDSA(map[string]any{"alg": "EdDSA", "kid": "zzzzzzzzzzzz"}, good(), foreign), 401, "PGRST301"},
		{"tampered payload", tamper(signEdDSA(hdr, good(), key)), 401, "PGRST301"},
		{"expired long ago", signEdDSA(hdr, with(func(c map[string]any) { c["iat"], c["exp"] = now-600, now-300 }), key), 401, "PGRST301"},
		// PostgREST forgives 30 s of skew; the gate does not.
		{"expired within PostgREST's skew", signEdDSA(hdr, with(func(c map[string]any) { c["iat"], c["exp"] = now-310, now-10 }), key), 401, "token_expired"},
		{"no exp", signEdDSA(hdr, with(func(c map[string]any) { delete(c, "exp") }), key), 401, "invalid_token"},
		{"no iat", signEdDSA(hdr, with(func(c map[string]any) { delete(c, "iat") }), key), 401, "invalid_token"},
		{"lifetime over 15 minutes", signEdDSA(hdr, with(func(c map[string]any) { c["exp"] = now + 86400 }), key), 401, "invalid_token"},
		{"no aud", signEdDSA(hdr, with(func(c map[string]any) { delete(c, "aud") }), key), 401, "invalid_token"},
		{"wrong aud", signEdDSA(hdr, with(func(c map[string]any) { c["aud"] = "other-api" }), key), 401, "PGRST301"},
		{"no iss", signEdDSA(hdr, with(func(c map[string]any) { delete(c, "iss") }), key), 401, "invalid_token"},
		{"wrong iss", signEdDSA(hdr, with(func(c map[string]any) { c["iss"] = "https://evil.example" }), key), 401, "invalid_token"},
		{"role authenticator", signEdDSA(hdr, with(func(c map[string]any) { c["role"] = "authenticator" }), key), 401, "invalid_token"},
		{"role superuser", signEdDSA(hdr, with(func(c map[string]any) { c["role"] = "postgres" }), key), 403, "42501"},
		{"role of the table owner", signEdDSA(hdr, with(func(c map[string]any) { c["role"] = "authsvc" }), key), 403, "42501"},
		{"no role (anon) but a subject", signEdDSA(hdr, with(func(c map[string]any) { delete(c, "role") }), key), 401, "invalid_token"},
		{"no sid", signEdDSA(hdr, with(func(c map[string]any) { delete(c, "sid") }), key), 401, "invalid_token"},
		{"sid of no session", signEdDSA(hdr, with(func(c map[string]any) { c["sid"] = "00000000-0000-4000-8000-000000000000" }), key), 401, "session_revoked"},
		{"another user's sub with my sid", signEdDSA(hdr, with(func(c map[string]any) { c["sub"] = "00000000-0000-4000-8000-000000000001" }), key), 401, "session_revoked"},
		{"sub not a uuid", signEdDSA(hdr, with(func(c map[string]any) { c["sub"] = "alice'; --" }), key), 401, "invalid_token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := c.Do("GET", "/rest/vaults", tc.token, nil)
			expectRefusal(t, r, tc.status, tc.code, tc.name)
		})
	}
}

func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	var claims map[string]any
	raw, _ := b64decode(parts[1])
	_ = json.Unmarshal(raw, &claims)
	claims["sub"] = "00000000-0000-4000-8000-000000000002"
	parts[1] = b64(claims)
	return strings.Join(parts, ".")
}

// The JWKS served to clients is exactly what PostgREST was given, holds
// public Ed25519 keys only, and passes the same strict validation.
func TestJWKSIsPublicAndPushed(t *testing.T) {
	c := newClient(t)
	r := c.Do("GET", "/.well-known/jwks.json", "", nil)
	expectStatus(t, r, http.StatusOK, "jwks")
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/jwk-set+json") {
		t.Errorf("content type %q", ct)
	}
	if cc := r.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age=") {
		t.Errorf("no max-age in Cache-Control %q", cc)
	}
	keys, err := signer.ValidateJWKS(r.Body)
	if err != nil {
		t.Fatalf("served JWKS fails validation: %v", err)
	}
	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	r.JSON(t, &doc)
	for _, k := range doc.Keys {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
			if _, ok := k[private]; ok {
				t.Errorf("key %v has private member %q", k["kid"], private)
			}
		}
	}
	var setconfig []string
	if err := db(t).QueryRow(context.Background(), `
		SELECT setconfig FROM pg_db_role_setting WHERE setrole = 'authenticator'::regrole AND setdatabase = 0`).Scan(&setconfig); err != nil {
		t.Fatalf("no in-database PostgREST config: %v", err)
	}
	want := "pgrst.jwt_secret=" + string(r.Body)
	if !slices.Contains(setconfig, want) {
		t.Fatalf("PostgREST's jwt_secret differs from the served JWKS:\n%v\nserved %s", setconfig, r.Body)
	}
	kid, _ := currentKey(t)
	if keys[0].KID != kid {
		t.Errorf("first key %s, want the signing key %s first", keys[0].KID, kid)
	}
}

// The issued access token carries exactly the promised claims.
func TestAccessTokenClaims(t *testing.T) {
	s := need(t)
	c := newClient(t)
	u := c.Signup("user")
	sess := c.Login(u)
	parts := strings.Split(sess.AccessToken, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS")
	}
	var hdr, claims map[string]any
	h, _ := b64decode(parts[0])
	p, _ := b64decode(parts[1])
	if json.Unmarshal(h, &hdr) != nil || json.Unmarshal(p, &claims) != nil {
		t.Fatal("token parts are not JSON")
	}
	kid, _ := currentKey(t)
	if hdr["alg"] != "EdDSA" || hdr["kid"] != kid {
		t.Errorf("header %v, want alg EdDSA and kid %s", hdr, kid)
	}
	for _, k := range []string{"iss", "aud", "sub", "role", "sid", "iat", "exp"} {
		if _, ok := claims[k]; !ok {
			t.Errorf("claim %s missing from %v", k, claims)
		}
	}
	if claims["iss"] != s.GatewayURL() || claims["sub"] != u.ID || claims["role"] != "app_user" || claims["sid"] != sess.SessionID {
		t.Errorf("claims %v", claims)
	}
	if ttl := claims["exp"].(float64) - claims["iat"].(float64); ttl <= 0 || ttl > 900 {
		t.Errorf("lifetime %v s, want (0, 900]", ttl)
	}
	_ = io.Discard
}

// authsvc and the REST side agree on claim types: PostgREST refuses
// `"exp": "<digits>"` and a string iat (401 PGRST301, and the gate would
// refuse them after it) while authsvc read both as dates and let the token
// into its session endpoints. authsvc now refuses them with 401
// invalid_token; both sides take the control token.
func TestClaimTypesStrictOnBothSides(t *testing.T) {
	s := need(t)
	c := newClient(t)
	u := c.Signup("user")
	sess := c.Login(u)
	kid, key := currentKey(t)
	hdr := map[string]any{"alg": "EdDSA", "typ": "JWT", "kid": kid}
	now := time.Now().Unix()
	claims := func(change func(map[string]any)) string {
		m := map[string]any{
			"iss": s.GatewayURL(), "aud": "zsm-api", "sub": u.ID, "role": "app_user",
			"sid": sess.SessionID, "iat": now, "exp": now + 300,
		}
		change(m)
		return signEdDSA(hdr, m, key)
	}
	control := claims(func(map[string]any) {})
	expectStatus(t, c.Do("GET", "/auth/v1/sessions", control, nil), http.StatusOK, "authsvc, control token")
	expectStatus(t, c.Do("GET", "/rest/vaults", control, nil), http.StatusOK, "gate, control token")
	for name, change := range map[string]func(map[string]any){
		"exp a string": func(m map[string]any) { m["exp"] = strconv.FormatInt(now+300, 10) },
		"iat a string": func(m map[string]any) { m["iat"] = strconv.FormatInt(now, 10) },
		"nbf a string": func(m map[string]any) { m["nbf"] = strconv.FormatInt(now, 10) },
	} {
		tok := claims(change)
		expectRefusal(t, c.Do("GET", "/auth/v1/sessions", tok, nil), http.StatusUnauthorized, "invalid_token", "authsvc, "+name)
		expectRefusal(t, c.Do("GET", "/rest/vaults", tok, nil), http.StatusUnauthorized, "PGRST301", "rest, "+name)
	}
}
