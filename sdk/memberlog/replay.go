package memberlog

import (
	"cmp"
	"crypto/ed25519"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/google/uuid"

	"zsm.dev/zsm/sdk/grant"
	"zsm.dev/zsm/sdk/trust"
)

// Member is one member of a vault, as the replayed log has it.
type Member struct {
	UserID        uuid.UUID
	Role          string
	Fingerprint   trust.Fingerprint // logged when the member was added
	Ed25519Public ed25519.PublicKey // the verified key with that fingerprint, if one was given
	AddedBy       uuid.UUID         // the signer of the create or add entry
	AddedSeq      uint64
	AddedAt       time.Time // as claimed by that signer
}

// Head identifies a log by its last entry. The client remembers the head it
// last accepted per vault.
type Head struct {
	Seq  uint64
	Hash [HashSize]byte
}

// span is one stretch of a user's membership: from entry Seq on, Role ("" =
// not a member) with fingerprint FP.
type span struct {
	seq  uint64
	role string
	fp   trust.Fingerprint
}

type keyRef struct {
	user uuid.UUID
	fp   trust.Fingerprint
}

// State is a replayed log. It is built only by applying entries in order
// ([Replay], [State.Apply]), each checked against every rule of
// docs/crypto.md §9.
type State struct {
	vaultID     uuid.UUID
	keys        map[keyRef]ed25519.PublicKey // verified key records, by (user, fingerprint)
	keyed       map[uuid.UUID]bool           // users with at least one verified key record
	members     map[uuid.UUID]Member
	history     map[uuid.UUID][]span
	hashes      [][HashSize]byte // hash of entry seq at index seq-1
	gens        []uint64         // generation after entry seq at index seq-1
	commitments [][HashSize]byte // commitment of generation g at index g-1
	lastCut     uint64           // seq of the newest remove, leave, change_role or rotate
	leftSince   bool             // a leave since the last new generation
}

// New returns the state of an empty log of vault vaultID, with the verified
// key records of its signers and members (see [State.AddKeys]).
func New(vaultID uuid.UUID, keys ...trust.Identity) (*State, error) {
	s := &State{
		vaultID: vaultID, keys: map[keyRef]ed25519.PublicKey{}, keyed: map[uuid.UUID]bool{},
		members: map[uuid.UUID]Member{}, history: map[uuid.UUID][]span{},
	}
	if err := s.AddKeys(keys...); err != nil {
		return nil, err
	}
	return s, nil
}

// AddKeys adds verified key records: identities whose key records' own
// signatures the caller checked. The replay uses the one whose fingerprint
// the log recorded for a member; a record with another fingerprint is never
// used for that member.
func (s *State) AddKeys(keys ...trust.Identity) error {
	for _, k := range keys {
		fp, err := k.Fingerprint()
		if err != nil {
			return fmt.Errorf("memberlog: key of %v: %w", k.UserID, err)
		}
		s.keys[keyRef{k.UserID, fp}] = k.Ed25519Public
		s.keyed[k.UserID] = true
	}
	return nil
}

// Replay applies rows in order to an empty log of vaultID and returns the
// state, or the first rule an entry breaks. An empty log is [ErrBadCreate]:
// every shared vault starts with its creator's entry.
func Replay(vaultID uuid.UUID, rows []Signed, keys []trust.Identity) (*State, error) {
	s, err := New(vaultID, keys...)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%w: empty log", ErrBadCreate)
	}
	for _, r := range rows {
		if err := s.Apply(r); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Clone returns a copy of s that Apply can change without changing s.
func (s *State) Clone() *State {
	c := *s
	c.keys = maps.Clone(s.keys)
	c.keyed = maps.Clone(s.keyed)
	c.members = maps.Clone(s.members)
	c.history = make(map[uuid.UUID][]span, len(s.history))
	for u, h := range s.history {
		c.history[u] = slices.Clone(h)
	}
	c.hashes = slices.Clone(s.hashes)
	c.gens = slices.Clone(s.gens)
	c.commitments = slices.Clone(s.commitments)
	return &c
}

func (s *State) seq() uint64 { return uint64(len(s.hashes)) }

// Generation is the key generation in force at the head (0 for an empty
// log).
func (s *State) Generation() uint64 { return uint64(len(s.commitments)) }

// Next returns the next entry for op with the chain fields filled in: this
// vault, the next seq, the head's hash, and the generation (the current one,
// or the next for remove and rotate). The caller signs it ([Sign]) and may
// check it with Apply on a [State.Clone] before sending.
func (s *State) Next(op Op, subject uuid.UUID, role string, fp trust.Fingerprint, commitment [HashSize]byte, signer uuid.UUID, at time.Time) Entry {
	e := Entry{
		VaultID: s.vaultID, Seq: s.seq() + 1, Op: op, Subject: subject, Role: role, SubjectFP: fp,
		Generation: max(s.Generation(), 1), Commitment: commitment, Signer: signer, UnixMilli: uint64(at.UnixMilli()),
	}
	if n := len(s.hashes); n > 0 {
		e.Prev = s.hashes[n-1]
	}
	if op == OpRemove || op == OpRotate {
		e.Generation = s.Generation() + 1
	}
	return e
}

// key returns the verified Ed25519 key of user with fingerprint fp:
// [ErrUnknownSigner] if no record of the user was given, [ErrKeyMismatch] if
// the records given have other fingerprints (a substituted record).
func (s *State) key(user uuid.UUID, fp trust.Fingerprint, seq uint64) (ed25519.PublicKey, error) {
	if k, ok := s.keys[keyRef{user, fp}]; ok {
		return k, nil
	}
	if s.keyed[user] {
		return nil, fmt.Errorf("%w: seq %d, user %v", ErrKeyMismatch, seq, user)
	}
	return nil, fmt.Errorf("%w: seq %d, user %v", ErrUnknownSigner, seq, user)
}

// Apply checks r against every rule of docs/crypto.md §9 at this point of
// the log and, if it passes, appends it. On error s is unchanged.
func (s *State) Apply(r Signed) error {
	e := r.Entry
	seq := s.seq() + 1
	// The message must be the entry: a row whose parsed fields and bytes
	// disagree (possible only if built by hand) is malformed.
	if m, err := e.Marshal(); err != nil {
		return err
	} else if string(m) != string(r.Message) {
		return fmt.Errorf("%w: message and entry differ", ErrMalformed)
	}
	if len(r.Signature) != ed25519.SignatureSize {
		return fmt.Errorf("%w: signature of %d bytes", ErrMalformed, len(r.Signature))
	}

	// Chain: this vault, the next seq, the previous entry's hash.
	if e.VaultID != s.vaultID {
		return fmt.Errorf("%w: seq %d names vault %v", ErrWrongVault, e.Seq, e.VaultID)
	}
	if e.Seq != seq {
		return fmt.Errorf("%w: seq %d where %d comes next", ErrBrokenChain, e.Seq, seq)
	}
	var prev [HashSize]byte
	if seq > 1 {
		prev = s.hashes[seq-2]
	}
	if e.Prev != prev {
		return fmt.Errorf("%w: seq %d does not name the hash of entry %d", ErrBrokenChain, seq, seq-1)
	}

	// Creation: seq 1 and only seq 1, self-signed by an owner at
	// generation 1.
	if (seq == 1) != (e.Op == OpCreate) {
		return fmt.Errorf("%w: seq %d is %v", ErrBadCreate, seq, e.Op)
	}
	var signerKey ed25519.PublicKey
	var signerRole string
	var err error
	if e.Op == OpCreate {
		if e.Subject != e.Signer || e.Role != "owner" || e.Generation != 1 {
			return fmt.Errorf("%w: subject, signer, role owner and generation 1 must agree", ErrBadCreate)
		}
		// Self-signed: the key is the one whose fingerprint the entry
		// names. Who the creator is must then be vouched for by the trust
		// anchor ([State.Anchor]).
		if signerKey, err = s.key(e.Signer, e.SubjectFP, seq); err != nil {
			return err
		}
		signerRole = "owner"
	} else {
		m, ok := s.members[e.Signer]
		if !ok {
			return fmt.Errorf("%w: signer %v at seq %d", ErrNotMember, e.Signer, seq)
		}
		if signerKey, err = s.key(e.Signer, m.Fingerprint, seq); err != nil {
			return err
		}
		signerRole = m.Role
	}
	if !ed25519.Verify(signerKey, r.Message, r.Signature) {
		return fmt.Errorf("%w: seq %d", ErrBadSignature, seq)
	}

	// Membership, authority, the last owner, the generation.
	if err := s.rules(e, signerRole); err != nil {
		return fmt.Errorf("seq %d (%v): %w", seq, e.Op, err)
	}

	// All checks passed: apply.
	h := r.Hash()
	s.hashes = append(s.hashes, h)
	switch e.Op {
	case OpCreate, OpAdd:
		s.members[e.Subject] = Member{
			UserID: e.Subject, Role: e.Role, Fingerprint: e.SubjectFP, Ed25519Public: s.keys[keyRef{e.Subject, e.SubjectFP}],
			AddedBy: e.Signer, AddedSeq: seq, AddedAt: e.Time(),
		}
		s.history[e.Subject] = append(s.history[e.Subject], span{seq, e.Role, e.SubjectFP})
	case OpChangeRole:
		m := s.members[e.Subject]
		m.Role = e.Role
		s.members[e.Subject] = m
		s.history[e.Subject] = append(s.history[e.Subject], span{seq, e.Role, m.Fingerprint})
	case OpRemove, OpLeave:
		delete(s.members, e.Subject)
		s.history[e.Subject] = append(s.history[e.Subject], span{seq: seq})
	}
	if e.Op.newGeneration() {
		s.commitments = append(s.commitments, e.Commitment)
		s.leftSince = false
	}
	if e.Op == OpLeave {
		s.leftSince = true
	}
	if e.Op == OpRemove || e.Op == OpLeave || e.Op == OpChangeRole || e.Op == OpRotate {
		s.lastCut = seq
	}
	s.gens = append(s.gens, e.Generation)
	return nil
}

// manages reports whether a member of role may add, change or remove a
// member of role target (or give that role): an owner anyone, an admin only
// editors and viewers.
func manages(role, target string) bool {
	switch role {
	case "owner":
		return true
	case "admin":
		return target == "editor" || target == "viewer"
	}
	return false
}

func (s *State) owners() int {
	n := 0
	for _, m := range s.members {
		if m.Role == "owner" {
			n++
		}
	}
	return n
}

// rules checks membership, authority, the last owner and the generation of
// e, signed by a member of signerRole.
func (s *State) rules(e Entry, signerRole string) error {
	subject, isMember := s.members[e.Subject]
	gen := s.Generation()
	wantGen := gen
	switch e.Op {
	case OpCreate:
		wantGen = 1
	case OpAdd:
		if isMember {
			return fmt.Errorf("%w: %v", ErrAlreadyMember, e.Subject)
		}
		if !manages(signerRole, e.Role) {
			return fmt.Errorf("%w: %s may not add a member as %s", ErrNoAuthority, signerRole, e.Role)
		}
	case OpChangeRole:
		if !isMember {
			return fmt.Errorf("%w: %v", ErrNotMember, e.Subject)
		}
		if !manages(signerRole, subject.Role) || !manages(signerRole, e.Role) {
			return fmt.Errorf("%w: %s may not change %s to %s", ErrNoAuthority, signerRole, subject.Role, e.Role)
		}
		if subject.Role == "owner" && e.Role != "owner" && s.owners() == 1 {
			return fmt.Errorf("%w: demoting the last owner", ErrLastOwner)
		}
	case OpRemove:
		if !isMember {
			return fmt.Errorf("%w: %v", ErrNotMember, e.Subject)
		}
		if !manages(signerRole, subject.Role) {
			return fmt.Errorf("%w: %s may not remove a %s", ErrNoAuthority, signerRole, subject.Role)
		}
		if subject.Role == "owner" && s.owners() == 1 {
			return fmt.Errorf("%w: removing the last owner", ErrLastOwner)
		}
		wantGen = gen + 1
	case OpRotate:
		if e.Subject != e.Signer {
			return ErrBadSubject
		}
		if signerRole != "owner" && signerRole != "admin" {
			return fmt.Errorf("%w: a %s may not rotate", ErrNoAuthority, signerRole)
		}
		wantGen = gen + 1
	case OpLeave:
		if e.Subject != e.Signer {
			return ErrBadSubject
		}
		if subject.Role == "owner" && s.owners() == 1 {
			return fmt.Errorf("%w: the last owner leaving", ErrLastOwner)
		}
	}
	if e.Generation != wantGen {
		return fmt.Errorf("%w: %d where %d is due", ErrGeneration, e.Generation, wantGen)
	}
	return nil
}

// Head returns the seq and hash of the last entry.
func (s *State) Head() Head {
	n := len(s.hashes)
	if n == 0 {
		return Head{}
	}
	return Head{Seq: uint64(n), Hash: s.hashes[n-1]}
}

// CheckHead checks the log against the head this device remembers for the
// vault (the zero Head if none): a log shorter than it is [ErrRollback]; one
// whose entry at the remembered seq has another hash is [ErrFork]. Only a
// log that extends the remembered head passes.
func (s *State) CheckHead(remembered Head) error {
	if remembered.Seq == 0 {
		return nil
	}
	if s.seq() < remembered.Seq {
		return fmt.Errorf("%w: %d entries, %d seen", ErrRollback, s.seq(), remembered.Seq)
	}
	if s.hashes[remembered.Seq-1] != remembered.Hash {
		return fmt.Errorf("%w: at seq %d", ErrFork, remembered.Seq)
	}
	return nil
}

// Members returns the current members, in the order they were added.
func (s *State) Members() []Member {
	out := slices.Collect(maps.Values(s.members))
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.AddedSeq, b.AddedSeq) })
	return out
}

// Member returns the current membership of user.
func (s *State) Member(user uuid.UUID) (Member, bool) {
	m, ok := s.members[user]
	return m, ok
}

// RoleAt returns user's role and logged fingerprint just after entry seq;
// ok is false if user was not a member then (or seq is not in the log).
func (s *State) RoleAt(user uuid.UUID, seq uint64) (role string, fp trust.Fingerprint, ok bool) {
	if seq == 0 || seq > s.seq() {
		return "", trust.Fingerprint{}, false
	}
	h := s.history[user]
	i, found := slices.BinarySearchFunc(h, seq, func(sp span, q uint64) int {
		switch {
		case sp.seq < q:
			return -1
		case sp.seq > q:
			return 1
		}
		return 0
	})
	if !found {
		i-- // the last span that starts before seq
	}
	if i < 0 || h[i].role == "" {
		return "", trust.Fingerprint{}, false
	}
	return h[i].role, h[i].fp, true
}

// KeyAt returns the verified Ed25519 key of user as a member just after
// entry seq, and the role then: the key whose fingerprint the log recorded
// for the user. It fails if user was not a member or no verified record
// with that fingerprint was given.
func (s *State) KeyAt(user uuid.UUID, seq uint64) (ed25519.PublicKey, string, error) {
	role, fp, ok := s.RoleAt(user, seq)
	if !ok {
		return nil, "", fmt.Errorf("%w: %v at seq %d", ErrNotMember, user, seq)
	}
	k, err := s.key(user, fp, seq)
	if err != nil {
		return nil, "", err
	}
	return k, role, nil
}

// HashAt returns the hash of entry seq.
func (s *State) HashAt(seq uint64) ([HashSize]byte, bool) {
	if seq == 0 || seq > s.seq() {
		return [HashSize]byte{}, false
	}
	return s.hashes[seq-1], true
}

// GenerationAt returns the key generation in force just after entry seq.
func (s *State) GenerationAt(seq uint64) (uint64, bool) {
	if seq == 0 || seq > s.seq() {
		return 0, false
	}
	return s.gens[seq-1], true
}

// Commitment returns the logged key commitment of generation g.
func (s *State) Commitment(g uint64) ([HashSize]byte, bool) {
	if g == 0 || g > s.Generation() {
		return [HashSize]byte{}, false
	}
	return s.commitments[g-1], true
}

// Commitments returns every generation's commitment, for [grant.Chain].
func (s *State) Commitments() map[uint64][HashSize]byte {
	out := make(map[uint64][HashSize]byte, len(s.commitments))
	for i, c := range s.commitments {
		out[uint64(i+1)] = c
	}
	return out
}

// CheckVaultKey checks key against the logged commitment of generation g
// (grant.ErrKeyCommitment otherwise). A client uses a vault key only after
// this check, so a server cannot make it use a key of its own choosing.
func (s *State) CheckVaultKey(g uint64, key []byte) error {
	c, ok := s.Commitment(g)
	if !ok {
		return fmt.Errorf("%w: generation %d is not in the log", grant.ErrKeyCommitment, g)
	}
	return grant.CheckKeyCommitment(key, s.vaultID, g, c)
}

// LastCut returns the seq of the newest remove, leave, change_role or rotate
// entry (0 if none): a manifest must name a log seq at or after it.
func (s *State) LastCut() uint64 { return s.lastCut }

// RotationDue reports whether a member left since the last new generation:
// the next owner or admin to open the vault appends a rotate entry.
func (s *State) RotationDue() bool { return s.leftSince }

// VaultID returns the vault the log belongs to.
func (s *State) VaultID() uuid.UUID { return s.vaultID }

// Invitation describes who made this account a member: the signer of the
// create or add entry that last did so, with the fingerprint the log
// records for them, and when (as they claim).
type Invitation struct {
	By          uuid.UUID
	Fingerprint trust.Fingerprint
	Seq         uint64
	At          time.Time
	Creator     bool // self created the vault
}

// Anchor decides whether this account may open the vault (docs/crypto.md
// §9, trust anchor). self must be a current member with the fingerprint
// selfFP (its own key; else [ErrNotAMember]); then the vault opens if self
// created it, or if pinned vouches for the signer of the add entry that last
// made self a member, with the key the log recorded for that signer. Else
// the vault is an invitation ([ErrInvitation]), and the returned Invitation
// says from whom.
func (s *State) Anchor(self uuid.UUID, selfFP trust.Fingerprint, pinned func(uuid.UUID, trust.Fingerprint) bool) (Invitation, error) {
	m, ok := s.members[self]
	if !ok || !m.Fingerprint.Equal(selfFP) {
		return Invitation{}, ErrNotAMember
	}
	inv := Invitation{By: m.AddedBy, Seq: m.AddedSeq, At: m.AddedAt}
	if m.AddedSeq == 1 {
		inv.Creator, inv.Fingerprint = true, selfFP
		return inv, nil
	}
	// The fingerprint the log held for the signer when they signed the add.
	_, fp, ok := s.RoleAt(m.AddedBy, m.AddedSeq-1)
	if !ok { // cannot happen: Apply checked the signer was a member
		return inv, ErrInvitation
	}
	inv.Fingerprint = fp
	if pinned == nil || !pinned(m.AddedBy, fp) {
		return inv, ErrInvitation
	}
	return inv, nil
}

// Open is how a client opens a shared vault's log: it refuses a log shorter
// than the remembered head ([ErrRollback]) before replaying it, replays it
// (every rule, [ErrTampered] and its reasons), checks that it extends the
// remembered head ([ErrFork]), and checks the trust anchor for self
// ([ErrNotAMember], [ErrInvitation]). On ErrInvitation the state and
// invitation are returned too, to show the user who invited them; the vault
// must not be opened or written to.
func Open(vaultID uuid.UUID, rows []Signed, keys []trust.Identity, remembered Head,
	self uuid.UUID, selfFP trust.Fingerprint, pinned func(uuid.UUID, trust.Fingerprint) bool) (*State, Invitation, error) {
	if uint64(len(rows)) < remembered.Seq {
		return nil, Invitation{}, fmt.Errorf("%w: %d entries, %d seen", ErrRollback, len(rows), remembered.Seq)
	}
	s, err := Replay(vaultID, rows, keys)
	if err != nil {
		return nil, Invitation{}, err
	}
	if err := s.CheckHead(remembered); err != nil {
		return nil, Invitation{}, err
	}
	inv, err := s.Anchor(self, selfFP, pinned)
	if errors.Is(err, ErrInvitation) {
		return s, inv, err
	}
	if err != nil {
		return nil, Invitation{}, err
	}
	return s, inv, nil
}
