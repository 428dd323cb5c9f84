package spec

import (
	"crypto/hkdf"
	"crypto/sha256"
	"math/big"

	srp "github.com/opencoff/go-srp"

	"golang.org/x/crypto/blake2b"

	"zsm.dev/zsm/srpgroup"
)

// A mirror of the client side of go-srp v0.6.7's SRP-6a with an explicit
// ephemeral a, so vectors can pin every intermediate value. The generator
// runs it against a real go-srp Server (ClientOk must accept its M and the
// server's proof must equal its own) before emitting a vector, which proves
// the mirror and go-srp agree.
//
//	H  = BLAKE2b-256 over the concatenated arguments
//	k  = H(N, pad(g))                       pad = left-pad with zeros to 384 bytes
//	x  = H(H(I), H(p), s)
//	v  = g^x mod N
//	A  = g^a mod N
//	u  = H(pad(A), pad(B))
//	S  = (B - k·v)^(a + u·x) mod N
//	K  = H(S)                                S in minimal big-endian bytes
//	M  = H(K, A, B, H(I), s, N, g)           A, B, N, g in minimal bytes
//	Z  = H(K, M)                             the server's proof

func h(parts ...[]byte) []byte {
	d, _ := blake2b.New256(nil)
	for _, p := range parts {
		d.Write(p)
	}
	return d.Sum(nil)
}

func hint(parts ...[]byte) *big.Int { return new(big.Int).SetBytes(h(parts...)) }

func pad(x *big.Int) []byte { return x.FillBytes(make([]byte, srpgroup.FieldBytes)) }

var gInt = big.NewInt(srpgroup.G)

type srpRegistration struct {
	identityHash, secretHash []byte
	x, v                     *big.Int
}

func srpRegister(identity string, secret, salt []byte) srpRegistration {
	ih, ph := h([]byte(identity)), h(secret)
	x := hint(ih, ph, salt)
	return srpRegistration{ih, ph, x, new(big.Int).Exp(gInt, x, srpgroup.N)}
}

type srpLogin struct {
	A, u, k, S *big.Int
	K, M, Z    []byte
}

func srpClient(identity string, secret, salt []byte, a, B *big.Int) srpLogin {
	N := srpgroup.N
	r := srpRegister(identity, secret, salt)
	A := new(big.Int).Exp(gInt, a, N)
	k := hint(N.Bytes(), pad(gInt))
	u := hint(pad(A), pad(B))
	base := new(big.Int).Mul(k, r.v)
	base.Sub(B, base).Mod(base, N)
	exp := new(big.Int).Mul(u, r.x)
	exp.Add(exp, a)
	S := new(big.Int).Exp(base, exp, N)
	K := h(S.Bytes())
	M := h(K, A.Bytes(), B.Bytes(), r.identityHash, salt, N.Bytes(), gInt.Bytes())
	return srpLogin{A: A, u: u, k: k, S: S, K: K, M: M, Z: h(K, M)}
}

type (
	srpVerifier = srp.Verifier
	srpServer   = srp.Server
)

func hkdfKey(ikm, salt, info []byte) ([]byte, error) {
	return hkdf.Key(sha256.New, ikm, salt, string(info), 32)
}
