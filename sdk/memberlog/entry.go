// Package memberlog implements a shared vault's membership log, as
// specified in docs/crypto.md §9: a hash-chained list of entries (create,
// add, change role, remove, rotate, leave), each signed by a member who had
// the authority to make it at that point of the chain.
//
// A client derives the member list, every role, the key generations and
// their key commitments only by replaying the log from its first entry
// ([Replay], [Open]); the server's tables of members are access control, not
// something the client believes. A server cannot add a member, change a
// role, restore a removed member, substitute a key or roll the log back
// without the replay refusing it.
package memberlog

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"zsm.dev/zsm/sdk/grant"
	"zsm.dev/zsm/sdk/trust"
)

// Op is what an entry does.
type Op uint8

// The operations of docs/crypto.md §9.
const (
	OpCreate     Op = 1 // the creator makes the vault; always and only seq 1
	OpAdd        Op = 2 // a member adds a non-member with a role
	OpChangeRole Op = 3 // a member changes a member's role
	OpRemove     Op = 4 // a member removes a member; a new key generation
	OpRotate     Op = 5 // an owner or admin makes a new key generation
	OpLeave      Op = 6 // a member leaves
)

func (o Op) String() string {
	switch o {
	case OpCreate:
		return "create"
	case OpAdd:
		return "add"
	case OpChangeRole:
		return "change_role"
	case OpRemove:
		return "remove"
	case OpRotate:
		return "rotate"
	case OpLeave:
		return "leave"
	}
	return fmt.Sprintf("op %d", uint8(o))
}

func (o Op) known() bool { return o >= OpCreate && o <= OpLeave }

// hasRole: the ops that carry a role.
func (o Op) hasRole() bool { return o == OpCreate || o == OpAdd || o == OpChangeRole }

// hasFingerprint: the ops that name the subject's fingerprint.
func (o Op) hasFingerprint() bool { return o == OpCreate || o == OpAdd }

// newGeneration: the ops that make a key generation and carry its
// commitment.
func (o Op) newGeneration() bool { return o == OpCreate || o == OpRemove || o == OpRotate }

// Errors. Every refusal wraps exactly one of the classes ErrTampered and
// ErrRollback (or is ErrInvitation or ErrNotAMember, which are not
// attacks), and a specific reason, so a caller can branch on the class and a
// test can assert the exact rule.
var (
	// ErrTampered: the log is not a valid signed chain, or forks from what
	// this device saw.
	ErrTampered = errors.New("memberlog: the membership log is not a valid signed chain")
	// ErrRollback: the log is shorter than the one this device saw.
	ErrRollback = errors.New("memberlog: the membership log is older than the one this device saw")
	// ErrInvitation: the log is valid, but the member who added this
	// account is not pinned; the vault is an invitation, not to be opened
	// or written to.
	ErrInvitation = errors.New("memberlog: the vault is an invitation from a member whose key is not verified")
	// ErrNotAMember: the log is valid but does not list this account (with
	// its own key) as a member.
	ErrNotAMember = errors.New("memberlog: this account is not a member of the vault")

	ErrMalformed     = fmt.Errorf("%w: malformed entry", ErrTampered)
	ErrWrongVault    = fmt.Errorf("%w: entry of another vault", ErrTampered)
	ErrBrokenChain   = fmt.Errorf("%w: broken chain", ErrTampered)
	ErrBadCreate     = fmt.Errorf("%w: the log does not start with a valid create entry", ErrTampered)
	ErrUnknownSigner = fmt.Errorf("%w: no verified key for the signer", ErrTampered)
	ErrKeyMismatch   = fmt.Errorf("%w: the key record does not match the logged fingerprint", ErrTampered)
	ErrBadSignature  = fmt.Errorf("%w: bad signature", ErrTampered)
	ErrNotMember     = fmt.Errorf("%w: not a member at that point", ErrTampered)
	ErrAlreadyMember = fmt.Errorf("%w: already a member", ErrTampered)
	ErrBadSubject    = fmt.Errorf("%w: the subject must be the signer", ErrTampered)
	ErrNoAuthority   = fmt.Errorf("%w: the signer has no authority for this entry", ErrTampered)
	ErrLastOwner     = fmt.Errorf("%w: the vault would have no owner", ErrTampered)
	ErrGeneration    = fmt.Errorf("%w: wrong key generation", ErrTampered)
	ErrFork          = fmt.Errorf("%w: the log forks from the one this device saw", ErrTampered)
)

// HashSize is the size of an entry hash, a fingerprint and a commitment.
const HashSize = sha256.Size

const label = "zsm v1 vault-log"

// Entry is one membership log entry (docs/crypto.md §9).
type Entry struct {
	VaultID    uuid.UUID
	Seq        uint64
	Prev       [HashSize]byte // hash of entry Seq-1; zero at seq 1
	Op         Op
	Subject    uuid.UUID // the member concerned; for create and rotate the signer
	Role       string    // create, add, change_role; empty otherwise
	SubjectFP  trust.Fingerprint
	Generation uint64 // the key generation in force after this entry
	// Commitment is, for create, remove and rotate, the new generation's
	// key commitment; for leave, the hash of the newest vault manifest the
	// member who leaves verified (or zero): the one manifest signed by them
	// that others may still accept after they left (docs/crypto.md §9,
	// §10); zero for the other ops.
	Commitment [HashSize]byte
	Signer     uuid.UUID
	UnixMilli  uint64 // when, as claimed by the signer
}

// Time returns the claimed time of e.
func (e Entry) Time() time.Time { return time.UnixMilli(int64(e.UnixMilli)).UTC() }

// fixedSize is the size of an entry without its role.
const fixedSize = len(label) + 1 + 16 + 8 + HashSize + 1 + 16 + 1 + 32 + 8 + HashSize + 16 + 8

// check enforces the shape of an entry: what Parse accepts and Marshal
// writes. The replay rules come on top.
func (e Entry) check() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
	}
	switch {
	case e.Seq == 0:
		return bad("seq 0")
	case e.Seq == 1 && e.Prev != [HashSize]byte{}:
		return bad("seq 1 with a previous hash")
	case !e.Op.known():
		return bad("unknown %v", e.Op)
	case e.Op.hasRole() && !slices.Contains(grant.Roles, e.Role):
		return bad("%v with role %q", e.Op, e.Role)
	case !e.Op.hasRole() && e.Role != "":
		return bad("%v with a role", e.Op)
	case e.Op.hasFingerprint() == e.SubjectFP.IsZero():
		return bad("%v with a fingerprint where none belongs, or none where one does", e.Op)
	case e.Op.newGeneration() && e.Commitment == [HashSize]byte{}:
		return bad("%v without a key commitment", e.Op)
	case !e.Op.newGeneration() && e.Op != OpLeave && e.Commitment != [HashSize]byte{}:
		return bad("%v with a key commitment where none belongs", e.Op)
	case e.Generation == 0:
		return bad("generation 0")
	}
	return nil
}

// Marshal returns the entry message:
//
//	"zsm v1 vault-log" || 0x00 || vault_id || u64be(seq) || prev_hash
//	|| u8(op) || subject || u8(len(role)) || role || subject_fingerprint
//	|| u64be(generation) || key_commitment || signer || u64be(unix ms)
//
// It refuses an entry of the wrong shape ([ErrMalformed]).
func (e Entry) Marshal() ([]byte, error) {
	if err := e.check(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, fixedSize+len(e.Role))
	b = append(b, label...)
	b = append(b, 0)
	b = append(b, e.VaultID[:]...)
	b = binary.BigEndian.AppendUint64(b, e.Seq)
	b = append(b, e.Prev[:]...)
	b = append(b, byte(e.Op))
	b = append(b, e.Subject[:]...)
	b = append(b, byte(len(e.Role)))
	b = append(b, e.Role...)
	b = append(b, e.SubjectFP[:]...)
	b = binary.BigEndian.AppendUint64(b, e.Generation)
	b = append(b, e.Commitment[:]...)
	b = append(b, e.Signer[:]...)
	return binary.BigEndian.AppendUint64(b, e.UnixMilli), nil
}

// Parse parses an entry message strictly: the label, exactly the length its
// role implies, and the shape of docs/crypto.md §9 (seq ≥ 1, zero previous
// hash at seq 1, a known op, a role exactly where the op has one,
// fingerprint and commitment bytes zero exactly where the op has none,
// generation ≥ 1). Anything else is [ErrMalformed]. For every accepted
// message m, Marshal(Parse(m)) is m.
func Parse(m []byte) (Entry, error) {
	var e Entry
	if len(m) < fixedSize || string(m[:len(label)+1]) != label+"\x00" {
		return e, fmt.Errorf("%w: not an entry", ErrMalformed)
	}
	r := m[len(label)+1:]
	take := func(n int) []byte { b := r[:n]; r = r[n:]; return b }
	copy(e.VaultID[:], take(16))
	e.Seq = binary.BigEndian.Uint64(take(8))
	copy(e.Prev[:], take(HashSize))
	e.Op = Op(take(1)[0])
	copy(e.Subject[:], take(16))
	n := int(take(1)[0])
	if len(m) != fixedSize+n {
		return Entry{}, fmt.Errorf("%w: %d bytes for a role of %d", ErrMalformed, len(m), n)
	}
	e.Role = string(take(n))
	copy(e.SubjectFP[:], take(32))
	e.Generation = binary.BigEndian.Uint64(take(8))
	copy(e.Commitment[:], take(HashSize))
	copy(e.Signer[:], take(16))
	e.UnixMilli = binary.BigEndian.Uint64(take(8))
	if err := e.check(); err != nil {
		return Entry{}, err
	}
	return e, nil
}

// Signed is an entry with its message and Ed25519 signature, as stored.
type Signed struct {
	Entry     Entry
	Message   []byte // Marshal(Entry)
	Signature []byte // 64 bytes
}

// Sign signs e with key, the signer's Ed25519 key.
func Sign(e Entry, key ed25519.PrivateKey) (Signed, error) {
	if len(key) != ed25519.PrivateKeySize {
		return Signed{}, errors.New("memberlog: bad Ed25519 private key")
	}
	m, err := e.Marshal()
	if err != nil {
		return Signed{}, err
	}
	return Signed{Entry: e, Message: m, Signature: ed25519.Sign(key, m)}, nil
}

// Hash returns SHA-256(message || signature), what the next entry names as
// its previous hash. It covers the signature, so one entry has one hash.
func (s Signed) Hash() [HashSize]byte {
	h := sha256.New()
	h.Write(s.Message)
	h.Write(s.Signature)
	var out [HashSize]byte
	h.Sum(out[:0])
	return out
}

// Row returns the stored text form: base64(message), base64(signature).
func (s Signed) Row() (entry, signature string) {
	return base64.StdEncoding.EncodeToString(s.Message), base64.StdEncoding.EncodeToString(s.Signature)
}

// ParseRow parses a stored row: both columns canonical standard base64, the
// message an entry ([Parse]), the signature 64 bytes. Anything else is
// [ErrMalformed]. The signature is checked by the replay, which knows the
// signer's key.
func ParseRow(entry, signature string) (Signed, error) {
	m, err := decodeB64(entry)
	if err != nil {
		return Signed{}, fmt.Errorf("%w: entry: %w", ErrMalformed, err)
	}
	sig, err := decodeB64(signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return Signed{}, fmt.Errorf("%w: signature is not canonical base64 of 64 bytes", ErrMalformed)
	}
	e, err := Parse(m)
	if err != nil {
		return Signed{}, err
	}
	return Signed{Entry: e, Message: m, Signature: sig}, nil
}

func decodeB64(s string) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || s == "" || strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("not canonical base64")
	}
	return b, nil
}
