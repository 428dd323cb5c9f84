package machinetoken

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/google/uuid"

	"zsm.dev/zsm/sdk/keyrecord"
	"zsm.dev/zsm/sdk/keys"
	"zsm.dev/zsm/srpgroup"
)

// HKDF labels of the keys derived from a token's secret (docs/crypto.md
// §13). Each is the info of HKDF-SHA256(ikm = secret, salt = token id
// bytes, L = 32).
const (
	InfoEd25519 = "zsm v1 token ed25519"
	InfoX25519  = "zsm v1 token x25519"
	InfoXWing   = "zsm v1 token xwing"
	InfoCache   = "zsm v1 token cache"
	InfoAnchor  = "zsm v1 token anchor"
)

// IdentityPrefix opens the identity of a token's key record. Sign-up
// refuses identities that start with it (srpgroup.CheckNewIdentity), so no
// person can register one.
const IdentityPrefix = srpgroup.TokenIdentityPrefix

// Identity is the identity of the token id's key record: "token:" and the
// id's canonical text.
func Identity(id uuid.UUID) string { return IdentityPrefix + id.String() }

// Keys are the keys a token derives from its secret. Like the token, they
// print as "[redacted]" everywhere.
type Keys struct {
	TokenID uuid.UUID
	Ed25519 ed25519.PrivateKey
	X25519  *ecdh.PrivateKey
	XWing   hpke.PrivateKey
	// cache seals the offline cache; anchor checks the creator's anchor.
	cache, anchor []byte
}

func derive(t Token, info string) ([]byte, error) {
	return hkdf.Key(sha256.New, t.s.b[:], t.id[:], info, 32)
}

// Derive computes every key of t.
func Derive(t Token) (*Keys, error) {
	if !t.Valid() {
		return nil, errors.New("machinetoken: no token")
	}
	var parts [5][]byte
	for i, info := range []string{InfoEd25519, InfoX25519, InfoXWing, InfoCache, InfoAnchor} {
		b, err := derive(t, info)
		if err != nil {
			return nil, fmt.Errorf("machinetoken: derive: %w", err)
		}
		parts[i] = b
	}
	defer clear(parts[0])
	defer clear(parts[1])
	defer clear(parts[2])
	x, err := ecdh.X25519().NewPrivateKey(parts[1])
	if err != nil {
		return nil, fmt.Errorf("machinetoken: x25519: %w", err)
	}
	xw, err := hpke.MLKEM768X25519().NewPrivateKey(parts[2])
	if err != nil {
		return nil, fmt.Errorf("machinetoken: x-wing: %w", err)
	}
	return &Keys{
		TokenID: t.id, Ed25519: ed25519.NewKeyFromSeed(parts[0]), X25519: x, XWing: xw,
		cache: parts[3], anchor: parts[4],
	}, nil
}

// CacheKey is the key that seals this token's offline cache.
func (k *Keys) CacheKey() []byte { return k.cache }

// AccountKeys are the token's keys in the shape the SDK opens grants with:
// no account key (a token has none), the X25519, Ed25519 and X-Wing keys.
func (k *Keys) AccountKeys() *keys.AccountKeys {
	return &keys.AccountKeys{X25519: k.X25519, Ed25519: k.Ed25519, XWing: k.XWing}
}

// Public are the public halves of a token's keys, as the server stores
// them.
type Public struct {
	TokenID uuid.UUID
	X25519  []byte // 32 bytes
	Ed25519 []byte // 32 bytes
	XWing   []byte // 1216 bytes
}

// Public returns the public halves of k.
func (k *Keys) Public() Public {
	return Public{
		TokenID: k.TokenID,
		X25519:  k.X25519.PublicKey().Bytes(),
		Ed25519: k.Ed25519.Public().(ed25519.PublicKey),
		XWing:   k.XWing.PublicKey().Bytes(),
	}
}

// Record is the token's key record: the version 2 key record of
// docs/crypto.md §3 with user_id = token id and identity "token:" + id:
//
//	"zsm v2 key-record" || 0x00 || token_id (16) || u8(len(identity)) || identity
//	  || x25519_public (32) || ed25519_public (32) || xwing_public (1216)
func (p Public) Record() keyrecord.Record {
	return keyrecord.Record{UserID: p.TokenID, Identity: Identity(p.TokenID), X25519: p.X25519, Ed25519: p.Ed25519, XWing: p.XWing}
}

// RecordMessage is the signed bytes of Record. It fails unless every key
// has its size (a token's record always has the X-Wing key) and is one a
// record may publish (keyrecord.Record.Message).
func (p Public) RecordMessage() ([]byte, error) {
	if len(p.X25519) != 32 || len(p.Ed25519) != ed25519.PublicKeySize || len(p.XWing) != keys.XWingPublicSize {
		return nil, errors.New("machinetoken: public keys of the wrong size")
	}
	return p.Record().Message()
}

// SignRecord signs the token's key record with its Ed25519 key and returns
// the signature in standard base64.
func (k *Keys) SignRecord() (string, error) {
	m, err := k.Public().RecordMessage()
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(ed25519.Sign(k.Ed25519, m)), nil
}

// ErrBadRecord means a token's key record signature does not verify (or
// the record cannot be encoded).
var ErrBadRecord = errors.New("machinetoken: the token's key record signature does not verify")

// VerifyRecord checks a token's key record signature under the record's
// own Ed25519 key: only the holder of the token's secret can make it.
func VerifyRecord(p Public, signature string) error {
	if _, err := p.RecordMessage(); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	if err := keyrecord.Verify(p.Record(), signature); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	return nil
}

const anchorLabel = "zsm v1 token-anchor"

// AnchorMessage is what the anchor MAC covers:
//
//	"zsm v1 token-anchor" || 0x00 || token_id (16) || creator user_id (16) || creator ed25519_public (32)
func AnchorMessage(tokenID, creator uuid.UUID, creatorEd25519 []byte) ([]byte, error) {
	if len(creatorEd25519) != ed25519.PublicKeySize {
		return nil, errors.New("machinetoken: the creator's Ed25519 key must be 32 bytes")
	}
	m := make([]byte, 0, len(anchorLabel)+1+16+16+32)
	m = append(m, anchorLabel...)
	m = append(m, 0)
	m = append(m, tokenID[:]...)
	m = append(m, creator[:]...)
	return append(m, creatorEd25519...), nil
}

// Anchor is the MAC with which the token's creator vouches, to the token
// alone, for its own user id and Ed25519 key: the token's trust anchor.
// The server stores it and cannot forge one without the token's secret.
func (k *Keys) Anchor(creator uuid.UUID, creatorEd25519 []byte) ([]byte, error) {
	m, err := AnchorMessage(k.TokenID, creator, creatorEd25519)
	if err != nil {
		return nil, err
	}
	mac := hmac.New(sha256.New, k.anchor)
	mac.Write(m)
	return mac.Sum(nil), nil
}

// ErrBadAnchor means an anchor does not vouch for the creator it names.
var ErrBadAnchor = errors.New("machinetoken: the anchor does not vouch for this creator and key")

// CheckAnchor checks, in constant time, that anchor vouches for creator
// and its Ed25519 key.
func (k *Keys) CheckAnchor(creator uuid.UUID, creatorEd25519, anchor []byte) error {
	want, err := k.Anchor(creator, creatorEd25519)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadAnchor, err)
	}
	if !hmac.Equal(want, anchor) {
		return ErrBadAnchor
	}
	return nil
}

const loginLabel = "zsm v1 machine-login"

// NonceSize is the size of a login nonce.
const NonceSize = 32

// LoginMessage is what a token signs to log in:
//
//	"zsm v1 machine-login" || 0x00 || token_id (16) || nonce (32) || u8(len(aud)) || aud
//
// aud is the server's audience (1–255 bytes), so that a signature made for
// one deployment is worth nothing at another.
func LoginMessage(tokenID uuid.UUID, nonce []byte, audience string) ([]byte, error) {
	if len(nonce) != NonceSize {
		return nil, fmt.Errorf("machinetoken: the nonce must be %d bytes", NonceSize)
	}
	if audience == "" || len(audience) > 255 {
		return nil, errors.New("machinetoken: the audience must be 1 to 255 bytes")
	}
	m := make([]byte, 0, len(loginLabel)+1+16+NonceSize+1+len(audience))
	m = append(m, loginLabel...)
	m = append(m, 0)
	m = append(m, tokenID[:]...)
	m = append(m, nonce...)
	m = append(m, byte(len(audience)))
	return append(m, audience...), nil
}

// SignLogin signs the login message for nonce and audience.
func (k *Keys) SignLogin(nonce []byte, audience string) ([]byte, error) {
	m, err := LoginMessage(k.TokenID, nonce, audience)
	if err != nil {
		return nil, err
	}
	return ed25519.Sign(k.Ed25519, m), nil
}

// VerifyLogin checks a login signature under the token's Ed25519 key.
func VerifyLogin(tokenID uuid.UUID, ed25519Public, nonce []byte, audience string, signature []byte) bool {
	m, err := LoginMessage(tokenID, nonce, audience)
	if err != nil || len(ed25519Public) != ed25519.PublicKeySize || len(signature) != ed25519.SignatureSize || keyrecord.SmallOrder(ed25519Public) {
		return false
	}
	return ed25519.Verify(ed25519Public, m, signature)
}

// String keeps the keys out of logs and error messages.
func (*Keys) String() string { return redacted }

// GoString keeps the keys out of %#v.
func (*Keys) GoString() string { return redacted }

// Format keeps the keys out of every fmt verb.
func (*Keys) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// MarshalJSON keeps the keys out of JSON.
func (*Keys) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// LogValue keeps the keys out of slog.
func (*Keys) LogValue() slog.Value { return slog.StringValue(redacted) }

// Wipe overwrites the symmetric keys and the Ed25519 key it can reach.
func (k *Keys) Wipe() {
	clear(k.Ed25519)
	clear(k.cache)
	clear(k.anchor)
}

// ParseID parses a token id as it travels: the canonical lower-case text of
// a version 4 uuid.
func ParseID(s string) (uuid.UUID, error) {
	id, err := uuid.Parse(s)
	if err != nil || id.String() != s || id.Version() != 4 || id.Variant() != uuid.RFC4122 || strings.ToLower(s) != s {
		return uuid.UUID{}, errors.New("machinetoken: not a token id (a version 4 uuid in lower case)")
	}
	return id, nil
}
