package zsm

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"zsm.dev/zsm/api"
	"zsm.dev/zsm/sdk/authclient"
	"zsm.dev/zsm/sdk/keys"
	"zsm.dev/zsm/srpgroup"
)

// SessionInfo is one live session of the account (a device that is logged
// in), as the server reports it.
type SessionInfo = authclient.SessionInfo

// ErrWrongPassword means the server did not accept the proof of the current
// password (or Secret Key) for a password change.
var ErrWrongPassword = errors.New("the current password or Secret Key is wrong")

// authed runs call against authsvc with an access token (withToken): a
// token authsvc calls invalid_token (it may have expired meanwhile) is
// worth one refresh; a session that has ended is ErrSessionExpired (by
// apiError).
func (c *Client) authed(ctx context.Context, call func(ac *authclient.Client, token string) error) error {
	stale := func(err error) bool {
		var e *authclient.APIError
		return errors.As(err, &e) && e.Status == http.StatusUnauthorized && e.Code == api.CodeInvalidToken
	}
	return c.withToken(ctx, stale, func(s *Session) error {
		ac := authclient.New(s.Server)
		ac.HTTP = c.http
		return call(ac, s.AccessToken)
	})
}

// Sessions lists the account's live sessions; Current marks this one.
func (c *Client) Sessions(ctx context.Context) ([]SessionInfo, error) {
	var out []SessionInfo
	err := c.authed(ctx, func(ac *authclient.Client, token string) error {
		var err error
		out, err = ac.ListSessions(ctx, token)
		return err
	})
	if err != nil {
		return nil, sessionError(err)
	}
	return out, nil
}

// RevokeSession ends one of the account's sessions (this one included):
// its tokens stop working at once. An id that is not a live session of
// this account is ErrNotFound.
func (c *Client) RevokeSession(ctx context.Context, id string) error {
	err := c.authed(ctx, func(ac *authclient.Client, token string) error {
		return ac.RevokeSession(ctx, token, id)
	})
	return sessionError(err)
}

func sessionError(err error) error {
	var e *authclient.APIError
	if errors.As(err, &e) && e.Code == api.CodeNotFound {
		return fmt.Errorf("%w: no such session", ErrNotFound)
	}
	return apiError(err)
}

// ChangePassword changes the account's password. It derives the SRP secret
// of the old password (with the KDF parameters pinned for the account) and
// proves it to the server in a fresh SRP exchange bound to this session;
// derives the new keys under new KDF parameters (a new salt, at the
// floor); registers a new SRP verifier; and re-wraps the same account key
// under the new unlock key, so every vault stays readable. The Secret Key
// does not change. The server ends every other session of the account and
// keeps this one. On success the new KDF parameters are pinned in state and
// in the client's session (OnRefresh is called, so a caller that stores the
// session stores the new parameters too).
func ChangePassword(ctx context.Context, client *Client, oldPassword, newPassword string, sk keys.SecretKey, state State) error {
	if newPassword == "" {
		return errors.New("the new password must not be empty")
	}
	s := client.Session()
	if s.Keys == nil {
		return errors.New("the session holds no account keys; log in again")
	}
	ident, err := srpgroup.ParseNormalIdentity(s.Identity)
	if err != nil {
		return fmt.Errorf("the session's identity: %w", err)
	}
	acct := accountKey(s.Server, s.Identity)
	oldKDF := s.KDF
	if pinned, ok := state.PinnedKDF(acct); ok {
		if !pinned.Equal(oldKDF) {
			return ErrKDFChange
		}
		oldKDF = pinned
	}
	if err := oldKDF.Check(); err != nil {
		return fmt.Errorf("refusing the account's key-derivation parameters: %w", err)
	}
	oldD, err := keys.Derive(oldPassword, sk, s.Identity, oldKDF)
	if err != nil {
		return err
	}
	newKDF, err := keys.DefaultKDF(rand.Reader)
	if err != nil {
		return err
	}
	newD, err := keys.Derive(newPassword, sk, s.Identity, newKDF)
	if err != nil {
		return err
	}
	bundle, err := s.Keys.Bundle(newD.UnlockKey, s.UserID, rand.Reader)
	if err != nil {
		return err
	}
	rawBundle, err := json.Marshal(bundle)
	if err != nil {
		return err
	}
	wantOld := api.KDF(oldKDF)
	err = client.authed(ctx, func(ac *authclient.Client, token string) error {
		_, err := ac.ChangePassword(ctx, token, authclient.PasswordChange{
			Identity: ident, OldSecret: oldD.SRPSecret, OldKDF: &wantOld,
			NewSecret: newD.SRPSecret, NewKDF: api.KDF(newKDF), KeyBundle: rawBundle,
		})
		return err
	})
	var e *authclient.APIError
	switch {
	case errors.Is(err, authclient.ErrKDFMismatch):
		return ErrKDFChange
	case errors.As(err, &e) && e.Code == api.CodeProofFailed:
		return ErrWrongPassword
	case errors.As(err, &e) && e.Code == api.CodeKeyBundleMismatch:
		// The server holds other public keys for this account than the
		// ones this device opened from its own bundle.
		return tamper("the server's public keys for this account", err)
	case err != nil:
		return apiError(err)
	}
	state.PinKDF(acct, newKDF)
	client.mu.Lock()
	ns := *client.sess
	ns.KDF = newKDF
	client.sess = &ns
	client.mu.Unlock()
	if client.OnRefresh != nil {
		client.OnRefresh(&ns)
	}
	return nil
}
