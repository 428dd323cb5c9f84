package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"zsm.dev/zsm/api"
	"zsm.dev/zsm/sdk/authclient"
	"zsm.dev/zsm/sdk/keys"
	"zsm.dev/zsm/sdk/zsm"
	"zsm.dev/zsm/srpgroup"
)

// uaTransport gives every request a User-Agent: what a session's device
// label is when the client names none.
type uaTransport struct {
	ua   string
	base http.RoundTripper
}

func (t uaTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("User-Agent", t.ua)
	return t.base.RoundTrip(r)
}

// newDevice is newClient with its own User-Agent.
func newDevice(t *testing.T, label string) *client {
	c := newClient(t)
	c.HTTP.Transport = uaTransport{ua: label, base: c.HTTP.Transport}
	return c
}

type sessionsBody struct {
	Sessions []authclient.SessionInfo `json:"sessions"`
}

func listSessions(t *testing.T, c *client, token string) []authclient.SessionInfo {
	t.Helper()
	r := c.Do("GET", "/auth/v1/sessions", token, nil)
	expectStatus(t, r, http.StatusOK, "list sessions")
	var b sessionsBody
	r.JSON(t, &b)
	return b.Sessions
}

func sessionRow(t *testing.T, sid string) (revokedAt *time.Time, reason *string) {
	t.Helper()
	if err := db(t).QueryRow(context.Background(), `SELECT revoked_at, revoked_reason FROM auth.sessions WHERE id = $1`, sid).Scan(&revokedAt, &reason); err != nil {
		t.Fatalf("session %s: %v", sid, err)
	}
	return revokedAt, reason
}

// Two devices are listed with their labels and addresses; one revokes the
// other, whose tokens then stop working at once; nobody can revoke a
// session that is not theirs, and the refusal does not say whether it
// exists.
func TestSessionListAndRevoke(t *testing.T) {
	ctx := context.Background()
	a := newDevice(t, "zsm-test laptop")
	b := newDevice(t, "zsm-test phone")
	u := a.Signup("user")
	sa := a.Login(u)
	sb := b.Login(u)

	list := listSessions(t, a, sa.AccessToken)
	if len(list) != 2 {
		t.Fatalf("%d sessions listed, want 2: %+v", len(list), list)
	}
	byID := map[string]authclient.SessionInfo{}
	for _, s := range list {
		byID[s.ID] = s
	}
	la, lb := byID[sa.SessionID], byID[sb.SessionID]
	if la.ID == "" || lb.ID == "" {
		t.Fatalf("sessions %s and %s not both listed: %+v", sa.SessionID, sb.SessionID, list)
	}
	check := func(s authclient.SessionInfo, label, addr string, current bool) {
		t.Helper()
		if s.DeviceLabel == nil || *s.DeviceLabel != label || s.ClientAddr == nil || *s.ClientAddr != addr || s.Current != current {
			t.Errorf("session %s: label %v, addr %v, current %v; want %q, %q, %v", s.ID, deref(s.DeviceLabel), deref(s.ClientAddr), s.Current, label, addr, current)
		}
		if s.CreatedAt.IsZero() || s.LastUsedAt.IsZero() || !s.ExpiresAt.After(time.Now()) || s.IdleExpiresAt == nil || !s.IdleExpiresAt.After(time.Now()) {
			t.Errorf("session %s: times %+v", s.ID, s)
		}
	}
	check(la, "zsm-test laptop", a.IP, true)
	check(lb, "zsm-test phone", b.IP, false)
	// From the other device, the other one is current.
	for _, s := range listSessions(t, b, sb.AccessToken) {
		if s.Current != (s.ID == sb.SessionID) {
			t.Errorf("from device b, session %s current=%v", s.ID, s.Current)
		}
	}

	// Someone else cannot end a's sessions, and learns nothing from trying.
	x := newClient(t)
	ux := x.Signup("user")
	sx := x.Login(ux)
	var bodies []api.Error
	for _, id := range []string{sa.SessionID, uuid.NewString(), "not-a-uuid", "00000000-0000-0000-0000-000000000000"} {
		r := x.Do("DELETE", "/auth/v1/sessions/"+id, sx.AccessToken, nil)
		expectRefusal(t, r, http.StatusNotFound, "not_found", "revoking "+id+" as another user")
		e := r.Err(t)
		e.RequestID = ""
		bodies = append(bodies, e)
	}
	for _, e := range bodies[1:] {
		if e != bodies[0] {
			t.Errorf("refusals differ: %+v vs %+v", e, bodies[0])
		}
	}
	if at, _ := sessionRow(t, sa.SessionID); at != nil {
		t.Fatal("another user's DELETE revoked the session")
	}
	expectStatus(t, a.Do("GET", "/rest/vaults", sa.AccessToken, nil), http.StatusOK, "a after x's attempt")

	// a ends b's session: at once, everywhere.
	expectStatus(t, b.Do("GET", "/rest/vaults", sb.AccessToken, nil), http.StatusOK, "b before")
	r := a.Do("DELETE", "/auth/v1/sessions/"+sb.SessionID, sa.AccessToken, nil)
	expectStatus(t, r, http.StatusNoContent, "revoke b")
	expectRefusal(t, b.Do("GET", "/rest/vaults", sb.AccessToken, nil), http.StatusUnauthorized, "session_revoked", "b's token at PostgREST")
	expectRefusal(t, b.Do("GET", "/auth/v1/sessions", sb.AccessToken, nil), http.StatusUnauthorized, "session_revoked", "b's token at authsvc")
	_, err := b.Auth.Refresh(ctx, sb.RefreshToken)
	if e := apiErr(t, err); e.Status != http.StatusUnauthorized || e.Code != "invalid_refresh_token" {
		t.Fatalf("b's refresh token: %v", err)
	}
	if _, reason := sessionRow(t, sb.SessionID); reason == nil || *reason != "revoked_by_user" {
		t.Fatalf("revoked_reason %v", deref(reason))
	}
	// Ended sessions are not listed and cannot be ended twice.
	if l := listSessions(t, a, sa.AccessToken); len(l) != 1 || l[0].ID != sa.SessionID {
		t.Fatalf("after revoking b: %+v", l)
	}
	expectRefusal(t, a.Do("DELETE", "/auth/v1/sessions/"+sb.SessionID, sa.AccessToken, nil), http.StatusNotFound, "not_found", "revoking b again")
	expectStatus(t, a.Do("GET", "/rest/vaults", sa.AccessToken, nil), http.StatusOK, "a still works")
	// a may end itself.
	expectStatus(t, a.Do("DELETE", "/auth/v1/sessions/"+sa.SessionID, sa.AccessToken, nil), http.StatusNoContent, "a ends itself")
	expectRefusal(t, a.Do("GET", "/rest/vaults", sa.AccessToken, nil), http.StatusUnauthorized, "session_revoked", "a after ending itself")
}

// The session endpoints take nothing but a valid bearer token.
func TestSessionEndpointsNeedAToken(t *testing.T) {
	c := newClient(t)
	u := c.Signup("user")
	s := c.Login(u)
	kid, key := currentKey(t)
	now := time.Now().Unix()
	forged := signEdDSA(map[string]any{"alg": "EdDSA", "typ": "JWT", "kid": kid}, map[string]any{
		"iss": need(t).GatewayURL(), "aud": "zsm-api", "sub": u.ID, "role": "app_user", "sid": s.SessionID,
		"iat": now - 1000, "exp": now - 100,
	}, key)
	for name, hdr := range map[string][]string{
		"no header":      nil,
		"basic":          {"Authorization", "Basic dXNlcjpwYXNz"},
		"empty bearer":   {"Authorization", "Bearer "},
		"garbage":        {"Authorization", "Bearer abc.def.ghi"},
		"refresh token":  {"Authorization", "Bearer " + s.RefreshToken},
		"expired token":  {"Authorization", "Bearer " + forged},
		"tampered token": {"Authorization", "Bearer " + tamper(s.AccessToken)},
	} {
		for _, ep := range []struct{ method, path string }{
			{"GET", "/auth/v1/sessions"}, {"DELETE", "/auth/v1/sessions/" + s.SessionID},
			{"POST", "/auth/v1/password/init"}, {"POST", "/auth/v1/password/change"},
		} {
			var body any
			if ep.method == "POST" {
				body = map[string]string{}
			}
			r := c.Do(ep.method, ep.path, "", body, hdr...)
			expectRefusal(t, r, http.StatusUnauthorized, "invalid_token", name+" "+ep.method+" "+ep.path)
			if r.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s: 401 without WWW-Authenticate", name, ep.path)
			}
		}
	}
	if at, _ := sessionRow(t, s.SessionID); at != nil {
		t.Fatal("the session was revoked by a request without a valid token")
	}
}

// A session unused for longer than the idle lifetime, or past its absolute
// end, is dead: its refresh token, its access tokens at PostgREST and at
// authsvc are all refused. The database's clock is moved by moving the
// session's timestamps.
func TestIdleAndAbsoluteSessionExpiry(t *testing.T) {
	ctx := context.Background()
	conn := db(t)
	var idle int
	if err := conn.QueryRow(ctx, `SELECT idle_ttl_seconds FROM auth.token_policy`).Scan(&idle); err != nil || idle != 7*24*3600 {
		t.Fatalf("token_policy.idle_ttl_seconds %d (%v), want the default 7 days written by authsvc", idle, err)
	}
	for _, tc := range []struct{ name, move string }{
		{"idle", `UPDATE auth.sessions SET last_used_at = now() - interval '7 days 1 minute', created_at = now() - interval '8 days' WHERE id = $1`},
		{"absolute", `UPDATE auth.sessions SET expires_at = now() - interval '1 second' WHERE id = $1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t)
			u := c.Signup("user")
			s := c.Login(u)
			other := c.Login(u)
			expectStatus(t, c.Do("GET", "/rest/vaults", s.AccessToken, nil), http.StatusOK, "before")
			if _, err := conn.Exec(ctx, tc.move, s.SessionID); err != nil {
				t.Fatal(err)
			}
			expectRefusal(t, c.Do("GET", "/rest/vaults", s.AccessToken, nil), http.StatusUnauthorized, "session_revoked", "PostgREST")
			expectRefusal(t, c.Do("GET", "/auth/v1/sessions", s.AccessToken, nil), http.StatusUnauthorized, "session_revoked", "authsvc")
			_, err := c.Auth.Refresh(ctx, s.RefreshToken)
			if e := apiErr(t, err); e.Status != http.StatusUnauthorized || e.Code != "invalid_refresh_token" {
				t.Fatalf("refresh: %v", err)
			}
			// The other session is untouched and no longer lists this one.
			l := listSessions(t, c, other.AccessToken)
			if len(l) != 1 || l[0].ID != other.SessionID {
				t.Fatalf("listed %+v", l)
			}
			expectRefusal(t, c.Do("DELETE", "/auth/v1/sessions/"+s.SessionID, other.AccessToken, nil), http.StatusNotFound, "not_found", "revoking the dead session")
			// Just inside the idle lifetime, a session lives.
			if tc.name == "idle" {
				if _, err := conn.Exec(ctx, `UPDATE auth.sessions SET last_used_at = now() - interval '7 days' + interval '1 minute' WHERE id = $1`, other.SessionID); err != nil {
					t.Fatal(err)
				}
				expectStatus(t, c.Do("GET", "/rest/vaults", other.AccessToken, nil), http.StatusOK, "inside the idle lifetime")
				s2, err := c.Auth.Refresh(ctx, other.RefreshToken)
				if err != nil {
					t.Fatalf("refresh inside the idle lifetime: %v", err)
				}
				var last time.Time
				if err := conn.QueryRow(ctx, `SELECT last_used_at FROM auth.sessions WHERE id = $1`, s2.SessionID).Scan(&last); err != nil || time.Since(last) > time.Minute {
					t.Fatalf("refresh did not move last_used_at: %v %v", last, err)
				}
			}
		})
	}
}

// ---------------------------------------------------------------- password change

// zsmAccount is an account made by the real client, with a key bundle.
type zsmAccount struct {
	Identity, password string
	sk                 keys.SecretKey
	userID             string
}

func zsmSignup(t *testing.T, hc *http.Client) zsmAccount {
	t.Helper()
	a := zsmAccount{Identity: "pw-" + randHex(5) + "@example.test", password: "old password " + randHex(4)}
	res, err := zsm.Signup(context.Background(), hc, need(t).GatewayURL(), a.Identity, a.password, zsm.NewMemState())
	if err != nil {
		t.Fatal(err)
	}
	a.sk, a.userID = res.SecretKey, res.UserID.String()
	return a
}

func zsmLogin(t *testing.T, a zsmAccount, password string, hc *http.Client, st zsm.State) (*zsm.Client, error) {
	t.Helper()
	sess, err := zsm.Login(context.Background(), hc, need(t).GatewayURL(), a.Identity, password, a.sk, st)
	if err != nil {
		return nil, err
	}
	return zsm.New(sess, st, hc), nil
}

type accountRow struct {
	Salt, Verifier []byte
	KDF, Bundle    string
}

func accountState(t *testing.T, uid string) accountRow {
	t.Helper()
	var r accountRow
	if err := db(t).QueryRow(context.Background(), `SELECT srp_salt, srp_verifier, kdf::text, coalesce(key_bundle::text, '') FROM auth.users WHERE id = $1`, uid).
		Scan(&r.Salt, &r.Verifier, &r.KDF, &r.Bundle); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r accountRow) equal(o accountRow) bool {
	return bytes.Equal(r.Salt, o.Salt) && bytes.Equal(r.Verifier, o.Verifier) && r.KDF == o.KDF && r.Bundle == o.Bundle
}

// The whole change through the SDK: the old password stops working, the new
// one works with the same Secret Key, every other session ends, this one
// stays, and the vaults stay readable.
func TestPasswordChange(t *testing.T) {
	ctx := context.Background()
	hcA, hcB := httpFrom(sourceIP()), httpFrom(sourceIP())
	acct := zsmSignup(t, hcA)
	stA := zsm.NewMemState()
	devA, err := zsmLogin(t, acct, acct.password, hcA, stA)
	if err != nil {
		t.Fatal(err)
	}
	devB, err := zsmLogin(t, acct, acct.password, hcB, zsm.NewMemState())
	if err != nil {
		t.Fatal(err)
	}
	v, err := devA.CreateVault(ctx, "pw-change vault")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := devA.SetSecret(ctx, v, "API_KEY", "value before the change"); err != nil {
		t.Fatal(err)
	}
	if err := devB.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	oldKDF := devA.Session().KDF

	newPassword := "new password " + randHex(4)
	if err := zsm.ChangePassword(ctx, devA, acct.password, newPassword, acct.sk, stA); err != nil {
		t.Fatalf("change password: %v", err)
	}
	if devA.Session().KDF.Equal(oldKDF) {
		t.Error("the session still holds the old KDF parameters")
	}
	if pinned, _ := stA.PinnedKDF(need(t).GatewayURL() + "|" + acct.Identity); !pinned.Equal(devA.Session().KDF) {
		t.Error("the new KDF parameters were not pinned")
	}
	// This session stays; the other one is gone, at PostgREST and at refresh.
	if err := devA.Ping(ctx); err != nil {
		t.Fatalf("the changing session stopped working: %v", err)
	}
	if err := devB.Ping(ctx); !errors.Is(err, zsm.ErrSessionExpired) {
		t.Fatalf("other session after the change: %v", err)
	}
	if err := devB.Refresh(ctx); !errors.Is(err, zsm.ErrSessionExpired) {
		t.Fatalf("other session's refresh after the change: %v", err)
	}
	if _, reason := sessionRow(t, devB.Session().SessionID); reason == nil || *reason != "password_change" {
		t.Fatalf("other session's revoked_reason %v", deref(reason))
	}
	// Old password out, new one in, same Secret Key; data still readable.
	if _, err := zsmLogin(t, acct, acct.password, httpFrom(sourceIP()), zsm.NewMemState()); !errors.Is(err, zsm.ErrLoginFailed) {
		t.Fatalf("login with the old password: %v", err)
	}
	fresh, err := zsmLogin(t, acct, newPassword, httpFrom(sourceIP()), zsm.NewMemState())
	if err != nil {
		t.Fatalf("login with the new password: %v", err)
	}
	vaults, err := fresh.Vaults(ctx)
	if err != nil || len(vaults) != 1 {
		t.Fatalf("vaults after the change: %v %v", vaults, err)
	}
	sec, err := fresh.SecretByName(ctx, vaults[0], "API_KEY")
	if err != nil || sec.Value != "value before the change" {
		t.Fatalf("secret after the change: %v %v", sec.Value, err)
	}
	// The device that changed it logs in again with its pinned (new) KDF.
	if _, err := zsmLogin(t, acct, newPassword, httpFrom(sourceIP()), stA); err != nil {
		t.Fatalf("login on the changing device: %v", err)
	}
	// The public keys did not change.
	var n int
	if err := db(t).QueryRow(ctx, `
		SELECT count(*) FROM auth.users u JOIN api.public_keys p ON p.user_id = u.ID
		 WHERE u.ID = $1 AND u.key_bundle ->> 'x25519_public' = p.x25519_public AND u.key_bundle ->> 'ed25519_public' = p.ed25519_public`,
		acct.userID).Scan(&n); err != nil || n != 1 {
		t.Fatalf("bundle and published keys disagree (%d, %v)", n, err)
	}
}

// srpProof runs password/init with token for the account of secret and
// returns the handshake id and the client's proof M.
func srpProof(t *testing.T, c *client, token, identity string, secret []byte) (string, string) {
	t.Helper()
	cl, err := srpgroup.Env().NewClient([]byte(identity), secret)
	if err != nil {
		t.Fatal(err)
	}
	cred := cl.Credentials()
	A, _ := new(big.Int).SetString(cred[strings.IndexByte(cred, ':')+1:], 16)
	r := c.Do("POST", "/auth/v1/password/init", token, map[string]string{"a": srpgroup.FormatPublic(A)})
	expectStatus(t, r, http.StatusOK, "password/init")
	var ch struct {
		HandshakeID string `json:"handshake_id"`
		SRPSalt     string `json:"srp_salt"`
		B           string `json:"b"`
	}
	r.JSON(t, &ch)
	m, err := cl.Generate(ch.SRPSalt + ":" + ch.B)
	if err != nil {
		t.Fatal(err)
	}
	return ch.HandshakeID, m
}

func newRegistration(t *testing.T, identity string, secret []byte) map[string]any {
	t.Helper()
	reg, err := srpgroup.Register(identity, secret)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{
		"srp_salt":     fmt.Sprintf("%x", reg.Salt),
		"srp_verifier": srpgroup.FormatPublic(new(big.Int).SetBytes(reg.Verifier)),
		"kdf":          testKDF(),
	}
}

func withFields(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// Every way of changing a password without a fresh proof of the current one
// by the caller, or with other public keys, is refused exactly, and nothing
// changes.
func TestPasswordChangeRefusals(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	u := c.Signup("user")
	s := c.Login(u)
	other := c.Login(u)
	y := newClient(t)
	uy := y.Signup("user")
	sy := y.Login(uy)
	before := accountState(t, u.ID)
	newSecret := randBytes(32)
	reg := newRegistration(t, u.Identity, newSecret)

	refuse := func(name string, body map[string]any, token string, status int, code string) {
		t.Helper()
		r := c.Do("POST", "/auth/v1/password/change", token, body)
		expectRefusal(t, r, status, code, name)
	}

	// A wrong current password.
	hid, m := srpProof(t, c, s.AccessToken, u.Identity, randBytes(32))
	refuse("wrong current password", withFields(reg, "handshake_id", hid, "m", m), s.AccessToken, http.StatusForbidden, "proof_failed")
	// The new registration is checked as at sign-up, before any handshake is looked at.
	refuse("bad verifier", withFields(reg, "handshake_id", strings.Repeat("A", 22), "m", strings.Repeat("0", 64), "srp_verifier", "1"), s.AccessToken, http.StatusBadRequest, "invalid_registration")
	refuse("weak kdf", withFields(reg, "handshake_id", strings.Repeat("A", 22), "m", strings.Repeat("0", 64), "kdf", map[string]any{"alg": "argon2id", "salt": testKDF().Salt, "memory_kib": 1024, "iterations": 1, "parallelism": 1}), s.AccessToken, http.StatusBadRequest, "invalid_registration")
	// A wrong proof spends the handshake; the right proof for it is then refused.
	hid2, m2 := srpProof(t, c, s.AccessToken, u.Identity, u.Secret)
	refuse("wrong proof for the handshake", withFields(reg, "handshake_id", hid2, "m", strings.Repeat("0", 64)), s.AccessToken, http.StatusForbidden, "proof_failed")
	refuse("handshake replayed", withFields(reg, "handshake_id", hid2, "m", m2), s.AccessToken, http.StatusForbidden, "proof_failed")
	// A handshake (and a valid proof) of another account, presented with my token.
	hy, my := srpProof(t, y, sy.AccessToken, uy.Identity, uy.Secret)
	refuse("another account's handshake", withFields(reg, "handshake_id", hy, "m", my), s.AccessToken, http.StatusForbidden, "proof_failed")
	hid, m = srpProof(t, c, s.AccessToken, u.Identity, u.Secret)
	refuse("no token", withFields(reg, "handshake_id", hid, "m", m), "", http.StatusUnauthorized, "invalid_token")
	refuse("the other account's token", withFields(reg, "handshake_id", hid, "m", m), sy.AccessToken, http.StatusForbidden, "proof_failed")
	// Adding a key bundle to an account without one changes its public keys.
	ak, _ := keys.NewAccountKeys(randReader{})
	b, _ := ak.Bundle(randBytes(32), uuid.MustParse(u.ID), randReader{})
	raw, _ := json.Marshal(b)
	hid, m = srpProof(t, c, s.AccessToken, u.Identity, u.Secret)
	refuse("a bundle for an account without one", withFields(reg, "handshake_id", hid, "m", m, "key_bundle", json.RawMessage(raw)), s.AccessToken, http.StatusBadRequest, "key_bundle_mismatch")

	if after := accountState(t, u.ID); !after.equal(before) {
		t.Fatal("a refused password change changed the account")
	}
	if at, _ := sessionRow(t, other.SessionID); at != nil {
		t.Fatal("a refused password change ended another session")
	}
	if at, _ := sessionRow(t, sy.SessionID); at != nil {
		t.Fatal("a refused password change ended the other account's session")
	}

	// And the real thing, at the protocol level, for an account without a
	// bundle: the old secret out, the new one in, the other session gone.
	n, err := c.Auth.ChangePassword(ctx, s.AccessToken, authclient.PasswordChange{Identity: mustIdentity(t, u.Identity), OldSecret: u.Secret, NewSecret: newSecret, NewKDF: testKDF()})
	if err != nil || n != 1 { // the other session
		t.Fatalf("change: %d %v", n, err)
	}
	if _, err := c.Auth.LoginWithSecret(ctx, mustIdentity(t, u.Identity), u.Secret); apiErr(t, err).Code != "login_failed" {
		t.Fatalf("old secret after the change: %v", err)
	}
	u.Secret = newSecret
	c.Login(u)
	expectRefusal(t, c.Do("GET", "/rest/vaults", other.AccessToken, nil), http.StatusUnauthorized, "session_revoked", "other session")
	expectStatus(t, c.Do("GET", "/rest/vaults", s.AccessToken, nil), http.StatusOK, "changing session")
}

// A bundle with other public keys is refused for an account with a bundle,
// whatever the proof: a password change re-wraps keys, it never replaces
// them.
func TestPasswordChangeRefusesOtherPublicKeys(t *testing.T) {
	ctx := context.Background()
	hc := httpFrom(sourceIP())
	acct := zsmSignup(t, hc)
	dev, err := zsmLogin(t, acct, acct.password, hc, zsm.NewMemState())
	if err != nil {
		t.Fatal(err)
	}
	before := accountState(t, acct.userID)
	s := dev.Session()
	ac := authclient.New(need(t).GatewayURL())
	ac.HTTP = hc
	kdf := s.KDF
	old, err := keys.Derive(acct.password, acct.sk, acct.Identity, kdf)
	if err != nil {
		t.Fatal(err)
	}
	newKDF, _ := keys.DefaultKDF(randReader{})
	newD, err := keys.Derive("new "+acct.password, acct.sk, acct.Identity, newKDF)
	if err != nil {
		t.Fatal(err)
	}
	// Fresh key pairs, correctly wrapped for this user: still refused.
	ak, _ := keys.NewAccountKeys(randReader{})
	b, _ := ak.Bundle(newD.UnlockKey, s.UserID, randReader{})
	raw, _ := json.Marshal(b)
	// And the right keys with one public half swapped.
	good, _ := s.Keys.Bundle(newD.UnlockKey, s.UserID, randReader{})
	swapped := good
	swapped.X25519Public = b.X25519Public
	rawSwapped, _ := json.Marshal(swapped)
	akdf := api.KDF{Alg: newKDF.Alg, Salt: newKDF.Salt, MemoryKiB: newKDF.MemoryKiB, Iterations: newKDF.Iterations, Parallelism: newKDF.Parallelism}
	for name, bundle := range map[string][]byte{"new key pairs": raw, "one public key swapped": rawSwapped, "no bundle": nil} {
		_, err := ac.ChangePassword(ctx, s.AccessToken, authclient.PasswordChange{
			Identity: mustIdentity(t, acct.Identity), OldSecret: old.SRPSecret, NewSecret: newD.SRPSecret, NewKDF: akdf, KeyBundle: bundle,
		})
		if e := apiErr(t, err); e.Status != http.StatusBadRequest || e.Code != "key_bundle_mismatch" {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if after := accountState(t, acct.userID); !after.equal(before) {
		t.Fatal("a refused password change changed the account")
	}
	if _, err := zsmLogin(t, acct, acct.password, httpFrom(sourceIP()), zsm.NewMemState()); err != nil {
		t.Fatalf("old password after refusals: %v", err)
	}
}

type randReader struct{}

func (randReader) Read(p []byte) (int, error) { copy(p, randBytes(len(p))); return len(p), nil }

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}
