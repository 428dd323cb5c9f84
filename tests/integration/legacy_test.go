package integration

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/google/uuid"

	"zsm.dev/zsm/api"
	"zsm.dev/zsm/sdk/authclient"
	"zsm.dev/zsm/sdk/keyrecord"
	"zsm.dev/zsm/sdk/keys"
	"zsm.dev/zsm/sdk/zsm"
)

// signupLegacy registers an account the way a client from before key
// bundle version 2 did: a version 1 bundle (no X-Wing key) and a version 1
// key record, keys derived from the password and a Secret Key exactly as
// the SDK derives them. It returns the Secret Key, the user id and the
// derived keys (the SRP secret and the unlock key).
func signupLegacy(t *testing.T, c *client, identity, password string) (keys.SecretKey, uuid.UUID, keys.Derived) {
	t.Helper()
	ctx := context.Background()
	ident := mustIdentity(t, identity)
	id := ident.String()
	sk, err := keys.NewSecretKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	kdf, err := keys.DefaultKDF(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	d, err := keys.Derive(password, sk, id, kdf)
	if err != nil {
		t.Fatal(err)
	}
	ak, err := keys.NewAccountKeys(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	uid := uuid.New()
	b, err := ak.Bundle(d.UnlockKey, uid, rand.Reader)
	if err != nil || b.Version != keys.BundleV1 {
		t.Fatalf("a version 1 bundle: %v (version %d)", err, b.Version)
	}
	raw, _ := json.Marshal(b)
	sig, err := keyrecord.Sign(keyrecord.Record{UserID: uid, Identity: id, X25519: ak.X25519.PublicKey().Bytes(),
		Ed25519: ak.Ed25519.Public().(ed25519.PublicKey)}, ak.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Auth.SignupAccount(ctx, authclient.Account{UserID: uid.String(), Identity: ident, Secret: d.SRPSecret,
		KeyBundle: raw, KeyRecordSignature: sig,
		KDF: api.KDF(kdf),
	}); err != nil {
		t.Fatalf("legacy sign-up: %v", err)
	}
	return sk, uid, d
}

// legacyUser is an account made before key bundle version 2, not yet
// logged in with the current client (c is nil until it logs in).
type legacyUser struct {
	*sdkUser
	uid     uuid.UUID
	derived keys.Derived // the SRP secret, for logins that bypass the SDK, and the unlock key
}

func newLegacySDKUser(t *testing.T, prefix string) *legacyUser {
	t.Helper()
	raw := newClient(t)
	u := &legacyUser{sdkUser: &sdkUser{client: raw, Identity: prefix + "-" + randHex(5) + "@example.test", password: "correct horse " + randHex(4)}}
	u.sk, u.uid, u.derived = signupLegacy(t, raw, u.Identity, u.password)
	return u
}

// rawLogin logs in without the SDK (so nothing is upgraded) and returns
// the session, with the stored key bundle.
func (u *legacyUser) rawLogin(t *testing.T) authclient.Session {
	t.Helper()
	return u.client.Login(user{Identity: u.Identity, Secret: u.derived.SRPSecret, ID: u.uid.String()})
}

// legacyKeys opens the account keys from the bundle a raw login returned.
func legacyKeys(t *testing.T, u *legacyUser, s authclient.Session) (keys.Bundle, *keys.AccountKeys) {
	t.Helper()
	b, err := keys.ParseBundle(s.KeyBundle)
	if err != nil {
		t.Fatal(err)
	}
	ak, err := keys.OpenBundle(b, u.derived.UnlockKey, u.uid)
	if err != nil {
		t.Fatal(err)
	}
	return b, ak
}

// keyRecordV2 signs the version 2 key record of an account's keys with
// xwing as its X-Wing key, with signer (which need not be the account's
// own key, to attack with).
func keyRecordV2(uid uuid.UUID, identity string, ak *keys.AccountKeys, xwing []byte, signer ed25519.PrivateKey) (string, error) {
	r := keyrecord.Record{UserID: uid, Identity: identity, X25519: ak.X25519.PublicKey().Bytes(),
		Ed25519: ak.Ed25519.Public().(ed25519.PublicKey), XWing: xwing}
	m, err := r.Message()
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(ed25519.Sign(signer, m)), nil
}

// login logs u in with the current SDK (which upgrades a legacy account).
func (u *sdkUser) login(t *testing.T, st zsm.State) {
	t.Helper()
	sess, err := zsm.Login(context.Background(), u.HTTP, need(t).GatewayURL(), u.Identity, u.password, u.sk, st)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	u.c = zsm.New(sess, st, u.HTTP)
}
