package zsm

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"zsm.dev/zsm/api"
	"zsm.dev/zsm/sdk/authclient"
	"zsm.dev/zsm/sdk/keyrecord"
	"zsm.dev/zsm/sdk/keys"
	"zsm.dev/zsm/srpgroup"
)

// DeviceLabel names the sessions this program's logins open, as the user
// sees them in session lists. Programs set it once (the CLI says
// "zsm CLI on <host>").
var DeviceLabel = "zsm SDK"

// NewHTTPClient is the HTTP client the SDK uses unless given one: bounded
// timeouts, connection reuse.
func NewHTTPClient() *http.Client {
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
}

// SignupResult is what a new account needs to keep. The Secret Key is shown
// to the user once (the emergency kit) and kept on the device; without it
// and the password the account cannot be opened.
type SignupResult struct {
	UserID    uuid.UUID
	Identity  string
	SecretKey keys.SecretKey
	KDF       keys.KDFParams
}

// Signup creates an account: a Secret Key, KDF parameters at the floor,
// the SRP verifier and the key bundle, all made here. The server receives
// the verifier, the KDF parameters and the bundle; never the password, the
// Secret Key or any key.
func Signup(ctx context.Context, hc *http.Client, server, identity, password string, state State) (*SignupResult, error) {
	ident, err := srpgroup.ParseIdentity(identity) // the SDK's edge: normalized here, once
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	id := ident.String()
	if password == "" {
		return nil, errors.New("the password must not be empty")
	}
	sk, err := keys.NewSecretKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	kdf, err := keys.DefaultKDF(rand.Reader)
	if err != nil {
		return nil, err
	}
	d, err := keys.Derive(password, sk, id, kdf)
	if err != nil {
		return nil, err
	}
	ak, err := keys.NewAccountKeys(rand.Reader)
	if err != nil {
		return nil, err
	}
	// New accounts have the hybrid key from the start (bundle and key
	// record version 2).
	if err := ak.AddXWing(rand.Reader); err != nil {
		return nil, err
	}
	userID := uuid.New()
	bundle, err := ak.Bundle(d.UnlockKey, userID, rand.Reader)
	if err != nil {
		return nil, err
	}
	rawBundle, err := json.Marshal(bundle)
	if err != nil {
		return nil, err
	}
	recordSig, err := keyrecord.Sign(ownRecord(userID, id, ak), ak.Ed25519)
	if err != nil {
		return nil, err
	}
	ac := authclient.New(server)
	if hc != nil {
		ac.HTTP = hc
	}
	got, err := ac.SignupAccount(ctx, authclient.Account{
		UserID: userID.String(), Identity: ident, Secret: d.SRPSecret, KeyBundle: rawBundle, KeyRecordSignature: recordSig,
		KDF: api.KDF(kdf),
	})
	if err != nil {
		return nil, apiError(err)
	}
	// The bundle and the key record are bound to the id chosen here; an
	// answer naming another account is not this sign-up's.
	if got != userID.String() {
		return nil, tamper("the server registered another user id than the one the keys are bound to", nil)
	}
	state.PinKDF(accountKey(server, id), kdf)
	return &SignupResult{UserID: userID, Identity: id, SecretKey: sk, KDF: kdf}, nil
}

func accountKey(server, identity string) string {
	return strings.TrimRight(server, "/") + "|" + identity
}

// Login proves the password and Secret Key with SRP-6a and opens the
// account's keys.
//
// Before anything derived from the password leaves the device, the KDF
// parameters the server returned are checked against the floor and against
// the parameters this device pinned for the account: a server that lowers
// them, or swaps the salt, is refused. After the exchange the server's SRP
// proof is checked, and the key bundle must open with the unlock key and
// match its own public keys.
func Login(ctx context.Context, hc *http.Client, server, identity, password string, sk keys.SecretKey, state State) (*Session, error) {
	ident, err := srpgroup.ParseIdentity(identity) // the SDK's edge: normalized here, once
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	id := ident.String()
	ac := authclient.New(server)
	if hc != nil {
		ac.HTTP = hc
	}
	ac.DeviceLabel = DeviceLabel
	var derived keys.Derived
	var params keys.KDFParams
	sess, err := ac.Login(ctx, ident, func(k api.KDF) ([]byte, error) {
		params = keys.KDFParams(k)
		if err := params.Check(); err != nil {
			return nil, fmt.Errorf("refusing the server's key-derivation parameters: %w", err)
		}
		if pinned, ok := state.PinnedKDF(accountKey(server, id)); ok && !pinned.Equal(params) {
			return nil, ErrKDFChange
		}
		d, err := keys.Derive(password, sk, id, params)
		if err != nil {
			return nil, err
		}
		derived = d
		return d.SRPSecret, nil
	})
	if err != nil {
		return nil, apiError(err)
	}
	if len(sess.KeyBundle) == 0 || string(sess.KeyBundle) == "null" {
		return nil, tamper("the account has no key bundle", nil)
	}
	bundle, err := keys.ParseBundle(sess.KeyBundle)
	if err != nil {
		return nil, tamper("key bundle", err)
	}
	uid, err := uuid.Parse(sess.UserID)
	if err != nil {
		return nil, tamper("user id", err)
	}
	ak, err := keys.OpenBundle(bundle, derived.UnlockKey, uid)
	if err != nil {
		return nil, tamper("key bundle", err)
	}
	state.PinKDF(accountKey(server, id), params)
	if bundle.Version == keys.BundleV1 {
		upgradeKeys(ctx, ac, sess.AccessToken, bundle, uid, id, ak)
	}
	return &Session{
		Server: strings.TrimRight(server, "/"), Identity: id, UserID: uid, SessionID: sess.SessionID,
		AccessToken: sess.AccessToken, AccessExpiry: sess.ExpiresAt, RefreshToken: sess.RefreshToken,
		KDF: params, Keys: ak,
	}, nil
}

// upgradeKeys moves an account with a version 1 bundle to version 2
// (docs/crypto.md §3, "Upgrade"): a new X-Wing key, sealed under the same
// account key, uploaded with the version 2 key record. Best effort: when it
// fails (another device upgraded meanwhile, the server is busy), ak keeps
// no X-Wing key for this session, everything that needs none works, and
// the next login tries again.
func upgradeKeys(ctx context.Context, ac *authclient.Client, token string, bundle keys.Bundle, uid uuid.UUID, identity string, ak *keys.AccountKeys) {
	nb, err := ak.UpgradeBundle(bundle, uid, rand.Reader)
	if err == nil {
		var raw []byte
		var sig string
		if raw, err = json.Marshal(nb); err == nil {
			if sig, err = keyrecord.Sign(ownRecord(uid, identity, ak), ak.Ed25519); err == nil {
				err = ac.UpgradeKeys(ctx, token, raw, sig)
			}
		}
	}
	if err != nil {
		ak.XWing = nil
	}
}

// ownRecord is this account's key record (docs/crypto.md §3): version 2
// when the account has an X-Wing key.
func ownRecord(userID uuid.UUID, identity string, ak *keys.AccountKeys) keyrecord.Record {
	r := keyrecord.Record{UserID: userID, Identity: identity, X25519: ak.X25519.PublicKey().Bytes(),
		Ed25519: ak.Ed25519.Public().(ed25519.PublicKey)}
	if ak.XWing != nil {
		r.XWing = ak.XWing.PublicKey().Bytes()
	}
	return r
}

// apiError maps authsvc's answers to the SDK's errors.
func apiError(err error) error {
	var e *authclient.APIError
	if errors.As(err, &e) {
		switch e.Code {
		case api.CodeLoginFailed:
			return ErrLoginFailed
		case api.CodeIdentityUnavailable:
			return fmt.Errorf("%w: %s", ErrExists, e.Message)
		case api.CodeInvalidRefreshToken, api.CodeSessionRevoked, api.CodeTokenExpired:
			return ErrSessionExpired
		}
	}
	if errors.Is(err, authclient.ErrServerProof) {
		return tamper("SRP server proof", err)
	}
	return err
}
