// Package srpgroup pins the SRP-6a parameters that the zsm client and authsvc
// share, and checks every value that crosses the wire before go-srp sees it.
//
// zsm uses github.com/opencoff/go-srp v0.6.7: a BLAKE2b-256 variant of SRP-6a
// (x = H(H(I), H(p), s), M = H(K, A, B, I, s, N, g), server proof H(K, M)).
// The group is the 3072-bit group of RFC 5054 with g = 5. It is fixed here, in
// code, on both sides: neither a client nor a stored row can choose the group
// or the hash, and this package refuses to start if the library's group is
// not byte for byte the one written below.
package srpgroup

import (
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"unicode"
	"unicode/utf8"

	srp "github.com/opencoff/go-srp"
	"golang.org/x/crypto/blake2b"
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Bits is the size of the pinned group. 3072 bits is the 128-bit security
// level (OWASP ASVS 5.0 asks for at least that for finite-field groups).
const Bits = 3072

// FieldBytes is the size of N in bytes; salts, A, B and v are at most this long.
const FieldBytes = Bits / 8

// Hash is the hash go-srp runs with; its numeric value is part of nothing
// that is stored or sent.
const Hash = crypto.BLAKE2b_256

// nHex is the RFC 5054 3072-bit prime.
const nHex = "ffffffffffffffffc90fdaa22168c234c4c6628b80dc1cd129024e088a67cc74020bbea63b139b22514a08798e3404ddef9519b3cd3a431b302b0a6df25f14374fe1356d6d51c245e485b576625e7ec6f44c42e9a637ed6b0bff5cb6f406b7edee386bfb5a899fa5ae9f24117c4b1fe649286651ece45b3dc2007cb8a163bf0598da48361c55d39a69163fa8fd24cf5f83655d23dca3ad961c62f356208552bb9ed529077096966d670c354e4abc9804f1746c08ca18217c32905e462e36ce3be39e772c180e86039b2783a2ec07a28fb5c55df06f4c52c9de2bcbf6955817183995497cea956ae515d2261898fa051015728e5a8aaac42dad33170d04507a33a85521abdf1cba64ecfb850458dbef0a8aea71575d060c7db3970f85a6e1e4c7abf5ae8cdb0933d71e8c94e04a25619dcee3d2261ad2ee6bf12ffa06d98a0864d87602733ec86a64521f2b18177b200cbbe117577a615d6c770988c0bad946e208e24fa074e5ab3143db5bfce0fd108e4b82d120a93ad2caffffffffffffffff"

// G is the generator of the group.
const G = 5

var (
	// N is the pinned prime.
	N       = mustHex(nHex)
	nMinus1 = new(big.Int).Sub(N, big.NewInt(1))

	env *srp.SRP
)

func mustHex(s string) *big.Int {
	n, ok := new(big.Int).SetString(s, 16)
	if !ok {
		panic("srpgroup: bad constant")
	}
	return n
}

func init() {
	s, err := srp.NewWithHash(Hash, Bits)
	if err != nil {
		panic(fmt.Sprintf("srpgroup: go-srp has no %d-bit group: %v", Bits, err))
	}
	// go-srp keeps its group private; its encoded verifier is the one place it
	// shows N and g. Compare them with ours so an upgrade of the library that
	// changed the group cannot slip through.
	v, err := s.Verifier([]byte("pin"), []byte("pin"))
	if err != nil {
		panic(err)
	}
	_, enc := v.Encode()
	f := strings.Split(enc, ":")
	if len(f) != 7 || f[0] != fmt.Sprint(FieldBytes) || f[1] != nHex || f[2] != fmt.Sprintf("%x", G) || f[3] != fmt.Sprint(int(Hash)) {
		panic("srpgroup: go-srp's 3072-bit group or hash differs from the pinned one")
	}
	env = s
}

// Env returns the go-srp environment with the pinned group and hash.
func Env() *srp.SRP { return env }

// Errors returned by the checks. Callers map them to a 4xx answer.
var (
	ErrIdentity = errors.New("identity must be 3 to 254 bytes of printable characters without spaces")
	ErrEncoding = errors.New("value is not canonical lower-case hex")
	ErrRange    = errors.New("value is outside the group")
	ErrSalt     = errors.New("salt has the wrong size")
)

var folder = cases.Fold()

// NormalizeIdentity returns the canonical form of a user identity (an e-mail
// address or a user name): Unicode NFKC, case-folded, surrounding space
// removed. Code past an edge takes an Identity (ParseIdentity) instead. go-srp hashes the identity unsalted into every proof, so the client
// and the server must both hash exactly this form; two spellings that
// normalize alike are one account.
//
// An identity whose normal form is not stable (normalizing it again would
// change it, as with some Cherokee letters under case folding) is refused:
// the client and the server must hash the same bytes whatever side
// normalizes, and two spellings must never become two accounts.
func NormalizeIdentity(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", ErrIdentity
	}
	s = normalize(s)
	if normalize(s) != s {
		return "", ErrIdentity
	}
	if len(s) < 3 || len(s) > 254 {
		return "", ErrIdentity
	}
	for _, r := range s {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return "", ErrIdentity
		}
	}
	return s, nil
}

// Identity is a user identity in the normal form of NormalizeIdentity.
// Only ParseIdentity and ParseNormalIdentity make one, so a value of this
// type was checked exactly once, where the text came in (a request, a
// command line, a stored row), and everything past that edge takes the
// Identity and never normalizes again. The zero Identity is not valid.
type Identity struct{ s string }

// ParseIdentity normalizes what a person typed (or a client sent) into an
// Identity; two spellings that normalize alike are one identity.
func ParseIdentity(s string) (Identity, error) {
	n, err := NormalizeIdentity(s)
	if err != nil {
		return Identity{}, err
	}
	return Identity{n}, nil
}

// ParseNormalIdentity accepts only text that is in normal form already: an
// identity read back from storage, or one another program normalized and
// signed or hashed. Normalizing it would change what was signed, so a
// spelling that is not normal is ErrIdentity rather than fixed.
func ParseNormalIdentity(s string) (Identity, error) {
	id, err := ParseIdentity(s)
	if err != nil || id.s != s {
		return Identity{}, ErrIdentity
	}
	return id, nil
}

// String is the identity in normal form: what go-srp hashes, what the
// database stores.
func (i Identity) String() string { return i.s }

// IsZero reports whether i is the zero Identity (none given).
func (i Identity) IsZero() bool { return i.s == "" }

func normalize(s string) string {
	return norm.NFKC.String(folder.String(norm.NFKC.String(strings.TrimSpace(s))))
}

// IdentityHash is H(I) as go-srp computes it: the identity hash that enters
// the proofs and the verifier's x.
func IdentityHash(identity string) []byte {
	h := blake2b.Sum256([]byte(identity))
	return h[:]
}

// ParsePublic parses a public value (A, B or the verifier v) sent as hex and
// checks that it is an element of the group other than the degenerate ones:
// it must be canonical lower-case hex without leading zeros, at most as long as
// N, and 1 < x < N-1. The check runs before any modular arithmetic, so an
// oversized value costs nothing but the parse of at most 2·FieldBytes
// characters.
//
// A ≡ 0 (mod N) is the classic SRP bypass (S becomes 0); A ≡ 1 and N-1 make
// S predictable too. go-srp itself only checks 0.
func ParsePublic(s string) (*big.Int, error) {
	if len(s) == 0 || len(s) > 2*FieldBytes {
		return nil, ErrRange
	}
	if s[0] == '0' {
		return nil, ErrEncoding
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return nil, ErrEncoding
		}
	}
	x, ok := new(big.Int).SetString(s, 16)
	if !ok {
		return nil, ErrEncoding
	}
	if x.Cmp(big.NewInt(1)) <= 0 || x.Cmp(nMinus1) >= 0 {
		return nil, ErrRange
	}
	return x, nil
}

// FormatPublic is the canonical encoding ParsePublic accepts.
func FormatPublic(x *big.Int) string { return x.Text(16) }

// ParseSalt parses an SRP salt sent as hex. go-srp makes salts as long as N;
// that is the only size accepted.
func ParseSalt(s string) ([]byte, error) {
	if len(s) != 2*FieldBytes {
		return nil, ErrSalt
	}
	b, err := hex.DecodeString(s)
	if err != nil || hex.EncodeToString(b) != s {
		return nil, ErrEncoding
	}
	return b, nil
}

// Verifier rebuilds a go-srp verifier for an account from the stored salt and
// verifier value. The group, generator and hash come from this package's
// constants, never from storage: go-srp's MakeSRPVerifier would otherwise
// believe whatever N and hash the string names.
func Verifier(identity string, salt, v []byte) (*srp.Verifier, error) {
	if len(salt) != FieldBytes {
		return nil, ErrSalt
	}
	vi := new(big.Int).SetBytes(v)
	if vi.Cmp(big.NewInt(1)) <= 0 || vi.Cmp(nMinus1) >= 0 {
		return nil, ErrRange
	}
	enc := strings.Join([]string{
		fmt.Sprint(FieldBytes), nHex, fmt.Sprintf("%x", G), fmt.Sprint(int(Hash)),
		hex.EncodeToString(IdentityHash(identity)), hex.EncodeToString(salt), hex.EncodeToString(v),
	}, ":")
	_, ver, err := srp.MakeSRPVerifier(enc)
	if err != nil {
		return nil, fmt.Errorf("srpgroup: rebuild verifier: %w", err)
	}
	return ver, nil
}

// Registration is what a client computes at sign-up from its SRP secret.
type Registration struct {
	Salt     []byte // FieldBytes random bytes
	Verifier []byte // v = g^x mod N, big-endian, no leading zeros
}

// Register computes the SRP salt and verifier for identity and the SRP secret
// (never the raw password: zsm passes a key derived from it). It runs on the
// client.
func Register(identity string, secret []byte) (Registration, error) {
	v, err := env.Verifier([]byte(identity), secret)
	if err != nil {
		return Registration{}, err
	}
	_, enc := v.Encode()
	f := strings.Split(enc, ":")
	salt, err1 := hex.DecodeString(f[5])
	ver, err2 := hex.DecodeString(f[6])
	if err := errors.Join(err1, err2); err != nil {
		return Registration{}, err
	}
	return Registration{Salt: salt, Verifier: ver}, nil
}
