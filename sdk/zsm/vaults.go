package zsm

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"zsm.dev/zsm/sdk/envelope"
	"zsm.dev/zsm/sdk/grant"
)

// Vault is a vault this account may open, with its key.
type Vault struct {
	ID        uuid.UUID
	Name      string
	Role      string
	Revision  uint64
	CreatedAt time.Time
	key       []byte
}

// String names the vault; the key never prints.
func (v Vault) String() string { return fmt.Sprintf("vault %q (%s)", v.Name, v.ID) }

type vaultMeta struct {
	Name string `json:"name"`
}

type vaultRow struct {
	ID        uuid.UUID `json:"id"`
	OwnerID   uuid.UUID `json:"owner_id"`
	Meta      string    `json:"meta"`
	Revision  uint64    `json:"revision"`
	CreatedAt time.Time `json:"created_at"`
}

type policyRow struct {
	VaultID   uuid.UUID `json:"vault_id"`
	UserID    uuid.UUID `json:"user_id"`
	Role      string    `json:"role"`
	SealedKey string    `json:"sealed_key"`
	GrantedBy uuid.UUID `json:"granted_by"`
	Signature string    `json:"signature"`
	CreatedAt time.Time `json:"created_at"`
}

// ValidVaultName reports whether name can name a vault: 1–64 characters,
// no '/' (it separates vault and secret in VAULT/NAME), no control
// characters, no surrounding space.
func ValidVaultName(name string) error {
	if name == "" || len(name) > 64 || strings.TrimSpace(name) != name || strings.ContainsAny(name, "/\x00\n\r\t") {
		return fmt.Errorf("vault name %q: use 1–64 characters without '/', tabs, line breaks or surrounding spaces", name)
	}
	return nil
}

// CreateVault makes a vault: a fresh vault key, the name sealed under it,
// and this account's owner grant (the key sealed to its own X25519 key and
// signed with its own Ed25519 key).
func (c *Client) CreateVault(ctx context.Context, name string) (Vault, error) {
	if err := ValidVaultName(name); err != nil {
		return Vault{}, err
	}
	if _, err := c.VaultByName(ctx, name); err == nil {
		return Vault{}, fmt.Errorf("vault %q: %w", name, ErrExists)
	}
	s := c.Session()
	key, err := grant.NewVaultKey(rand.Reader)
	if err != nil {
		return Vault{}, err
	}
	v := Vault{ID: uuid.New(), Name: name, Role: "owner", Revision: 1, key: key}
	meta, err := c.sealMeta(v)
	if err != nil {
		return Vault{}, err
	}
	g, sig, err := c.ownerGrant(v.ID, key)
	if err != nil {
		return Vault{}, err
	}
	if err := c.rest(ctx, "POST", "/vaults", map[string]any{"id": v.ID, "meta": meta, "revision": 1}, nil); err != nil {
		return Vault{}, err
	}
	if err := c.rest(ctx, "POST", "/access_policies", map[string]any{
		"vault_id": v.ID, "user_id": s.UserID, "role": g.Role, "sealed_key": g.SealedKey,
		"granted_by": g.GrantedBy, "signature": sig,
	}, nil); err != nil {
		_ = c.rest(ctx, "DELETE", "/vaults?id=eq."+v.ID.String(), nil, nil)
		return Vault{}, err
	}
	c.state.See(v.ID, 1)
	return v, nil
}

func (c *Client) ownerGrant(vaultID uuid.UUID, key []byte) (grant.Grant, string, error) {
	s := c.Session()
	sealed, err := grant.SealVaultKey(s.Keys.X25519.PublicKey(), vaultID, s.UserID, key)
	if err != nil {
		return grant.Grant{}, "", err
	}
	g := grant.Grant{VaultID: vaultID, UserID: s.UserID, GrantedBy: s.UserID, Role: "owner", SealedKey: sealed}
	sig, err := grant.Sign(g, s.Keys.Ed25519)
	return g, sig, err
}

func (c *Client) sealMeta(v Vault) (string, error) {
	plain, err := json.Marshal(vaultMeta{Name: v.Name})
	if err != nil {
		return "", err
	}
	return envelope.SealString(v.key, envelope.Context{Type: envelope.VaultMeta, VaultID: v.ID, ObjectID: v.ID, Revision: v.Revision}, plain, rand.Reader)
}

// VaultList is everything the server lists as this account's memberships,
// sorted into what this device could verify and what it could not. One
// vault's grant never spoils the others: a grant signed by somebody else
// is an invitation, and a grant that claims to be this account's own but
// fails verification is refused, each for its own vault only.
type VaultList struct {
	// Vaults opened under a grant this account signed itself.
	Vaults []Vault
	// Invitations are grants somebody else signed. This device cannot
	// verify the granter's key yet (sharing is not supported), so it uses
	// none of them; the user may decline them.
	Invitations []Invitation
	// Refused are vaults whose grant, key, name or revision failed
	// verification: the server sent something this account did not write.
	Refused []RefusedVault
}

// Invitation is a grant of a vault membership to this account, signed by
// another user. Nothing in it is verified: who the server says sent it,
// and what role it gives.
type Invitation struct {
	VaultID      uuid.UUID
	From         uuid.UUID // the granting user, as the grant names them
	FromIdentity string    // their identity, as the server names it ("" if unknown)
	Role         string
	At           time.Time
}

// RefusedVault is a vault that failed verification, and why (an error
// wrapping ErrTampered or ErrRollback).
type RefusedVault struct {
	ID  uuid.UUID
	Err error
}

// Error describes the refusal.
func (r RefusedVault) Error() string { return r.Err.Error() }

// Unwrap returns the reason.
func (r RefusedVault) Unwrap() error { return r.Err }

// ListVaults lists this account's memberships: the vaults it can open,
// each checked (its key comes from a grant signed by this account's own
// key, its name decrypts under that key at a revision no older than this
// device has seen), the invitations others sent, and the vaults that failed
// those checks. It fails as a whole only when the server cannot be asked.
func (c *Client) ListVaults(ctx context.Context) (VaultList, error) {
	s := c.Session()
	var rows []vaultRow
	if err := c.rest(ctx, "GET", "/vaults?select=id,owner_id,meta,revision,created_at&order=created_at", nil, &rows); err != nil {
		return VaultList{}, err
	}
	var pols []policyRow
	if err := c.rest(ctx, "GET", "/access_policies?select=vault_id,user_id,role,sealed_key,granted_by,signature,created_at&user_id=eq."+s.UserID.String(), nil, &pols); err != nil {
		return VaultList{}, err
	}
	var out VaultList
	byVault := map[uuid.UUID]policyRow{}
	dup := map[uuid.UUID]bool{}
	for _, p := range pols {
		switch {
		case p.UserID != s.UserID:
			out.Refused = append(out.Refused, RefusedVault{p.VaultID, tamper(fmt.Sprintf("vault %s: the server returned another user's access policy", p.VaultID), nil)})
			dup[p.VaultID] = true
		case p.GrantedBy != s.UserID:
			out.Invitations = append(out.Invitations, Invitation{VaultID: p.VaultID, From: p.GrantedBy, Role: p.Role, At: p.CreatedAt})
		default:
			if _, ok := byVault[p.VaultID]; ok {
				dup[p.VaultID] = true
			}
			byVault[p.VaultID] = p
		}
	}
	for _, r := range rows {
		p, ok := byVault[r.ID]
		if !ok || dup[r.ID] {
			// A vault without our own grant is one we cannot open (an
			// invitation, or an interrupted creation); it is not listed.
			continue
		}
		v, err := c.openVault(r, p)
		if err != nil {
			out.Refused = append(out.Refused, RefusedVault{r.ID, err})
			continue
		}
		out.Vaults = append(out.Vaults, v)
	}
	for id := range dup {
		if _, ok := byVault[id]; ok {
			out.Refused = append(out.Refused, RefusedVault{id, tamper(fmt.Sprintf("vault %s: the server listed two memberships of one vault", id), nil)})
		}
	}
	if len(out.Invitations) > 0 {
		if err := c.nameInviters(ctx, out.Invitations); err != nil {
			return VaultList{}, err
		}
	}
	sort.SliceStable(out.Vaults, func(i, j int) bool { return out.Vaults[i].Name < out.Vaults[j].Name })
	sort.SliceStable(out.Refused, func(i, j int) bool { return out.Refused[i].ID.String() < out.Refused[j].ID.String() })
	return out, nil
}

// Vaults lists the vaults this account can open (ListVaults' Vaults):
// invitations and vaults that failed verification are left out, and never
// make it fail.
func (c *Client) Vaults(ctx context.Context) ([]Vault, error) {
	l, err := c.ListVaults(ctx)
	return l.Vaults, err
}

func (c *Client) openVault(r vaultRow, p policyRow) (Vault, error) {
	s := c.Session()
	g := grant.Grant{VaultID: r.ID, UserID: s.UserID, GrantedBy: p.GrantedBy, Role: p.Role, SealedKey: p.SealedKey}
	if p.GrantedBy != s.UserID {
		// ListVaults sorts these out as invitations before it gets here.
		return Vault{}, tamper(fmt.Sprintf("vault %s: grant signed by another member, whose key this device cannot check yet", r.ID), nil)
	}
	if err := grant.Verify(g, p.Signature, s.Keys.Ed25519.Public().(ed25519.PublicKey)); err != nil {
		return Vault{}, tamper(fmt.Sprintf("vault %s: grant signature", r.ID), err)
	}
	key, err := grant.OpenVaultKey(s.Keys.X25519, r.ID, s.UserID, p.SealedKey)
	if err != nil {
		return Vault{}, tamper(fmt.Sprintf("vault %s: vault key", r.ID), err)
	}
	if seen := c.state.Seen(r.ID); r.Revision < seen {
		return Vault{}, fmt.Errorf("vault %s: revision %d after %d: %w", r.ID, r.Revision, seen, ErrRollback)
	}
	plain, err := envelope.OpenString(key, envelope.Context{Type: envelope.VaultMeta, VaultID: r.ID, ObjectID: r.ID, Revision: r.Revision}, r.Meta)
	if err != nil {
		return Vault{}, tamper(fmt.Sprintf("vault %s: name", r.ID), err)
	}
	var m vaultMeta
	if err := json.Unmarshal(plain, &m); err != nil {
		return Vault{}, tamper(fmt.Sprintf("vault %s: name", r.ID), err)
	}
	c.state.See(r.ID, r.Revision)
	return Vault{ID: r.ID, Name: m.Name, Role: p.Role, Revision: r.Revision, CreatedAt: r.CreatedAt, key: key}, nil
}

// VaultByName finds a vault by its name. When no vault that verifies has
// that name but some vault failed verification (its name unknown, so it
// may be the one asked for), the answer is that failure, not ErrNotFound.
func (c *Client) VaultByName(ctx context.Context, name string) (Vault, error) {
	l, err := c.ListVaults(ctx)
	if err != nil {
		return Vault{}, err
	}
	for _, v := range l.Vaults {
		if v.Name == name {
			return v, nil
		}
	}
	if len(l.Refused) > 0 {
		return Vault{}, fmt.Errorf("vault %q is not among the vaults that verify, and %d failed verification: %w", name, len(l.Refused), l.Refused[0])
	}
	return Vault{}, fmt.Errorf("vault %q: %w", name, ErrNotFound)
}

// RenameVault gives a vault a new name (a new revision of its metadata).
func (c *Client) RenameVault(ctx context.Context, v Vault, name string) (Vault, error) {
	if err := ValidVaultName(name); err != nil {
		return Vault{}, err
	}
	if other, err := c.VaultByName(ctx, name); err == nil && other.ID != v.ID {
		return Vault{}, fmt.Errorf("vault %q: %w", name, ErrExists)
	}
	nv := v
	nv.Name, nv.Revision = name, v.Revision+1
	meta, err := c.sealMeta(nv)
	if err != nil {
		return Vault{}, err
	}
	var rows []vaultRow
	err = c.rest(ctx, "PATCH", fmt.Sprintf("/vaults?id=eq.%s&revision=eq.%d", v.ID, v.Revision),
		map[string]any{"meta": meta, "revision": nv.Revision}, &rows, "Prefer", "return=representation")
	if err != nil {
		return Vault{}, err
	}
	if len(rows) != 1 {
		return Vault{}, fmt.Errorf("vault %q: %w", v.Name, ErrConflict)
	}
	c.state.See(v.ID, nv.Revision)
	return nv, nil
}

// DeleteVault deletes a vault with all its secrets.
func (c *Client) DeleteVault(ctx context.Context, v Vault) error {
	var rows []vaultRow
	if err := c.rest(ctx, "DELETE", "/vaults?id=eq."+url.QueryEscape(v.ID.String()), nil, &rows, "Prefer", "return=representation"); err != nil {
		return err
	}
	if len(rows) != 1 {
		return fmt.Errorf("vault %q: %w (only its owner can delete it)", v.Name, ErrNotFound)
	}
	return nil
}
