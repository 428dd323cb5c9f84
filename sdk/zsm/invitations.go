package zsm

// Invitations, the invitee's consent, and looking up another account's
// public keys (docs/crypto.md §3, docs/security.md).

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/google/uuid"
)

type invitationRow struct {
	VaultID           uuid.UUID `json:"vault_id"`
	GrantedBy         uuid.UUID `json:"granted_by"`
	GrantedByIdentity *string   `json:"granted_by_identity"`
	Role              string    `json:"role"`
	CreatedAt         time.Time `json:"created_at"`
}

// nameInviters fills in who sent each invitation, as the server names
// them (api.invitations, which answers only for grants naming this
// account). A name the server does not give stays "".
func (c *Client) nameInviters(ctx context.Context, inv []Invitation) error {
	var rows []invitationRow
	if err := c.rest(ctx, "GET", "/rpc/invitations", nil, &rows); err != nil {
		return err
	}
	names := map[[2]uuid.UUID]string{}
	for _, r := range rows {
		if r.GrantedByIdentity != nil {
			names[[2]uuid.UUID{r.VaultID, r.GrantedBy}] = *r.GrantedByIdentity
		}
	}
	for i := range inv {
		if n, ok := names[[2]uuid.UUID{inv[i].VaultID, inv[i].From}]; ok && inv[i].FromIdentity == "" {
			inv[i].FromIdentity = n
		}
	}
	return nil
}

// Invitations lists the grants other users sent this account.
func (c *Client) Invitations(ctx context.Context) ([]Invitation, error) {
	l, err := c.ListVaults(ctx)
	return l.Invitations, err
}

// DeclineInvitation refuses the invitation to vaultID: the grant is
// deleted and its granter blocked from granting this account anything
// again, in one transaction on the server, until AllowInvitationsFrom lifts
// the block. It returns the declined invitation; ErrNotFound when there is
// no invitation to that vault (this account's own vaults cannot be
// declined).
func (c *Client) DeclineInvitation(ctx context.Context, vaultID uuid.UUID) (Invitation, error) {
	inv, err := c.Invitations(ctx)
	if err != nil {
		return Invitation{}, err
	}
	for _, i := range inv {
		if i.VaultID != vaultID {
			continue
		}
		var blocked uuid.UUID
		err := c.rest(ctx, "POST", "/rpc/decline_invitation", map[string]any{"vault_id": vaultID}, &blocked)
		if isRest(err, 404) {
			return Invitation{}, fmt.Errorf("invitation to vault %s: %w", vaultID, ErrNotFound)
		}
		if err != nil {
			return Invitation{}, err
		}
		if blocked != i.From {
			return Invitation{}, tamper(fmt.Sprintf("vault %s: the server blocked another user than the one who invited", vaultID), nil)
		}
		return i, nil
	}
	return Invitation{}, fmt.Errorf("invitation to vault %s: %w", vaultID, ErrNotFound)
}

// AllowInvitationsFrom lifts this account's block of the user with
// identity (set by DeclineInvitation), so that they may invite it again.
// It reports whether there was a block; ErrNotFound when no account has
// that identity.
func (c *Client) AllowInvitationsFrom(ctx context.Context, identity string) (bool, error) {
	pk, err := c.LookupIdentity(ctx, identity)
	if err != nil {
		return false, err
	}
	var rows []struct {
		BlockedUserID uuid.UUID `json:"blocked_user_id"`
	}
	err = c.rest(ctx, "DELETE", "/grant_blocks?blocked_user_id=eq."+url.QueryEscape(pk.UserID.String()), nil, &rows,
		"Prefer", "return=representation")
	if err != nil {
		return false, err
	}
	return len(rows) > 0, nil
}
