package integration

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"zsm.dev/zsm/api"
	"zsm.dev/zsm/sdk/authclient"
	"zsm.dev/zsm/sdk/machinetoken"
)

// machineOwner is a person who makes machine tokens: a device, its
// account and an access token of a live session.
type machineOwner struct {
	c      *client
	u      user
	access string
	ed     ed25519.PublicKey // the key the anchor vouches for
}

func newMachineOwner(t *testing.T) machineOwner {
	t.Helper()
	c := newClient(t)
	u := c.Signup("tok")
	sess := c.Login(u)
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return machineOwner{c: c, u: u, access: sess.AccessToken, ed: pub}
}

// makeToken makes a token on the client side (nothing sent).
func (o machineOwner) makeToken(t *testing.T, name string, ttl time.Duration) authclient.NewToken {
	t.Helper()
	nt, err := authclient.MakeToken(name, ttl, uuid.MustParse(o.u.ID), o.ed)
	if err != nil {
		t.Fatal(err)
	}
	return nt
}

// createToken makes and registers a token, failing the test otherwise.
func (o machineOwner) createToken(t *testing.T, name string, ttl time.Duration) authclient.NewToken {
	t.Helper()
	nt := o.makeToken(t, name, ttl)
	r := o.c.Do("POST", api.PathTokens, o.access, nt.Request)
	expectStatus(t, r, http.StatusCreated, "create token "+name)
	var info api.TokenInfo
	r.JSON(t, &info)
	if info.TokenID != nt.Request.TokenID || info.Name != name || info.ExpiresAt.Sub(info.CreatedAt) != ttl.Truncate(time.Second) {
		t.Fatalf("created %+v, sent %s %s %d s", info, nt.Request.TokenID, name, nt.Request.LifetimeSeconds)
	}
	return nt
}

// challenge asks for a nonce for id from c.
func challenge(t *testing.T, c *client, id string) []byte {
	t.Helper()
	r := c.Do("POST", api.PathMachineChallenge, "", api.MachineChallengeRequest{TokenID: id})
	expectStatus(t, r, http.StatusOK, "challenge")
	var ch api.MachineChallenge
	r.JSON(t, &ch)
	n, err := base64.RawURLEncoding.Strict().DecodeString(ch.Nonce)
	if err != nil || len(n) != 32 || ch.ExpiresIn < 5 || ch.ExpiresIn > 60 {
		t.Fatalf("challenge %+v", ch)
	}
	return n
}

// machineLogin sends a signed login and returns the answer as it is.
func machineLogin(c *client, id string, nonce, sig []byte) response {
	return c.Do("POST", api.PathMachineLogin, "", api.MachineLoginRequest{
		TokenID: id, Nonce: base64.RawURLEncoding.EncodeToString(nonce), Signature: base64.RawURLEncoding.EncodeToString(sig)})
}

// loginMachine logs k in through the whole exchange and returns its
// access token.
func loginMachine(t *testing.T, c *client, k *machinetoken.Keys) string {
	t.Helper()
	id := k.TokenID.String()
	n := challenge(t, c, id)
	sig, err := k.SignLogin(n, "zsm-api")
	if err != nil {
		t.Fatal(err)
	}
	r := machineLogin(c, id, n, sig)
	expectStatus(t, r, http.StatusOK, "machine login")
	var out api.MachineTokens
	r.JSON(t, &out)
	if out.TokenID != id || out.TokenType != "Bearer" || out.ExpiresIn <= 0 || out.ExpiresIn > 900 {
		t.Fatalf("login answer %v", out)
	}
	return out.AccessToken
}

// jwtClaims decodes an access token's claims without checking it.
func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	raw, err := b64decode(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// auditEvents returns the audit rows of user about token id, oldest first.
func tokenAudit(t *testing.T, userID, tokenID string) []string {
	t.Helper()
	rows, err := db(t).Query(context.Background(), `
		SELECT event || coalesce(':' || (detail ->> 'reason'), '') FROM api.audit_events
		 WHERE user_id = $1::uuid AND detail ->> 'token_id' = $2 ORDER BY id`, userID, tokenID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// TestMachineTokenLogin: a token made by a person logs in by signing a
// nonce, and gets a person-shaped access token marked as a machine's, with
// no refresh token and no session; creating, using and failing are
// audited for the owner.
func TestMachineTokenLogin(t *testing.T) {
	o := newMachineOwner(t)
	nt := o.createToken(t, "deploy-prod", 24*time.Hour)
	id := nt.Request.TokenID
	c := newClient(t)
	at := loginMachine(t, c, nt.Keys)
	cl := jwtClaims(t, at)
	if cl["sub"] != id || cl["tid"] != id || cl["zsm_kind"] != "machine" || cl["role"] != "app_user" || cl["sid"] != nil {
		t.Fatalf("claims %v", cl)
	}
	if _, ok := cl["jti"].(string); !ok {
		t.Fatalf("no jti: %v", cl)
	}
	// The answer has no refresh token and no session.
	n := challenge(t, c, id)
	sig, _ := nt.Keys.SignLogin(n, "zsm-api")
	r := machineLogin(c, id, n, sig)
	expectStatus(t, r, http.StatusOK, "second login")
	var out api.MachineTokens
	r.JSON(t, &out)
	anchor, err := base64.StdEncoding.DecodeString(out.Anchor)
	if err != nil || out.OwnerID != o.u.ID {
		t.Fatalf("owner %s, anchor %q: %v", out.OwnerID, out.Anchor, err)
	}
	// The anchor vouches for the creator's key to this token alone.
	if err := nt.Keys.CheckAnchor(uuid.MustParse(out.OwnerID), o.ed, anchor); err != nil {
		t.Fatalf("the anchor does not check: %v", err)
	}
	var raw map[string]any
	r.JSON(t, &raw)
	for _, k := range []string{"refresh_token", "session_id", "user_id"} {
		if _, ok := raw[k]; ok {
			t.Fatalf("machine login answered %s", k)
		}
	}
	var used *time.Time
	if err := db(t).QueryRow(context.Background(), `SELECT last_used_at FROM auth.machine_tokens WHERE id = $1`, id).Scan(&used); err != nil || used == nil {
		t.Fatalf("last_used_at %v, %v", used, err)
	}
	if got := strings.Join(tokenAudit(t, o.u.ID, id), ","); got != "token_created,token_used,token_used" {
		t.Fatalf("audit %s", got)
	}
	// The SDK's own login does the same.
	if _, err := c.Auth.MachineLogin(context.Background(), nt.Keys, "zsm-api"); err != nil {
		t.Fatal(err)
	}
}

// TestMachineLoginAttacks: each way of getting a machine access token
// without the right signature over a fresh nonce is refused with the one
// answer, 401 login_failed.
func TestMachineLoginAttacks(t *testing.T) {
	o := newMachineOwner(t)
	nt := o.createToken(t, "ci", 24*time.Hour)
	id := nt.Request.TokenID
	c := newClient(t)
	sign := func(k *machinetoken.Keys, n []byte, aud string) []byte {
		s, err := k.SignLogin(n, aud)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	refused := func(r response, what string) {
		t.Helper()
		expectRefusal(t, r, http.StatusUnauthorized, api.CodeLoginFailed, what)
	}

	// A replayed nonce: the first login spends it.
	n := challenge(t, c, id)
	expectStatus(t, machineLogin(c, id, n, sign(nt.Keys, n, "zsm-api")), http.StatusOK, "first use")
	refused(machineLogin(c, id, n, sign(nt.Keys, n, "zsm-api")), "replayed nonce")

	// A signature for another audience (another deployment's): refused,
	// and the nonce is spent by the attempt.
	n = challenge(t, c, id)
	refused(machineLogin(c, id, n, sign(nt.Keys, n, "zsm-api-other")), "signature for another audience")
	refused(machineLogin(c, id, n, sign(nt.Keys, n, "zsm-api")), "nonce spent by a failed attempt")

	// A nonce issued for another token id.
	other := o.createToken(t, "ci-2", 24*time.Hour)
	n = challenge(t, c, other.Request.TokenID)
	refused(machineLogin(c, id, n, sign(nt.Keys, n, "zsm-api")), "nonce of another token")

	// A nonce the server never issued.
	n = randBytes(32)
	refused(machineLogin(c, id, n, sign(nt.Keys, n, "zsm-api")), "nonce never issued")

	// An expired nonce: its Redis entry ran out.
	n = challenge(t, c, id)
	rdb := redisClient(t)
	key := "zsm:mn:" + id + ":" + base64.RawURLEncoding.EncodeToString(n)
	if ok, err := rdb.PExpire(context.Background(), key, time.Millisecond).Result(); err != nil || !ok {
		t.Fatalf("expire nonce: %v %v", ok, err)
	}
	time.Sleep(20 * time.Millisecond)
	refused(machineLogin(c, id, n, sign(nt.Keys, n, "zsm-api")), "expired nonce")

	// Signed by another token's key; a token whose id is right but whose
	// secret was changed (a flipped character that still passes the check
	// because the check was recomputed): the same answer, which part was
	// wrong is not told.
	n = challenge(t, c, id)
	refused(machineLogin(c, id, n, sign(other.Keys, n, "zsm-api")), "another token's key")
	forged := forgeSecret(t, nt.Token)
	fk, err := machinetoken.Derive(forged)
	if err != nil {
		t.Fatal(err)
	}
	n = challenge(t, c, id)
	refused(machineLogin(c, id, n, sign(fk, n, "zsm-api")), "right id, wrong secret")

	// An unknown token id gets a challenge of the same shape, and the same
	// refusal.
	ghost := o.makeToken(t, "never-registered", time.Hour)
	n = challenge(t, c, ghost.Request.TokenID)
	refused(machineLogin(c, ghost.Request.TokenID, n, sign(ghost.Keys, n, "zsm-api")), "unknown token")

	// Malformed bodies are 400 and count nothing.
	expectRefusal(t, c.Do("POST", api.PathMachineChallenge, "", map[string]string{"token_id": strings.ToUpper(id)}), 400, api.CodeMalformedRequest, "upper-case id")
	expectRefusal(t, c.Do("POST", api.PathMachineLogin, "", api.MachineLoginRequest{TokenID: id, Nonce: "AAAA", Signature: "AAAA"}), 400, api.CodeMalformedRequest, "short nonce")

	// The owner's log has the failures of a real challenge with a bad
	// signature; a nonce that was not there is refused before the token is
	// looked up, and is logged without a user, for operators.
	got := strings.Join(tokenAudit(t, o.u.ID, id), ",")
	want := "token_created,token_used,machine_login_failed:bad_signature,machine_login_failed:bad_signature,machine_login_failed:bad_signature"
	if got != want {
		t.Fatalf("audit\n got %s\nwant %s", got, want)
	}
	var nonceFailures int
	if err := db(t).QueryRow(context.Background(), `
		SELECT count(*) FROM api.audit_events WHERE user_id IS NULL AND event = 'machine_login_failed'
		   AND detail ->> 'token_id' = $1 AND detail ->> 'reason' = 'nonce'`, id).Scan(&nonceFailures); err != nil || nonceFailures != 5 {
		t.Fatalf("%d nonce failures logged for operators (%v), want 5", nonceFailures, err)
	}
}

// forgeSecret returns a token with tok's id and another secret, whose
// check is valid: the client's check passes, the server must refuse it.
func forgeSecret(t *testing.T, tok machinetoken.Token) machinetoken.Token {
	t.Helper()
	text := tok.Reveal()
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(text, machinetoken.Prefix))
	if err != nil {
		t.Fatal(err)
	}
	raw[20] ^= 1
	sum := sha256.Sum256(append([]byte("zsm v1 token-check\x00"), raw[:48]...))
	copy(raw[48:], sum[:4])
	forged, err := machinetoken.Parse(machinetoken.Prefix + base64.RawURLEncoding.EncodeToString(raw))
	if err != nil {
		t.Fatalf("forged token does not parse: %v", err)
	}
	return forged
}

// TestMachineTokenRevokedAndExpiredCannotLogIn: a revoked token and an
// expired one get the same answer as any failed login.
func TestMachineTokenRevokedAndExpiredCannotLogIn(t *testing.T) {
	o := newMachineOwner(t)
	c := newClient(t)
	nt := o.createToken(t, "short", 2*time.Second)
	rv := o.createToken(t, "revoked", time.Hour)
	loginMachine(t, c, rv.Keys)
	expectStatus(t, o.c.Do("DELETE", api.PathTokens+"/"+rv.Request.TokenID, o.access, nil), http.StatusNoContent, "revoke")
	n := challenge(t, c, rv.Request.TokenID)
	sig, _ := rv.Keys.SignLogin(n, "zsm-api")
	expectRefusal(t, machineLogin(c, rv.Request.TokenID, n, sig), 401, api.CodeLoginFailed, "revoked token")

	deadline := time.Now().Add(10 * time.Second)
	for {
		n = challenge(t, c, nt.Request.TokenID)
		sig, _ = nt.Keys.SignLogin(n, "zsm-api")
		r := machineLogin(c, nt.Request.TokenID, n, sig)
		if r.Status == http.StatusUnauthorized {
			expectRefusal(t, r, 401, api.CodeLoginFailed, "expired token")
			break
		}
		expectStatus(t, r, http.StatusOK, "token before it expires")
		if time.Now().After(deadline) {
			t.Fatal("the token still logs in 10 s after it expired")
		}
		time.Sleep(500 * time.Millisecond)
	}
	if got := tokenAudit(t, o.u.ID, nt.Request.TokenID); got[len(got)-1] != "machine_login_failed:expired" {
		t.Fatalf("audit %v", got)
	}
	if got := tokenAudit(t, o.u.ID, rv.Request.TokenID); strings.Join(got, ",") != "token_created,token_used,token_revoked,machine_login_failed:revoked" {
		t.Fatalf("audit %v", got)
	}
}

// TestMachineTokenCreateRefusals: the server stores a token only with a
// key record the token signed, a fresh name, an id nobody holds, and a
// lifetime within bounds; only a person creates one.
func TestMachineTokenCreateRefusals(t *testing.T) {
	o := newMachineOwner(t)
	post := func(req api.TokenCreateRequest, token string) response {
		return o.c.Do("POST", api.PathTokens, token, req)
	}
	nt := o.makeToken(t, "ok", time.Hour)

	// A record signed over other keys: the X25519 key swapped.
	bad := nt.Request
	other := o.makeToken(t, "other", time.Hour)
	bad.X25519Public = other.Request.X25519Public
	expectRefusal(t, post(bad, o.access), http.StatusForbidden, api.CodeInvalidKeyRecord, "record over other keys")
	// Another token's Ed25519 key with its own valid record, under this id.
	bad = other.Request
	bad.TokenID = nt.Request.TokenID
	expectRefusal(t, post(bad, o.access), http.StatusForbidden, api.CodeInvalidKeyRecord, "record of another token id")
	for name, f := range map[string]func(*api.TokenCreateRequest){
		"name with a space":    func(r *api.TokenCreateRequest) { r.Name = "deploy prod" },
		"empty name":           func(r *api.TokenCreateRequest) { r.Name = "" },
		"no lifetime":          func(r *api.TokenCreateRequest) { r.LifetimeSeconds = 0 },
		"a negative lifetime":  func(r *api.TokenCreateRequest) { r.LifetimeSeconds = -60 },
		"longer than 366 days": func(r *api.TokenCreateRequest) { r.LifetimeSeconds = 366*24*3600 + 1 },
		"not a version 4 id":   func(r *api.TokenCreateRequest) { r.TokenID = uuid.Must(uuid.NewV7()).String() },
		"short anchor":         func(r *api.TokenCreateRequest) { r.Anchor = base64.StdEncoding.EncodeToString(make([]byte, 31)) },
		"short X-Wing key":     func(r *api.TokenCreateRequest) { r.XWingPublic = r.XWingPublic[:100] },
		"unpadded signature":   func(r *api.TokenCreateRequest) { r.KeyRecordSignature = strings.TrimRight(r.KeyRecordSignature, "=") },
	} {
		req := nt.Request
		f(&req)
		expectRefusal(t, post(req, o.access), http.StatusBadRequest, api.CodeMalformedRequest, name)
	}
	// Nothing refused was stored.
	var n int
	if err := db(t).QueryRow(context.Background(), `SELECT count(*) FROM auth.machine_tokens WHERE owner_id = $1`, o.u.ID).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d tokens stored after refusals (%v)", n, err)
	}

	expectStatus(t, post(nt.Request, o.access), http.StatusCreated, "create")
	// The same name again, while the first is live.
	again := o.makeToken(t, "ok", time.Hour)
	expectRefusal(t, post(again.Request, o.access), http.StatusConflict, api.CodeNameTaken, "name taken")
	// Another token under the id of a live one, with a record valid for
	// that id: the id is taken.
	expectRefusal(t, post(withID(t, nt.Request, "dup", uuid.MustParse(nt.Request.TokenID)), o.access),
		http.StatusConflict, api.CodeIdentityUnavailable, "the id of another token")
	// A token under a person's user id, with a record valid for that id:
	// refused, else the token would inherit the person's grants.
	victim := newClient(t).Signup("victim")
	expectRefusal(t, post(withID(t, nt.Request, "collide", uuid.MustParse(victim.ID)), o.access),
		http.StatusConflict, api.CodeIdentityUnavailable, "token id = a user id")
	// And the other way round: a sign-up under a token's id.
	expectSignupTaken(t, nt.Request.TokenID)

	// A revoked token frees its name.
	expectStatus(t, o.c.Do("DELETE", api.PathTokens+"/"+nt.Request.TokenID, o.access, nil), http.StatusNoContent, "revoke")
	expectStatus(t, post(again.Request, o.access), http.StatusCreated, "name again after revocation")

	// A machine cannot create tokens, nor list sessions.
	at := loginMachine(t, newClient(t), again.Keys)
	third := o.makeToken(t, "by-machine", time.Hour)
	expectRefusal(t, post(third.Request, at), http.StatusForbidden, api.CodeMachineForbidden, "machine creates a token")
	expectRefusal(t, o.c.Do("GET", api.PathSessions, at, nil), http.StatusForbidden, api.CodeMachineForbidden, "machine lists sessions")
	expectRefusal(t, o.c.Do("DELETE", api.PathTokens+"/"+again.Request.TokenID, at, nil), http.StatusForbidden, api.CodeMachineForbidden, "machine revokes itself")
	// No token at all.
	expectRefusal(t, post(third.Request, ""), http.StatusUnauthorized, api.CodeInvalidToken, "no access token")
}

// withID is req for a token of a chosen id and name, with keys and a
// record made for that id (what someone who wants a token under a taken
// id would send).
func withID(t *testing.T, req api.TokenCreateRequest, name string, id uuid.UUID) api.TokenCreateRequest {
	t.Helper()
	k := tokenWithID(t, id)
	p := k.Public()
	enc := base64.StdEncoding.EncodeToString
	req.Name, req.TokenID = name, id.String()
	req.X25519Public, req.Ed25519Public, req.XWingPublic = enc(p.X25519), enc(p.Ed25519), enc(p.XWing)
	var err error
	if req.KeyRecordSignature, err = k.SignRecord(); err != nil {
		t.Fatal(err)
	}
	return req
}

// tokenWithID derives token keys for a chosen id.
func tokenWithID(t *testing.T, id uuid.UUID) *machinetoken.Keys {
	t.Helper()
	raw := append(append([]byte{}, id[:]...), randBytes(32)...)
	sum := sha256.Sum256(append([]byte("zsm v1 token-check\x00"), raw...))
	tok, err := machinetoken.Parse(machinetoken.Prefix + base64.RawURLEncoding.EncodeToString(append(raw, sum[:4]...)))
	if err != nil {
		t.Fatalf("token for %s: %v", id, err)
	}
	k, err := machinetoken.Derive(tok)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// expectSignupTaken signs up an account whose user id is id and expects
// the answer to a taken id.
func expectSignupTaken(t *testing.T, id string) {
	t.Helper()
	c := newClient(t)
	a := authclient.Account{UserID: id, Identity: mustIdentity(t, "taken-"+randHex(4)+"@example.test"), Secret: randBytes(32), KDF: testKDF()}
	_, err := c.Auth.SignupAccount(context.Background(), a)
	e := apiErr(t, err)
	if e.Status != http.StatusConflict || e.Code != api.CodeIdentityUnavailable {
		t.Fatalf("sign-up under a token's id: %d %s", e.Status, e.Code)
	}
}

// TestMachineTokenRevoke: only the owner revokes; another person's token
// id is 404 like an unknown one; revoking twice is 204.
func TestMachineTokenRevoke(t *testing.T) {
	o := newMachineOwner(t)
	nt := o.createToken(t, "rv", time.Hour)
	mallory := newMachineOwner(t)
	path := api.PathTokens + "/" + nt.Request.TokenID
	expectRefusal(t, mallory.c.Do("DELETE", path, mallory.access, nil), http.StatusNotFound, api.CodeNotFound, "another owner's token")
	expectRefusal(t, mallory.c.Do("DELETE", api.PathTokens+"/"+uuid.NewString(), mallory.access, nil), http.StatusNotFound, api.CodeNotFound, "unknown token")
	expectRefusal(t, mallory.c.Do("DELETE", api.PathTokens+"/not-a-uuid", mallory.access, nil), http.StatusNotFound, api.CodeNotFound, "not a uuid")
	// Still live after the attempts.
	loginMachine(t, newClient(t), nt.Keys)
	expectStatus(t, o.c.Do("DELETE", path, o.access, nil), http.StatusNoContent, "revoke")
	expectStatus(t, o.c.Do("DELETE", path, o.access, nil), http.StatusNoContent, "revoke again")
	if got := strings.Join(tokenAudit(t, o.u.ID, nt.Request.TokenID), ","); got != "token_created,token_used,token_revoked" {
		t.Fatalf("audit %s", got)
	}
}

// TestMachineLoginRateLimits: challenges are limited per token id and per
// client network (60 a minute each by default), answered 429 with
// Retry-After.
func TestMachineLoginRateLimits(t *testing.T) {
	c := newClient(t)
	id := uuid.NewString()
	for i := range 60 {
		r := c.Do("POST", api.PathMachineChallenge, "", api.MachineChallengeRequest{TokenID: id})
		expectStatus(t, r, http.StatusOK, fmt.Sprintf("challenge %d", i+1))
	}
	// Another network, the same token id: the token's own limit.
	r := newClient(t).Do("POST", api.PathMachineChallenge, "", api.MachineChallengeRequest{TokenID: id})
	expectRefusal(t, r, http.StatusTooManyRequests, api.CodeRateLimited, "61st challenge for one token")
	if r.Header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
	// The first network, other token ids: the network's limit.
	r = c.Do("POST", api.PathMachineChallenge, "", api.MachineChallengeRequest{TokenID: uuid.NewString()})
	expectRefusal(t, r, http.StatusTooManyRequests, api.CodeRateLimited, "61st challenge from one network")
}
