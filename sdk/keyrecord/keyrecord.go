// Package keyrecord implements the signed key record of docs/crypto.md §3:
// the statement, signed with an account's own Ed25519 key, that a user id
// and an identity own a pair of public keys.
//
// The record proves possession: only the holder of the Ed25519 private key
// can sign it, so nobody can publish another account's public keys as their
// own (authsvc verifies it at sign-up), and a client that looks up an
// identity's keys can check that the keys the server hands out were vouched
// for by that account and bound to that identity and user id.
//
// Version 1 covers the X25519 and Ed25519 keys; version 2 adds the X-Wing
// key (ML-KEM-768 + X25519) of key bundle version 2. The version is the
// first thing the signed message names ("zsm v1 key-record", "zsm v2
// key-record"), so a record of one version never verifies as the other.
package keyrecord

import (
	"crypto/ed25519"
	"crypto/hpke"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"zsm.dev/zsm/srpgroup"
)

// The record versions this package signs and verifies.
const (
	V1 = 1
	V2 = 2
)

// XWingSize is the size of an X-Wing public key (the ML-KEM-768
// encapsulation key, 1184 bytes, then the X25519 key, 32).
const XWingSize = 1216

// labels open the signed messages of the two versions.
const (
	labelV1 = "zsm v1 key-record"
	labelV2 = "zsm v2 key-record"
)

// ErrBadSignature means a record's signature does not verify (or the record
// cannot be encoded: an identity that is not normalized, a key of the wrong
// size, a signature that is not canonical base64 of 64 bytes).
var ErrBadSignature = errors.New("keyrecord: the key record's signature does not verify")

// Record is what a key record vouches for. A record with an X-Wing key is
// version 2, one without is version 1: the version is not a field of its
// own that could disagree with the keys.
type Record struct {
	UserID   uuid.UUID
	Identity string // in normal form (srpgroup.ParseNormalIdentity)
	X25519   []byte // 32 bytes
	Ed25519  []byte // 32 bytes; also the key that signs the record
	XWing    []byte // version 2: 1216 bytes; nil for version 1
}

// Version is 2 for a record with an X-Wing key, 1 otherwise.
func (r Record) Version() int {
	if r.XWing != nil {
		return V2
	}
	return V1
}

// Message returns the signed bytes, of version 1 without an X-Wing key:
//
//	"zsm v1 key-record" || 0x00 || user_id (16) || u8(len(identity)) || identity
//	  || x25519_public (32) || ed25519_public (32)
//
// and of version 2 with one:
//
//	"zsm v2 key-record" || 0x00 || user_id (16) || u8(len(identity)) || identity
//	  || x25519_public (32) || ed25519_public (32) || xwing_public (1216)
//
// It fails for an identity that is not in normal form (normalizing it again
// would change it), for X25519 and Ed25519 keys that are not 32 bytes, for
// an Ed25519 key of small order, and for an X-Wing key that is not 1216
// bytes of a valid ML-KEM-768 encapsulation key and an X25519 key.
func (r Record) Message() ([]byte, error) {
	if _, err := srpgroup.ParseNormalIdentity(r.Identity); err != nil {
		return nil, errors.New("keyrecord: the identity is not normalized")
	}
	if len(r.Identity) > 255 {
		return nil, errors.New("keyrecord: the identity is longer than 255 bytes")
	}
	if len(r.X25519) != 32 || len(r.Ed25519) != ed25519.PublicKeySize {
		return nil, errors.New("keyrecord: public keys must be 32 bytes each")
	}
	if SmallOrder(r.Ed25519) {
		return nil, errors.New("keyrecord: the Ed25519 key is a point of small order, under which anybody can forge signatures")
	}
	label := labelV1
	if r.XWing != nil {
		if len(r.XWing) != XWingSize {
			return nil, fmt.Errorf("keyrecord: the X-Wing key must be %d bytes", XWingSize)
		}
		if _, err := hpke.MLKEM768X25519().NewPublicKey(r.XWing); err != nil {
			return nil, fmt.Errorf("keyrecord: the X-Wing key: %w", err)
		}
		label = labelV2
	}
	m := make([]byte, 0, len(label)+1+16+1+len(r.Identity)+64+len(r.XWing))
	m = append(m, label...)
	m = append(m, 0)
	m = append(m, r.UserID[:]...)
	m = append(m, byte(len(r.Identity)))
	m = append(m, r.Identity...)
	m = append(m, r.X25519...)
	m = append(m, r.Ed25519...)
	return append(m, r.XWing...), nil
}

// Sign signs r with key, which must be the private half of r.Ed25519, and
// returns base64(signature).
func Sign(r Record, key ed25519.PrivateKey) (string, error) {
	if len(key) != ed25519.PrivateKeySize {
		return "", errors.New("keyrecord: bad Ed25519 private key")
	}
	if string(key.Public().(ed25519.PublicKey)) != string(r.Ed25519) {
		return "", errors.New("keyrecord: the signing key is not the record's Ed25519 key")
	}
	m, err := r.Message()
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(ed25519.Sign(key, m)), nil
}

// Verify checks signature over r under r.Ed25519: a record is always signed
// by the key it publishes. Every failure wraps [ErrBadSignature].
func Verify(r Record, signature string) error {
	m, err := r.Message()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(signature)
	if err != nil || len(sig) != ed25519.SignatureSize || strings.ContainsAny(signature, "\r\n") {
		return fmt.Errorf("%w: malformed signature", ErrBadSignature)
	}
	if !ed25519.Verify(ed25519.PublicKey(r.Ed25519), m, sig) {
		return ErrBadSignature
	}
	return nil
}

// WellFormedSignature reports whether signature has the shape Verify
// takes: 64 bytes in canonical standard base64 with padding, nothing else.
func WellFormedSignature(signature string) bool {
	sig, err := base64.StdEncoding.Strict().DecodeString(signature)
	return err == nil && len(sig) == ed25519.SignatureSize && base64.StdEncoding.EncodeToString(sig) == signature
}

// FromBase64 builds a record from the public keys as they travel (canonical
// standard base64 of 32 bytes each).
func FromBase64(userID uuid.UUID, identity, x25519, ed25519Public string) (Record, error) {
	x, err := decodeKey(x25519)
	if err != nil {
		return Record{}, fmt.Errorf("keyrecord: x25519_public: %w", err)
	}
	e, err := decodeKey(ed25519Public)
	if err != nil {
		return Record{}, fmt.Errorf("keyrecord: ed25519_public: %w", err)
	}
	return Record{UserID: userID, Identity: identity, X25519: x, Ed25519: e}, nil
}

// FromPublished builds a record of version (1 or 2) from the public keys
// as they travel: canonical standard base64 of 32 bytes for the X25519 and
// Ed25519 keys, and for version 2 of 1216 bytes for the X-Wing key, which
// version 1 must not have.
func FromPublished(version int, userID uuid.UUID, identity, x25519, ed25519Public, xwing string) (Record, error) {
	r, err := FromBase64(userID, identity, x25519, ed25519Public)
	if err != nil {
		return Record{}, err
	}
	switch version {
	case V1:
		if xwing != "" {
			return Record{}, errors.New("keyrecord: a version 1 record has no X-Wing key")
		}
	case V2:
		b, err := base64.StdEncoding.Strict().DecodeString(xwing)
		if err != nil || len(b) != XWingSize || base64.StdEncoding.EncodeToString(b) != xwing {
			return Record{}, fmt.Errorf("keyrecord: xwing_public: not a %d-byte key in canonical base64", XWingSize)
		}
		r.XWing = b
	default:
		return Record{}, fmt.Errorf("keyrecord: unknown record version %d", version)
	}
	return r, nil
}

// smallOrder lists the encodings of the Ed25519 points of order 1, 2, 4
// and 8, as y with the sign bit cleared (including the non-canonical y = p
// and y = p + 1), the same list libsodium refuses.
var smallOrder = [][32]byte{
	{},     // y = 0 (order 4)
	{0x01}, // y = 1, the identity (order 1)
	{0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0,
		0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05}, // order 8
	{0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f,
		0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a}, // order 8
	{0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, // y = p - 1 (order 2)
	{0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, // y = p (= 0)
	{0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, // y = p + 1 (= 1)
}

// SmallOrder reports whether pub encodes an Ed25519 point of small order.
// crypto/ed25519 verifies signatures under such keys, and for them a
// signature that verifies can be made without any private key (R the
// identity, S zero verifies under the identity for every message, and under
// the others for a share of all messages), so a record never publishes one.
// A key made from a seed is never one of them.
func SmallOrder(pub []byte) bool {
	if len(pub) != 32 {
		return false
	}
	for _, e := range smallOrder {
		if [31]byte(pub[:31]) == [31]byte(e[:31]) && pub[31]&0x7f == e[31] {
			return true
		}
	}
	return false
}

func decodeKey(s string) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != 32 || base64.StdEncoding.EncodeToString(b) != s {
		return nil, errors.New("not a 32-byte key in canonical base64")
	}
	return b, nil
}
