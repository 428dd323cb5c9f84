// Package grant implements vault keys, their HPKE sealing to members, and
// signed grants, as specified in docs/crypto.md §4 (version 1) and §8
// (version 2: key generations, the hybrid X-Wing KEM, key commitments and
// the chain of previous keys, in v2.go).
//
// A vault key is sealed to each member's X25519 public key with HPKE
// (RFC 9180 base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
// ChaCha20-Poly1305), the vault id and the recipient's user id bound into the
// HPKE info. A grant records who gave which sealed key with which role and is
// signed with the granter's Ed25519 key, so a server that substitutes a
// vault key it knows cannot sign for it.
package grant

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/google/uuid"
)

// Roles are the roles a grant may give, from most to least powerful.
var Roles = []string{"owner", "admin", "editor", "viewer"}

// Sizes of a vault key and of a sealed vault key (enc || ciphertext).
const (
	VaultKeySize  = 32
	encSize       = 32
	SealedKeySize = encSize + VaultKeySize + 16 // 80
)

// Errors returned by this package.
var (
	// ErrBadSealedKey means a sealed vault key is not canonical base64 of
	// SealedKeySize bytes.
	ErrBadSealedKey = errors.New("grant: malformed sealed vault key")
	// ErrOpenVaultKey means a sealed vault key does not open: it was sealed
	// to another key, for another vault or user, or tampered with.
	ErrOpenVaultKey = errors.New("grant: the sealed vault key does not open for this user and vault")
	// ErrBadSignature means a grant's signature does not verify under the
	// given key (or the grant cannot be encoded at all).
	ErrBadSignature = errors.New("grant: bad signature")
)

// NewVaultKey makes a vault key from 32 bytes of rand.
func NewVaultKey(rand io.Reader) ([]byte, error) {
	k := make([]byte, VaultKeySize)
	if _, err := io.ReadFull(rand, k); err != nil {
		return nil, fmt.Errorf("grant: reading a vault key: %w", err)
	}
	return k, nil
}

// info is the HPKE info: "zsm v1 vault-key" || 0x00 || vault_id || user_id.
func info(vaultID, userID uuid.UUID) []byte {
	b := make([]byte, 0, len("zsm v1 vault-key")+1+32)
	b = append(b, "zsm v1 vault-key\x00"...)
	b = append(b, vaultID[:]...)
	return append(b, userID[:]...)
}

// SealVaultKey seals vaultKey to recipient, the X25519 public key of user
// userID, for vault vaultID, and returns base64(enc || ciphertext). The
// ephemeral key comes from crypto/rand inside crypto/hpke.
func SealVaultKey(recipient *ecdh.PublicKey, vaultID, userID uuid.UUID, vaultKey []byte) (string, error) {
	if len(vaultKey) != VaultKeySize {
		return "", fmt.Errorf("grant: vault key must be %d bytes", VaultKeySize)
	}
	if recipient == nil || recipient.Curve() != ecdh.X25519() {
		return "", errors.New("grant: recipient must be an X25519 public key")
	}
	pk, err := hpke.NewDHKEMPublicKey(recipient)
	if err != nil {
		return "", err
	}
	ct, err := hpke.Seal(pk, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), info(vaultID, userID), vaultKey)
	if err != nil {
		return "", fmt.Errorf("grant: sealing the vault key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(ct), nil
}

// OpenVaultKey opens a sealed vault key with priv, the X25519 private key of
// user userID, for vault vaultID. A key sealed for another vault or user, or
// to another key, is [ErrOpenVaultKey]; one that does not decode is
// [ErrBadSealedKey].
func OpenVaultKey(priv *ecdh.PrivateKey, vaultID, userID uuid.UUID, sealed string) ([]byte, error) {
	if priv == nil || priv.Curve() != ecdh.X25519() {
		return nil, errors.New("grant: need an X25519 private key")
	}
	ct, err := decodeSealed(sealed)
	if err != nil {
		return nil, err
	}
	sk, err := hpke.NewDHKEMPrivateKey(priv)
	if err != nil {
		return nil, err
	}
	k, err := hpke.Open(sk, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), info(vaultID, userID), ct)
	if err != nil {
		return nil, ErrOpenVaultKey
	}
	if len(k) != VaultKeySize { // cannot happen: the size of ct fixes it
		return nil, ErrOpenVaultKey
	}
	return k, nil
}

func decodeSealed(s string) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != SealedKeySize || strings.ContainsAny(s, "\r\n") {
		return nil, ErrBadSealedKey
	}
	return b, nil
}

// Grant says that GrantedBy gave UserID the vault key SealedKey for VaultID
// with Role.
type Grant struct {
	VaultID, UserID, GrantedBy uuid.UUID
	Role                       string
	SealedKey                  string // base64(enc || ciphertext), as SealVaultKey returns it
}

// Message returns the bytes a grant's signature covers:
//
//	"zsm v1 grant" || 0x00 || vault_id || user_id || granted_by
//	  || u8(len(role)) || role || SHA-256(sealed key bytes)
//
// where the sealed key bytes are the decoded enc || ciphertext. It fails for
// a role not in [Roles] and for a sealed key that does not decode.
func (g Grant) Message() ([]byte, error) {
	if !slices.Contains(Roles, g.Role) {
		return nil, fmt.Errorf("grant: unknown role %q", g.Role)
	}
	sealed, err := decodeSealed(g.SealedKey)
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(sealed)
	m := make([]byte, 0, len("zsm v1 grant")+1+48+1+len(g.Role)+len(h))
	m = append(m, "zsm v1 grant\x00"...)
	m = append(m, g.VaultID[:]...)
	m = append(m, g.UserID[:]...)
	m = append(m, g.GrantedBy[:]...)
	m = append(m, byte(len(g.Role)))
	m = append(m, g.Role...)
	return append(m, h[:]...), nil
}

// Sign signs g with the granter's key and returns base64(signature).
func Sign(g Grant, key ed25519.PrivateKey) (string, error) {
	if len(key) != ed25519.PrivateKeySize {
		return "", errors.New("grant: bad Ed25519 private key")
	}
	m, err := g.Message()
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(ed25519.Sign(key, m)), nil
}

// Verify checks signature over g under pub. Every failure, including a
// grant that cannot be encoded or a signature that is not canonical base64
// of 64 bytes, wraps [ErrBadSignature].
func Verify(g Grant, signature string, pub ed25519.PublicKey) error {
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
