package authclient

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/url"

	"zsm.dev/zsm/api"
	"zsm.dev/zsm/srpgroup"
)

// SessionInfo is one live session of the account.
type SessionInfo = api.SessionInfo

// DoBearer is Do with an access token (Authorization: Bearer), for the
// endpoints that act on the caller's account.
func (c *Client) DoBearer(ctx context.Context, method, path, accessToken string, in, out any) error {
	return c.do(ctx, method, path, accessToken, in, out)
}

// ListSessions returns the account's live sessions.
func (c *Client) ListSessions(ctx context.Context, accessToken string) ([]SessionInfo, error) {
	var out api.SessionsResponse
	if err := c.DoBearer(ctx, http.MethodGet, api.PathSessions, accessToken, nil, &out); err != nil {
		return nil, err
	}
	return out.Sessions, nil
}

// RevokeSession ends one of the account's sessions.
func (c *Client) RevokeSession(ctx context.Context, accessToken, sessionID string) error {
	return c.DoBearer(ctx, http.MethodDelete, api.PathSessions+"/"+url.PathEscape(sessionID), accessToken, nil, nil)
}

// PasswordChange is what ChangePassword needs: the SRP secrets derived from
// the old and the new password, the new KDF parameters, and the key bundle
// re-wrapped under the new unlock key.
type PasswordChange struct {
	Identity  srpgroup.Identity
	OldSecret []byte // proves the current password; never sent
	// OldKDF, if set, must be what the server says the account's KDF
	// parameters are; anything else is refused before the proof is sent.
	OldKDF    *api.KDF
	NewSecret []byte // only the verifier derived from it is sent
	NewKDF    api.KDF
	KeyBundle json.RawMessage // nil for an account without one
}

// ErrKDFMismatch means the server named KDF parameters other than the ones
// the caller expected for the account.
var ErrKDFMismatch = errors.New("authclient: the server's KDF parameters are not the account's")

// ChangePassword proves the current password with a fresh SRP exchange
// bound to the signed-in account (password/init, then password/change with
// the new registration) and checks the server's proof. It returns how many
// other sessions the server ended. A wrong server proof is ErrServerProof;
// the change has then been made by whoever answered.
func (c *Client) ChangePassword(ctx context.Context, accessToken string, pc PasswordChange) (int, error) {
	x, err := beginSRP(pc.Identity, pc.OldSecret)
	if err != nil {
		return 0, err
	}
	var ch api.Challenge
	if err := c.DoBearer(ctx, http.MethodPost, api.PathPasswordInit, accessToken,
		api.PasswordInitRequest{A: x.A}, &ch); err != nil {
		return 0, err
	}
	if pc.OldKDF != nil && ch.KDF != *pc.OldKDF {
		return 0, ErrKDFMismatch
	}
	m, err := x.proof(ch)
	if err != nil {
		return 0, err
	}
	reg, err := srpgroup.Register(pc.Identity.String(), pc.NewSecret)
	if err != nil {
		return 0, err
	}
	rawKDF, err := json.Marshal(pc.NewKDF)
	if err != nil {
		return 0, err
	}
	var out api.PasswordChangeResponse
	if err := c.DoBearer(ctx, http.MethodPost, api.PathPasswordChange, accessToken, api.PasswordChangeRequest{
		HandshakeID: ch.HandshakeID, M: m, KDF: rawKDF, KeyBundle: pc.KeyBundle,
		SRPSalt:     hex.EncodeToString(reg.Salt),
		SRPVerifier: srpgroup.FormatPublic(new(big.Int).SetBytes(reg.Verifier)),
	}, &out); err != nil {
		return 0, err
	}
	if !x.cl.ServerOk(out.ServerProof) {
		return out.SessionsRevoked, ErrServerProof
	}
	return out.SessionsRevoked, nil
}
