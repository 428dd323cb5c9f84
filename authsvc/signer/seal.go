package signer

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"

	"zsm.dev/zsm/authsvc/store"
)

// sealVersion prefixes every sealed private key, so the format can change
// without guessing.
const sealVersion = 1

// sealPrivate encrypts an Ed25519 seed with the key-encryption key. The kid is
// bound as associated data: a sealed key copied onto another row fails to
// open.
func sealPrivate(kek, seed []byte, kid string) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(kek)
	if err != nil {
		return nil, fmt.Errorf("signer: key encryption key: %w", err)
	}
	out := make([]byte, 1+chacha20poly1305.NonceSizeX, 1+chacha20poly1305.NonceSizeX+len(seed)+aead.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, err
	}
	return aead.Seal(out, out[1:], seed, sealAD(kid)), nil
}

func openPrivate(kek, sealed []byte, kid string) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(kek)
	if err != nil {
		return nil, fmt.Errorf("signer: key encryption key: %w", err)
	}
	if len(sealed) < 1+chacha20poly1305.NonceSizeX+aead.Overhead() || sealed[0] != sealVersion {
		return nil, errors.New("signer: sealed key has an unknown format")
	}
	nonce := sealed[1 : 1+chacha20poly1305.NonceSizeX]
	seed, err := aead.Open(nil, nonce, sealed[1+chacha20poly1305.NonceSizeX:], sealAD(kid))
	if err != nil {
		return nil, fmt.Errorf("signer: cannot open private key %s (wrong key encryption key?)", kid)
	}
	return seed, nil
}

func sealAD(kid string) []byte { return []byte("zsm signing key v1\x00" + kid) }

// OpenPrivateKey unseals a stored key's private half with the
// key-encryption key, checking it against the stored public half. Operators'
// tools and the integration tests use it; the JWKS never carries its result.
func OpenPrivateKey(kek []byte, k store.SigningKey) (ed25519.PrivateKey, error) {
	seed, err := openPrivate(kek, k.Sealed, k.KID)
	if err != nil {
		return nil, err
	}
	priv := ed25519.NewKeyFromSeed(seed)
	if !priv.Public().(ed25519.PublicKey).Equal(ed25519.PublicKey(k.Public)) {
		return nil, fmt.Errorf("signer: key %s: private and public halves do not match", k.KID)
	}
	return priv, nil
}
