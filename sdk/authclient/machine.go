package authclient

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/google/uuid"

	"zsm.dev/zsm/api"
	"zsm.dev/zsm/sdk/machinetoken"
)

// NewToken is a machine token made on this machine, ready to register: the
// token (shown once, never sent) and the registration the server stores.
type NewToken struct {
	Token   machinetoken.Token
	Keys    *machinetoken.Keys
	Request api.TokenCreateRequest
}

// MakeToken makes a machine token named name that lives lifetime, for
// the creator with user id creator and Ed25519 key creatorEd25519: its
// keys, the key record it signs, and the creator's anchor
// (docs/crypto.md §13). Nothing is sent.
func MakeToken(name string, lifetime time.Duration, creator uuid.UUID, creatorEd25519 []byte) (NewToken, error) {
	tok, err := machinetoken.New(rand.Reader)
	if err != nil {
		return NewToken{}, err
	}
	k, err := machinetoken.Derive(tok)
	if err != nil {
		return NewToken{}, err
	}
	sig, err := k.SignRecord()
	if err != nil {
		return NewToken{}, err
	}
	anchor, err := k.Anchor(creator, creatorEd25519)
	if err != nil {
		return NewToken{}, err
	}
	p := k.Public()
	enc := base64.StdEncoding.EncodeToString
	return NewToken{Token: tok, Keys: k, Request: api.TokenCreateRequest{
		TokenID: tok.ID().String(), Name: name,
		X25519Public: enc(p.X25519), Ed25519Public: enc(p.Ed25519), XWingPublic: enc(p.XWing),
		KeyRecordSignature: sig, Anchor: enc(anchor), LifetimeSeconds: int64(lifetime / time.Second),
	}}, nil
}

// CreateToken registers a machine token with the access token of a person.
func (c *Client) CreateToken(ctx context.Context, accessToken string, req api.TokenCreateRequest) (api.TokenInfo, error) {
	var out api.TokenInfo
	if err := c.DoBearer(ctx, http.MethodPost, api.PathTokens, accessToken, req, &out); err != nil {
		return api.TokenInfo{}, err
	}
	if out.TokenID != req.TokenID || out.Name != req.Name {
		return api.TokenInfo{}, errors.New("authclient: the server registered another token than the one sent")
	}
	return out, nil
}

// RevokeToken revokes one of the person's machine tokens.
func (c *Client) RevokeToken(ctx context.Context, accessToken, tokenID string) error {
	return c.DoBearer(ctx, http.MethodDelete, api.PathTokens+"/"+url.PathEscape(tokenID), accessToken, nil, nil)
}

// MachineChallenge asks for a nonce for the token id.
func (c *Client) MachineChallenge(ctx context.Context, tokenID string) ([]byte, error) {
	var ch api.MachineChallenge
	if err := c.Do(ctx, http.MethodPost, api.PathMachineChallenge, api.MachineChallengeRequest{TokenID: tokenID}, &ch); err != nil {
		return nil, err
	}
	nonce, err := base64.RawURLEncoding.Strict().DecodeString(ch.Nonce)
	if err != nil || len(nonce) != machinetoken.NonceSize {
		return nil, errors.New("authclient: the server's nonce is not 32 bytes in base64url")
	}
	return nonce, nil
}

// MachineLoginSigned sends a signature over nonce (made by the caller).
func (c *Client) MachineLoginSigned(ctx context.Context, tokenID string, nonce, signature []byte) (api.MachineTokens, error) {
	var out api.MachineTokens
	err := c.Do(ctx, http.MethodPost, api.PathMachineLogin, api.MachineLoginRequest{
		TokenID: tokenID, Nonce: base64.RawURLEncoding.EncodeToString(nonce),
		Signature: base64.RawURLEncoding.EncodeToString(signature),
	}, &out)
	if err != nil {
		return api.MachineTokens{}, err
	}
	if out.TokenID != tokenID || out.AccessToken == "" {
		return api.MachineTokens{}, errors.New("authclient: the server's login answer is for another token")
	}
	return out, nil
}

// MachineLogin logs the token in: a challenge, the signature over it for
// audience (the server's JWT audience, "zsm-api" by default), and the
// login. No refresh token comes back: log in again when the access token
// expires.
func (c *Client) MachineLogin(ctx context.Context, k *machinetoken.Keys, audience string) (api.MachineTokens, error) {
	id := k.TokenID.String()
	nonce, err := c.MachineChallenge(ctx, id)
	if err != nil {
		return api.MachineTokens{}, err
	}
	sig, err := k.SignLogin(nonce, audience)
	if err != nil {
		return api.MachineTokens{}, err
	}
	return c.MachineLoginSigned(ctx, id, nonce, sig)
}
