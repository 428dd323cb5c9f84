package grant

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/google/uuid"

	"zsm.dev/zsm/sdk/envelope"
)

// This file holds what sharing adds (docs/crypto.md §8): key generations,
// HPKE version 2 with the hybrid X-Wing KEM, grants version 2, key
// commitments and the chain of previous keys. The version 1 functions of
// grant.go are unchanged and keep opening the grants made before.

// KEM is the HPKE KEM a vault key is sealed with; it is part of a version 2
// grant's signed message.
type KEM uint16

// The two KEMs a vault key may be sealed with.
const (
	// KEMX25519 is DHKEM(X25519, HKDF-SHA256), only for a member whose
	// newest key record has no X-Wing key.
	KEMX25519 KEM = 0x0020
	// KEMXWing is MLKEM768-X25519 (X-Wing), for every member whose key
	// record has an X-Wing key.
	KEMXWing KEM = 0x647a
)

// Sizes of a sealed vault key (enc || ciphertext) per KEM.
const (
	SealedKeySizeX25519 = SealedKeySize            // 32 + 48
	SealedKeySizeXWing  = 1120 + VaultKeySize + 16 // 1168
)

func (k KEM) String() string {
	switch k {
	case KEMX25519:
		return "DHKEM(X25519)"
	case KEMXWing:
		return "X-Wing"
	}
	return fmt.Sprintf("KEM 0x%04x", uint16(k))
}

// sealedSize is the size of a sealed vault key for k, 0 for an unknown KEM.
func (k KEM) sealedSize() int {
	switch k {
	case KEMX25519:
		return SealedKeySizeX25519
	case KEMXWing:
		return SealedKeySizeXWing
	}
	return 0
}

// Errors of this file. Opening and decoding sealed keys reuse
// ErrOpenVaultKey and ErrBadSealedKey, grants ErrBadSignature.
var (
	// ErrUnknownKEM means a key or grant names a KEM other than X25519 and
	// X-Wing.
	ErrUnknownKEM = errors.New("grant: unknown KEM")
	// ErrDowngrade means a vault key was sealed to a member's X25519 key
	// although the member's key record has an X-Wing key: the post-quantum
	// half was stripped.
	ErrDowngrade = errors.New("grant: vault key sealed without the hybrid key the member has (downgrade)")
	// ErrKeyCommitment means a vault key does not match the commitment the
	// membership log holds for its generation: it is not the key the
	// members agreed on.
	ErrKeyCommitment = errors.New("grant: the vault key does not match its commitment in the membership log")
	// ErrChain means the chain of previous vault keys is incomplete or a
	// link does not open.
	ErrChain = errors.New("grant: broken chain of previous vault keys")
)

// RecipientKey returns the HPKE public key a member's vault keys are sealed
// to, from the member's verified key record: X-Wing when the record has an
// X-Wing key (xwingPublic, 1216 bytes), DHKEM(X25519) only when it has none
// (xwingPublic nil). The choice is not the caller's: sealing with X25519 to
// a member who has an X-Wing key is the downgrade [CheckKEM] refuses.
func RecipientKey(x25519Public, xwingPublic []byte) (hpke.PublicKey, error) {
	if xwingPublic != nil {
		pk, err := hpke.MLKEM768X25519().NewPublicKey(xwingPublic)
		if err != nil {
			return nil, fmt.Errorf("grant: X-Wing public key: %w", err)
		}
		return pk, nil
	}
	x, err := ecdh.X25519().NewPublicKey(x25519Public)
	if err != nil {
		return nil, fmt.Errorf("grant: X25519 public key: %w", err)
	}
	return hpke.NewDHKEMPublicKey(x)
}

// CheckKEM checks the KEM of a member's grant against the member's key
// record: X-Wing if the record has an X-Wing key, X25519 otherwise. A grant
// sealed with X25519 for a member who has an X-Wing key is [ErrDowngrade].
func CheckKEM(kem KEM, recipientHasXWing bool) error {
	switch {
	case kem.sealedSize() == 0:
		return fmt.Errorf("%w: 0x%04x", ErrUnknownKEM, uint16(kem))
	case recipientHasXWing && kem != KEMXWing:
		return ErrDowngrade
	case !recipientHasXWing && kem != KEMX25519:
		return fmt.Errorf("%w: %v for a member without an X-Wing key", ErrUnknownKEM, kem)
	}
	return nil
}

// infoV2 is the HPKE info of version 2:
//
//	"zsm v2 vault-key" || 0x00 || vault_id || user_id || u64be(generation)
func infoV2(vaultID, userID uuid.UUID, generation uint64) []byte {
	b := make([]byte, 0, len("zsm v2 vault-key")+1+32+8)
	b = append(b, "zsm v2 vault-key\x00"...)
	b = append(b, vaultID[:]...)
	b = append(b, userID[:]...)
	return binary.BigEndian.AppendUint64(b, generation)
}

// kemOf returns the KEM of an HPKE key, refusing all but the two of zsm.
func kemOf(id uint16) (KEM, error) {
	k := KEM(id)
	if k.sealedSize() == 0 {
		return 0, fmt.Errorf("%w: 0x%04x", ErrUnknownKEM, id)
	}
	return k, nil
}

// SealVaultKeyV2 seals vaultKey, the key of generation generation of vault
// vaultID, to recipient, the HPKE public key of user userID (from
// [RecipientKey]), and returns base64(enc || ciphertext) and the KEM used.
// The encapsulation randomness comes from crypto/rand inside crypto/hpke.
func SealVaultKeyV2(recipient hpke.PublicKey, vaultID, userID uuid.UUID, generation uint64, vaultKey []byte) (string, KEM, error) {
	if len(vaultKey) != VaultKeySize {
		return "", 0, fmt.Errorf("grant: vault key must be %d bytes", VaultKeySize)
	}
	if generation == 0 {
		return "", 0, errors.New("grant: generations start at 1")
	}
	if recipient == nil {
		return "", 0, errors.New("grant: no recipient key")
	}
	kem, err := kemOf(recipient.KEM().ID())
	if err != nil {
		return "", 0, err
	}
	ct, err := hpke.Seal(recipient, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), infoV2(vaultID, userID, generation), vaultKey)
	if err != nil {
		return "", 0, fmt.Errorf("grant: sealing the vault key: %w", err)
	}
	if len(ct) != kem.sealedSize() { // cannot happen: the KEM fixes the size
		return "", 0, fmt.Errorf("grant: sealed key of %d bytes", len(ct))
	}
	return base64.StdEncoding.EncodeToString(ct), kem, nil
}

// OpenVaultKeyV2 opens a sealed key of generation generation of vault
// vaultID with priv, the private key of user userID for the grant's KEM
// (keys.AccountKeys.KEMKey gives it). A sealed key that is not canonical
// base64 of the KEM's size is [ErrBadSealedKey]; one sealed for another
// vault, user, generation or key, or tampered with, is [ErrOpenVaultKey].
func OpenVaultKeyV2(priv hpke.PrivateKey, vaultID, userID uuid.UUID, generation uint64, sealed string) ([]byte, error) {
	if priv == nil {
		return nil, errors.New("grant: no private key")
	}
	kem, err := kemOf(priv.KEM().ID())
	if err != nil {
		return nil, err
	}
	ct, err := decodeSealedSize(sealed, kem.sealedSize())
	if err != nil {
		return nil, err
	}
	k, err := hpke.Open(priv, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), infoV2(vaultID, userID, generation), ct)
	if err != nil || len(k) != VaultKeySize {
		return nil, ErrOpenVaultKey
	}
	return k, nil
}

func decodeSealedSize(s string, size int) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != size || strings.ContainsAny(s, "\r\n") {
		return nil, ErrBadSealedKey
	}
	return b, nil
}

// GrantV2 says that GrantedBy gave UserID the key of generation Generation
// of VaultID, sealed with KEM, with Role.
type GrantV2 struct {
	VaultID, UserID, GrantedBy uuid.UUID
	Role                       string
	Generation                 uint64
	KEM                        KEM
	SealedKey                  string // base64(enc || ciphertext), as SealVaultKeyV2 returns it
}

// Message returns the bytes a version 2 grant's signature covers:
//
//	"zsm v2 grant" || 0x00 || vault_id || user_id || granted_by
//	  || u8(len(role)) || role || u64be(generation) || u16be(kem_id)
//	  || SHA-256(sealed key bytes)
//
// It fails for a role not in [Roles], generation 0, an unknown KEM, and a
// sealed key that is not canonical base64 of that KEM's size.
func (g GrantV2) Message() ([]byte, error) {
	if !slices.Contains(Roles, g.Role) {
		return nil, fmt.Errorf("grant: unknown role %q", g.Role)
	}
	if g.Generation == 0 {
		return nil, errors.New("grant: generation 0")
	}
	if g.KEM.sealedSize() == 0 {
		return nil, fmt.Errorf("%w: 0x%04x", ErrUnknownKEM, uint16(g.KEM))
	}
	sealed, err := decodeSealedSize(g.SealedKey, g.KEM.sealedSize())
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(sealed)
	m := make([]byte, 0, len("zsm v2 grant")+1+48+1+len(g.Role)+8+2+len(h))
	m = append(m, "zsm v2 grant\x00"...)
	m = append(m, g.VaultID[:]...)
	m = append(m, g.UserID[:]...)
	m = append(m, g.GrantedBy[:]...)
	m = append(m, byte(len(g.Role)))
	m = append(m, g.Role...)
	m = binary.BigEndian.AppendUint64(m, g.Generation)
	m = binary.BigEndian.AppendUint16(m, uint16(g.KEM))
	return append(m, h[:]...), nil
}

// SignV2 signs g with the granter's key and returns base64(signature).
func SignV2(g GrantV2, key ed25519.PrivateKey) (string, error) {
	if len(key) != ed25519.PrivateKeySize {
		return "", errors.New("grant: bad Ed25519 private key")
	}
	m, err := g.Message()
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(ed25519.Sign(key, m)), nil
}

// VerifyV2 checks signature over g under pub. Every failure, including a
// grant that cannot be encoded or a signature that is not canonical base64
// of 64 bytes, wraps [ErrBadSignature]. It does not check the KEM against
// the member's key record; [CheckKEM] does.
func VerifyV2(g GrantV2, signature string, pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: public key of %d bytes", ErrBadSignature, len(pub))
	}
	m, err := g.Message()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(signature)
	if err != nil || len(sig) != ed25519.SignatureSize || strings.ContainsAny(signature, "\r\n") {
		return fmt.Errorf("%w: malformed signature", ErrBadSignature)
	}
	if !ed25519.Verify(pub, m, sig) {
		return ErrBadSignature
	}
	return nil
}

// CommitmentSize is the size of a key commitment.
const CommitmentSize = sha256.Size

// KeyCommitment returns the commitment to key as generation generation of
// vault vaultID, which the membership log records:
//
//	HMAC-SHA256(key, "zsm v1 vault-key-commitment" || 0x00 || vault_id || u64be(generation))
func KeyCommitment(key []byte, vaultID uuid.UUID, generation uint64) ([CommitmentSize]byte, error) {
	var c [CommitmentSize]byte
	if len(key) != VaultKeySize {
		return c, fmt.Errorf("grant: vault key must be %d bytes", VaultKeySize)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("zsm v1 vault-key-commitment\x00"))
	m.Write(vaultID[:])
	m.Write(binary.BigEndian.AppendUint64(nil, generation))
	m.Sum(c[:0])
	return c, nil
}

// CheckKeyCommitment checks, in constant time, that key is the key the log
// committed to as generation generation of vault vaultID
// ([ErrKeyCommitment] otherwise). A client uses a vault key only after this
// check: a grant proves who sealed a key, the commitment that it is the key
// the members agreed on, so a server cannot substitute one it knows.
func CheckKeyCommitment(key []byte, vaultID uuid.UUID, generation uint64, want [CommitmentSize]byte) error {
	c, err := KeyCommitment(key, vaultID, generation)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrKeyCommitment, err)
	}
	if !hmac.Equal(c[:], want[:]) {
		return fmt.Errorf("%w: generation %d", ErrKeyCommitment, generation)
	}
	return nil
}

// chainContext is the envelope context of the key of generation g wrapped
// under the key of g+1: type 8, the vault, object id the vault id,
// revision g.
func chainContext(vaultID uuid.UUID, g uint64) envelope.Context {
	return envelope.Context{Type: envelope.PrevVaultKey, VaultID: vaultID, ObjectID: vaultID, Revision: g}
}

// WrapPrevious seals older, the key of generation g, under newer, the key
// of generation g+1, as envelope type 8, and returns its base64 (the
// vault_key_chain row of g). The nonce comes from rand.
func WrapPrevious(newer []byte, vaultID uuid.UUID, g uint64, older []byte, rand io.Reader) (string, error) {
	if len(older) != VaultKeySize {
		return "", fmt.Errorf("grant: vault key must be %d bytes", VaultKeySize)
	}
	if g == 0 {
		return "", errors.New("grant: generations start at 1")
	}
	return envelope.SealString(newer, chainContext(vaultID, g), older, rand)
}

// UnwrapPrevious opens the key of generation g with newer, the key of g+1.
// Failures wrap [ErrChain] and the envelope's error (a row moved to another
// vault or generation is envelope.ErrTampered).
func UnwrapPrevious(newer []byte, vaultID uuid.UUID, g uint64, wrapped string) ([]byte, error) {
	k, err := envelope.OpenString(newer, chainContext(vaultID, g), wrapped)
	if err != nil {
		return nil, fmt.Errorf("%w: generation %d: %w", ErrChain, g, err)
	}
	if len(k) != VaultKeySize {
		return nil, fmt.Errorf("%w: generation %d: key of %d bytes", ErrChain, g, len(k))
	}
	return k, nil
}

// Chain is what a member needs to reach older generations' keys: the
// wrapped keys (generation g → the key of g under the key of g+1) from the
// server, and the commitments from the replayed membership log.
type Chain struct {
	VaultID     uuid.UUID
	Wrapped     map[uint64]string
	Commitments map[uint64][CommitmentSize]byte
}

// Keys walks back from newestKey, the key of generation newest, to
// generation oldest, and returns the keys by generation. Every key,
// the newest included, must match its commitment ([ErrKeyCommitment]); a
// missing or unopenable link is [ErrChain]. A removed member, who holds
// only older keys, cannot walk forward: the chain only goes back.
func (c Chain) Keys(newest uint64, newestKey []byte, oldest uint64) (map[uint64][]byte, error) {
	if oldest == 0 || oldest > newest {
		return nil, fmt.Errorf("%w: generations %d..%d", ErrChain, oldest, newest)
	}
	check := func(g uint64, k []byte) error {
		want, ok := c.Commitments[g]
		if !ok {
			return fmt.Errorf("%w: no commitment for generation %d", ErrKeyCommitment, g)
		}
		return CheckKeyCommitment(k, c.VaultID, g, want)
	}
	if err := check(newest, newestKey); err != nil {
		return nil, err
	}
	out := map[uint64][]byte{newest: newestKey}
	k := newestKey
	for g := newest - 1; g >= oldest; g-- {
		w, ok := c.Wrapped[g]
		if !ok {
			return nil, fmt.Errorf("%w: generation %d is missing", ErrChain, g)
		}
		prev, err := UnwrapPrevious(k, c.VaultID, g, w)
		if err != nil {
			return nil, err
		}
		if err := check(g, prev); err != nil {
			return nil, err
		}
		out[g], k = prev, prev
	}
	return out, nil
}
