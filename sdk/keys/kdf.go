// Package keys implements zsm's account key hierarchy on the client, as
// specified in docs/crypto.md §1 and §3: two-secret key derivation (the
// password through Argon2id, then HKDF-SHA256 keyed with the Secret Key)
// into the SRP secret and the unlock key, the Secret Key's text form, and the
// key bundle that carries the account key and the user's X25519 and Ed25519
// key pairs, sealed, to the server and back.
//
// Nothing here trusts the server: KDF parameters below the floor are refused
// before any use ([KDFParams.Check]), and a bundle whose private keys do not
// match its public keys is refused ([OpenBundle]).
package keys

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
	"golang.org/x/text/unicode/norm"

	"zsm.dev/zsm/api"
	"zsm.dev/zsm/srpgroup"
)

// KDFParams are an account's password KDF parameters: the wire type
// api.KDF, with the checks and the derivation this package adds. The
// bounds are api's (KDFFloor*, KDFMax*, KDFSaltBytes); authsvc holds
// sign-ups to the same ones.
type KDFParams api.KDF

// ErrWeakKDF is wrapped by every refusal of [KDFParams.Check]. A client that
// gets it from parameters the server sent must abort the login before it
// derives or sends anything.
var ErrWeakKDF = errors.New("keys: KDF parameters refused")

// Errors [Derive] returns for its other inputs.
var (
	ErrBadPassword = errors.New("keys: the password must be non-empty UTF-8")
	ErrBadIdentity = errors.New("keys: the identity is not in srpgroup.NormalizeIdentity's normal form")
)

// DefaultKDF returns the floor parameters with a fresh salt read from rand.
// The zsm client always uses these at sign-up, so its accounts look like
// the made-up ones authsvc answers for unknown identities.
func DefaultKDF(rand io.Reader) (KDFParams, error) {
	var salt [api.KDFSaltBytes]byte
	if _, err := io.ReadFull(rand, salt[:]); err != nil {
		return KDFParams{}, fmt.Errorf("keys: reading a salt: %w", err)
	}
	return KDFParams{
		Alg:         api.KDFAlg,
		Salt:        base64.StdEncoding.EncodeToString(salt[:]),
		MemoryKiB:   api.KDFFloorMemoryKiB,
		Iterations:  api.KDFFloorIterations,
		Parallelism: api.KDFFloorParallelism,
	}, nil
}

// Check refuses parameters that are not Argon2id at or above the floor and
// at or below the maxima, or whose salt is not exactly api.KDFSaltBytes
// bytes in canonical standard base64 (with padding); the rules are
// api.KDF.Check's. The error wraps [ErrWeakKDF] and says why.
func (p KDFParams) Check() error {
	if err := api.KDF(p).Check(); err != nil {
		return fmt.Errorf("%w: %v", ErrWeakKDF, err)
	}
	return nil
}

// Equal reports whether p and q are the same parameters. The client pins an
// account's parameters at sign-up or first login and refuses any that are
// not Equal to them.
func (p KDFParams) Equal(q KDFParams) bool { return p == q }

// Derived holds the two keys the password and Secret Key yield. Neither is
// ever sent.
type Derived struct {
	SRPSecret []byte // what go-srp calls the password
	UnlockKey []byte // opens the account key
}

// String keeps the keys out of logs.
func (Derived) String() string { return "keys.Derived{REDACTED}" }

// GoString keeps the keys out of %#v.
func (d Derived) GoString() string { return d.String() }

// Format keeps the keys out of every fmt verb.
func (d Derived) Format(f fmt.State, _ rune) { io.WriteString(f, d.String()) }

// Labels of the HKDF info strings (docs/crypto.md §1).
const (
	labelSRP    = "zsm v1 srp-secret"
	labelUnlock = "zsm v1 unlock-key"
)

// Derive computes the SRP secret and the unlock key (docs/crypto.md §1):
//
//	K_pw        = Argon2id(NFKC(password), salt, t, m, p, 32)
//	SRP secret  = HKDF-SHA256(K_pw, salt = Secret Key, "zsm v1 srp-secret" || 0x00 || identity, 32)
//	unlock key  = HKDF-SHA256(K_pw, salt = Secret Key, "zsm v1 unlock-key" || 0x00 || identity, 32)
//
// It checks p first and refuses weak parameters ([ErrWeakKDF]) before any
// work. The password must be non-empty valid UTF-8; identity must already be
// in the normal form of srpgroup.NormalizeIdentity (it is refused
// otherwise, so the keys are never derived from a spelling the server does
// not use).
func Derive(password string, sk SecretKey, identity string, p KDFParams) (Derived, error) {
	if err := p.Check(); err != nil {
		return Derived{}, err
	}
	salt, _ := api.KDF(p).SaltBytes()
	if password == "" || !utf8.ValidString(password) {
		return Derived{}, ErrBadPassword
	}
	if _, err := srpgroup.ParseNormalIdentity(identity); err != nil {
		return Derived{}, ErrBadIdentity
	}
	pw := []byte(norm.NFKC.String(password))
	kpw := argon2.IDKey(pw, salt, p.Iterations, p.MemoryKiB, p.Parallelism, 32)
	clear(pw)
	defer clear(kpw)
	return split(kpw, sk, identity)
}

// split is the HKDF step of Derive, separate so tests can check it against
// the HKDF vectors in spec/vectors/kdf.json.
func split(kpw []byte, sk SecretKey, identity string) (Derived, error) {
	srp, err := hkdf.Key(sha256.New, kpw, sk[:], labelSRP+"\x00"+identity, 32)
	if err != nil {
		return Derived{}, err
	}
	unlock, err := hkdf.Key(sha256.New, kpw, sk[:], labelUnlock+"\x00"+identity, 32)
	if err != nil {
		return Derived{}, err
	}
	return Derived{SRPSecret: srp, UnlockKey: unlock}, nil
}
