package integration

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"testing"

	"github.com/google/uuid"

	"zsm.dev/zsm/sdk/authclient"
	"zsm.dev/zsm/sdk/keyrecord"
	"zsm.dev/zsm/sdk/keys"
	"zsm.dev/zsm/sdk/zsm"
)

// sdkUser is an account made by the real SDK through the honest gateway,
// with a raw HTTP client (its own source address) for requests the SDK
// would never send.
type sdkUser struct {
	*client
	Identity, password string
	sk                 keys.SecretKey
	c                  *zsm.Client
}

func newSDKUser(t *testing.T, prefix string) *sdkUser {
	t.Helper()
	ctx := context.Background()
	raw := newClient(t)
	u := &sdkUser{client: raw, Identity: prefix + "-" + randHex(5) + "@example.test", password: "correct horse " + randHex(4)}
	st := zsm.NewMemState()
	res, err := zsm.Signup(ctx, raw.HTTP, need(t).GatewayURL(), u.Identity, u.password, st)
	if err != nil {
		t.Fatalf("signup: %v", err)
	}
	u.sk = res.SecretKey
	sess, err := zsm.Login(ctx, raw.HTTP, need(t).GatewayURL(), u.Identity, u.password, u.sk, st)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	u.c = zsm.New(sess, st, raw.HTTP)
	return u
}

func (u *sdkUser) ID() string { return u.c.Session().UserID.String() }

// rest sends a request to PostgREST with this user's access token.
func (u *sdkUser) rest(method, path string, body any, hdr ...string) response {
	u.T.Helper()
	return u.Do(method, "/rest"+path, u.c.Session().AccessToken, body, hdr...)
}

// grantTo inserts a membership of vault for user with a made-up sealed key
// and signature, as an attacker going around the client would.
func grantTo(vault uuid.UUID, user, by, role string) map[string]any {
	return map[string]any{"vault_id": vault, "user_id": user, "role": role,
		"sealed_key": base64.StdEncoding.EncodeToString(randBytes(80)), "granted_by": by,
		"signature": base64.StdEncoding.EncodeToString(randBytes(64))}
}

// Issue 9, item 1. An attacker grants a victim a membership of a vault of
// its own: the victim's client used to refuse every vault then. Now the
// grant is an invitation; the victim declines it, and the attacker cannot
// grant again until the victim allows it. Grants to others are limited per
// granter and hour, and nobody can list all users any more.
func TestUnsolicitedGrantIsAnInvitation(t *testing.T) {
	ctx := context.Background()
	victim, mallory, stranger := newSDKUser(t, "victim"), newSDKUser(t, "mallory"), newSDKUser(t, "stranger")
	mine, err := victim.c.CreateVault(ctx, "mine")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := victim.c.SetSecret(ctx, mine, "API_KEY", "s3cret"); err != nil {
		t.Fatal(err)
	}

	// Before any vault is shared, a user reads only their own public keys.
	var keysRows []map[string]any
	r := mallory.rest("GET", "/public_keys?select=user_id", nil)
	expectStatus(t, r, http.StatusOK, "list public keys")
	r.JSON(t, &keysRows)
	if len(keysRows) != 1 || keysRows[0]["user_id"] != mallory.ID() {
		t.Fatalf("mallory lists the public keys of %v; want only her own", keysRows)
	}
	r = mallory.rest("GET", "/public_keys?user_id=eq."+victim.ID(), nil)
	if r.Status != http.StatusOK || string(r.Body) != "[]" {
		t.Fatalf("victim's keys by user id: %d %s; want 200 []", r.Status, r.Body)
	}
	// Exactly one identity at a time, exactly as normalized; no patterns.
	var found []map[string]any
	r = mallory.rest("POST", "/rpc/lookup_identity", map[string]string{"identity": victim.Identity})
	expectStatus(t, r, http.StatusOK, "lookup")
	r.JSON(t, &found)
	if len(found) != 1 || found[0]["user_id"] != victim.ID() || found[0]["key_record_signature"] == nil {
		t.Fatalf("lookup of the victim: %s", r.Body)
	}
	for _, q := range []string{"victim-%", "%@example.test", victim.Identity[:8], "VICTIM" + victim.Identity[6:], ""} {
		r = mallory.rest("POST", "/rpc/lookup_identity", map[string]string{"identity": q})
		if r.Status != http.StatusOK || string(r.Body) != "[]" {
			t.Fatalf("lookup %q: %d %s; want 200 []", q, r.Status, r.Body)
		}
	}

	// The attack: a vault of mallory's, and a grant naming the victim.
	trap, err := mallory.c.CreateVault(ctx, "trap")
	if err != nil {
		t.Fatal(err)
	}
	expectStatus(t, mallory.rest("POST", "/access_policies", []any{grantTo(trap.ID, victim.ID(), mallory.ID(), "editor")}),
		http.StatusCreated, "unsolicited grant")

	// The victim's own vault lists and opens; the grant is an invitation
	// naming mallory.
	l, err := victim.c.ListVaults(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Vaults) != 1 || l.Vaults[0].ID != mine.ID || len(l.Refused) != 0 || len(l.Invitations) != 1 {
		t.Fatalf("vaults %v, invitations %v, refused %v", l.Vaults, l.Invitations, l.Refused)
	}
	inv := l.Invitations[0]
	if inv.VaultID != trap.ID || inv.From.String() != mallory.ID() || inv.FromIdentity != mallory.Identity || inv.Role != "editor" {
		t.Fatalf("invitation %+v", inv)
	}
	v, err := victim.c.VaultByName(ctx, "mine")
	if err != nil {
		t.Fatal(err)
	}
	if s, err := victim.c.SecretByName(ctx, v, "API_KEY"); err != nil || s.Value != "s3cret" {
		t.Fatalf("own secret with an invitation present: %v %v", s, err)
	}
	// Nobody else learns mallory's identity through the invitations.
	r = stranger.rest("GET", "/rpc/invitations", nil)
	if r.Status != http.StatusOK || string(r.Body) != "[]" {
		t.Fatalf("a stranger's invitations: %d %s", r.Status, r.Body)
	}

	// Declining removes the grant and blocks mallory.
	if got, err := victim.c.DeclineInvitation(ctx, trap.ID); err != nil || got.From.String() != mallory.ID() {
		t.Fatalf("decline: %+v %v", got, err)
	}
	if _, err := victim.c.DeclineInvitation(ctx, mine.ID); !errors.Is(err, zsm.ErrNotFound) {
		t.Fatalf("declining one's own vault: %v, want ErrNotFound", err)
	}
	r = victim.rest("POST", "/rpc/decline_invitation", map[string]any{"vault_id": mine.ID})
	expectRefusal(t, r, http.StatusBadRequest, "22023", "decline one's own membership through the API")
	if l, _ := victim.c.ListVaults(ctx); len(l.Invitations) != 0 || len(l.Vaults) != 1 {
		t.Fatalf("after declining: %+v", l)
	}
	r = mallory.rest("POST", "/access_policies", grantTo(trap.ID, victim.ID(), mallory.ID(), "viewer"))
	expectRefusal(t, r, http.StatusForbidden, "42501", "grant to a user who blocked the granter")
	// In a bulk insert too, and from another vault of mallory's.
	other, err := mallory.c.CreateVault(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	r = mallory.rest("POST", "/access_policies", []any{grantTo(other.ID, stranger.ID(), mallory.ID(), "viewer"), grantTo(other.ID, victim.ID(), mallory.ID(), "viewer")})
	expectRefusal(t, r, http.StatusForbidden, "42501", "bulk grant including a user who blocked the granter")

	// The block is the victim's alone: mallory neither sees nor lifts it,
	// nor makes blocks in anybody else's name.
	r = mallory.rest("GET", "/grant_blocks", nil)
	if r.Status != http.StatusOK || string(r.Body) != "[]" {
		t.Fatalf("mallory reads blocks: %d %s", r.Status, r.Body)
	}
	r = mallory.rest("DELETE", "/grant_blocks?blocked_user_id=eq."+mallory.ID(), nil, "Prefer", "return=representation")
	if r.Status != http.StatusOK || string(r.Body) != "[]" {
		t.Fatalf("mallory lifts the victim's block: %d %s", r.Status, r.Body)
	}
	r = mallory.rest("POST", "/grant_blocks", map[string]any{"user_id": stranger.ID(), "blocked_user_id": victim.ID()})
	expectRefusal(t, r, http.StatusForbidden, "42501", "a block in another user's name")

	// The victim allows mallory again: a new grant goes through.
	if lifted, err := victim.c.AllowInvitationsFrom(ctx, mallory.Identity); err != nil || !lifted {
		t.Fatalf("allow: %v %v", lifted, err)
	}
	expectStatus(t, mallory.rest("POST", "/access_policies", grantTo(trap.ID, victim.ID(), mallory.ID(), "viewer")),
		http.StatusCreated, "grant after the victim allowed it")
	// Sharing a vault makes each side's public keys readable to the other.
	r = mallory.rest("GET", "/public_keys?select=user_id&user_id=eq."+victim.ID(), nil)
	if r.JSON(t, &keysRows); len(keysRows) != 1 {
		t.Fatalf("the public keys of a vault peer: %s", r.Body)
	}

	// At most 100 grants to others per granter and hour (the default of
	// auth.data_limits); past it, 429 and nothing is written.
	flood := newSDKUser(t, "flood")
	fv, err := flood.c.CreateVault(ctx, "many")
	if err != nil {
		t.Fatal(err)
	}
	batch := func(n int) []any {
		var out []any
		for range n {
			out = append(out, grantTo(fv.ID, uuid.NewString(), flood.ID(), "viewer"))
		}
		return out
	}
	r = flood.rest("POST", "/access_policies", batch(101))
	expectRefusal(t, r, http.StatusTooManyRequests, "rate_limited", "101 grants in one request")
	if ra, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 3600 {
		t.Fatalf("Retry-After %q", r.Header.Get("Retry-After"))
	}
	expectStatus(t, flood.rest("POST", "/access_policies", batch(100)), http.StatusCreated, "100 grants")
	r = flood.rest("POST", "/access_policies", batch(1))
	expectRefusal(t, r, http.StatusTooManyRequests, "rate_limited", "the 101st grant of the hour")
	var n int
	if err := db(t).QueryRow(ctx, `SELECT count(*) FROM api.access_policies WHERE vault_id = $1`, fv.ID).Scan(&n); err != nil || n != 101 {
		t.Fatalf("grants stored: %d (%v), want 101 (the owner's and 100)", n, err)
	}
	// Creating one's own vault (a grant to oneself) is not counted.
	if _, err := flood.c.CreateVault(ctx, "still-mine"); err != nil {
		t.Fatalf("own vault after the limit: %v", err)
	}
}

// Issue 9, item 9. A sign-up used to accept any public keys as the new
// account's own. Now it must prove possession with a key record signed by
// the Ed25519 key it publishes, and a public key belongs to one account.
func TestSignupMustProveKeyPossession(t *testing.T) {
	ctx := context.Background()
	victim := newSDKUser(t, "keyowner")
	pk, err := newSDKUser(t, "asker").c.LookupIdentity(ctx, victim.Identity)
	if err != nil || !pk.Signed {
		t.Fatalf("lookup: %+v %v", pk, err)
	}
	b64 := base64.StdEncoding.EncodeToString
	vx, ve := b64(pk.X25519.Bytes()), b64(pk.Ed25519)
	var r []map[string]any
	rr := victim.rest("GET", "/public_keys?select=key_record_signature&user_id=eq."+victim.ID(), nil)
	rr.JSON(t, &r)
	victimSig := r[0]["key_record_signature"].(string)

	attacker := newClient(t)
	// signup sends a sign-up with a key bundle carrying x and e as public
	// keys (its private envelopes are the attacker's; the server cannot
	// tell) and the given record signature.
	signup := func(uid uuid.UUID, identity, x, e, sig string) error {
		ak, err := keys.NewAccountKeys(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		bundle, err := ak.Bundle(make([]byte, 32), uid, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		bundle.X25519Public, bundle.Ed25519Public = x, e
		raw, _ := json.Marshal(bundle)
		_, err = attacker.Auth.SignupAccount(ctx, authclient.Account{UserID: uid.String(), Identity: mustIdentity(t, identity), Secret: randBytes(32),
			KDF: testKDF(), KeyBundle: raw, KeyRecordSignature: sig})
		return err
	}
	refused := func(err error, status int, code, what string) {
		t.Helper()
		if e := apiErr(t, err); e.Status != status || e.Code != code {
			t.Fatalf("%s: %d %s (%s); want %d %s", what, e.Status, e.Code, e.Message, status, code)
		}
	}
	mine := func() (uuid.UUID, string) { return uuid.New(), "thief-" + randHex(5) + "@example.test" }

	uid, ident := mine()
	refused(signup(uid, ident, vx, ve, ""), http.StatusBadRequest, "invalid_registration", "the victim's keys without a record")
	uid, ident = mine()
	refused(signup(uid, ident, vx, ve, victimSig), http.StatusForbidden, "invalid_key_record", "the victim's keys with the victim's record")
	// Signed with the attacker's own key: it does not verify under the
	// victim's Ed25519 key, which the record publishes.
	_, own, _ := ed25519.GenerateKey(rand.Reader)
	uid, ident = mine()
	forged := keyrecord.Record{UserID: uid, Identity: ident, X25519: pk.X25519.Bytes(), Ed25519: pk.Ed25519}
	m, _ := forged.Message()
	refused(signup(uid, ident, vx, ve, b64(ed25519.Sign(own, m))), http.StatusForbidden, "invalid_key_record", "the victim's keys signed by another key")
	// A record needs the user id it binds.
	_, err = attacker.Auth.SignupAccount(ctx, authclient.Account{Identity: mustIdentity(t, "thief-"+randHex(5)+"@example.test"), Secret: randBytes(32),
		KDF: testKDF(), KeyBundle: json.RawMessage(`{}`), KeyRecordSignature: victimSig})
	refused(err, http.StatusBadRequest, "invalid_registration", "bundle that is not a bundle")
	// The attacker's own Ed25519 key, which it can sign with, next to the
	// victim's X25519 key: the signature verifies, the key is taken.
	uid, ident = mine()
	pub := own.Public().(ed25519.PublicKey)
	claim := keyrecord.Record{UserID: uid, Identity: ident, X25519: pk.X25519.Bytes(), Ed25519: pub}
	sig, err := keyrecord.Sign(claim, own)
	if err != nil {
		t.Fatal(err)
	}
	refused(signup(uid, ident, vx, b64(pub), sig), http.StatusConflict, "public_key_in_use", "the victim's X25519 key under the attacker's signature")
	// An Ed25519 key of small order, under which anybody can "sign": plain
	// Ed25519 accepts R = identity, S = 0 for every message.
	uid, ident = mine()
	forgedSig := append([]byte{1}, make([]byte, 63)...)
	x2, _ := keys.NewAccountKeys(rand.Reader)
	refused(signup(uid, ident, b64(x2.X25519.PublicKey().Bytes()), b64(append([]byte{1}, make([]byte, 31)...)), b64(forgedSig)),
		http.StatusForbidden, "invalid_key_record", "a small-order Ed25519 key with a forged signature")
	var n int
	if err := db(t).QueryRow(ctx, `SELECT count(*) FROM api.public_keys WHERE x25519_public = $1 OR ed25519_public = $2`, vx, ve).Scan(&n); err != nil || n != 1 {
		t.Fatalf("accounts publishing the victim's keys: %d (%v), want 1", n, err)
	}
	if err := db(t).QueryRow(ctx, `SELECT count(*) FROM auth.users WHERE identity LIKE 'thief-%' AND created_at > now() - interval '1 minute'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("refused sign-ups stored %d accounts (%v)", n, err)
	}

	// An account made before key records existed publishes its record at
	// its next login, through an endpoint that verifies it too.
	old := newLegacySDKUser(t, "legacy")
	if _, err := db(t).Exec(ctx, `UPDATE api.public_keys SET key_record_version = NULL, key_record_signature = NULL WHERE user_id = $1`, old.uid); err != nil {
		t.Fatal(err)
	}
	tok := old.rawLogin(t).AccessToken
	r2 := old.Do("POST", "/auth/v1/keys/record", tok, map[string]string{"key_record_signature": victimSig})
	expectRefusal(t, r2, http.StatusForbidden, "invalid_key_record", "another account's record")
	r2 = old.Do("POST", "/auth/v1/keys/record", tok, map[string]string{"key_record_signature": "not base64"})
	expectRefusal(t, r2, http.StatusBadRequest, "malformed_request", "garbage record")
	if _, err := zsm.Login(ctx, old.HTTP, need(t).GatewayURL(), old.Identity, old.password, old.sk, zsm.NewMemState()); err != nil {
		t.Fatal(err)
	}
	lp, err := victim.c.LookupIdentity(ctx, old.Identity)
	if err != nil || !lp.Signed {
		t.Fatalf("the legacy account after its login: %+v %v", lp, err)
	}
	// A record is never replaced, and an account without keys has none.
	r2 = old.Do("POST", "/auth/v1/keys/record", tok, map[string]string{"key_record_signature": victimSig})
	expectRefusal(t, r2, http.StatusForbidden, "invalid_key_record", "a wrong record for an account that has one")
	bare := newClient(t)
	bu := bare.Signup("user")
	bs := bare.Login(bu)
	r2 = bare.Do("POST", "/auth/v1/keys/record", bs.AccessToken, map[string]string{"key_record_signature": victimSig})
	expectRefusal(t, r2, http.StatusConflict, "no_public_keys", "an account without public keys")
	r2 = bare.Do("POST", "/auth/v1/keys/record", "", map[string]string{"key_record_signature": victimSig})
	expectRefusal(t, r2, http.StatusUnauthorized, "invalid_token", "no token")
}

// Issue 9, items 6 and 10. A removed member used to re-create a deleted
// vault's id and read its event trail. Now ids of deleted vaults and
// secrets are retired, the trail is for present members only, a taken id
// answers the same whoever holds it, and members see no session ids.
func TestDeletedIDsAreNeverReused(t *testing.T) {
	ctx := context.Background()
	owner, viewer, other := newSDKUser(t, "owner"), newSDKUser(t, "viewer"), newSDKUser(t, "other")
	v, err := owner.c.CreateVault(ctx, "trail")
	if err != nil {
		t.Fatal(err)
	}
	s1, err := owner.c.SetSecret(ctx, v, "A", "one")
	if err != nil {
		t.Fatal(err)
	}
	expectStatus(t, owner.rest("POST", "/access_policies", grantTo(v.ID, viewer.ID(), owner.ID(), "viewer")), http.StatusCreated, "grant")
	events := func(u *sdkUser) []map[string]any {
		t.Helper()
		r := u.rest("GET", "/vault_events?select=type,actor_id,secret_id,revision,created_at&vault_id=eq."+v.ID.String(), nil)
		expectStatus(t, r, http.StatusOK, "read the trail")
		var out []map[string]any
		r.JSON(t, &out)
		return out
	}
	if got := events(viewer); len(got) < 3 {
		t.Fatalf("a present viewer sees %d events; want the creation, the secret and the grant", len(got))
	}
	// Members see who did what, never from which session.
	r := viewer.rest("GET", "/vault_events?select=session_id&vault_id=eq."+v.ID.String(), nil)
	expectRefusal(t, r, http.StatusForbidden, "42501", "a member asks for session ids")
	r = viewer.rest("GET", "/vault_events?vault_id=eq."+v.ID.String(), nil)
	expectRefusal(t, r, http.StatusForbidden, "42501", "a member asks for every column")
	var sessions int
	if err := db(t).QueryRow(ctx, `SELECT count(session_id) FROM api.vault_events WHERE vault_id = $1`, v.ID).Scan(&sessions); err != nil || sessions == 0 {
		t.Fatalf("session ids are no longer recorded for operators: %d %v", sessions, err)
	}

	// The viewer is removed; later events are not theirs to read.
	expectStatus(t, owner.rest("DELETE", "/access_policies?vault_id=eq."+v.ID.String()+"&user_id=eq."+viewer.ID(), nil), http.StatusNoContent, "remove")
	if _, err := owner.c.SetSecret(ctx, v, "B", "two"); err != nil {
		t.Fatal(err)
	}
	if got := events(viewer); len(got) != 0 {
		t.Fatalf("a removed viewer reads %d events", len(got))
	}
	// The owner deletes the vault; the removed viewer tries to create it
	// again to own its trail.
	if err := owner.c.DeleteVault(ctx, v); err != nil {
		t.Fatal(err)
	}
	recreate := func(u *sdkUser, id uuid.UUID, hdr ...string) response {
		return u.rest("POST", "/vaults", map[string]any{"id": id, "meta": "", "revision": 1}, hdr...)
	}
	taken := recreate(viewer, v.ID)
	expectRefusal(t, taken, http.StatusConflict, "23505", "re-create a deleted vault's id")
	if got := events(viewer); len(got) != 0 {
		t.Fatalf("after trying to re-create the vault the viewer reads %d events", len(got))
	}
	expectRefusal(t, recreate(owner, v.ID), http.StatusConflict, "23505", "the owner re-creates its own deleted vault's id")

	// Item 10: a taken id answers alike, retired or live, visible or not.
	live, err := other.c.CreateVault(ctx, "live")
	if err != nil {
		t.Fatal(err)
	}
	if resp := recreate(viewer, live.ID); resp.Status != taken.Status || !bytes.Equal(resp.Body, taken.Body) {
		t.Errorf("another user's live vault: %d %s; want exactly %d %s", resp.Status, resp.Body, taken.Status, taken.Body)
	}
	// An upsert (which would update a row it conflicts with) is refused
	// whatever the id: nobody may update a vault's id.
	upsert := recreate(viewer, uuid.New(), "Prefer", "resolution=merge-duplicates")
	expectRefusal(t, upsert, http.StatusForbidden, "42501", "upsert of a fresh vault id")
	for name, id := range map[string]uuid.UUID{"another user's live vault": live.ID, "a retired vault": v.ID} {
		if resp := recreate(viewer, id, "Prefer", "resolution=merge-duplicates"); resp.Status != upsert.Status || !bytes.Equal(resp.Body, upsert.Body) {
			t.Errorf("upsert of %s: %d %s; want exactly %d %s", name, resp.Status, resp.Body, upsert.Status, upsert.Body)
		}
	}
	expectStatus(t, recreate(viewer, uuid.New()), http.StatusCreated, "a fresh id")

	// Secrets: a deleted secret's id is retired too (also when its vault
	// went), and a live secret of someone else's answers the same.
	// (A vault without a manifest, as made before manifests existed: its
	// secrets may be written with plain requests, which this part needs.)
	mineID := uuid.New()
	expectStatus(t, recreate(viewer, mineID), http.StatusCreated, "a vault of the viewer's own")
	newSecret := func(id uuid.UUID) response {
		return viewer.rest("POST", "/secrets", map[string]any{"id": id, "vault_id": mineID, "revision": 1, "ciphertext": "AAAA"})
	}
	takenSecret := newSecret(s1.ID)
	expectRefusal(t, takenSecret, http.StatusConflict, "23505", "re-create a secret of a deleted vault")
	ls, err := other.c.SetSecret(ctx, live, "L", "x")
	if err != nil {
		t.Fatal(err)
	}
	if resp := newSecret(ls.ID); resp.Status != takenSecret.Status || !bytes.Equal(resp.Body, takenSecret.Body) {
		t.Errorf("another user's live secret: %d %s; want exactly %d %s", resp.Status, resp.Body, takenSecret.Status, takenSecret.Body)
	}
	if err := other.c.DeleteSecret(ctx, live, "L"); err != nil {
		t.Fatal(err)
	}
	r = other.rest("POST", "/secrets", map[string]any{"id": ls.ID, "vault_id": live.ID, "revision": 1, "ciphertext": "AAAA"})
	expectRefusal(t, r, http.StatusConflict, "23505", "re-create one's own deleted secret")
	if !bytes.Equal(r.Body, takenSecret.Body) {
		t.Errorf("retired secret id: %s; want %s", r.Body, takenSecret.Body)
	}
	expectStatus(t, newSecret(uuid.New()), http.StatusCreated, "a fresh secret id")
}
