package zsm

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"zsm.dev/zsm/sdk/envelope"
	"zsm.dev/zsm/sdk/grant"
	"zsm.dev/zsm/sdk/manifest"
	"zsm.dev/zsm/sdk/memberlog"
	"zsm.dev/zsm/sdk/trust"
)

// Vault is a vault this account may open, with its keys. Its members,
// Role and Generation come from the replayed membership log.
type Vault struct {
	ID         uuid.UUID
	Name       string
	Role       string // this account's role, as the log says
	Revision   uint64
	CreatedAt  time.Time
	OwnerID    uuid.UUID // the vault's creator
	Generation uint64    // the newest key generation, which writes use
	st         *vaultState
}

// String names the vault; the keys never print.
func (v Vault) String() string { return fmt.Sprintf("vault %q (%s)", v.Name, v.ID) }

// GoString is String.
func (v Vault) GoString() string { return v.String() }

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

// ValidVaultName reports whether name can name a vault: 1–64 characters,
// no '/' (it separates vault and secret in VAULT/NAME), no control
// characters, no surrounding space.
func ValidVaultName(name string) error {
	if name == "" || len(name) > 64 || strings.TrimSpace(name) != name || strings.ContainsAny(name, "/\x00\n\r\t") {
		return fmt.Errorf("vault name %q: use 1–64 characters without '/', tabs, line breaks or surrounding spaces", name)
	}
	return nil
}

// CreateVault makes a vault, in one transaction on the server: a fresh
// vault key (generation 1), the name sealed under it, this account's grant
// (the key sealed to its own X-Wing key, or X25519 key for an account
// without one, and signed with its Ed25519 key), the membership log's
// create entry committing to the key, and the first manifest.
func (c *Client) CreateVault(ctx context.Context, name string) (Vault, error) {
	if err := ValidVaultName(name); err != nil {
		return Vault{}, err
	}
	if _, err := c.VaultByName(ctx, name); err == nil {
		return Vault{}, fmt.Errorf("vault %q: %w", name, ErrExists)
	}
	s := c.Session()
	me := s.UserID
	key, err := grant.NewVaultKey(rand.Reader)
	if err != nil {
		return Vault{}, err
	}
	id := uuid.New()
	meta, err := c.sealMeta(id, name, 1, key)
	if err != nil {
		return Vault{}, err
	}
	selfFP, err := c.ownFP()
	if err != nil {
		return Vault{}, err
	}
	commit, err := grant.KeyCommitment(key, id, 1)
	if err != nil {
		return Vault{}, err
	}
	log, err := memberlog.New(id, c.ownIdentity())
	if err != nil {
		return Vault{}, err
	}
	entry, err := memberlog.Sign(log.Next(memberlog.OpCreate, me, "owner", selfFP, commit, me, c.Now()), s.Keys.Ed25519)
	if err != nil {
		return Vault{}, err
	}
	if err := log.Apply(entry); err != nil {
		return Vault{}, err
	}
	g, err := c.sealGrant(id, c.ownKeys(), "owner", 1, key)
	if err != nil {
		return Vault{}, err
	}
	m, err := manifest.Next(nil, log, 1, nil)
	if err != nil {
		return Vault{}, err
	}
	man, err := manifest.Sign(m, me, s.Keys.Ed25519)
	if err != nil {
		return Vault{}, err
	}
	e, sig := entry.Row()
	if err := c.rest(ctx, "POST", "/rpc/create_vault", map[string]any{
		"vault_id": id, "meta": meta,
		"owner_grant": map[string]any{"sealed_key": g.SealedKey, "signature": g.Signature, "grant_version": 2, "kem_id": g.KEMID},
		"log_entry":   map[string]any{"seq": 1, "entry": e, "signature": sig},
		"manifest":    manifestBody(man),
	}, nil); err != nil {
		return Vault{}, roleErr(err)
	}
	st := &vaultState{gen: 1, keys: map[uint64][]byte{1: key}, rows: []memberlog.Signed{entry}, ids: []trust.Identity{c.ownIdentity()},
		log: log, man: &man, people: map[uuid.UUID][]PublicKeys{me: {c.ownKeys()}}}
	c.state.See(id, 1)
	c.state.SetLogHead(id, log.Head())
	c.state.SetManifestSeen(id, man.Seen())
	return Vault{ID: id, Name: name, Role: "owner", Revision: 1, CreatedAt: c.Now(), OwnerID: me, Generation: 1, st: st}, nil
}

func (c *Client) sealMeta(id uuid.UUID, name string, revision uint64, key []byte) (string, error) {
	plain, err := json.Marshal(vaultMeta{Name: name})
	if err != nil {
		return "", err
	}
	return envelope.SealString(key, envelope.Context{Type: envelope.VaultMeta, VaultID: id, ObjectID: id, Revision: revision}, plain, rand.Reader)
}

// VaultList is everything the server lists as this account's memberships,
// sorted into what this device could verify and what it could not. One
// vault never spoils the others: an invitation is listed apart, and a
// vault that fails verification is refused, each on its own.
type VaultList struct {
	// Vaults whose log, grant, keys and manifest verified, anchored in this
	// account (its creator) or in a member it pinned.
	Vaults []Vault
	// Invitations are memberships this device cannot vouch for yet: added
	// by somebody whose key this account has not verified (ConfirmIdentity
	// turns them into vaults), or granted without the vault's log naming
	// this account. Nothing of them is used; the user may decline them.
	Invitations []Invitation
	// Refused are vaults whose grant, key, name or revision failed
	// verification: the server sent something this account did not write.
	Refused []RefusedVault
}

// Invitation is a membership of a vault this account cannot vouch for
// yet. Who sent it is the signer of the log entry that added this account
// (or, for a vault without a log, the grant's granter); the identity is
// the one their key record names, or the server's word for it; nothing in
// it is trusted until the user verifies that identity.
type Invitation struct {
	VaultID      uuid.UUID
	From         uuid.UUID // who added this account
	FromIdentity string    // their identity ("" if unknown)
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
// each checked (docs/crypto.md §4, §8–§10: the membership log replayed and
// anchored, the grant verified and its key matching the log's commitment,
// the manifest verified and no older than this device has seen, the name
// decrypted at a revision no older than seen), the invitations others
// sent, and the vaults that failed those checks. It fails as a whole only
// when the server cannot be asked.
func (c *Client) ListVaults(ctx context.Context) (VaultList, error) {
	s := c.Session()
	me := s.UserID
	var rows []stateRow
	if err := c.rest(ctx, "GET", "/rpc/vault_states", nil, &rows); err != nil {
		return VaultList{}, err
	}
	var out VaultList
	var people map[uuid.UUID][]PublicKeys
	var pins *trust.PinSet
	seen := map[uuid.UUID]bool{}
	for _, r := range rows {
		if seen[r.ID] {
			out.Refused = append(out.Refused, RefusedVault{r.ID, tamper(fmt.Sprintf("vault %s: listed twice", r.ID), nil)})
			continue
		}
		seen[r.ID] = true
		g := r.Grant
		switch {
		case g == nil:
			// Without a grant of ours a vault cannot be opened (an
			// interrupted creation); it is not listed.
			continue
		case g.UserID != me:
			out.Refused = append(out.Refused, RefusedVault{r.ID, tamper(fmt.Sprintf("vault %s: the server returned another user's access policy", r.ID), nil)})
			continue
		case len(r.Log) == 0 && g.GrantedBy != me:
			// Somebody else's vault without a log: nothing can be verified.
			out.Invitations = append(out.Invitations, Invitation{VaultID: r.ID, From: g.GrantedBy, Role: g.Role, At: g.CreatedAt})
			continue
		case len(r.Log) == 0:
			v, err := c.openLegacy(r)
			if err != nil {
				out.Refused = append(out.Refused, RefusedVault{r.ID, err})
				continue
			}
			out.Vaults = append(out.Vaults, v)
			continue
		}
		if people == nil {
			var err error
			if people, err = c.memberKeys(ctx); err != nil {
				return VaultList{}, err
			}
		}
		if pins == nil {
			var err error
			if pins, err = c.pins(ctx); err != nil {
				return VaultList{}, err
			}
		}
		pinned := func(u uuid.UUID, fp trust.Fingerprint) bool {
			_, ok := pins.Vouches(u, fp)
			return ok
		}
		v, inv, err := c.openShared(r, people, pinned)
		switch {
		case errors.Is(err, errInvitation):
			out.Invitations = append(out.Invitations, inv)
		case err != nil:
			out.Refused = append(out.Refused, RefusedVault{r.ID, err})
		default:
			out.Vaults = append(out.Vaults, v)
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

// RenameVault gives a vault a new name: a new revision of its metadata,
// sealed under the newest key generation, written with the vault's next
// manifest. Owners and admins may rename.
func (c *Client) RenameVault(ctx context.Context, v Vault, name string) (Vault, error) {
	if err := ValidVaultName(name); err != nil {
		return Vault{}, err
	}
	if other, err := c.VaultByName(ctx, name); err == nil && other.ID != v.ID {
		return Vault{}, fmt.Errorf("vault %q: %w", name, ErrExists)
	}
	if v.Role != "owner" && v.Role != "admin" {
		return Vault{}, forbidden(v, "rename it")
	}
	nv := v
	_, err := c.commitSecrets(ctx, &nv, func(l *listing) (*secretsPlan, error) {
		_, key := nv.st.newest()
		rev := l.metaRevision + 1
		meta, err := c.sealMeta(v.ID, name, rev, key)
		if err != nil {
			return nil, err
		}
		return &secretsPlan{meta: &metaChange{meta: meta, revision: rev}}, nil
	})
	if err != nil {
		return Vault{}, err
	}
	nv.Name = name
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
