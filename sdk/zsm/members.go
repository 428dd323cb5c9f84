package zsm

// Sharing a vault: adding members, removing them with a new key
// generation, leaving, rotating and re-encrypting (docs/crypto.md §8, §9).
// Every change is a signed entry of the membership log, written with the
// grants, older keys and manifest it needs in one transaction
// (api.commit_members).

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"zsm.dev/zsm/sdk/grant"
	"zsm.dev/zsm/sdk/manifest"
	"zsm.dev/zsm/sdk/memberlog"
	"zsm.dev/zsm/sdk/trust"
	"zsm.dev/zsm/srpgroup"
)

// ownKeys are this account's public keys, from its own keys.
func (c *Client) ownKeys() PublicKeys {
	s := c.Session()
	pk := PublicKeys{UserID: s.UserID, Identity: s.Identity, X25519: s.Keys.X25519.PublicKey(),
		Ed25519: s.Keys.Ed25519.Public().(ed25519.PublicKey), RecordVersion: 1, Signed: true}
	if s.Keys.XWing != nil {
		pk.XWing, pk.RecordVersion = s.Keys.XWing.PublicKey().Bytes(), 2
	}
	return pk
}

func (c *Client) ownIdentity() trust.Identity {
	s := c.Session()
	return trust.Identity{UserID: s.UserID, Identity: s.Identity, Ed25519Public: s.Keys.Ed25519.Public().(ed25519.PublicKey)}
}

// sealedGrant is a version 2 grant this account made.
type sealedGrant struct {
	UserID     uuid.UUID
	Role       string
	Generation uint64
	KEMID      int
	SealedKey  string
	Signature  string
}

func (g sealedGrant) body() map[string]any {
	return map[string]any{"user_id": g.UserID, "role": g.Role, "sealed_key": g.SealedKey, "signature": g.Signature,
		"key_generation": g.Generation, "kem_id": g.KEMID}
}

// sealGrant seals key, the vault key of generation gen, to pk (to its
// X-Wing key when its record has one, else to its X25519 key) and signs
// the version 2 grant.
func (c *Client) sealGrant(vault uuid.UUID, pk PublicKeys, role string, gen uint64, key []byte) (sealedGrant, error) {
	s := c.Session()
	rk, err := grant.RecipientKey(pk.X25519.Bytes(), pk.XWing)
	if err != nil {
		return sealedGrant{}, err
	}
	sealed, kem, err := grant.SealVaultKeyV2(rk, vault, pk.UserID, gen, key)
	if err != nil {
		return sealedGrant{}, err
	}
	sig, err := grant.SignV2(grant.GrantV2{VaultID: vault, UserID: pk.UserID, GrantedBy: s.UserID, Role: role,
		Generation: gen, KEM: kem, SealedKey: sealed}, s.Keys.Ed25519)
	if err != nil {
		return sealedGrant{}, err
	}
	return sealedGrant{UserID: pk.UserID, Role: role, Generation: gen, KEMID: int(kem), SealedKey: sealed, Signature: sig}, nil
}

// Member is one member of a vault, as the replayed membership log has it.
type Member struct {
	UserID   uuid.UUID
	Identity string // from the member's key record, checked against the logged fingerprint ("" if none was given)
	Role     string
	// Status is what this account's pins say of the member's key: "self",
	// "verified", "tofu", or "unverified" (trusted through the log only).
	Status          IdentityStatus
	SafetyNumber    string
	AddedBy         uuid.UUID
	AddedByIdentity string
	AddedAt         time.Time // as claimed by whoever added them
}

// StatusSelf marks this account in a member list.
const StatusSelf IdentityStatus = "self"

// Members lists v's members, derived only by replaying its membership log
// (the server's grants are access control, not a member list).
func (c *Client) Members(ctx context.Context, v Vault) ([]Member, error) {
	if v.st == nil {
		return nil, fmt.Errorf("vault %q was not opened by this client", v.Name)
	}
	if err := c.prepare(ctx, &v); err != nil {
		return nil, err
	}
	pins, err := c.pins(ctx)
	if err != nil {
		return nil, err
	}
	me := c.Session().UserID
	v.st.mu.Lock()
	log, people := v.st.log, v.st.people
	v.st.mu.Unlock()
	identityOf := func(u uuid.UUID) string {
		for _, p := range people[u] {
			return p.Identity
		}
		return ""
	}
	var out []Member
	for _, m := range log.Members() {
		mi := Member{UserID: m.UserID, Role: m.Role, AddedBy: m.AddedBy, AddedAt: m.AddedAt, AddedByIdentity: identityOf(m.AddedBy),
			Status: StatusUnverified}
		if pk, ok := keysOf(people, m.UserID, m.Fingerprint); ok {
			mi.Identity = pk.Identity
			if fp, err := fingerprintOf(pk); err == nil {
				mi.SafetyNumber = fp.SafetyNumber
			}
		}
		switch p, ok := pins.Vouches(m.UserID, m.Fingerprint); {
		case m.UserID == me:
			mi.Status = StatusSelf
		case ok:
			mi.Status = IdentityStatus(p.Status)
		}
		out = append(out, mi)
	}
	return out, nil
}

// memberManifest is the manifest written with a membership change: the
// contents of prev (no secret changes), at the new log head and its key
// generation.
func memberManifest(prev *manifest.Signed, log *memberlog.State) manifest.Manifest {
	m := prev.Manifest
	h := log.Head()
	m.Version, m.Prev = prev.Manifest.Version+1, prev.Hash()
	m.KeyGeneration, m.LogSeq, m.LogHash = log.Generation(), h.Seq, h.Hash
	return m
}

// memberChange is one membership change to commit.
type memberChange struct {
	entries []memberlog.Signed
	grants  []sealedGrant
	chain   []map[string]any
	deletes []uuid.UUID
	noMan   bool // a leave: the leaver writes no manifest
	// after the commit
	log    *memberlog.State
	newGen uint64
	newKey []byte
	person *PublicKeys // a new member's keys
}

// commitMembers sends a membership change with its manifest, and updates
// v's state after it. A conflict is returned as it is.
func (c *Client) commitMembers(ctx context.Context, v *Vault, prev *manifest.Signed, ch *memberChange) error {
	s := c.Session()
	body := map[string]any{"vault_id": v.ID}
	var entries []map[string]any
	for _, e := range ch.entries {
		m, sig := e.Row()
		entries = append(entries, map[string]any{"seq": e.Entry.Seq, "entry": m, "signature": sig})
	}
	body["log_entries"] = entries
	var grants []map[string]any
	for _, g := range ch.grants {
		grants = append(grants, g.body())
	}
	body["grants"] = orEmpty(grants)
	body["chain"] = orEmpty(ch.chain)
	dels := ch.deletes
	if dels == nil {
		dels = []uuid.UUID{}
	}
	body["delete_user_ids"] = dels
	var signed manifest.Signed
	if !ch.noMan {
		var err error
		if signed, err = manifest.Sign(memberManifest(prev, ch.log), s.UserID, s.Keys.Ed25519); err != nil {
			return err
		}
		body["manifest"] = manifestBody(signed)
	}
	if err := c.rest(ctx, "POST", "/rpc/commit_members", body, nil); err != nil {
		return roleErr(err)
	}
	st := v.st
	st.mu.Lock()
	st.log = ch.log
	st.rows = append(slices.Clip(st.rows), ch.entries...)
	if ch.person != nil {
		st.people = cloneMap(st.people)
		st.people[ch.person.UserID] = append(st.people[ch.person.UserID], *ch.person)
		st.ids = append(slices.Clip(st.ids), trust.Identity{UserID: ch.person.UserID, Identity: ch.person.Identity, Ed25519Public: ch.person.Ed25519})
	}
	if ch.newKey != nil {
		ks := make(map[uint64][]byte, len(st.keys)+1)
		for g, k := range st.keys {
			ks[g] = k
		}
		ks[ch.newGen] = ch.newKey
		st.keys, st.gen = ks, ch.newGen
	}
	if !ch.noMan {
		st.man = &signed
	}
	st.mu.Unlock()
	v.Generation = ch.log.Generation()
	if m, ok := ch.log.Member(s.UserID); ok {
		v.Role = m.Role
	}
	c.state.SetLogHead(v.ID, ch.log.Head())
	if !ch.noMan {
		c.state.SetManifestSeen(v.ID, signed.Seen())
	}
	return nil
}

func cloneMap(m map[uuid.UUID][]PublicKeys) map[uuid.UUID][]PublicKeys {
	out := make(map[uuid.UUID][]PublicKeys, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// manages reports whether role may add, change or remove members of role
// target (docs/crypto.md §9: owners anyone, admins editors and viewers).
func manages(role, target string) bool {
	return role == "owner" || (role == "admin" && (target == "editor" || target == "viewer"))
}

// Share makes identity a member of v with role. The identity's keys must
// be verified (ConfirmIdentity), unless tofu asks to trust them on first
// use (they are then pinned as such); keys that changed since they were
// pinned are refused (ErrKeyChanged). The vault's current key is sealed to
// the member (with their X-Wing key when they have one) and the add entry,
// the grant and the manifest are written together.
func (c *Client) Share(ctx context.Context, v Vault, identity, role string, tofu bool) (Member, error) {
	if !slices.Contains(grant.Roles, role) {
		return Member{}, fmt.Errorf("role %q: use one of owner, admin, editor, viewer", role)
	}
	if !manages(v.Role, role) {
		return Member{}, forbidden(v, "give the role "+role)
	}
	pk, err := c.LookupIdentity(ctx, identity)
	if err != nil {
		return Member{}, err
	}
	if pk.UserID == c.Session().UserID {
		return Member{}, fmt.Errorf("vault %q: you are a member already", v.Name)
	}
	if err := c.trustKeys(ctx, pk, tofu); err != nil {
		return Member{}, err
	}
	return c.addMember(ctx, v, pk, role)
}

// addMember writes the add entry for pk with role, the grant sealing the
// vault's current key to pk, and the manifest, in one transaction,
// retrying when somebody else wrote meanwhile. pk must be verified.
func (c *Client) addMember(ctx context.Context, v Vault, pk PublicKeys, role string) (Member, error) {
	fp, err := pk.fingerprint()
	if err != nil {
		return Member{}, err
	}
	s := c.Session()
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if err := c.prepare(ctx, &v); err != nil {
			return Member{}, err
		}
		prev, err := c.currentManifest(ctx, &v)
		if err != nil {
			return Member{}, err
		}
		log, _, _, _ := v.st.snapshot()
		if _, ok := log.Member(pk.UserID); ok {
			return Member{}, fmt.Errorf("vault %q: %s is a member already: %w", v.Name, pk.Identity, ErrExists)
		}
		next := log.Clone()
		if err := next.AddKeys(trust.Identity{UserID: pk.UserID, Identity: pk.Identity, Ed25519Public: pk.Ed25519}); err != nil {
			return Member{}, err
		}
		entry, err := memberlog.Sign(next.Next(memberlog.OpAdd, pk.UserID, role, fp, [32]byte{}, s.UserID, c.Now()), s.Keys.Ed25519)
		if err != nil {
			return Member{}, err
		}
		if err := next.Apply(entry); err != nil {
			return Member{}, err
		}
		gen, key := v.st.newest()
		g, err := c.sealGrant(v.ID, pk, role, gen, key)
		if err != nil {
			return Member{}, err
		}
		err = c.commitMembers(ctx, &v, prev, &memberChange{entries: []memberlog.Signed{entry}, grants: []sealedGrant{g}, log: next, person: &pk})
		if isConflict(err) {
			if err := c.reopen(ctx, &v); err != nil {
				return Member{}, err
			}
			continue
		}
		if err != nil {
			return Member{}, err
		}
		m := Member{UserID: pk.UserID, Identity: pk.Identity, Role: role, AddedBy: s.UserID, AddedByIdentity: s.Identity,
			AddedAt: entry.Entry.Time(), Status: StatusTOFU}
		if p, ok := c.pinCacheVouch(pk.UserID, fp); ok {
			m.Status = IdentityStatus(p.Status)
		}
		if f, err := fingerprintOf(pk); err == nil {
			m.SafetyNumber = f.SafetyNumber
		}
		return m, nil
	}
	return Member{}, fmt.Errorf("vault %q: %w", v.Name, ErrConflict)
}

// ChangeRole gives identity, a member of v, the role role: a change_role
// entry, the member's grant of the current key generation signed again for
// the new role (the grant's signature covers the role, and opening checks
// it against the log), and the manifest, in one transaction. An owner
// changes anyone's role; an admin only between editor and viewer. The
// vault's creator keeps its role, and the last owner stays an owner. No new
// key generation is made: a member whose role shrinks can still read what
// it could (unshare and share again to cut that off).
func (c *Client) ChangeRole(ctx context.Context, v Vault, identity, role string) (Member, error) {
	if !slices.Contains(grant.Roles, role) {
		return Member{}, fmt.Errorf("role %q: use one of owner, admin, editor, viewer", role)
	}
	s := c.Session()
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if err := c.prepare(ctx, &v); err != nil {
			return Member{}, err
		}
		m, pk, err := c.memberByIdentity(v, identity)
		if err != nil {
			return Member{}, err
		}
		switch {
		case m.Role == role:
			return Member{}, fmt.Errorf("vault %q: %s is %s %s already: %w", v.Name, pk.Identity, article(role), role, ErrExists)
		case m.UserID == s.UserID:
			return Member{}, fmt.Errorf("vault %q: you cannot change your own role: %w", v.Name, ErrForbidden)
		case m.UserID == v.OwnerID:
			return Member{}, fmt.Errorf("vault %q: its creator keeps the role owner: %w", v.Name, ErrForbidden)
		case !manages(v.Role, m.Role) || !manages(v.Role, role):
			return Member{}, forbidden(v, "change "+article(m.Role)+" "+m.Role+" to "+role)
		}
		if !pk.Signed {
			return Member{}, tamper(fmt.Sprintf("vault %q: no verified key record for member %s", v.Name, pk.Identity), nil)
		}
		pins, err := c.pins(ctx)
		if err != nil {
			return Member{}, err
		}
		// Sealed to with the newest record this account saw for the member,
		// never an older one (no downgrade to X25519).
		if p, ok := pins.Vouches(m.UserID, m.Fingerprint); ok && p.RecordVersion == 2 && pk.RecordVersion != 2 {
			return Member{}, tamper(fmt.Sprintf("vault %q: member %s shows an older key record than the one pinned", v.Name, pk.Identity), trust.ErrDowngrade)
		}
		prev, err := c.currentManifest(ctx, &v)
		if err != nil {
			return Member{}, err
		}
		log, _, _, _ := v.st.snapshot()
		next := log.Clone()
		entry, err := memberlog.Sign(next.Next(memberlog.OpChangeRole, m.UserID, role, trust.Fingerprint{}, [32]byte{}, s.UserID, c.Now()), s.Keys.Ed25519)
		if err != nil {
			return Member{}, err
		}
		if err := next.Apply(entry); err != nil {
			return Member{}, fmt.Errorf("vault %q: %w", v.Name, err)
		}
		gen, key := v.st.newest()
		g, err := c.sealGrant(v.ID, pk, role, gen, key)
		if err != nil {
			return Member{}, err
		}
		err = c.commitMembers(ctx, &v, prev, &memberChange{entries: []memberlog.Signed{entry}, grants: []sealedGrant{g}, log: next})
		if isConflict(err) {
			if err := c.reopen(ctx, &v); err != nil {
				return Member{}, err
			}
			continue
		}
		if err != nil {
			return Member{}, err
		}
		out := Member{UserID: m.UserID, Identity: pk.Identity, Role: role, AddedBy: m.AddedBy, AddedAt: m.AddedAt, Status: StatusUnverified}
		if p, ok := pins.Vouches(m.UserID, m.Fingerprint); ok {
			out.Status = IdentityStatus(p.Status)
		}
		if f, err := fingerprintOf(pk); err == nil {
			out.SafetyNumber = f.SafetyNumber
		}
		return out, nil
	}
	return Member{}, fmt.Errorf("vault %q: %w", v.Name, ErrConflict)
}

func (c *Client) pinCacheVouch(u uuid.UUID, fp trust.Fingerprint) (trust.Pin, bool) {
	c.mu.Lock()
	set := c.pinCache
	c.mu.Unlock()
	if set == nil {
		return trust.Pin{}, false
	}
	return set.Vouches(u, fp)
}

// memberByIdentity finds the current member with identity in v's log.
func (c *Client) memberByIdentity(v Vault, identity string) (memberlog.Member, PublicKeys, error) {
	ident, err := srpgroup.ParseIdentity(identity) // the SDK's edge: normalized here, once
	if err != nil {
		return memberlog.Member{}, PublicKeys{}, fmt.Errorf("identity: %w", err)
	}
	id := ident.String()
	v.st.mu.Lock()
	log, people := v.st.log, v.st.people
	v.st.mu.Unlock()
	for _, m := range log.Members() {
		if pk, ok := keysOf(people, m.UserID, m.Fingerprint); ok && pk.Identity == id {
			return m, pk, nil
		}
	}
	return memberlog.Member{}, PublicKeys{}, fmt.Errorf("vault %q: %s is not a member: %w", v.Name, id, ErrNotFound)
}

// newGeneration makes a new key generation for the members of next (the log after
// a remove or rotate entry): a fresh key, committed to in entry, sealed to
// every member with the keys the log records for them, and the previous key
// wrapped under it.
func (c *Client) newGeneration(ctx context.Context, v *Vault, log *memberlog.State, op memberlog.Op, subject uuid.UUID) (*memberChange, error) {
	s := c.Session()
	gen, oldKey := v.st.newest()
	if gen != log.Generation() {
		return nil, tamper(fmt.Sprintf("vault %q: the keys held are of generation %d, the log is at %d", v.Name, gen, log.Generation()), nil)
	}
	newKey, err := grant.NewVaultKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	commit, err := grant.KeyCommitment(newKey, v.ID, gen+1)
	if err != nil {
		return nil, err
	}
	next := log.Clone()
	entry, err := memberlog.Sign(next.Next(op, subject, "", trust.Fingerprint{}, commit, s.UserID, c.Now()), s.Keys.Ed25519)
	if err != nil {
		return nil, err
	}
	if err := next.Apply(entry); err != nil {
		return nil, err
	}
	v.st.mu.Lock()
	people := v.st.people
	v.st.mu.Unlock()
	pins, err := c.pins(ctx)
	if err != nil {
		return nil, err
	}
	ch := &memberChange{entries: []memberlog.Signed{entry}, log: next, newGen: gen + 1, newKey: newKey}
	for _, m := range next.Members() {
		pk, ok := keysOf(people, m.UserID, m.Fingerprint)
		if m.UserID == s.UserID {
			pk, ok = c.ownKeys(), true
		}
		if !ok || !pk.Signed {
			return nil, tamper(fmt.Sprintf("vault %q: no verified key record for member %s", v.Name, m.UserID), nil)
		}
		// A member this account pinned is sealed to with the newest record
		// it saw for them, never an older one (no downgrade to X25519).
		if p, ok := pins.Vouches(m.UserID, m.Fingerprint); ok && p.RecordVersion == 2 && pk.RecordVersion != 2 {
			return nil, tamper(fmt.Sprintf("vault %q: member %s shows an older key record than the one pinned", v.Name, pk.Identity), trust.ErrDowngrade)
		}
		g, err := c.sealGrant(v.ID, pk, m.Role, gen+1, newKey)
		if err != nil {
			return nil, err
		}
		ch.grants = append(ch.grants, g)
	}
	wrapped, err := grant.WrapPrevious(newKey, v.ID, gen, oldKey, rand.Reader)
	if err != nil {
		return nil, err
	}
	ch.chain = []map[string]any{{"generation": gen, "wrapped": wrapped}}
	return ch, nil
}

// Unshare removes identity from v and makes a new key generation for the
// remaining members, in one transaction: the remove entry (committing to
// the new key), the new key sealed to every remaining member, the old key
// wrapped under it, the removed member's grant deleted, and the manifest.
// The removed member holds nothing that opens what is written afterwards.
// Secrets written before stay under their old generation until Rekey.
func (c *Client) Unshare(ctx context.Context, v Vault, identity string) error {
	me := c.Session().UserID
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if err := c.prepare(ctx, &v); err != nil {
			return err
		}
		m, _, err := c.memberByIdentity(v, identity)
		if err != nil {
			return err
		}
		switch {
		case m.UserID == me:
			return fmt.Errorf("vault %q: to stop being a member yourself, leave it", v.Name)
		case m.UserID == v.OwnerID:
			return fmt.Errorf("vault %q: its creator cannot be removed: %w", v.Name, ErrForbidden)
		case !manages(v.Role, m.Role):
			return forbidden(v, "remove "+article(m.Role)+" "+m.Role)
		}
		prev, err := c.currentManifest(ctx, &v)
		if err != nil {
			return err
		}
		log, _, _, _ := v.st.snapshot()
		ch, err := c.newGeneration(ctx, &v, log, memberlog.OpRemove, m.UserID)
		if err != nil {
			return err
		}
		ch.deletes = []uuid.UUID{m.UserID}
		err = c.commitMembers(ctx, &v, prev, ch)
		if isConflict(err) {
			if err := c.reopen(ctx, &v); err != nil {
				return err
			}
			continue
		}
		return err
	}
	return fmt.Errorf("vault %q: %w", v.Name, ErrConflict)
}

// rotate makes a new key generation for v's members (a rotate entry),
// after a member left or when asked. Owners and admins rotate.
func (c *Client) rotate(ctx context.Context, v *Vault) error {
	if v.Role != "owner" && v.Role != "admin" {
		return forbidden(*v, "rotate its key")
	}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		prev, err := c.currentManifest(ctx, v)
		if err != nil {
			return err
		}
		log, _, _, _ := v.st.snapshot()
		ch, err := c.newGeneration(ctx, v, log, memberlog.OpRotate, c.Session().UserID)
		if err != nil {
			return err
		}
		err = c.commitMembers(ctx, v, prev, ch)
		if isConflict(err) {
			if err := c.reopen(ctx, v); err != nil {
				return err
			}
			if log, _, _, _ := v.st.snapshot(); !log.RotationDue() {
				return nil // somebody else rotated meanwhile
			}
			continue
		}
		return err
	}
	return fmt.Errorf("vault %q: %w", v.Name, ErrConflict)
}

// Leave ends this account's membership of v: a leave entry signed by this
// account and its grant deleted, in one transaction. The next owner or
// admin to open the vault rotates its key. The vault's creator cannot
// leave (it deletes the vault instead), nor can the last owner.
func (c *Client) Leave(ctx context.Context, v Vault) error {
	s := c.Session()
	if v.OwnerID == s.UserID {
		return fmt.Errorf("vault %q: you created it and cannot leave it; delete it instead (zsm vault delete): %w", v.Name, ErrForbidden)
	}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if err := c.prepare(ctx, &v); err != nil {
			return err
		}
		// The newest manifest this account verified: named in the leave, so
		// that it stays the vault's manifest for the others until an owner
		// or admin writes the next, and nothing this account could sign
		// after leaving is taken for it.
		man, err := c.currentManifest(ctx, &v)
		if err != nil {
			return err
		}
		log, _, _, _ := v.st.snapshot()
		next := log.Clone()
		entry, err := memberlog.Sign(next.Next(memberlog.OpLeave, s.UserID, "", trust.Fingerprint{}, man.Hash(), s.UserID, c.Now()), s.Keys.Ed25519)
		if err != nil {
			return err
		}
		if err := next.Apply(entry); err != nil {
			return fmt.Errorf("vault %q: %w", v.Name, err)
		}
		err = c.commitMembers(ctx, &v, nil, &memberChange{entries: []memberlog.Signed{entry}, deletes: []uuid.UUID{s.UserID}, noMan: true, log: next})
		if isConflict(err) {
			if err := c.reopen(ctx, &v); err != nil {
				return err
			}
			continue
		}
		return err
	}
	return fmt.Errorf("vault %q: %w", v.Name, ErrConflict)
}

// RekeyResult says what Rekey did.
type RekeyResult struct {
	Generation  uint64 // the newest generation, which everything is sealed under now
	Rotated     bool   // a new generation was made
	Reencrypted int    // secrets written again under it
}

// rekeyBudget bounds the ciphertext one re-encrypting write carries (the
// gateway accepts 1 MiB per request).
const rekeyBudget = 600 << 10

// Rekey makes a new key generation (owners and admins) and writes every
// secret sealed under an older one again under the newest, as new
// revisions (and, for owners and admins, the vault's name), in as few
// writes as the request size allows. After it, nothing of the vault is
// readable with an older generation's key. Editors re-encrypt under the
// newest generation without making a new one.
func (c *Client) Rekey(ctx context.Context, v Vault) (RekeyResult, error) {
	var res RekeyResult
	if !canWrite(v.Role) {
		return res, forbidden(v, "re-encrypt it")
	}
	before := v.Generation
	if err := c.prepare(ctx, &v); err != nil {
		return res, err
	}
	// (prepare rotates when a member left; one new generation is enough.)
	if log, _, _, _ := v.st.snapshot(); (v.Role == "owner" || v.Role == "admin") && log.Generation() == before {
		if err := c.rotate(ctx, &v); err != nil {
			return res, err
		}
	}
	log, _, _, _ := v.st.snapshot()
	res.Rotated = log.Generation() > before
	metaDone := v.Role != "owner" && v.Role != "admin"
	for {
		done, count := false, 0
		_, err := c.commitSecrets(ctx, &v, func(l *listing) (*secretsPlan, error) {
			gen, key := v.st.newest()
			p := &secretsPlan{}
			size := 0
			for _, sec := range l.secrets {
				if sec.Generation == gen {
					continue
				}
				ct, g, err := c.seal(v, sec.ID, sec.Revision+1, sec.Name, sec.Value)
				if err != nil {
					return nil, err
				}
				if size > 0 && size+len(ct) > rekeyBudget {
					break
				}
				size += len(ct)
				n := sec
				n.Revision, n.Generation = sec.Revision+1, g
				p.upserts = append(p.upserts, upsert{secret: n, ciphertext: ct})
			}
			if !metaDone {
				rev := l.metaRevision + 1
				meta, err := c.sealMeta(v.ID, v.Name, rev, key)
				if err != nil {
					return nil, err
				}
				p.meta = &metaChange{meta: meta, revision: rev}
			}
			done, count = len(p.upserts) == 0 && p.meta == nil, len(p.upserts)
			return p, nil
		})
		if err != nil {
			return res, err
		}
		if done {
			break
		}
		metaDone = true
		res.Reencrypted += count
	}
	l, err := c.verifiedListing(ctx, &v)
	if err != nil {
		return res, err
	}
	res.Generation = v.Generation
	for _, sec := range l.secrets {
		if sec.Generation != res.Generation {
			return res, fmt.Errorf("vault %q: secret %q is still under generation %d", v.Name, sec.Name, sec.Generation)
		}
	}
	return res, nil
}
