// Package envelope implements the one ciphertext format zsm stores on the
// server, as specified in docs/crypto.md §2.
//
// An envelope is
//
//	version (0x01) || type || nonce (24) || commitment (32) || ciphertext || tag (16)
//
// sealed with XChaCha20-Poly1305 under a fresh random nonce. The associated
// data is never stored: the reader rebuilds it from the [Context] it expects
// (type, vault, object and revision), so a ciphertext moved to another row,
// vault, object type or revision does not open. The commitment, an
// HMAC-SHA256 of the nonce under the key, is checked before decryption, so
// one ciphertext cannot be made to open under two keys.
//
// There is one version and no legacy reader: anything else is an error.
package envelope

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/google/uuid"
	"golang.org/x/crypto/chacha20poly1305"
)

// Version is the only envelope version this package reads or writes.
const Version = 1

// Type says what an envelope holds. It is stored in the envelope and bound
// into the associated data.
type Type uint8

// The envelope types of docs/crypto.md §2.
const (
	AccountKey     Type = 1 // the account key, under the unlock key
	X25519Private  Type = 2 // the X25519 scalar, under the account key
	Ed25519Private Type = 3 // the Ed25519 seed, under the account key
	VaultMeta      Type = 4 // a vault's metadata, under the vault key
	Secret         Type = 5 // a secret, under the vault key
	XWingSeed      Type = 6 // the X-Wing (ML-KEM-768 + X25519) seed, under the account key
	PinSet         Type = 7 // the account's pin set, under the account key
	PrevVaultKey   Type = 8 // the vault key of generation g, under the key of g+1
)

func (t Type) valid() bool { return t >= AccountKey && t <= PrevVaultKey }

func (t Type) String() string {
	switch t {
	case AccountKey:
		return "account key"
	case X25519Private:
		return "X25519 private key"
	case Ed25519Private:
		return "Ed25519 private key"
	case VaultMeta:
		return "vault metadata"
	case Secret:
		return "secret"
	case XWingSeed:
		return "X-Wing private key"
	case PinSet:
		return "pin set"
	case PrevVaultKey:
		return "previous vault key"
	}
	return fmt.Sprintf("unknown type %d", uint8(t))
}

// Sizes of the fixed parts of an envelope.
const (
	KeySize        = chacha20poly1305.KeySize    // 32
	NonceSize      = chacha20poly1305.NonceSizeX // 24
	CommitmentSize = sha256.Size                 // 32
	TagSize        = chacha20poly1305.Overhead   // 16

	headerSize = 2 + NonceSize + CommitmentSize
	// Overhead is how much longer an envelope is than its plaintext.
	Overhead = headerSize + TagSize // 74
	adSize   = len(adLabel) + 1 + 1 + 1 + 16 + 16 + 8
)

const (
	adLabel     = "zsm-envelope"
	commitLabel = "zsm v1 key-commitment"
)

// Errors returned by [Parse] and [Open]. They are distinct so a caller (and
// a test) can tell a parse failure from a failed authentication, but a
// client must never reveal to the server which one happened.
var (
	// ErrMalformed means the bytes are not an envelope: too short, an
	// unknown type, or bad base64.
	ErrMalformed = errors.New("envelope: malformed")
	// ErrUnsupportedVersion means the version byte is not [Version].
	ErrUnsupportedVersion = errors.New("envelope: unsupported version")
	// ErrWrongType means the envelope holds another type of object than the
	// one the caller expects.
	ErrWrongType = errors.New("envelope: wrong object type")
	// ErrTampered means the commitment or the AEAD tag does not check out:
	// the key is wrong, or the envelope was modified, moved to another
	// vault, object or revision, or relabelled.
	ErrTampered = errors.New("envelope: wrong key or tampered ciphertext")
)

// Context is what an envelope is bound to. It is not stored in the envelope
// (except the type); the reader supplies the context it expects.
type Context struct {
	Type     Type
	VaultID  uuid.UUID // the zero uuid for account-level objects
	ObjectID uuid.UUID
	Revision uint64
}

// AD returns the associated data for c:
//
//	"zsm-envelope" || 0x00 || version || type || vault_id || object_id || u64be(revision)
func (c Context) AD() []byte {
	var b [adSize]byte
	c.ad(&b)
	return b[:]
}

func (c Context) ad(b *[adSize]byte) {
	n := copy(b[:], adLabel)
	b[n] = 0
	b[n+1] = Version
	b[n+2] = byte(c.Type)
	n += 3
	n += copy(b[n:], c.VaultID[:])
	n += copy(b[n:], c.ObjectID[:])
	binary.BigEndian.PutUint64(b[n:], c.Revision)
}

// commitment computes HMAC-SHA256(key, "zsm v1 key-commitment" || 0x00 || nonce).
//
// It is HMAC as in RFC 2104, written out over stack buffers because Open
// runs it for every secret a client lists; the tests check it against
// crypto/hmac. The key is always KeySize bytes, shorter than the SHA-256
// block, so it is only zero-padded.
func commitment(key []byte, nonce *[NonceSize]byte) [CommitmentSize]byte {
	const block = sha256.BlockSize
	var inner [block + len(commitLabel) + 1 + NonceSize]byte
	var outer [block + sha256.Size]byte
	copy(inner[:], key)
	copy(outer[:], key)
	for i := 0; i < block; i++ {
		inner[i] ^= 0x36
		outer[i] ^= 0x5c
	}
	n := block + copy(inner[block:], commitLabel)
	inner[n] = 0
	copy(inner[n+1:], nonce[:])
	ih := sha256.Sum256(inner[:])
	copy(outer[block:], ih[:])
	return sha256.Sum256(outer[:])
}

func checkKey(key []byte) error {
	if len(key) != KeySize {
		return fmt.Errorf("envelope: key must be %d bytes, got %d", KeySize, len(key))
	}
	return nil
}

// Seal encrypts plaintext under key for ctx with a fresh nonce read from
// rand (callers pass crypto/rand.Reader). Nonces are 24 random bytes, so
// they never repeat in practice however many envelopes one key seals.
func Seal(key []byte, ctx Context, plaintext []byte, rand io.Reader) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if !ctx.Type.valid() {
		return nil, fmt.Errorf("envelope: cannot seal %v", ctx.Type)
	}
	var nonce [NonceSize]byte
	if _, err := io.ReadFull(rand, nonce[:]); err != nil {
		return nil, fmt.Errorf("envelope: reading a nonce: %w", err)
	}
	return seal(key, ctx, plaintext, &nonce)
}

func seal(key []byte, ctx Context, plaintext []byte, nonce *[NonceSize]byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, headerSize, headerSize+len(plaintext)+TagSize)
	out[0] = Version
	out[1] = byte(ctx.Type)
	copy(out[2:], nonce[:])
	c := commitment(key, nonce)
	copy(out[2+NonceSize:], c[:])
	var ad [adSize]byte
	ctx.ad(&ad)
	return aead.Seal(out, nonce[:], plaintext, ad[:]), nil
}

// Open checks and decrypts an envelope sealed for ctx. It refuses, in this
// order: bytes that do not parse ([ErrMalformed], [ErrUnsupportedVersion]),
// an envelope of another type than ctx.Type ([ErrWrongType]), and then, with
// [ErrTampered], a commitment that does not match key (checked in constant
// time before any decryption) or an AEAD failure (a modified envelope, or
// one moved to another vault, object or revision).
func Open(key []byte, ctx Context, env []byte) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if !ctx.Type.valid() {
		return nil, fmt.Errorf("%w: cannot open %v", ErrWrongType, ctx.Type)
	}
	p, err := Parse(env)
	if err != nil {
		return nil, err
	}
	if p.Type != ctx.Type {
		return nil, fmt.Errorf("%w: want %v, envelope holds %v", ErrWrongType, ctx.Type, p.Type)
	}
	// Key commitment first: XChaCha20-Poly1305 is not key-committing, and a
	// ciphertext crafted to open under several keys must fail here, before
	// the AEAD is ever tried (partitioning oracles, invisible salamanders).
	c := commitment(key, &p.Nonce)
	if !hmac.Equal(c[:], p.Commitment[:]) {
		return nil, ErrTampered
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	var ad [adSize]byte
	ctx.ad(&ad)
	pt, err := aead.Open(nil, p.Nonce[:], p.Ciphertext, ad[:])
	if err != nil {
		return nil, ErrTampered
	}
	if pt == nil {
		pt = []byte{}
	}
	return pt, nil
}

// SealString is [Seal] returning base64(envelope), the form text columns hold.
func SealString(key []byte, ctx Context, plaintext []byte, rand io.Reader) (string, error) {
	env, err := Seal(key, ctx, plaintext, rand)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(env), nil
}

// OpenString is [Open] of base64(envelope). The base64 must be canonical
// standard base64 with padding; anything else is [ErrMalformed].
func OpenString(key []byte, ctx Context, env string) ([]byte, error) {
	b, err := decodeBase64(env)
	if err != nil {
		return nil, err
	}
	return Open(key, ctx, b)
}

// decodeBase64 decodes canonical standard base64 with padding, the text form
// of an envelope, and returns [ErrMalformed] for anything else (including
// non-zero trailing bits, line breaks and missing padding), so that one
// envelope has exactly one text form.
func decodeBase64(s string) ([]byte, error) {
	// Strict refuses non-zero padding bits; the decoder skips CR and LF
	// even then, so refuse those separately.
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(s) == 0 || strings.ContainsAny(s, "\r\n") {
		return nil, fmt.Errorf("%w: not canonical base64", ErrMalformed)
	}
	return b, nil
}

// Parsed is an envelope split into its fields.
type Parsed struct {
	Version    uint8
	Type       Type
	Nonce      [NonceSize]byte
	Commitment [CommitmentSize]byte
	Ciphertext []byte // the ciphertext and the 16-byte tag; aliases the parsed bytes
}

// Parse splits env into its fields without decrypting it. It checks, in this
// order: the version byte (anything but [Version] is
// [ErrUnsupportedVersion], so a future format is reported as such whatever
// its layout), the length (at least [Overhead] bytes), and the type (1 to 8);
// the last two are [ErrMalformed].
func Parse(env []byte) (Parsed, error) {
	if len(env) == 0 {
		return Parsed{}, fmt.Errorf("%w: empty", ErrMalformed)
	}
	if env[0] != Version {
		return Parsed{}, fmt.Errorf("%w: %d", ErrUnsupportedVersion, env[0])
	}
	if len(env) < Overhead {
		return Parsed{}, fmt.Errorf("%w: %d bytes is too short", ErrMalformed, len(env))
	}
	p := Parsed{Version: env[0], Type: Type(env[1]), Ciphertext: env[headerSize:]}
	if !p.Type.valid() {
		return Parsed{}, fmt.Errorf("%w: %v", ErrMalformed, p.Type)
	}
	copy(p.Nonce[:], env[2:])
	copy(p.Commitment[:], env[2+NonceSize:])
	return p, nil
}

// Marshal returns the envelope bytes of p. For every env that [Parse]
// accepts, Parse(env).Marshal() equals env.
func (p Parsed) Marshal() []byte {
	out := make([]byte, 0, headerSize+len(p.Ciphertext))
	out = append(out, p.Version, byte(p.Type))
	out = append(out, p.Nonce[:]...)
	out = append(out, p.Commitment[:]...)
	return append(out, p.Ciphertext...)
}
