package zsm

// A machine token as a client of its own (docs/auth.md "Machine tokens",
// docs/crypto.md §13): it logs in by signing a server nonce, holds no
// refresh token and logs in again when its access token expires, and
// trusts a vault when its creator, whose key the anchor vouches for, added
// it to the vault's membership log.

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/google/uuid"

	"zsm.dev/zsm/api"
	"zsm.dev/zsm/sdk/authclient"
	"zsm.dev/zsm/sdk/machinetoken"
	"zsm.dev/zsm/sdk/trust"
)

// DefaultAudience is the JWT audience a machine token signs its logins
// for, unless the deployment names another (AUTHSVC_AUDIENCE).
const DefaultAudience = "zsm-api"

// ErrTokenRevoked means the machine token cannot log in any more: it was
// revoked or has expired (the server does not say which).
var ErrTokenRevoked = errors.New("the machine token was revoked or has expired")

// ErrUnreachable means the server could not be reached: no connection, a
// timeout, or the gateway saying its upstream is down (502, 503, 504).
// Only then may a cached copy stand in for the server's answers.
var ErrUnreachable = errors.New("the zsm server cannot be reached")

// machineAuth is what a machine token's client needs beyond its session:
// its keys to log in again, and its creator as the anchor vouches for them.
type machineAuth struct {
	keys     *machinetoken.Keys
	audience string
	creator  uuid.UUID
	anchor   []byte
}

// unreachable reports whether err means the server could not be reached.
func unreachable(err error) bool {
	var ne net.Error
	var ae *authclient.APIError
	switch {
	case errors.Is(err, ErrUnreachable), errors.As(err, &ne):
		return true
	case errors.As(err, &ae):
		return ae.Status == http.StatusBadGateway || ae.Status == http.StatusServiceUnavailable || ae.Status == http.StatusGatewayTimeout
	}
	return false
}

// MachineSession is a machine token's session: the token's keys in the
// shape of an account's (no account key), its token id as user id, and
// "token:<id>" as identity.
func machineSession(server string, k *machinetoken.Keys) *Session {
	return &Session{Server: server, Identity: machinetoken.Identity(k.TokenID), UserID: k.TokenID, Keys: k.AccountKeys()}
}

// machineLogin logs k in and returns the new access token, its expiry and
// the creator's id and anchor. A refused login is ErrTokenRevoked; a
// server that cannot be reached is ErrUnreachable.
func machineLogin(ctx context.Context, hc *http.Client, server string, k *machinetoken.Keys, audience string) (api.MachineTokens, error) {
	ac := authclient.New(server)
	ac.HTTP = hc
	t, err := ac.MachineLogin(ctx, k, audience)
	var ae *authclient.APIError
	switch {
	case err == nil:
		return t, nil
	case errors.As(err, &ae) && ae.Status == http.StatusUnauthorized && ae.Code == api.CodeLoginFailed:
		return api.MachineTokens{}, ErrTokenRevoked
	case unreachable(err):
		return api.MachineTokens{}, fmt.Errorf("%w at %s: %w", ErrUnreachable, server, err)
	}
	return api.MachineTokens{}, apiError(err)
}

// LoginToken logs the machine token tok in at server and returns its
// client. audience is the server's JWT audience ("" for DefaultAudience).
// state keeps what the client remembers against rollbacks (NewMemState
// when nothing is to be kept between runs).
func LoginToken(ctx context.Context, hc *http.Client, server string, tok machinetoken.Token, audience string, state State) (*Client, error) {
	if audience == "" {
		audience = DefaultAudience
	}
	if hc == nil {
		hc = NewHTTPClient()
	}
	k, err := machinetoken.Derive(tok)
	if err != nil {
		return nil, err
	}
	t, err := machineLogin(ctx, hc, server, k, audience)
	if err != nil {
		return nil, err
	}
	m, err := machineFromLogin(k, audience, t)
	if err != nil {
		return nil, err
	}
	s := machineSession(server, k)
	s.AccessToken, s.AccessExpiry = t.AccessToken, t.ExpiresAt
	c := New(s, state, hc)
	c.machine = m
	return c, nil
}

// machineFromLogin reads the creator and anchor a login answered. The
// anchor is checked later, against the creator's key record: the server
// cannot make one that checks.
func machineFromLogin(k *machinetoken.Keys, audience string, t api.MachineTokens) (*machineAuth, error) {
	creator, err := uuid.Parse(t.OwnerID)
	if err != nil {
		return nil, tamper("the machine login names no creator", err)
	}
	anchor, err := base64.StdEncoding.Strict().DecodeString(t.Anchor)
	if err != nil || len(anchor) != 32 {
		return nil, tamper("the machine login's anchor is not 32 bytes of base64", err)
	}
	if t.TokenID != k.TokenID.String() {
		return nil, tamper("the machine login answered for another token", nil)
	}
	return &machineAuth{keys: k, audience: audience, creator: creator, anchor: anchor}, nil
}

// OfflineToken returns a client of tok that never logs in: it reads only
// what an offline cache gives it (UseOffline). The creator is taken from
// the cache, where it was stored with the anchor after a login.
func OfflineToken(server string, tok machinetoken.Token, audience string, state State) (*Client, error) {
	if audience == "" {
		audience = DefaultAudience
	}
	k, err := machinetoken.Derive(tok)
	if err != nil {
		return nil, err
	}
	c := New(machineSession(server, k), state, NewHTTPClient())
	c.machine = &machineAuth{keys: k, audience: audience}
	return c, nil
}

// IsMachine reports whether c is a machine token's client.
func (c *Client) IsMachine() bool { return c.machine != nil }

// MachineCacheKey is the key a machine token's offline cache is sealed
// under (nil for a person's client).
func (c *Client) MachineCacheKey() []byte {
	if c.machine == nil {
		return nil
	}
	return c.machine.keys.CacheKey()
}

// relogin is refresh for a machine token: a new challenge and login.
func (c *Client) relogin(ctx context.Context) error {
	t, err := machineLogin(ctx, c.http, c.sess.Server, c.machine.keys, c.machine.audience)
	if err != nil {
		return err
	}
	m, err := machineFromLogin(c.machine.keys, c.machine.audience, t)
	if err != nil {
		return err
	}
	ns := *c.sess
	ns.AccessToken, ns.AccessExpiry = t.AccessToken, t.ExpiresAt
	c.sess = &ns
	c.machine = m
	return nil
}

// machinePinned is a machine token's trust anchor as a pin check: the one
// identity it trusts is its creator, with the verified key record whose
// Ed25519 key the anchor vouches for (docs/crypto.md §13). Nothing the
// server says can make another key pass: the anchor is a MAC under a key
// only the token derives.
func (c *Client) machinePinned(people map[uuid.UUID][]PublicKeys) func(uuid.UUID, trust.Fingerprint) bool {
	m := c.machine
	return func(u uuid.UUID, fp trust.Fingerprint) bool {
		if u != m.creator || m.anchor == nil {
			return false
		}
		for _, pk := range people[u] {
			f, err := pk.fingerprint()
			if err != nil || !pk.Signed || !f.Equal(fp) || len(pk.Ed25519) != ed25519.PublicKeySize {
				continue
			}
			if m.keys.CheckAnchor(u, pk.Ed25519, m.anchor) == nil {
				return true
			}
		}
		return false
	}
}
