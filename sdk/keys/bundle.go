package keys

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
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
// private keys, the X25519 key for receiving vault keys (HPKE), the Ed25519
// key for signing grants, log entries and manifests, and, from bundle
// version 2 on, the X-Wing key (ML-KEM-768 + X25519) for receiving vault
// keys in a way a quantum computer cannot open later.
//
// String, GoString and Format never show the keys.
type AccountKeys struct {
	AccountKey []byte // 32 random bytes
	X25519     *ecdh.PrivateKey
	Ed25519    ed25519.PrivateKey
	XWing      hpke.PrivateKey // nil for version 1 keys; see AddXWing
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

// XWingKEM is the HPKE KEM id of X-Wing (MLKEM768-X25519), the hybrid key
// of bundle version 2.
const XWingKEM = 0x647a

// Sizes of an X-Wing key: the private key is its seed; the public key is
// the ML-KEM-768 encapsulation key (1184 bytes) followed by the X25519
// public key (32).
const (
	XWingSeedSize   = 32
	XWingPublicSize = 1216
)

// NewXWingKey makes an X-Wing private key from 32 bytes of rand, used as its
// seed as they are (the public key is derived from the seed), so the same
// bytes always give the same key: the vectors pin it, and nothing depends on
// randomness hidden inside crypto/hpke.
func NewXWingKey(rand io.Reader) (hpke.PrivateKey, error) {
	var seed [XWingSeedSize]byte
	if _, err := io.ReadFull(rand, seed[:]); err != nil {
		return nil, fmt.Errorf("keys: reading an X-Wing seed: %w", err)
	}
	defer clear(seed[:])
	return hpke.MLKEM768X25519().NewPrivateKey(seed[:])
}

// AddXWing gives a the X-Wing key of bundle version 2, made by
// [NewXWingKey] from 32 bytes of rand. It refuses keys that already have one.
func (a *AccountKeys) AddXWing(rand io.Reader) error {
	if a == nil {
		return errors.New("keys: no account keys")
	}
	if a.XWing != nil {
		return errors.New("keys: the account already has an X-Wing key")
	}
	k, err := NewXWingKey(rand)
	if err != nil {
		return err
	}
	a.XWing = k
	return nil
}

// KEMKey returns a's private key for the HPKE KEM kem: DHKEM(X25519)
// (0x0020) from the X25519 key, or X-Wing (0x647a) when a has one.
func (a *AccountKeys) KEMKey(kem uint16) (hpke.PrivateKey, error) {
	switch {
	case a == nil:
		return nil, errors.New("keys: no account keys")
	case kem == 0x0020 && a.X25519 != nil:
		return hpke.NewDHKEMPrivateKey(a.X25519)
	case kem == XWingKEM && a.XWing != nil:
		return a.XWing, nil
	}
	return nil, fmt.Errorf("keys: no private key for KEM 0x%04x", kem)
}

// Key bundle versions: 1 has the X25519 and Ed25519 keys; 2 adds the X-Wing
// key.
const (
	BundleV1 = 1
	BundleV2 = 2
)

// Bundle is the key bundle the server stores for a user (docs/crypto.md §3).
// Binary fields are standard base64 with padding. The X-Wing members are
// empty in version 1 and are then left out of the JSON, so a version 1
// bundle encodes as it always did.
type Bundle struct {
	Version        int    `json:"version"`
	AccountKey     string `json:"account_key"`             // envelope type 1 under the unlock key
	X25519Public   string `json:"x25519_public"`           // 32 bytes
	X25519Private  string `json:"x25519_private"`          // envelope type 2 under the account key
	Ed25519Public  string `json:"ed25519_public"`          // 32 bytes
	Ed25519Private string `json:"ed25519_private"`         // envelope type 3 under the account key
	XWingPublic    string `json:"xwing_public,omitempty"`  // version 2: 1216 bytes
	XWingPrivate   string `json:"xwing_private,omitempty"` // version 2: envelope type 6 under the account key
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
// unlockKey, the private keys under the account key. It makes a version 2
// bundle when a has an X-Wing key, version 1 otherwise.
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
	b := Bundle{
		Version:        BundleV1,
		AccountKey:     ak,
		X25519Public:   base64.StdEncoding.EncodeToString(a.X25519.PublicKey().Bytes()),
		X25519Private:  xp,
		Ed25519Public:  base64.StdEncoding.EncodeToString(a.Ed25519.Public().(ed25519.PublicKey)),
		Ed25519Private: ep,
	}
	if a.XWing != nil {
		return a.addXWingMembers(b, userID, rand)
	}
	return b, nil
}

// addXWingMembers returns b (a version 1 bundle of a) as version 2 with a's
// X-Wing key sealed under the account key.
func (a *AccountKeys) addXWingMembers(b Bundle, userID uuid.UUID, rand io.Reader) (Bundle, error) {
	if a.XWing.KEM().ID() != XWingKEM {
		return Bundle{}, errors.New("keys: the X-Wing key is of another KEM")
	}
	seed, err := a.XWing.Bytes()
	if err != nil || len(seed) != XWingSeedSize {
		return Bundle{}, errors.New("keys: the X-Wing key has no seed")
	}
	wp, err := envelope.SealString(a.AccountKey, accountContext(envelope.XWingSeed, userID), seed, rand)
	if err != nil {
		return Bundle{}, err
	}
	b.Version = BundleV2
	b.XWingPublic = base64.StdEncoding.EncodeToString(a.XWing.PublicKey().Bytes())
	b.XWingPrivate = wp
	return b, nil
}

// UpgradeBundle turns b, a version 1 bundle that a was opened from, into
// version 2 (docs/crypto.md §3, Upgrade). It gives a an X-Wing key from 32
// bytes of rand (unless a has one already), seals it under the account key,
// and copies b's five other members byte for byte, so the server can check
// that the account key, the X25519 key and the Ed25519 key did not change.
// It refuses a bundle that is not version 1 or whose public keys are not
// a's.
func (a *AccountKeys) UpgradeBundle(b Bundle, userID uuid.UUID, rand io.Reader) (Bundle, error) {
	if a == nil || len(a.AccountKey) != envelope.KeySize || a.X25519 == nil || len(a.Ed25519) != ed25519.PrivateKeySize {
		return Bundle{}, errors.New("keys: incomplete account keys")
	}
	f, err := b.check()
	if err != nil {
		return Bundle{}, err
	}
	if b.Version != BundleV1 {
		return Bundle{}, fmt.Errorf("keys: only a version 1 bundle is upgraded, this is version %d", b.Version)
	}
	if !bytes.Equal(f.x25519Public, a.X25519.PublicKey().Bytes()) || !bytes.Equal(f.ed25519Public, a.Ed25519.Public().(ed25519.PublicKey)) {
		return Bundle{}, errors.New("keys: the bundle is not of these keys")
	}
	if a.XWing == nil {
		if err := a.AddXWing(rand); err != nil {
			return Bundle{}, err
		}
	}
	return a.addXWingMembers(b, userID, rand)
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
	var xw hpke.PrivateKey
	if b.Version == BundleV2 {
		if xw, err = openXWing(ak, userID, f); err != nil {
			return nil, err
		}
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
	return &AccountKeys{AccountKey: ak, X25519: x, Ed25519: e, XWing: xw}, nil
}

// openXWing opens the X-Wing seed of a version 2 bundle and checks that it
// yields the published X-Wing public key: that key is what others seal vault
// keys to, so one the seed does not give is the server's, not the user's.
func openXWing(ak []byte, userID uuid.UUID, f bundleFields) (hpke.PrivateKey, error) {
	seed, err := envelope.Open(ak, accountContext(envelope.XWingSeed, userID), f.xwingPrivate)
	if err != nil {
		return nil, fmt.Errorf("%w: X-Wing private key: %w", ErrTamperedBundle, err)
	}
	defer clear(seed)
	if len(seed) != XWingSeedSize {
		return nil, fmt.Errorf("%w: X-Wing seed of %d bytes", ErrTamperedBundle, len(seed))
	}
	k, err := hpke.MLKEM768X25519().NewPrivateKey(seed)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTamperedBundle, err)
	}
	if subtle.ConstantTimeCompare(k.PublicKey().Bytes(), f.xwingPublic) != 1 {
		return nil, fmt.Errorf("%w: the X-Wing seed does not match the published public key", ErrTamperedBundle)
	}
	return k, nil
}

// X25519PublicKey returns the bundle's published X25519 public key.
func (b Bundle) X25519PublicKey() (*ecdh.PublicKey, error) {
	f, err := b.check()
	if err != nil {
		return nil, err
	}
	return ecdh.X25519().NewPublicKey(f.x25519Public)
}

// XWingPublicKey returns the bundle's published X-Wing public key (1216
// bytes), or nil for a version 1 bundle.
func (b Bundle) XWingPublicKey() ([]byte, error) {
	f, err := b.check()
	if err != nil {
		return nil, err
	}
	return f.xwingPublic, nil
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
	accountKey, x25519Private, ed25519Private, xwingPrivate []byte
	x25519Public, ed25519Public, xwingPublic                []byte
}

// check decodes and checks every field of b: the members of its version and
// no others.
func (b Bundle) check() (bundleFields, error) {
	var f bundleFields
	switch b.Version {
	case BundleV1:
		if b.XWingPublic != "" || b.XWingPrivate != "" {
			return f, fmt.Errorf("%w: version 1 with X-Wing members", ErrMalformedBundle)
		}
	case BundleV2:
	default:
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
	pub := func(name, s string, size int) []byte {
		if err != nil {
			return nil
		}
		var raw []byte
		raw, err = decodeB64(s)
		if err == nil && len(raw) != size {
			err = fmt.Errorf("%d bytes", len(raw))
		}
		if err != nil {
			err = fmt.Errorf("%w: %s: %w", ErrMalformedBundle, name, err)
			return nil
		}
		return raw
	}
	f.accountKey = env("account_key", b.AccountKey, envelope.AccountKey)
	f.x25519Public = pub("x25519_public", b.X25519Public, 32)
	f.x25519Private = env("x25519_private", b.X25519Private, envelope.X25519Private)
	f.ed25519Public = pub("ed25519_public", b.Ed25519Public, 32)
	f.ed25519Private = env("ed25519_private", b.Ed25519Private, envelope.Ed25519Private)
	if b.Version == BundleV2 {
		f.xwingPublic = pub("xwing_public", b.XWingPublic, XWingPublicSize)
		f.xwingPrivate = env("xwing_private", b.XWingPrivate, envelope.XWingSeed)
		if err == nil {
			// The public key must also be one crypto/hpke accepts (a
			// well-formed ML-KEM-768 encapsulation key).
			if _, e := hpke.MLKEM768X25519().NewPublicKey(f.xwingPublic); e != nil {
				err = fmt.Errorf("%w: xwing_public: %w", ErrMalformedBundle, e)
			}
		}
	}
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
// 500 bytes in version 1 and 2,300 in version 2.
const maxBundleSize = 16 << 10

// ParseBundle parses a key bundle strictly: one JSON object with exactly the
// members of its version (version 1: the six members of version 1; version
// 2: those and xwing_public and xwing_private), each once, names matched
// exactly (not case-insensitively as encoding/json would), version the
// number 1 or 2 written as such, every binary field canonical base64 of the
// right size or envelope type, and nothing after the object. Anything else
// is [ErrMalformedBundle].
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
		"xwing_public":    &b.XWingPublic,
		"xwing_private":   &b.XWingPrivate,
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
			switch {
			case ok && n.String() == "1":
				b.Version = BundleV1
			case ok && n.String() == "2":
				b.Version = BundleV2
			default:
				return bad("version must be 1 or 2")
			}
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
	// Exactly the members of the version: 6 for version 1, 8 for version 2
	// (check refuses X-Wing members in version 1, and empty ones in 2).
	want := 6
	if b.Version == BundleV2 {
		want = 8
	}
	if !seen["version"] || len(seen) != want {
		return bad("the members of version %d are not all there", b.Version)
	}
	if _, err := b.check(); err != nil {
		return Bundle{}, err
	}
	return b, nil
}
