package zsm

// Invitations, the invitee's consent, and looking up another account's
// public keys (docs/crypto.md §3, docs/security.md).

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"fmt"
	"net/url"
	"time"

	"github.com/google/uuid"

	"zsm.dev/zsm/sdk/keyrecord"
	"zsm.dev/zsm/srpgroup"
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
		inv[i].FromIdentity = names[[2]uuid.UUID{inv[i].VaultID, inv[i].From}]
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

// PublicKeys are another account's published public keys.
type PublicKeys struct {
	UserID   uuid.UUID
	Identity string
	X25519   *ecdh.PublicKey
	Ed25519  ed25519.PublicKey
	// Signed reports that the keys come with the account's key record,
	// verified here: the account itself vouched that these keys are its own
	// under this identity and user id. False for an account made before key
	// records existed that has not logged in since. Neither says that the
	// server did not make the account up; comparing fingerprints out of
	// band does (the next step of sharing).
	Signed bool
}

type lookupRow struct {
	UserID             uuid.UUID `json:"user_id"`
	X25519Public       string    `json:"x25519_public"`
	Ed25519Public      string    `json:"ed25519_public"`
	KeyRecordVersion   *int      `json:"key_record_version"`
	KeyRecordSignature *string   `json:"key_record_signature"`
}

// LookupIdentity finds the account with exactly this identity (after
// normalization) and its public keys. The server answers one exact identity
// at a time and lists nobody. A key record that does not verify is
// ErrTampered; no account is ErrNotFound.
func (c *Client) LookupIdentity(ctx context.Context, identity string) (PublicKeys, error) {
	ident, err := srpgroup.ParseIdentity(identity)
	if err != nil {
		return PublicKeys{}, fmt.Errorf("identity: %w", err)
	}
	id := ident.String()
	var rows []lookupRow
	if err := c.rest(ctx, "POST", "/rpc/lookup_identity", map[string]string{"identity": id}, &rows); err != nil {
		return PublicKeys{}, err
	}
	switch len(rows) {
	case 0:
		return PublicKeys{}, fmt.Errorf("identity %q: %w", id, ErrNotFound)
	case 1:
	default:
		return PublicKeys{}, tamper(fmt.Sprintf("identity %q: the server named %d accounts", id, len(rows)), nil)
	}
	r := rows[0]
	rec, err := keyrecord.FromBase64(r.UserID, id, r.X25519Public, r.Ed25519Public)
	if err != nil {
		return PublicKeys{}, tamper(fmt.Sprintf("identity %q: public keys", id), err)
	}
	x, err := ecdh.X25519().NewPublicKey(rec.X25519)
	if err != nil {
		return PublicKeys{}, tamper(fmt.Sprintf("identity %q: X25519 key", id), err)
	}
	pk := PublicKeys{UserID: r.UserID, Identity: id, X25519: x, Ed25519: ed25519.PublicKey(rec.Ed25519)}
	if r.KeyRecordSignature != nil {
		if r.KeyRecordVersion == nil || *r.KeyRecordVersion != keyrecord.Version {
			return PublicKeys{}, tamper(fmt.Sprintf("identity %q: key record of an unknown version", id), nil)
		}
		if err := keyrecord.Verify(rec, *r.KeyRecordSignature); err != nil {
			return PublicKeys{}, tamper(fmt.Sprintf("identity %q: key record", id), err)
		}
		pk.Signed = true
	}
	return pk, nil
}
