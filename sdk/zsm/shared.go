package zsm

// Opening vaults (docs/crypto.md §8–§10): the membership log replayed from
// its first entry, the trust anchor, this account's grant checked against
// the log's key commitments, the chain of older keys, and the signed
// manifest. Nothing about a vault's members, keys or contents is taken on
// the server's word.

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"zsm.dev/zsm/sdk/envelope"
	"zsm.dev/zsm/sdk/grant"
	"zsm.dev/zsm/sdk/manifest"
	"zsm.dev/zsm/sdk/memberlog"
	"zsm.dev/zsm/sdk/trust"
)

// grantRow is this account's grant of a vault as api.vault_states returns
// it.
type grantRow struct {
	UserID        uuid.UUID `json:"user_id"`
	Role          string    `json:"role"`
	SealedKey     string    `json:"sealed_key"`
	GrantedBy     uuid.UUID `json:"granted_by"`
	Signature     string    `json:"signature"`
	CreatedAt     time.Time `json:"created_at"`
	KeyGeneration uint64    `json:"key_generation"`
	GrantVersion  int       `json:"grant_version"`
	KEMID         *int      `json:"kem_id"`
}

type logRow struct {
	Seq       uint64 `json:"seq"`
	Entry     string `json:"entry"`
	Signature string `json:"signature"`
}

type chainRow struct {
	Generation uint64 `json:"generation"`
	Wrapped    string `json:"wrapped"`
}

type manifestRow struct {
	Version   uint64    `json:"version"`
	Manifest  string    `json:"manifest"`
	Signature string    `json:"signature"`
	SignerID  uuid.UUID `json:"signer_id"`
}

// stateRow is one vault of api.vault_states: the vault row and, from the
// same snapshot, this account's grant, the log, the older keys and the
// manifest.
type stateRow struct {
	vaultRow
	Grant    *grantRow    `json:"grant"`
	Log      []logRow     `json:"log"`
	Chain    []chainRow   `json:"chain"`
	Manifest *manifestRow `json:"manifest"`
}

// vaultState is what opening a vault established. Copies of a Vault share
// it, so what a write learns (a new manifest, a new generation) is seen by
// every copy.
type vaultState struct {
	mu sync.Mutex
	// legacy: a vault this account made before membership logs existed,
	// with its version 1 grant and no log or manifest yet; its first read
	// gives it both (adopt).
	legacy bool
	gen    uint64            // the newest key generation: writes use it
	keys   map[uint64][]byte // the key of every generation this account can reach
	rows   []memberlog.Signed
	ids    []trust.Identity // the verified key records the replay was given
	log    *memberlog.State
	man    *manifest.Signed // the newest manifest verified
	people map[uuid.UUID][]PublicKeys
	// cache is the listing last verified or written by this client, and
	// the manifest it is exactly: a write whose fresh manifest is that one
	// starts from it instead of reading every secret again.
	cache *listing
}

func (st *vaultState) key(g uint64) ([]byte, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	k, ok := st.keys[g]
	return k, ok
}

// newest returns the newest generation and its key.
func (st *vaultState) newest() (uint64, []byte) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.gen, st.keys[st.gen]
}

// replace takes over everything o established (a fresh open of the same
// vault).
func (st *vaultState) replace(o *vaultState) {
	if st == o {
		return
	}
	o.mu.Lock()
	legacy, gen, ks, rows, ids, log, man, people := o.legacy, o.gen, o.keys, o.rows, o.ids, o.log, o.man, o.people
	o.mu.Unlock()
	st.mu.Lock()
	st.legacy, st.gen, st.keys, st.rows, st.ids, st.log, st.man, st.people = legacy, gen, ks, rows, ids, log, man, people
	st.cache = nil
	st.mu.Unlock()
}

// snapshot returns the log, its rows, the manifest and whether the vault is
// legacy, as one consistent view.
func (st *vaultState) snapshot() (log *memberlog.State, rows []memberlog.Signed, man *manifest.Signed, legacy bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.log, st.rows, st.man, st.legacy
}

// checkErr classifies a refusal of the log, manifest or pin checks under
// the SDK's two integrity errors.
func checkErr(what string, err error) error {
	if errors.Is(err, memberlog.ErrRollback) || errors.Is(err, manifest.ErrRollback) || errors.Is(err, trust.ErrRollback) {
		return fmt.Errorf("%s: %w: %w", what, ErrRollback, err)
	}
	return tamper(what, err)
}

// memberKeys fetches the published keys of everyone the logs and grants of
// this account's vaults name, checks each, and keeps those that check out
// (a key that does not is never used: the replay then refuses the entries
// it would have verified).
func (c *Client) memberKeys(ctx context.Context) (map[uuid.UUID][]PublicKeys, error) {
	var rows []keyRow
	if err := c.rest(ctx, "GET", "/rpc/vault_member_keys", nil, &rows); err != nil {
		return nil, err
	}
	out := map[uuid.UUID][]PublicKeys{}
	for _, r := range rows {
		pk, err := checkKeys(r, r.Identity)
		if err != nil {
			continue
		}
		out[r.UserID] = append(out[r.UserID], pk)
	}
	return out, nil
}

// identities lists the verified keys for the replay.
func identities(people map[uuid.UUID][]PublicKeys) []trust.Identity {
	var out []trust.Identity
	for _, pks := range people {
		for _, p := range pks {
			out = append(out, trust.Identity{UserID: p.UserID, Identity: p.Identity, Ed25519Public: p.Ed25519})
		}
	}
	return out
}

// keysOf returns the verified keys of user whose fingerprint is fp (the one
// the log records for them).
func keysOf(people map[uuid.UUID][]PublicKeys, user uuid.UUID, fp trust.Fingerprint) (PublicKeys, bool) {
	for _, p := range people[user] {
		if f, err := p.fingerprint(); err == nil && f.Equal(fp) {
			return p, true
		}
	}
	return PublicKeys{}, false
}

// parseLog parses the stored log rows of vault; a row whose seq column
// disagrees with its signed entry is tampered.
func parseLog(vault uuid.UUID, rows []logRow) ([]memberlog.Signed, error) {
	out := make([]memberlog.Signed, 0, len(rows))
	for _, r := range rows {
		s, err := memberlog.ParseRow(r.Entry, r.Signature)
		if err != nil {
			return nil, tamper(fmt.Sprintf("vault %s: log entry %d", vault, r.Seq), err)
		}
		if s.Entry.Seq != r.Seq {
			return nil, tamper(fmt.Sprintf("vault %s: log row %d holds entry %d", vault, r.Seq, s.Entry.Seq), nil)
		}
		out = append(out, s)
	}
	return out, nil
}

// errInvitation: the vault is an invitation; its Invitation says from whom.
var errInvitation = errors.New("invitation")

// openShared opens a vault that has a membership log, or says it is an
// invitation (errInvitation with inv filled in). pinned answers whether a
// (user, fingerprint) is pinned.
func (c *Client) openShared(r stateRow, people map[uuid.UUID][]PublicKeys, pinned func(uuid.UUID, trust.Fingerprint) bool) (Vault, Invitation, error) {
	s := c.Session()
	me := s.UserID
	g := r.Grant
	rows, err := parseLog(r.ID, r.Log)
	if err != nil {
		return Vault{}, Invitation{}, err
	}
	selfFP, err := c.ownFP()
	if err != nil {
		return Vault{}, Invitation{}, err
	}
	ids := identities(people)
	log, anchor, err := memberlog.Open(r.ID, rows, ids, c.state.LogHead(r.ID), me, selfFP, pinned)
	invitation := Invitation{VaultID: r.ID, From: g.GrantedBy, Role: g.Role, At: g.CreatedAt}
	switch {
	case errors.Is(err, memberlog.ErrInvitation):
		// Signed by a member whose key this account has not verified: the
		// log says who, and with which role.
		invitation.From, invitation.At = anchor.By, anchor.At
		if m, ok := log.Member(me); ok {
			invitation.Role = m.Role
		}
		if pk, ok := keysOf(people, anchor.By, anchor.Fingerprint); ok {
			invitation.FromIdentity = pk.Identity
		}
		return Vault{}, invitation, errInvitation
	case errors.Is(err, memberlog.ErrNotAMember) && g.GrantedBy != me:
		// A grant somebody made without the log naming this account: it
		// can only ever be an invitation, to decline.
		return Vault{}, invitation, errInvitation
	case err != nil:
		return Vault{}, Invitation{}, checkErr(fmt.Sprintf("vault %s: membership log", r.ID), err)
	}
	member, _ := log.Member(me) // Open checked that this account is a member

	// The grant: signed by this account or by a current owner or admin of
	// the log, for this account's logged role and the current generation.
	gen := log.Generation()
	if g.UserID != me || g.Role != member.Role {
		return Vault{}, Invitation{}, tamper(fmt.Sprintf("vault %s: the grant gives role %q, the log %q", r.ID, g.Role, member.Role), nil)
	}
	var key []byte
	switch g.GrantVersion {
	case 1:
		// Version 1: what a vault's creator gave itself before key
		// generations existed (generation 1, X25519), kept when the vault
		// was given its log.
		if g.GrantedBy != me || g.KeyGeneration != 1 || g.KEMID != nil {
			return Vault{}, Invitation{}, tamper(fmt.Sprintf("vault %s: a version 1 grant not made by this account for generation 1", r.ID), nil)
		}
		v1 := grant.Grant{VaultID: r.ID, UserID: me, GrantedBy: me, Role: g.Role, SealedKey: g.SealedKey}
		if err := grant.Verify(v1, g.Signature, s.Keys.Ed25519.Public().(ed25519.PublicKey)); err != nil {
			return Vault{}, Invitation{}, tamper(fmt.Sprintf("vault %s: grant signature", r.ID), err)
		}
		if key, err = grant.OpenVaultKey(s.Keys.X25519, r.ID, me, g.SealedKey); err != nil {
			return Vault{}, Invitation{}, tamper(fmt.Sprintf("vault %s: vault key", r.ID), err)
		}
	case 2:
		if g.KEMID == nil {
			return Vault{}, Invitation{}, tamper(fmt.Sprintf("vault %s: a version 2 grant without its KEM", r.ID), nil)
		}
		kem := grant.KEM(*g.KEMID)
		// A member with a hybrid key is never sealed to without it: the
		// server must not be able to strip the post-quantum half.
		if err := grant.CheckKEM(kem, s.Keys.XWing != nil); err != nil {
			return Vault{}, Invitation{}, tamper(fmt.Sprintf("vault %s: grant", r.ID), err)
		}
		granter := s.Keys.Ed25519.Public().(ed25519.PublicKey)
		if g.GrantedBy != me {
			k, err := granterKey(log, rows, g.GrantedBy)
			if err != nil {
				return Vault{}, Invitation{}, tamper(fmt.Sprintf("vault %s: grant", r.ID), err)
			}
			granter = k
		}
		v2 := grant.GrantV2{VaultID: r.ID, UserID: me, GrantedBy: g.GrantedBy, Role: g.Role, Generation: g.KeyGeneration, KEM: kem, SealedKey: g.SealedKey}
		if err := grant.VerifyV2(v2, g.Signature, granter); err != nil {
			return Vault{}, Invitation{}, tamper(fmt.Sprintf("vault %s: grant signature", r.ID), err)
		}
		priv, err := s.Keys.KEMKey(uint16(kem))
		if err != nil {
			return Vault{}, Invitation{}, tamper(fmt.Sprintf("vault %s: vault key", r.ID), err)
		}
		if key, err = grant.OpenVaultKeyV2(priv, r.ID, me, g.KeyGeneration, g.SealedKey); err != nil {
			return Vault{}, Invitation{}, tamper(fmt.Sprintf("vault %s: vault key", r.ID), err)
		}
	default:
		return Vault{}, Invitation{}, tamper(fmt.Sprintf("vault %s: grant version %d", r.ID, g.GrantVersion), nil)
	}
	if g.KeyGeneration != gen {
		return Vault{}, Invitation{}, tamper(fmt.Sprintf("vault %s: the grant is for key generation %d, the log is at %d", r.ID, g.KeyGeneration, gen), nil)
	}
	// The key must be the one the members committed to in the log: a key
	// the server chose never is, however it was sealed or signed.
	if err := log.CheckVaultKey(gen, key); err != nil {
		return Vault{}, Invitation{}, tamper(fmt.Sprintf("vault %s: vault key of generation %d", r.ID, gen), err)
	}
	ch := grant.Chain{VaultID: r.ID, Wrapped: map[uint64]string{}, Commitments: log.Commitments()}
	for _, cr := range r.Chain {
		if _, dup := ch.Wrapped[cr.Generation]; dup {
			return Vault{}, Invitation{}, tamper(fmt.Sprintf("vault %s: two older keys for generation %d", r.ID, cr.Generation), nil)
		}
		ch.Wrapped[cr.Generation] = cr.Wrapped
	}
	ks, err := ch.Keys(gen, key, 1)
	if err != nil {
		return Vault{}, Invitation{}, tamper(fmt.Sprintf("vault %s: older vault keys", r.ID), err)
	}

	// The manifest: signed by a writer of the log, no older than the one
	// this device saw, and naming the vault row's revision.
	if r.Manifest == nil {
		return Vault{}, Invitation{}, tamper(fmt.Sprintf("vault %s: a membership log without a manifest", r.ID), nil)
	}
	man, err := manifest.ParseRow(r.Manifest.Manifest, r.Manifest.Signature, r.Manifest.SignerID)
	if err != nil {
		return Vault{}, Invitation{}, tamper(fmt.Sprintf("vault %s: manifest", r.ID), err)
	}
	if man.Manifest.Version != r.Manifest.Version {
		return Vault{}, Invitation{}, tamper(fmt.Sprintf("vault %s: the manifest row and its message disagree on the version", r.ID), nil)
	}
	if err := verifyManifest(man, log, rows, ids, c.state.ManifestSeen(r.ID)); err != nil {
		return Vault{}, Invitation{}, checkErr(fmt.Sprintf("vault %s: manifest", r.ID), err)
	}
	if err := manifest.CheckRollback(man, c.state.ManifestSeen(r.ID)); err != nil {
		return Vault{}, Invitation{}, checkErr(fmt.Sprintf("vault %s: manifest", r.ID), err)
	}
	if man.Manifest.MetaRevision != r.Revision {
		return Vault{}, Invitation{}, tamper(fmt.Sprintf("vault %s: the vault row is at revision %d, its manifest names %d", r.ID, r.Revision, man.Manifest.MetaRevision), nil)
	}
	st := &vaultState{gen: gen, keys: ks, rows: rows, ids: ids, log: log, man: &man, people: people}
	v, err := c.openMeta(r.vaultRow, member.Role, st)
	if err != nil {
		return Vault{}, Invitation{}, err
	}
	c.state.SetLogHead(r.ID, log.Head())
	c.state.SetManifestSeen(r.ID, man.Seen())
	return v, Invitation{}, nil
}

// granterKey is the key of a grant's signer: a member who was an owner or
// admin at some entry since the current key generation began (only they
// can have sealed its key to anybody; one who left since still did).
func granterKey(log *memberlog.State, rows []memberlog.Signed, granter uuid.UUID) (ed25519.PublicKey, error) {
	start := uint64(1)
	for i := len(rows) - 1; i >= 0; i-- {
		if op := rows[i].Entry.Op; op == memberlog.OpCreate || op == memberlog.OpRemove || op == memberlog.OpRotate {
			start = rows[i].Entry.Seq
			break
		}
	}
	for seq := log.Head().Seq; seq >= start && seq > 0; seq-- {
		if k, role, err := log.KeyAt(granter, seq); err == nil && (role == "owner" || role == "admin") {
			return k, nil
		}
	}
	return nil, fmt.Errorf("signed by %s, who was no owner or admin of the vault since its key generation began", granter)
}

// verifyManifest checks a manifest against the replayed log
// (manifest.Verify), with one allowance for leaves (docs/crypto.md §10): a
// manifest made stale only by members leaving is still the vault's
// manifest, if each leave of its own signer names its hash (the leaver's
// last manifest, bound into the entry the leaver signed) or this device
// verified exactly this manifest before (remembered). A leave is signed by
// the member who leaves, who can no longer sign a manifest, so until an
// owner or admin rotates the key (and signs a new one) the one before the
// leave stands; a removal, a role change or a rotation is always signed
// together with a new manifest. Anything the member who left signs
// afterwards has another hash and stays refused.
func verifyManifest(s manifest.Signed, log *memberlog.State, rows []memberlog.Signed, ids []trust.Identity, remembered manifest.Seen) error {
	err := manifest.Verify(s, log)
	if !errors.Is(err, manifest.ErrStale) {
		return err
	}
	at := s.Manifest.LogSeq
	if at == 0 || at > uint64(len(rows)) {
		return err
	}
	h := s.Hash()
	seen := remembered.Version != 0 && s.Seen() == remembered
	for _, r := range rows[at:] {
		switch r.Entry.Op {
		case memberlog.OpAdd:
		case memberlog.OpLeave:
			if r.Entry.Subject == s.Signer && r.Entry.Commitment != h && !seen {
				return err
			}
		default:
			return err
		}
	}
	then, rerr := memberlog.Replay(log.VaultID(), rows[:at], ids)
	if rerr != nil {
		return rerr
	}
	return manifest.Verify(s, then)
}

// openMeta decrypts a vault's name with whichever of its keys it is sealed
// under (the key commitment of the envelope tells), after the rollback
// check of its revision.
func (c *Client) openMeta(r vaultRow, role string, st *vaultState) (Vault, error) {
	if seen := c.state.Seen(r.ID); r.Revision < seen {
		return Vault{}, fmt.Errorf("vault %s: revision %d after %d: %w", r.ID, r.Revision, seen, ErrRollback)
	}
	ctx := envelope.Context{Type: envelope.VaultMeta, VaultID: r.ID, ObjectID: r.ID, Revision: r.Revision}
	gens := make([]uint64, 0, len(st.keys))
	for g := range st.keys {
		gens = append(gens, g)
	}
	slices.Sort(gens)
	slices.Reverse(gens)
	var plain []byte
	err := envelope.ErrTampered
	for _, g := range gens {
		if plain, err = envelope.OpenString(st.keys[g], ctx, r.Meta); err == nil || !errors.Is(err, envelope.ErrTampered) {
			break
		}
	}
	if err != nil {
		return Vault{}, tamper(fmt.Sprintf("vault %s: name", r.ID), err)
	}
	var m vaultMeta
	if err := json.Unmarshal(plain, &m); err != nil {
		return Vault{}, tamper(fmt.Sprintf("vault %s: name", r.ID), err)
	}
	c.state.See(r.ID, r.Revision)
	return Vault{ID: r.ID, Name: m.Name, Role: role, Revision: r.Revision, CreatedAt: r.CreatedAt, OwnerID: r.OwnerID,
		Generation: st.gen, st: st}, nil
}

// openLegacy opens a vault this account made before membership logs
// existed: its own version 1 grant, no log, no manifest.
func (c *Client) openLegacy(r stateRow) (Vault, error) {
	s := c.Session()
	g := r.Grant
	if g.GrantVersion != 1 || g.KeyGeneration != 1 || r.OwnerID != s.UserID || g.Role != "owner" || r.Manifest != nil || len(r.Chain) > 0 {
		return Vault{}, tamper(fmt.Sprintf("vault %s: a vault without a membership log must be this account's own, with its version 1 grant", r.ID), nil)
	}
	v1 := grant.Grant{VaultID: r.ID, UserID: s.UserID, GrantedBy: s.UserID, Role: g.Role, SealedKey: g.SealedKey}
	if err := grant.Verify(v1, g.Signature, s.Keys.Ed25519.Public().(ed25519.PublicKey)); err != nil {
		return Vault{}, tamper(fmt.Sprintf("vault %s: grant signature", r.ID), err)
	}
	key, err := grant.OpenVaultKey(s.Keys.X25519, r.ID, s.UserID, g.SealedKey)
	if err != nil {
		return Vault{}, tamper(fmt.Sprintf("vault %s: vault key", r.ID), err)
	}
	// The device saw a log for it: the server hides it now.
	if h := c.state.LogHead(r.ID); h.Seq > 0 {
		return Vault{}, fmt.Errorf("vault %s: the membership log this device saw is gone: %w", r.ID, ErrRollback)
	}
	return c.openMeta(r.vaultRow, "owner", &vaultState{legacy: true, gen: 1, keys: map[uint64][]byte{1: key}})
}
