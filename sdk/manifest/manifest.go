// Package manifest implements the signed vault manifest of docs/crypto.md
// §10: a versioned, hash-chained commitment to a shared vault's whole set of
// secrets (each secret's id, revision and key generation), to the vault
// row's revision and to the membership log, signed by the member who wrote
// last.
//
// A client checks every listing it receives against the newest manifest it
// can verify and against the highest manifest it has seen, so a server that
// hides a secret, brings back a deleted one, serves an older listing or a
// fork is refused.
package manifest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"

	"zsm.dev/zsm/sdk/memberlog"
)

// Errors. Every refusal wraps exactly one of the classes ErrTampered and
// ErrRollback, and a specific reason.
var (
	// ErrTampered: the manifest or the listing is not what the members
	// signed, or forks from what this device saw.
	ErrTampered = errors.New("manifest: the vault manifest or listing does not check out")
	// ErrRollback: the manifest is older than the one this device saw.
	ErrRollback = errors.New("manifest: older vault manifest than this device has seen")

	ErrMalformed    = fmt.Errorf("%w: malformed manifest", ErrTampered)
	ErrWrongVault   = fmt.Errorf("%w: manifest of another vault", ErrTampered)
	ErrLogMismatch  = fmt.Errorf("%w: the manifest names another membership log", ErrTampered)
	ErrStale        = fmt.Errorf("%w: the manifest predates a membership change", ErrTampered)
	ErrGeneration   = fmt.Errorf("%w: wrong key generation", ErrTampered)
	ErrNotMember    = fmt.Errorf("%w: the signer was not a member", ErrTampered)
	ErrNoAuthority  = fmt.Errorf("%w: the signer may not write", ErrTampered)
	ErrBadSignature = fmt.Errorf("%w: bad signature", ErrTampered)
	ErrFork         = fmt.Errorf("%w: the manifest forks from the one this device saw", ErrTampered)
	ErrListing      = fmt.Errorf("%w: the listing differs from the manifest", ErrTampered)
	ErrMetaRevision = fmt.Errorf("%w: the vault row's revision differs from the manifest", ErrTampered)
)

// HashSize is the size of the hashes a manifest holds and has.
const HashSize = sha256.Size

const label = "zsm v1 vault-manifest"

// Size is the size of a manifest message.
const Size = len(label) + 1 + 16 + 8 + HashSize + 8 + 8 + HashSize + 8 + 8 + HashSize

// Manifest is one version of a vault's manifest.
type Manifest struct {
	VaultID       uuid.UUID
	Version       uint64         // 1, 2, …: each write makes the next
	Prev          [HashSize]byte // hash of version-1; zero at version 1
	KeyGeneration uint64         // the generation in force at LogSeq
	LogSeq        uint64         // the membership log entry this manifest was written at
	LogHash       [HashSize]byte // that entry's hash
	MetaRevision  uint64         // the vault row's revision
	SecretCount   uint64
	ItemsDigest   [HashSize]byte // Digest of the secrets
}

// Item is one secret as a listing shows it.
type Item struct {
	ID         uuid.UUID
	Revision   uint64
	Generation uint64 // the key generation its envelope is sealed under
}

// Digest returns SHA-256 over the items sorted by id bytes, each
// id || u64be(revision) || u64be(generation). It fails if an id appears
// twice (a listing never has two rows of one secret).
func Digest(items []Item) ([HashSize]byte, error) {
	sorted := slices.Clone(items)
	slices.SortFunc(sorted, func(a, b Item) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	h := sha256.New()
	var buf [32]byte
	for i, it := range sorted {
		if i > 0 && sorted[i-1].ID == it.ID {
			return [HashSize]byte{}, fmt.Errorf("manifest: secret %v listed twice", it.ID)
		}
		copy(buf[:16], it.ID[:])
		binary.BigEndian.PutUint64(buf[16:], it.Revision)
		binary.BigEndian.PutUint64(buf[24:], it.Generation)
		h.Write(buf[:])
	}
	var d [HashSize]byte
	h.Sum(d[:0])
	return d, nil
}

func (m Manifest) check() error {
	switch {
	case m.Version == 0:
		return fmt.Errorf("%w: version 0", ErrMalformed)
	case (m.Version == 1) != (m.Prev == [HashSize]byte{}):
		return fmt.Errorf("%w: a previous hash exactly when the version is above 1", ErrMalformed)
	case m.KeyGeneration == 0:
		return fmt.Errorf("%w: key generation 0", ErrMalformed)
	case m.LogSeq == 0:
		return fmt.Errorf("%w: log seq 0", ErrMalformed)
	}
	return nil
}

// Marshal returns the manifest message:
//
//	"zsm v1 vault-manifest" || 0x00 || vault_id || u64be(version) || prev_manifest_hash
//	|| u64be(key_generation) || u64be(log_seq) || log_hash
//	|| u64be(meta_revision) || u64be(secret_count) || items_digest
func (m Manifest) Marshal() ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, Size)
	b = append(b, label...)
	b = append(b, 0)
	b = append(b, m.VaultID[:]...)
	b = binary.BigEndian.AppendUint64(b, m.Version)
	b = append(b, m.Prev[:]...)
	b = binary.BigEndian.AppendUint64(b, m.KeyGeneration)
	b = binary.BigEndian.AppendUint64(b, m.LogSeq)
	b = append(b, m.LogHash[:]...)
	b = binary.BigEndian.AppendUint64(b, m.MetaRevision)
	b = binary.BigEndian.AppendUint64(b, m.SecretCount)
	return append(b, m.ItemsDigest[:]...), nil
}

// Parse parses a manifest message strictly: the label, exactly [Size]
// bytes, version ≥ 1 with a zero previous hash exactly at version 1, key
// generation and log seq ≥ 1. Anything else is [ErrMalformed]. For every
// accepted message b, Marshal(Parse(b)) is b.
func Parse(b []byte) (Manifest, error) {
	var m Manifest
	if len(b) != Size || string(b[:len(label)+1]) != label+"\x00" {
		return m, fmt.Errorf("%w: not a manifest of %d bytes", ErrMalformed, Size)
	}
	r := b[len(label)+1:]
	take := func(n int) []byte { x := r[:n]; r = r[n:]; return x }
	u64 := func() uint64 { return binary.BigEndian.Uint64(take(8)) }
	copy(m.VaultID[:], take(16))
	m.Version = u64()
	copy(m.Prev[:], take(HashSize))
	m.KeyGeneration = u64()
	m.LogSeq = u64()
	copy(m.LogHash[:], take(HashSize))
	m.MetaRevision = u64()
	m.SecretCount = u64()
	copy(m.ItemsDigest[:], take(HashSize))
	if err := m.check(); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// Signed is a manifest with its message, signature and signer, as stored.
type Signed struct {
	Manifest  Manifest
	Message   []byte
	Signature []byte    // Ed25519, 64 bytes
	Signer    uuid.UUID // the row's signer column: whose key to verify with
}

// Sign signs m as signer with key.
func Sign(m Manifest, signer uuid.UUID, key ed25519.PrivateKey) (Signed, error) {
	if len(key) != ed25519.PrivateKeySize {
		return Signed{}, errors.New("manifest: bad Ed25519 private key")
	}
	msg, err := m.Marshal()
	if err != nil {
		return Signed{}, err
	}
	return Signed{Manifest: m, Message: msg, Signature: ed25519.Sign(key, msg), Signer: signer}, nil
}

// Hash returns SHA-256(message || signature), what the next version names
// as its previous hash and what a device remembers.
func (s Signed) Hash() [HashSize]byte {
	h := sha256.New()
	h.Write(s.Message)
	h.Write(s.Signature)
	var out [HashSize]byte
	h.Sum(out[:0])
	return out
}

// Row returns the stored text form: base64(message), base64(signature).
func (s Signed) Row() (manifest, signature string) {
	return base64.StdEncoding.EncodeToString(s.Message), base64.StdEncoding.EncodeToString(s.Signature)
}

// ParseRow parses a stored row: both columns canonical standard base64, the
// message a manifest ([Parse]), the signature 64 bytes ([ErrMalformed]
// otherwise). The signature is checked by [Verify].
func ParseRow(manifest, signature string, signer uuid.UUID) (Signed, error) {
	msg, err := decodeB64(manifest)
	if err != nil {
		return Signed{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	sig, err := decodeB64(signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return Signed{}, fmt.Errorf("%w: signature is not canonical base64 of 64 bytes", ErrMalformed)
	}
	m, err := Parse(msg)
	if err != nil {
		return Signed{}, err
	}
	return Signed{Manifest: m, Message: msg, Signature: sig, Signer: signer}, nil
}

func decodeB64(s string) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || s == "" || strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("not canonical base64")
	}
	return b, nil
}

// Next returns the manifest a writer signs after changing the vault: the
// next version chained to prev (nil for the first), written at the head of
// log, with the vault row's revision and the secrets as they will be.
func Next(prev *Signed, log *memberlog.State, metaRevision uint64, items []Item) (Manifest, error) {
	d, err := Digest(items)
	if err != nil {
		return Manifest{}, err
	}
	head := log.Head()
	m := Manifest{
		VaultID: log.VaultID(), Version: 1, KeyGeneration: log.Generation(), LogSeq: head.Seq, LogHash: head.Hash,
		MetaRevision: metaRevision, SecretCount: uint64(len(items)), ItemsDigest: d,
	}
	if prev != nil {
		m.Version, m.Prev = prev.Manifest.Version+1, prev.Hash()
	}
	return m, nil
}

// Verify checks s against this client's replayed membership log
// (docs/crypto.md §10), refusing with [ErrTampered] and a reason: another
// vault ([ErrWrongVault]); a log seq that is not in the log or whose hash
// differs ([ErrLogMismatch]); a signer who was not a member at that entry
// ([ErrNotMember]) or whose key record was not given (memberlog's errors); a
// bad signature ([ErrBadSignature]); a signer who was a viewer then
// ([ErrNoAuthority]); a log seq before the newest remove, leave, role change
// or rotation ([ErrStale]: whoever lost rights there cannot vouch for the
// contents afterwards); a key generation other than the one in force at that
// entry ([ErrGeneration]).
func Verify(s Signed, log *memberlog.State) error {
	m := s.Manifest
	if msg, err := m.Marshal(); err != nil {
		return err
	} else if !bytes.Equal(msg, s.Message) {
		return fmt.Errorf("%w: message and fields differ", ErrMalformed)
	}
	if m.VaultID != log.VaultID() {
		return fmt.Errorf("%w: %v", ErrWrongVault, m.VaultID)
	}
	h, ok := log.HashAt(m.LogSeq)
	if !ok || h != m.LogHash {
		return fmt.Errorf("%w: entry %d", ErrLogMismatch, m.LogSeq)
	}
	key, role, err := log.KeyAt(s.Signer, m.LogSeq)
	if errors.Is(err, memberlog.ErrNotMember) {
		return fmt.Errorf("%w: %v at entry %d", ErrNotMember, s.Signer, m.LogSeq)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrTampered, err)
	}
	if len(s.Signature) != ed25519.SignatureSize || !ed25519.Verify(key, s.Message, s.Signature) {
		return ErrBadSignature
	}
	if role != "owner" && role != "admin" && role != "editor" {
		return fmt.Errorf("%w: a %s at entry %d", ErrNoAuthority, role, m.LogSeq)
	}
	if m.LogSeq < log.LastCut() {
		return fmt.Errorf("%w: written at entry %d, membership changed at %d", ErrStale, m.LogSeq, log.LastCut())
	}
	if g, _ := log.GenerationAt(m.LogSeq); m.KeyGeneration != g {
		return fmt.Errorf("%w: %d, the log has %d at entry %d", ErrGeneration, m.KeyGeneration, g, m.LogSeq)
	}
	return nil
}

// Seen is the highest manifest a device verified for a vault; the zero
// value means none.
type Seen struct {
	Version uint64
	Hash    [HashSize]byte
}

// Seen returns what a device remembers of s.
func (s Signed) Seen() Seen { return Seen{s.Manifest.Version, s.Hash()} }

// CheckRollback checks s against the highest manifest this device saw: a
// lower version is [ErrRollback]; the same version with another hash, or
// the next version not chained to the remembered hash, is [ErrFork]. A
// version further ahead cannot be chained (this device never saw the ones
// between) and passes.
func CheckRollback(s Signed, seen Seen) error {
	m := s.Manifest
	switch {
	case seen.Version == 0:
		return nil
	case m.Version < seen.Version:
		return fmt.Errorf("%w: version %d, seen %d", ErrRollback, m.Version, seen.Version)
	case m.Version == seen.Version && s.Hash() != seen.Hash:
		return fmt.Errorf("%w: another version %d", ErrFork, m.Version)
	case m.Version == seen.Version+1 && m.Prev != seen.Hash:
		return fmt.Errorf("%w: version %d does not follow the version %d seen", ErrFork, m.Version, seen.Version)
	}
	return nil
}

// CheckListing checks a listing against m: exactly SecretCount secrets
// whose (id, revision, generation) digest is ItemsDigest ([ErrListing]: a
// hidden, resurrected, older or relabelled secret), and the vault row's
// revision ([ErrMetaRevision]).
func CheckListing(m Manifest, items []Item, metaRevision uint64) error {
	if uint64(len(items)) != m.SecretCount {
		return fmt.Errorf("%w: %d secrets listed, %d in the manifest", ErrListing, len(items), m.SecretCount)
	}
	d, err := Digest(items)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrListing, err)
	}
	if d != m.ItemsDigest {
		return fmt.Errorf("%w: digest differs", ErrListing)
	}
	if metaRevision != m.MetaRevision {
		return fmt.Errorf("%w: %d, the manifest has %d", ErrMetaRevision, metaRevision, m.MetaRevision)
	}
	return nil
}

// Accept runs every check a client makes before believing a listing:
// [Verify] against the replayed log, [CheckRollback] against what this
// device saw, [CheckListing] against the listing. It returns what the
// device remembers from now on.
func Accept(s Signed, log *memberlog.State, seen Seen, items []Item, metaRevision uint64) (Seen, error) {
	if err := Verify(s, log); err != nil {
		return seen, err
	}
	if err := CheckRollback(s, seen); err != nil {
		return seen, err
	}
	if err := CheckListing(s.Manifest, items, metaRevision); err != nil {
		return seen, err
	}
	if s.Manifest.Version > seen.Version {
		return s.Seen(), nil
	}
	return seen, nil
}
