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

// Vaults lists the vaults this account can open, checked: each vault key
// comes from a grant signed by this account's own key (sharing, where
// others' keys are involved, is not yet supported), and each name decrypts
// under its vault key at a revision no older than this device has seen.
func (c *Client) Vaults(ctx context.Context) ([]Vault, error) {
	s := c.Session()
	var rows []vaultRow
	if err := c.rest(ctx, "GET", "/vaults?select=id,owner_id,meta,revision,created_at&order=created_at", nil, &rows); err != nil {
		return nil, err
	}
	var pols []policyRow
	if err := c.rest(ctx, "GET", "/access_policies?select=vault_id,user_id,role,sealed_key,granted_by,signature&user_id=eq."+s.UserID.String(), nil, &pols); err != nil {
		return nil, err
	}
	byVault := map[uuid.UUID]policyRow{}
	for _, p := range pols {
		if p.UserID != s.UserID {
			return nil, tamper("the server returned another user's access policy", nil)
		}
		byVault[p.VaultID] = p
	}
	var out []Vault
	for _, r := range rows {
		p, ok := byVault[r.ID]
		if !ok {
			// A vault without our grant is one we cannot open (an interrupted
			// creation); it is not listed.
			continue
		}
		v, err := c.openVault(r, p)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (c *Client) openVault(r vaultRow, p policyRow) (Vault, error) {
	s := c.Session()
	g := grant.Grant{VaultID: r.ID, UserID: s.UserID, GrantedBy: p.GrantedBy, Role: p.Role, SealedKey: p.SealedKey}
	if p.GrantedBy != s.UserID {
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

// VaultByName finds a vault by its name.
func (c *Client) VaultByName(ctx context.Context, name string) (Vault, error) {
	vs, err := c.Vaults(ctx)
	if err != nil {
		return Vault{}, err
	}
	for _, v := range vs {
		if v.Name == name {
			return v, nil
		}
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
