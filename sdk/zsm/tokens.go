package zsm

// Machine tokens, as their owner manages them (docs/auth.md "Machine
// tokens", docs/crypto.md §13): making one and granting it vaults, listing
// them, revoking one.

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/google/uuid"

	"zsm.dev/zsm/api"
	"zsm.dev/zsm/sdk/authclient"
	"zsm.dev/zsm/sdk/machinetoken"
)

// Token roles: a token reads (viewer) or also writes secrets (editor);
// it is never an admin or owner.
var TokenRoles = []string{"viewer", "editor"}

// TokenMaxLifetime bounds a token's life.
const TokenMaxLifetime = api.TokenMaxLifetime

// TokenInfo is one of the caller's machine tokens.
type TokenInfo struct {
	ID         uuid.UUID
	Name       string
	CreatedAt  time.Time
	ExpiresAt  time.Time
	LastUsedAt *time.Time
	RevokedAt  *time.Time
	Vaults     []TokenVault
}

// Live reports whether the token can log in at now.
func (t TokenInfo) Live(now time.Time) bool { return t.RevokedAt == nil && now.Before(t.ExpiresAt) }

// TokenVault is a vault a token holds a grant in, and its role. Name is
// "" for a vault this client cannot open.
type TokenVault struct {
	VaultID uuid.UUID `json:"vault_id"`
	Name    string    `json:"-"`
	Role    string    `json:"role"`
}

// CreateToken makes a machine token named name, living lifetime, and
// grants it vaults with role (viewer or editor): the token is made here,
// registered with its key record and this account's anchor, and each
// vault's current key is sealed to it with a signed add entry, exactly as
// when sharing with a person. The caller must be an owner or admin of
// every vault. The token is returned once; it is not stored anywhere. If a
// grant fails, the token is revoked again and the error returned.
func (c *Client) CreateToken(ctx context.Context, name string, vaults []Vault, role string, lifetime time.Duration) (machinetoken.Token, TokenInfo, error) {
	if c.machine != nil {
		return machinetoken.Token{}, TokenInfo{}, fmt.Errorf("a machine token cannot make tokens: %w", ErrForbidden)
	}
	if !slices.Contains(TokenRoles, role) {
		return machinetoken.Token{}, TokenInfo{}, fmt.Errorf("role %q: a token is a viewer or an editor", role)
	}
	if len(vaults) == 0 {
		return machinetoken.Token{}, TokenInfo{}, errors.New("a token needs at least one vault")
	}
	for _, v := range vaults {
		if !manages(v.Role, role) {
			return machinetoken.Token{}, TokenInfo{}, forbidden(v, "grant a token")
		}
	}
	s := c.Session()
	nt, err := authclient.MakeToken(name, lifetime, s.UserID, s.Keys.Ed25519.Public().(ed25519.PublicKey))
	if err != nil {
		return machinetoken.Token{}, TokenInfo{}, err
	}
	var info api.TokenInfo
	err = c.auth(ctx, func(ac *authclient.Client, token string) error {
		var err error
		info, err = ac.CreateToken(ctx, token, nt.Request)
		return err
	})
	if err != nil {
		return machinetoken.Token{}, TokenInfo{}, err
	}
	p := nt.Keys.Public()
	x, err := ecdh.X25519().NewPublicKey(p.X25519)
	if err != nil {
		return machinetoken.Token{}, TokenInfo{}, err
	}
	pk := PublicKeys{UserID: p.TokenID, Identity: machinetoken.Identity(p.TokenID), X25519: x, Ed25519: ed25519.PublicKey(p.Ed25519),
		XWing: p.XWing, RecordVersion: 2, Signed: true}
	out := TokenInfo{ID: p.TokenID, Name: info.Name, CreatedAt: info.CreatedAt, ExpiresAt: info.ExpiresAt}
	for _, v := range vaults {
		if _, err := c.addMember(ctx, v, pk, role); err != nil {
			if rerr := c.auth(ctx, func(ac *authclient.Client, token string) error { return ac.RevokeToken(ctx, token, p.TokenID.String()) }); rerr != nil {
				err = errors.Join(err, fmt.Errorf("revoking the token again: %w", rerr))
			}
			return machinetoken.Token{}, TokenInfo{}, fmt.Errorf("granting vault %q to the token: %w", v.Name, err)
		}
		out.Vaults = append(out.Vaults, TokenVault{VaultID: v.ID, Name: v.Name, Role: role})
	}
	return nt.Token, out, nil
}

// auth runs call against authsvc with a fresh access token (refreshing
// once if authsvc says the token expired).
func (c *Client) auth(ctx context.Context, call func(ac *authclient.Client, token string) error) error {
	stale := func(err error) bool {
		var ae *authclient.APIError
		return errors.As(err, &ae) && ae.Status == http.StatusUnauthorized && ae.Code == api.CodeInvalidToken
	}
	err := c.withToken(ctx, stale, func(s *Session) error {
		ac := authclient.New(s.Server)
		ac.HTTP = c.http
		return call(ac, s.AccessToken)
	})
	var ae *authclient.APIError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ae) && ae.Status == http.StatusConflict && ae.Code == api.CodeNameTaken:
		return fmt.Errorf("%s: %w", ae.Message, ErrExists)
	case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
		return fmt.Errorf("no such token: %w", ErrNotFound)
	case errors.As(err, &ae) && ae.Status == http.StatusForbidden:
		return fmt.Errorf("%s: %w", ae.Message, ErrForbidden)
	case unreachable(err):
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	return apiError(err)
}

type tokenRow struct {
	ID         uuid.UUID    `json:"id"`
	Name       string       `json:"name"`
	CreatedAt  time.Time    `json:"created_at"`
	ExpiresAt  time.Time    `json:"expires_at"`
	LastUsedAt *time.Time   `json:"last_used_at"`
	RevokedAt  *time.Time   `json:"revoked_at"`
	Vaults     []TokenVault `json:"vaults"`
}

// Tokens lists this account's machine tokens, revoked and expired ones
// too, newest first, with the vaults each holds a grant in (named where
// this client can open the vault).
func (c *Client) Tokens(ctx context.Context) ([]TokenInfo, error) {
	var rows []tokenRow
	if err := c.rest(ctx, "GET", "/machine_tokens?order=created_at.desc,id", nil, &rows); err != nil {
		return nil, err
	}
	names := map[uuid.UUID]string{}
	if len(rows) > 0 {
		vs, err := c.Vaults(ctx)
		if err != nil {
			return nil, err
		}
		for _, v := range vs {
			names[v.ID] = v.Name
		}
	}
	out := make([]TokenInfo, 0, len(rows))
	for _, r := range rows {
		t := TokenInfo{ID: r.ID, Name: r.Name, CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt, LastUsedAt: r.LastUsedAt, RevokedAt: r.RevokedAt}
		for _, v := range r.Vaults {
			v.Name = names[v.VaultID]
			t.Vaults = append(t.Vaults, v)
		}
		sort.SliceStable(t.Vaults, func(i, j int) bool { return t.Vaults[i].Name < t.Vaults[j].Name })
		out = append(out, t)
	}
	return out, nil
}

// RevokeResult says what RevokeToken did.
type RevokeResult struct {
	Token TokenInfo
	// Removed are the vaults the token was removed from (with a new key
	// generation); Failed those it could not be removed from, and why.
	Removed []TokenVault
	Failed  map[string]error
}

// RevokeToken revokes the caller's live token named name: the server
// refuses it from its next request on. Then, so that even the token's keys
// cannot read what is written later, it is removed from every vault it
// holds a grant in, each with a new key generation (as Unshare removes a
// person). A vault it cannot be removed from is reported in Failed; the
// revocation stands.
func (c *Client) RevokeToken(ctx context.Context, name string) (RevokeResult, error) {
	ts, err := c.Tokens(ctx)
	if err != nil {
		return RevokeResult{}, err
	}
	var t *TokenInfo
	for i := range ts {
		if ts[i].Name == name && ts[i].RevokedAt == nil {
			t = &ts[i]
			break
		}
	}
	if t == nil {
		return RevokeResult{}, fmt.Errorf("token %q: %w", name, ErrNotFound)
	}
	if err := c.auth(ctx, func(ac *authclient.Client, token string) error { return ac.RevokeToken(ctx, token, t.ID.String()) }); err != nil {
		return RevokeResult{}, err
	}
	res := RevokeResult{Token: *t, Failed: map[string]error{}}
	if len(t.Vaults) == 0 {
		return res, nil
	}
	vs, err := c.Vaults(ctx)
	if err != nil {
		return res, err
	}
	for _, tv := range t.Vaults {
		i := slices.IndexFunc(vs, func(v Vault) bool { return v.ID == tv.VaultID })
		if i < 0 {
			res.Failed[tv.VaultID.String()] = fmt.Errorf("vault %s cannot be opened here: %w", tv.VaultID, ErrNotFound)
			continue
		}
		if err := c.Unshare(ctx, vs[i], machinetoken.Identity(t.ID)); err != nil {
			res.Failed[vs[i].Name] = err
			continue
		}
		res.Removed = append(res.Removed, tv)
	}
	return res, nil
}
