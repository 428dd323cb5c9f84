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
// Version 1 covers the X25519 and Ed25519 keys. The version is the first
// thing the signed message names ("zsm v1 key-record"), so a later record
// with more keys is a different message and never verifies as this one.
package keyrecord

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"zsm.dev/zsm/srpgroup"
)

// Version is the record version this package signs and verifies.
const Version = 1

// label opens the signed message of version 1.
const label = "zsm v1 key-record"

// ErrBadSignature means a record's signature does not verify (or the record
// cannot be encoded: an identity that is not normalized, a key of the wrong
// size, a signature that is not canonical base64 of 64 bytes).
var ErrBadSignature = errors.New("keyrecord: the key record's signature does not verify")

// Record is what version 1 vouches for.
type Record struct {
	UserID   uuid.UUID
	Identity string // normalized (srpgroup.NormalizeIdentity)
	X25519   []byte // 32 bytes
	Ed25519  []byte // 32 bytes; also the key that signs the record
}

// Message returns the signed bytes:
//
//	"zsm v1 key-record" || 0x00 || user_id (16) || u8(len(identity)) || identity
//	  || x25519_public (32) || ed25519_public (32)
//
// It fails for an identity that is not in normal form (normalizing it again
// would change it) and for keys that are not 32 bytes.
func (r Record) Message() ([]byte, error) {
	id, err := srpgroup.NormalizeIdentity(r.Identity)
	if err != nil || id != r.Identity {
		return nil, errors.New("keyrecord: the identity is not normalized")
	}
	if len(r.Identity) > 255 {
		return nil, errors.New("keyrecord: the identity is longer than 255 bytes")
	}
	if len(r.X25519) != 32 || len(r.Ed25519) != ed25519.PublicKeySize {
		return nil, errors.New("keyrecord: public keys must be 32 bytes each")
	}
	m := make([]byte, 0, len(label)+1+16+1+len(r.Identity)+64)
	m = append(m, label...)
	m = append(m, 0)
	m = append(m, r.UserID[:]...)
	m = append(m, byte(len(r.Identity)))
	m = append(m, r.Identity...)
	m = append(m, r.X25519...)
	return append(m, r.Ed25519...), nil
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

func decodeKey(s string) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != 32 || base64.StdEncoding.EncodeToString(b) != s {
		return nil, errors.New("not a 32-byte key in canonical base64")
	}
	return b, nil
}
