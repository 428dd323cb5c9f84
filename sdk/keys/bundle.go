package keys

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/google/uuid"

	"zsm.dev/zsm/sdk/envelope"
)

// AccountKeys are a user's long-term keys: the account key, which seals the
// private keys, the X25519 key for receiving vault keys (HPKE) and the
// Ed25519 key for signing grants.
//
// String, GoString and Format never show the keys.
type AccountKeys struct {
	AccountKey []byte // 32 random bytes
	X25519     *ecdh.PrivateKey
	Ed25519    ed25519.PrivateKey
}

// String keeps the keys out of logs.
func (AccountKeys) String() string { return "keys.AccountKeys{REDACTED}" }

// GoString keeps the keys out of %#v.
func (a AccountKeys) GoString() string { return a.String() }

// Format keeps the keys out of every fmt verb.
func (a AccountKeys) Format(f fmt.State, _ rune) { io.WriteString(f, a.String()) }

// NewAccountKeys makes an account key, an X25519 key pair and an Ed25519 key
// pair from 96 bytes of rand (32 each: the account key, the X25519 scalar and
// the Ed25519 seed). The keys are made from the bytes read, not by
// crypto/ecdh's GenerateKey, which ignores its reader since Go 1.26.
func NewAccountKeys(rand io.Reader) (*AccountKeys, error) {
	var b [96]byte
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return nil, fmt.Errorf("keys: reading account keys: %w", err)
	}
	defer clear(b[:])
	x, err := ecdh.X25519().NewPrivateKey(b[32:64])
	if err != nil {
		return nil, err
	}
	return &AccountKeys{
		AccountKey: bytes.Clone(b[:32]),
		X25519:     x,
		Ed25519:    ed25519.NewKeyFromSeed(b[64:96]),
	}, nil
}

// BundleVersion is the only key bundle version.
const BundleVersion = 1

// Bundle is the key bundle the server stores for a user (docs/crypto.md §3).
// Binary fields are standard base64 with padding.
type Bundle struct {
	Version        int    `json:"version"`
	AccountKey     string `json:"account_key"`     // envelope type 1 under the unlock key
	X25519Public   string `json:"x25519_public"`   // 32 bytes
	X25519Private  string `json:"x25519_private"`  // envelope type 2 under the account key
	Ed25519Public  string `json:"ed25519_public"`  // 32 bytes
	Ed25519Private string `json:"ed25519_private"` // envelope type 3 under the account key
}

// Errors returned by [ParseBundle] and [OpenBundle]. Errors from opening an
// envelope also wrap the envelope package's error.
var (
	// ErrMalformedBundle means the bundle does not parse: bad JSON, an
	// unknown, missing or repeated member, a version other than 1, bad
	// base64, a public key that is not 32 bytes, or an envelope of the wrong
	// type in a field (as when two fields were swapped).
	ErrMalformedBundle = errors.New("keys: malformed key bundle")
	// ErrUnlock means the unlock key does not open the account key: a wrong
	// password or Secret Key, a bundle of another user, or a tampered one.
	ErrUnlock = errors.New("keys: cannot open the account key (wrong password or Secret Key, or a tampered bundle)")
	// ErrTamperedBundle means the account key opened but a private key did
	// not, or a private key does not match the published public key.
	ErrTamperedBundle = errors.New("keys: tampered key bundle")
)

// accountContext is the envelope context of the bundle's field of type t
// (docs/crypto.md §2): the zero vault, the user id, revision 0.
func accountContext(t envelope.Type, userID uuid.UUID) envelope.Context {
	return envelope.Context{Type: t, ObjectID: userID}
}

// Bundle seals a's private parts for userID: the account key under
// unlockKey, the private keys under the account key.
func (a *AccountKeys) Bundle(unlockKey []byte, userID uuid.UUID, rand io.Reader) (Bundle, error) {
	if a == nil || len(a.AccountKey) != envelope.KeySize || a.X25519 == nil ||
		a.X25519.Curve() != ecdh.X25519() || len(a.Ed25519) != ed25519.PrivateKeySize {
		return Bundle{}, errors.New("keys: incomplete account keys")
	}
	ak, err := envelope.SealString(unlockKey, accountContext(envelope.AccountKey, userID), a.AccountKey, rand)
	if err != nil {
		return Bundle{}, err
	}
	xs := a.X25519.Bytes()
	defer clear(xs)
	xp, err := envelope.SealString(a.AccountKey, accountContext(envelope.X25519Private, userID), xs, rand)
	if err != nil {
		return Bundle{}, err
	}
	es := a.Ed25519.Seed()
	defer clear(es)
	ep, err := envelope.SealString(a.AccountKey, accountContext(envelope.Ed25519Private, userID), es, rand)
	if err != nil {
		return Bundle{}, err
	}
	return Bundle{
		Version:        BundleVersion,
		AccountKey:     ak,
		X25519Public:   base64.StdEncoding.EncodeToString(a.X25519.PublicKey().Bytes()),
		X25519Private:  xp,
		Ed25519Public:  base64.StdEncoding.EncodeToString(a.Ed25519.Public().(ed25519.PublicKey)),
		Ed25519Private: ep,
	}, nil
}

// OpenBundle opens b for userID with the unlock key. It opens the account
// key ([ErrUnlock] if that fails), then the private keys under it, and checks
// that each private key yields the public key published in the bundle
// ([ErrTamperedBundle] otherwise): the public halves are what other users
// encrypt to and verify with, so a bundle whose halves disagree is refused.
func OpenBundle(b Bundle, unlockKey []byte, userID uuid.UUID) (*AccountKeys, error) {
	f, err := b.check()
	if err != nil {
		return nil, err
	}
	ak, err := envelope.Open(unlockKey, accountContext(envelope.AccountKey, userID), f.accountKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnlock, err)
	}
	if len(ak) != envelope.KeySize {
		return nil, fmt.Errorf("%w: account key of %d bytes", ErrTamperedBundle, len(ak))
	}
	xs, err := envelope.Open(ak, accountContext(envelope.X25519Private, userID), f.x25519Private)
	if err != nil {
		return nil, fmt.Errorf("%w: X25519 private key: %w", ErrTamperedBundle, err)
	}
	defer clear(xs)
	es, err := envelope.Open(ak, accountContext(envelope.Ed25519Private, userID), f.ed25519Private)
	if err != nil {
		return nil, fmt.Errorf("%w: Ed25519 private key: %w", ErrTamperedBundle, err)
	}
	defer clear(es)
	if len(xs) != 32 || len(es) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: private key of the wrong size", ErrTamperedBundle)
	}
	x, err := ecdh.X25519().NewPrivateKey(xs)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTamperedBundle, err)
	}
	if subtle.ConstantTimeCompare(x.PublicKey().Bytes(), f.x25519Public) != 1 {
		return nil, fmt.Errorf("%w: the X25519 private key does not match the published public key", ErrTamperedBundle)
	}
	e := ed25519.NewKeyFromSeed(es)
	if subtle.ConstantTimeCompare(e.Public().(ed25519.PublicKey), f.ed25519Public) != 1 {
		return nil, fmt.Errorf("%w: the Ed25519 private key does not match the published public key", ErrTamperedBundle)
	}
	return &AccountKeys{AccountKey: ak, X25519: x, Ed25519: e}, nil
}

// X25519PublicKey returns the bundle's published X25519 public key.
func (b Bundle) X25519PublicKey() (*ecdh.PublicKey, error) {
	f, err := b.check()
	if err != nil {
		return nil, err
	}
	return ecdh.X25519().NewPublicKey(f.x25519Public)
}

// Ed25519PublicKey returns the bundle's published Ed25519 public key.
func (b Bundle) Ed25519PublicKey() (ed25519.PublicKey, error) {
	f, err := b.check()
	if err != nil {
		return nil, err
	}
	return ed25519.PublicKey(f.ed25519Public), nil
}

type bundleFields struct {
	accountKey, x25519Private, ed25519Private []byte
	x25519Public, ed25519Public               []byte
}

// check decodes and checks every field of b.
func (b Bundle) check() (bundleFields, error) {
	var f bundleFields
	if b.Version != BundleVersion {
		return f, fmt.Errorf("%w: version %d", ErrMalformedBundle, b.Version)
	}
	var err error
	env := func(name, s string, t envelope.Type) []byte {
		if err != nil {
			return nil
		}
		var raw []byte
		raw, err = decodeB64(s)
		if err != nil {
			err = fmt.Errorf("%w: %s: %w", ErrMalformedBundle, name, err)
			return nil
		}
		var p envelope.Parsed
		if p, err = envelope.Parse(raw); err != nil {
			err = fmt.Errorf("%w: %s: %w", ErrMalformedBundle, name, err)
			return nil
		}
		if p.Type != t {
			err = fmt.Errorf("%w: %s holds an envelope of type %v: %w", ErrMalformedBundle, name, p.Type, envelope.ErrWrongType)
			return nil
		}
		return raw
	}
	pub := func(name, s string) []byte {
		if err != nil {
			return nil
		}
		var raw []byte
		raw, err = decodeB64(s)
		if err == nil && len(raw) != 32 {
			err = fmt.Errorf("%d bytes", len(raw))
		}
		if err != nil {
			err = fmt.Errorf("%w: %s: %w", ErrMalformedBundle, name, err)
			return nil
		}
		return raw
	}
	f.accountKey = env("account_key", b.AccountKey, envelope.AccountKey)
	f.x25519Public = pub("x25519_public", b.X25519Public)
	f.x25519Private = env("x25519_private", b.X25519Private, envelope.X25519Private)
	f.ed25519Public = pub("ed25519_public", b.Ed25519Public)
	f.ed25519Private = env("ed25519_private", b.Ed25519Private, envelope.Ed25519Private)
	return f, err
}

// decodeB64 decodes canonical standard base64 with padding and nothing else.
func decodeB64(s string) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || s == "" || strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("not canonical base64")
	}
	return b, nil
}

// maxBundleSize bounds the JSON ParseBundle reads; a real bundle is about
// 500 bytes.
const maxBundleSize = 16 << 10

// ParseBundle parses a key bundle strictly: one JSON object with exactly the
// six members of [Bundle], each once, names matched exactly (not
// case-insensitively as encoding/json would), version the number 1 written
// as "1", every binary field canonical base64 of the right size or envelope
// type, and nothing after the object. Anything else is [ErrMalformedBundle].
func ParseBundle(data []byte) (Bundle, error) {
	var b Bundle
	if len(data) > maxBundleSize {
		return b, fmt.Errorf("%w: %d bytes", ErrMalformedBundle, len(data))
	}
	bad := func(format string, a ...any) (Bundle, error) {
		return Bundle{}, fmt.Errorf("%w: %s", ErrMalformedBundle, fmt.Sprintf(format, a...))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return bad("not a JSON object")
	}
	fields := map[string]*string{
		"account_key":     &b.AccountKey,
		"x25519_public":   &b.X25519Public,
		"x25519_private":  &b.X25519Private,
		"ed25519_public":  &b.Ed25519Public,
		"ed25519_private": &b.Ed25519Private,
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return bad("%v", err)
		}
		name, _ := tok.(string)
		if seen[name] {
			return bad("member %q repeated", name)
		}
		seen[name] = true
		val, err := dec.Token()
		if err != nil {
			return bad("%v", err)
		}
		if name == "version" {
			n, ok := val.(json.Number)
			if !ok || n.String() != "1" {
				return bad("version must be 1")
			}
			b.Version = 1
			continue
		}
		p, ok := fields[name]
		if !ok {
			return bad("unknown member %q", name)
		}
		s, ok := val.(string)
		if !ok {
			return bad("%s must be a string", name)
		}
		*p = s
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return bad("unterminated object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return bad("data after the object")
	}
	if len(seen) != len(fields)+1 {
		return bad("missing members")
	}
	if _, err := b.check(); err != nil {
		return Bundle{}, err
	}
	return b, nil
}
