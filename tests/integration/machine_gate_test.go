package integration

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"zsm.dev/zsm/api"
	"zsm.dev/zsm/sdk/authclient"
	"zsm.dev/zsm/sdk/memberlog"
	"zsm.dev/zsm/sdk/zsm"
)

// machineSetup is an owner (a real SDK account) with two vaults, A and B,
// each holding a secret, and a token of the owner's.
type machineSetup struct {
	owner  *sdkUser
	a, b   zsm.Vault
	secret zsm.Secret // in A
	token  authclient.NewToken
}

func newMachineSetup(t *testing.T, ttl time.Duration) machineSetup {
	t.Helper()
	ctx := context.Background()
	o := newSDKUser(t, "mowner")
	a, err := o.c.CreateVault(ctx, "prod")
	if err != nil {
		t.Fatal(err)
	}
	b, err := o.c.CreateVault(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	s, err := o.c.SetSecret(ctx, a, "DB_URL", "postgres://a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.c.SetSecret(ctx, b, "KEY_B", "b"); err != nil {
		t.Fatal(err)
	}
	sess := o.c.Session()
	nt, err := authclient.MakeToken("deploy", ttl, sess.UserID, sess.Keys.Ed25519.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	expectStatus(t, o.Do("POST", api.PathTokens, sess.AccessToken, nt.Request), http.StatusCreated, "create token")
	return machineSetup{owner: o, a: a, b: b, secret: s, token: nt}
}

// grant gives the token a role in v, as its owner (a made-up sealed key:
// the server never looks inside).
func (m machineSetup) grant(t *testing.T, v zsm.Vault, role string) response {
	t.Helper()
	return m.owner.rest("POST", "/access_policies", grantTo(v.ID, m.token.Request.TokenID, m.owner.ID(), role))
}

func rowsOf(t *testing.T, r response) []map[string]any {
	t.Helper()
	expectStatus(t, r, http.StatusOK, "read")
	var rows []map[string]any
	r.JSON(t, &rows)
	return rows
}

// TestMachineTokenScopeAndRole: a token reads exactly the vaults it was
// granted, writes nothing as a viewer, and can never manage a vault:
// create one, grant, delete its own grant, add webhooks, rotation policies
// or invitation blocks, or see anyone's tokens.
func TestMachineTokenScopeAndRole(t *testing.T) {
	m := newMachineSetup(t, time.Hour)
	expectStatus(t, m.grant(t, m.a, "viewer"), http.StatusCreated, "grant A to the token")
	c := newClient(t)
	at := loginMachine(t, c, m.token.Keys)
	rest := func(method, path string, body any, hdr ...string) response {
		return c.Do(method, "/rest"+path, at, body, hdr...)
	}

	// Scope: vault A and its secret; nothing of B, by list or by id.
	if v := rowsOf(t, rest("GET", "/vaults?select=id", nil)); len(v) != 1 || v[0]["id"] != m.a.ID.String() {
		t.Fatalf("vaults seen by the token: %v", v)
	}
	if s := rowsOf(t, rest("GET", "/secrets?select=id,vault_id", nil)); len(s) != 1 || s[0]["id"] != m.secret.ID.String() {
		t.Fatalf("secrets seen by the token: %v", s)
	}
	for _, p := range []string{"/secrets?vault_id=eq." + m.b.ID.String(), "/vaults?id=eq." + m.b.ID.String(),
		"/access_policies?vault_id=eq." + m.b.ID.String(), "/secret_versions?vault_id=eq." + m.b.ID.String()} {
		if rows := rowsOf(t, rest("GET", p, nil)); len(rows) != 0 {
			t.Fatalf("%s: the token sees %v", p, rows)
		}
	}

	// Read-only: a viewer writes no secret, by the write function or
	// around it.
	r := rest("POST", "/rpc/commit_secrets", map[string]any{"vault_id": m.a.ID, "manifest": map[string]any{"version": 2, "manifest": "x", "signature": "x"}})
	expectRefusal(t, r, http.StatusForbidden, "42501", "a viewer token commits secrets")
	if !strings.Contains(r.Err(t).Message, "your role: viewer") {
		t.Fatalf("refused for another reason: %s", r.Body)
	}
	r = rest("POST", "/secrets", map[string]any{"id": uuid.New(), "vault_id": m.a.ID, "revision": 1, "ciphertext": "eA=="})
	expectRefusal(t, r, http.StatusForbidden, "42501", "a viewer token writes a secret")
	r = rest("PATCH", "/secrets?id=eq."+m.secret.ID.String(), map[string]any{"revision": 2, "ciphertext": "eA=="}, "Prefer", "return=representation")
	if rows := rowsOf(t, r); len(rows) != 0 {
		t.Fatalf("a viewer token changed a secret: %v", rows)
	}

	// Never management, whatever its role (editor here).
	var n int
	if _, err := db(t).Exec(context.Background(), `DELETE FROM api.access_policies WHERE user_id = $1`, m.token.Request.TokenID); err != nil {
		t.Fatal(err)
	}
	expectStatus(t, m.grant(t, m.a, "editor"), http.StatusCreated, "grant A to the token as editor")
	someone := newClient(t).Signup("someone")
	expectRefusal(t, rest("POST", "/vaults", map[string]any{"id": uuid.New(), "meta": "eA==", "revision": 1}), http.StatusForbidden, "42501", "a token creates a vault")
	expectRefusal(t, rest("POST", "/access_policies", grantTo(m.a.ID, someone.ID, m.token.Request.TokenID, "viewer")), http.StatusForbidden, "42501", "a token grants")
	expectRefusal(t, rest("POST", "/rpc/create_webhook", map[string]any{"vault_id": m.a.ID, "url": "https://hooks.example.test/x"}), http.StatusForbidden, "42501", "a token adds a webhook")
	expectRefusal(t, rest("POST", "/rotation_policies", map[string]any{"secret_id": m.secret.ID, "vault_id": m.a.ID, "interval_seconds": 86400}), http.StatusForbidden, "42501", "a token sets a rotation policy")
	expectRefusal(t, rest("POST", "/grant_blocks", map[string]any{"blocked_user_id": someone.ID}), http.StatusForbidden, "42501", "a token blocks a person")
	expectRefusal(t, rest("POST", "/rpc/decline_invitation", map[string]any{"vault_id": m.a.ID}), http.StatusForbidden, "42501", "a token declines its grant")
	// Sharing's doors: no log entry (a leave included), no vault, no
	// identity lookups, no pins.
	expectRefusal(t, rest("POST", "/rpc/lookup_identity", map[string]any{"identity": someone.Identity}), http.StatusForbidden, "42501", "a token looks up an identity")
	// A well-formed leave, signed by the token, next in the chain.
	var logRows []struct {
		Seq       uint64 `json:"seq"`
		Entry     string `json:"entry"`
		Signature string `json:"signature"`
	}
	rest("GET", "/vault_log?select=seq,entry,signature&vault_id=eq."+m.a.ID.String()+"&order=seq", nil).JSON(t, &logRows)
	last, err := memberlog.ParseRow(logRows[len(logRows)-1].Entry, logRows[len(logRows)-1].Signature)
	if err != nil {
		t.Fatal(err)
	}
	leave, err := memberlog.Sign(memberlog.Entry{VaultID: m.a.ID, Seq: last.Entry.Seq + 1, Prev: last.Hash(), Op: memberlog.OpLeave,
		Subject: m.token.Keys.TokenID, Generation: last.Entry.Generation, Signer: m.token.Keys.TokenID, UnixMilli: uint64(time.Now().UnixMilli())},
		m.token.Keys.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	le, ls := leave.Row()
	expectRefusal(t, rest("POST", "/rpc/commit_members", map[string]any{"vault_id": m.a.ID,
		"log_entries": []map[string]any{{"seq": leave.Entry.Seq, "entry": le, "signature": ls}}}), http.StatusForbidden, "42501", "a token leaves through the log")
	expectRefusal(t, rest("POST", "/pins", map[string]any{"revision": 1, "ciphertext": "eA=="}), http.StatusForbidden, "42501", "a token stores pins")
	expectRefusal(t, rest("POST", "/rpc/create_vault", map[string]any{"vault_id": uuid.New(), "meta": "eA==", "owner_grant": map[string]any{},
		"log_entry": map[string]any{}, "manifest": map[string]any{}}), http.StatusForbidden, "42501", "a token creates a vault through create_vault")
	// Deleting its own grant, renaming or deleting the vault: nothing happens.
	for _, p := range []string{"/access_policies?user_id=eq." + m.token.Request.TokenID, "/vaults?id=eq." + m.a.ID.String()} {
		if rows := rowsOf(t, rest("DELETE", p, nil, "Prefer", "return=representation")); len(rows) != 0 {
			t.Fatalf("DELETE %s by a token: %v", p, rows)
		}
	}
	if rows := rowsOf(t, rest("PATCH", "/vaults?id=eq."+m.a.ID.String(), map[string]any{"meta": "eA=="}, "Prefer", "return=representation")); len(rows) != 0 {
		t.Fatalf("a token renamed a vault: %v", rows)
	}
	if err := db(t).QueryRow(context.Background(), `SELECT count(*) FROM api.access_policies WHERE user_id = $1`, m.token.Request.TokenID).Scan(&n); err != nil || n != 1 {
		t.Fatalf("the token's grants: %d (%v)", n, err)
	}
	// The token list is its owner's: a machine sees none.
	if rows := rowsOf(t, rest("GET", "/machine_tokens", nil)); len(rows) != 0 {
		t.Fatalf("a token lists tokens: %v", rows)
	}
}

// TestMachineTokenGrants: only the token's owner grants it a vault, as
// viewer or editor, while it is live; the trail names it token.created and,
// at revocation, token.revoked; the owner's list shows its vaults.
func TestMachineTokenGrants(t *testing.T) {
	m := newMachineSetup(t, time.Hour)
	tid := m.token.Request.TokenID
	for _, role := range []string{"admin", "owner"} {
		expectRefusal(t, m.grant(t, m.a, role), http.StatusForbidden, "42501", "grant the token "+role)
	}
	// Another person grants the token their own vault.
	mallory := newSDKUser(t, "mallory")
	mv, err := mallory.c.CreateVault(context.Background(), "trap")
	if err != nil {
		t.Fatal(err)
	}
	expectRefusal(t, mallory.rest("POST", "/access_policies", grantTo(mv.ID, tid, mallory.ID(), "viewer")), http.StatusForbidden, "42501", "a stranger grants the token")
	expectStatus(t, m.grant(t, m.a, "editor"), http.StatusCreated, "owner grants editor")

	list := rowsOf(t, m.owner.rest("GET", "/machine_tokens", nil))
	if len(list) != 1 || list[0]["id"] != tid || list[0]["name"] != "deploy" || list[0]["revoked_at"] != nil {
		t.Fatalf("owner's list %v", list)
	}
	vaults, _ := json.Marshal(list[0]["vaults"])
	if string(vaults) != `[{"role":"editor","vault_id":"`+m.a.ID.String()+`"}]` {
		t.Fatalf("vaults %s", vaults)
	}
	if rows := rowsOf(t, mallory.rest("GET", "/machine_tokens", nil)); len(rows) != 0 {
		t.Fatalf("another person sees the token: %v", rows)
	}

	expectStatus(t, m.owner.Do("DELETE", api.PathTokens+"/"+tid, m.owner.c.Session().AccessToken, nil), http.StatusNoContent, "revoke")
	expectRefusal(t, m.grant(t, m.b, "viewer"), http.StatusForbidden, "42501", "grant a revoked token")
	events := rowsOf(t, m.owner.rest("GET", "/vault_events?select=type,member_id,role&vault_id=eq."+m.a.ID.String()+"&member_id=eq."+tid+"&order=seq", nil))
	if len(events) != 2 || events[0]["type"] != "token.created" || events[1]["type"] != "token.revoked" || events[1]["role"] != "editor" {
		t.Fatalf("vault events %v", events)
	}
	// A webhook may subscribe to both.
	r := m.owner.rest("POST", "/rpc/create_webhook", map[string]any{"vault_id": m.a.ID, "url": "https://hooks.example.test/t",
		"event_types": []string{"token.created", "token.revoked"}})
	expectStatus(t, r, http.StatusOK, "webhook for token events")
}

// TestMachineTokenRevokedAtOnce: an access token of a revoked or expired
// machine token is refused on its very next request, long before its own
// exp.
func TestMachineTokenRevokedAtOnce(t *testing.T) {
	m := newMachineSetup(t, time.Hour)
	expectStatus(t, m.grant(t, m.a, "viewer"), http.StatusCreated, "grant")
	c := newClient(t)
	at := loginMachine(t, c, m.token.Keys)
	expectStatus(t, c.Do("GET", "/rest/secrets", at, nil), http.StatusOK, "before revocation")
	expectStatus(t, m.owner.Do("DELETE", api.PathTokens+"/"+m.token.Request.TokenID, m.owner.c.Session().AccessToken, nil), http.StatusNoContent, "revoke")
	expectRefusal(t, c.Do("GET", "/rest/secrets", at, nil), http.StatusUnauthorized, api.CodeSessionRevoked, "the next request after revocation")

	short := newMachineSetup(t, 3*time.Second)
	expectStatus(t, short.grant(t, short.a, "viewer"), http.StatusCreated, "grant")
	at = loginMachine(t, c, short.token.Keys)
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := c.Do("GET", "/rest/secrets", at, nil)
		if r.Status == http.StatusUnauthorized {
			expectRefusal(t, r, http.StatusUnauthorized, api.CodeSessionRevoked, "after the token expired")
			break
		}
		expectStatus(t, r, http.StatusOK, "before the token expires")
		if time.Now().After(deadline) {
			t.Fatal("an expired token's access token still works")
		}
		time.Sleep(300 * time.Millisecond)
	}
	if exp := int64(jwtClaims(t, at)["exp"].(float64)); time.Now().Unix() >= exp {
		t.Fatal("the access token itself expired first; the test proves nothing")
	}
}

// TestMachineClaimsForged: access tokens signed with the real key whose
// claims mix a person's and a machine's are refused by the gate.
func TestMachineClaimsForged(t *testing.T) {
	s := need(t)
	m := newMachineSetup(t, time.Hour)
	expectStatus(t, m.grant(t, m.a, "viewer"), http.StatusCreated, "grant")
	sess := m.owner.c.Session()
	kid, key := currentKey(t)
	now := time.Now().Unix()
	tid := m.token.Request.TokenID
	owner := sess.UserID.String()
	base := func(sub string) map[string]any {
		return map[string]any{"iss": s.GatewayURL(), "aud": "zsm-api", "sub": sub, "role": "app_user",
			"iat": now, "exp": now + 300, "kid": kid, "jti": randHex(8)}
	}
	with := func(c map[string]any, kv ...any) map[string]any {
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(c, kv[i].(string))
			} else {
				c[kv[i].(string)] = kv[i+1]
			}
		}
		return c
	}
	hdr := map[string]any{"alg": "EdDSA", "typ": "JWT", "kid": kid}
	c := newClient(t)
	// Controls: both well-formed shapes work.
	expectStatus(t, c.Do("GET", "/rest/vaults", signEdDSA(hdr, with(base(tid), "tid", tid, "zsm_kind", "machine"), key), nil), http.StatusOK, "machine control")
	expectStatus(t, c.Do("GET", "/rest/vaults", signEdDSA(hdr, with(base(owner), "sid", sess.SessionID), key), nil), http.StatusOK, "person control")
	for _, tc := range []struct {
		name   string
		claims map[string]any
		code   string
	}{
		{"a person's token marked as a machine's", with(base(owner), "sid", sess.SessionID, "zsm_kind", "machine"), api.CodeInvalidToken},
		{"a person's id as a machine, without a session", with(base(owner), "tid", owner, "zsm_kind", "machine"), api.CodeSessionRevoked},
		{"the owner's sub with the token's tid", with(base(owner), "tid", tid, "zsm_kind", "machine"), api.CodeInvalidToken},
		{"the owner's sub and session with the token's tid", with(base(owner), "sid", sess.SessionID, "tid", tid), api.CodeInvalidToken},
		{"a machine's token with a session", with(base(tid), "tid", tid, "zsm_kind", "machine", "sid", sess.SessionID), api.CodeInvalidToken},
		{"tid without zsm_kind", with(base(tid), "tid", tid), api.CodeInvalidToken},
		{"zsm_kind without tid", with(base(tid), "zsm_kind", "machine"), api.CodeInvalidToken},
		{"zsm_kind person", with(base(tid), "tid", tid, "zsm_kind", "person"), api.CodeInvalidToken},
		{"zsm_kind not a string", with(base(tid), "tid", tid, "zsm_kind", true), api.CodeInvalidToken},
		{"an unknown token id", with(base(uuid.NewString()), "zsm_kind", "machine"), api.CodeInvalidToken},
	} {
		r := c.Do("GET", "/rest/vaults", signEdDSA(hdr, tc.claims, key), nil)
		expectRefusal(t, r, http.StatusUnauthorized, tc.code, tc.name)
	}
	unknown := uuid.NewString()
	expectRefusal(t, c.Do("GET", "/rest/vaults", signEdDSA(hdr, with(base(unknown), "tid", unknown, "zsm_kind", "machine"), key), nil),
		http.StatusUnauthorized, api.CodeSessionRevoked, "an unknown machine token")
	// authsvc holds its endpoints to the same rule.
	expectRefusal(t, c.Do("GET", api.PathSessions, signEdDSA(hdr, with(base(owner), "tid", tid, "zsm_kind", "machine"), key), nil),
		http.StatusUnauthorized, api.CodeInvalidToken, "authsvc: the owner's sub with the token's tid")
}
