package signer

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// PublicKey is one verification key as published.
type PublicKey struct {
	KID string
	Key ed25519.PublicKey
}

// jwkJSON is the only JWK shape zsm publishes: an Ed25519 public key for
// signatures, nothing else. Field order is fixed, so the same keys always give
// the same bytes.
type jwkJSON struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

type jwksJSON struct {
	Keys []jwkJSON `json:"keys"`
}

var kidPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{8,64}$`)

// EncodeJWKS returns the JWKS document for keys, in the given order (the
// signing key first: PostgREST 12 ignores kid and tries keys in order), and
// checks the result with ValidateJWKS before handing it out.
func EncodeJWKS(keys []PublicKey) ([]byte, error) {
	doc := jwksJSON{Keys: make([]jwkJSON, 0, len(keys))}
	for _, k := range keys {
		doc.Keys = append(doc.Keys, jwkJSON{
			Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(k.Key),
			Kid: k.KID, Alg: "EdDSA", Use: "sig",
		})
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	if _, err := ValidateJWKS(b); err != nil {
		return nil, fmt.Errorf("signer: refusing to publish: %w", err)
	}
	return b, nil
}

// ValidateJWKS checks the exact bytes that will be pushed to PostgREST and
// returns the keys they hold.
//
// It is deliberately narrower than the JWK standard. PostgREST 12 falls back
// to using the raw text as an HMAC secret when it cannot parse a JWKS (one
// unknown alg, use or x5t is enough), and that text is public; it also
// accepts private keys in a JWKS without complaint. So only this is accepted:
// a JSON object with exactly one member "keys", a non-empty array of objects
// with exactly the members kty=OKP, crv=Ed25519, alg=EdDSA, use=sig, a unique
// kid of 8–64 URL-safe characters and x, the 32-byte public key in unpadded
// base64url. Anything else, including a "d" member, is an error.
func ValidateJWKS(b []byte) ([]PublicKey, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var doc jwksJSON
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	if dec.More() {
		return nil, errors.New("jwks: trailing data")
	}
	// DisallowUnknownFields does not catch a member given twice or a
	// differently cased name; re-encoding must give the same bytes.
	canon, err := json.Marshal(doc)
	if err != nil || !bytes.Equal(canon, bytes.TrimSpace(b)) {
		return nil, errors.New("jwks: not in canonical form")
	}
	if len(doc.Keys) == 0 {
		return nil, errors.New("jwks: no keys")
	}
	seen := map[string]bool{}
	out := make([]PublicKey, 0, len(doc.Keys))
	for i, k := range doc.Keys {
		if k.Kty != "OKP" || k.Crv != "Ed25519" || k.Alg != "EdDSA" || k.Use != "sig" {
			return nil, fmt.Errorf("jwks: key %d is not an Ed25519 signature key", i)
		}
		if !kidPattern.MatchString(k.Kid) {
			return nil, fmt.Errorf("jwks: key %d has a malformed kid", i)
		}
		if seen[k.Kid] {
			return nil, fmt.Errorf("jwks: kid %q appears twice", k.Kid)
		}
		seen[k.Kid] = true
		x, err := base64.RawURLEncoding.Strict().DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("jwks: key %q: x is not a 32-byte base64url value", k.Kid)
		}
		out = append(out, PublicKey{KID: k.Kid, Key: ed25519.PublicKey(x)})
	}
	// Belt and braces: the general-purpose parser must read the same set.
	set, err := jwk.Parse(b)
	if err != nil || set.Len() != len(out) {
		return nil, fmt.Errorf("jwks: rejected by the JWK parser: %v", err)
	}
	for i := 0; i < set.Len(); i++ {
		k, _ := set.Key(i)
		if _, private := k.(jwk.OKPPrivateKey); private {
			return nil, errors.New("jwks: contains a private key")
		}
	}
	return out, nil
}
