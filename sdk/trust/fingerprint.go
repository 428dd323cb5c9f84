// Package trust decides whose keys this account believes, as specified in
// docs/crypto.md §6 and §7: identity fingerprints with their safety numbers
// and QR strings, for comparing keys out of band, and pins, the account's
// record of which identities' keys it confirmed (or chose to trust on first
// use), synced between its own devices sealed under its account key.
//
// Nothing here takes a key on the server's word: a fingerprint is computed
// from the exact key the client is about to use, and a pin can only be made
// by this account.
package trust

import (
	"crypto/ed25519"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"zsm.dev/zsm/srpgroup"
)

// Errors of fingerprints and QR strings.
var (
	// ErrBadIdentity means an identity cannot be fingerprinted: the
	// identity is not in srpgroup's normal form (or longer than 255 bytes),
	// or the Ed25519 key is not 32 bytes.
	ErrBadIdentity = errors.New("trust: identity cannot be fingerprinted")
	// ErrBadQR means a string is not a zsm fingerprint QR string.
	ErrBadQR = errors.New("trust: not a zsm fingerprint string")
	// ErrMismatch means a fingerprint compared out of band differs from
	// the one of the key the client holds.
	ErrMismatch = errors.New("trust: the fingerprints differ")
)

// Identity is what a fingerprint covers: an account's user id, its
// normalized identity and its Ed25519 public key, taken from a key record
// whose own signature the caller checked. The Ed25519 key signs the key
// records, so covering it covers the KEM keys they carry.
type Identity struct {
	UserID        uuid.UUID
	Identity      string
	Ed25519Public ed25519.PublicKey
}

// Digest is the SHA-512 a fingerprint, safety number and QR string come
// from.
type Digest [sha512.Size]byte

// Fingerprint is the first 32 bytes of a [Digest]; the membership log
// records members by it.
type Fingerprint [32]byte

const fingerprintLabel = "zsm v1 fingerprint"

// Digest computes
//
//	SHA-512("zsm v1 fingerprint" || 0x00 || user_id || u8(len(identity)) || identity || ed25519_public)
//
// and fails with [ErrBadIdentity] for an identity not in normal form (see
// srpgroup.NormalizeIdentity) or a key that is not 32 bytes, so one account
// has one fingerprint.
func (i Identity) Digest() (Digest, error) {
	if err := i.check(); err != nil {
		return Digest{}, err
	}
	h := sha512.New()
	h.Write([]byte(fingerprintLabel))
	h.Write([]byte{0})
	h.Write(i.UserID[:])
	h.Write([]byte{byte(len(i.Identity))})
	h.Write([]byte(i.Identity))
	h.Write(i.Ed25519Public)
	var d Digest
	h.Sum(d[:0])
	return d, nil
}

func (i Identity) check() error {
	if len(i.Ed25519Public) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: Ed25519 key of %d bytes", ErrBadIdentity, len(i.Ed25519Public))
	}
	if _, err := srpgroup.ParseNormalIdentity(i.Identity); err != nil || len(i.Identity) > 255 {
		return fmt.Errorf("%w: identity %q is not in normal form", ErrBadIdentity, i.Identity)
	}
	return nil
}

// Fingerprint returns the first 32 bytes of i's [Digest].
func (i Identity) Fingerprint() (Fingerprint, error) {
	d, err := i.Digest()
	if err != nil {
		return Fingerprint{}, err
	}
	return d.Fingerprint(), nil
}

// Fingerprint returns d[0:32].
func (d Digest) Fingerprint() Fingerprint {
	var f Fingerprint
	copy(f[:], d[:32])
	return f
}

// SafetyNumber returns the 12 groups of 5 digits people read to each other:
// group i is uint40be(d[5i:5i+5]) mod 100000, zero-padded, the groups joined
// by single spaces.
func (d Digest) SafetyNumber() string {
	var b strings.Builder
	for i := range 12 {
		var x [8]byte
		copy(x[3:], d[5*i:5*i+5])
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%05d", binary.BigEndian.Uint64(x[:])%100000)
	}
	return b.String()
}

// QRPrefix starts every fingerprint QR string.
const QRPrefix = "zsmfp1:"

// QR returns "zsmfp1:" || base64url-nopad(d[0:32]), the string a QR code
// carries.
func (d Digest) QR() string {
	return QRPrefix + base64.RawURLEncoding.EncodeToString(d[:32])
}

// ParseQR parses a QR string strictly: the prefix, then exactly 43
// characters of unpadded base64url that re-encode to themselves.
func ParseQR(s string) (Fingerprint, error) {
	var f Fingerprint
	rest, ok := strings.CutPrefix(s, QRPrefix)
	if !ok || len(rest) != 43 {
		return f, ErrBadQR
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(rest)
	if err != nil || len(b) != 32 {
		return f, ErrBadQR
	}
	copy(f[:], b)
	return f, nil
}

// Equal compares two fingerprints in constant time.
func (f Fingerprint) Equal(g Fingerprint) bool {
	return subtle.ConstantTimeCompare(f[:], g[:]) == 1
}

// IsZero reports whether f is all zero bytes (no fingerprint).
func (f Fingerprint) IsZero() bool { return f == Fingerprint{} }

// MatchQR checks a scanned QR string against the fingerprint of i, computed
// here from the key the client holds (never one the server computed):
// [ErrBadQR] if it does not parse, [ErrMismatch] if it differs.
func MatchQR(s string, i Identity) error {
	got, err := ParseQR(s)
	if err != nil {
		return err
	}
	want, err := i.Fingerprint()
	if err != nil {
		return err
	}
	if !got.Equal(want) {
		return ErrMismatch
	}
	return nil
}
