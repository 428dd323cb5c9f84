// Package signer owns zsm's signing keys, from their making to their
// removal, and the access tokens they sign.
//
// Access tokens are EdDSA (Ed25519) JWTs carrying kid (in the header and as a
// claim) and the claims iss, aud, sub (user id), role (always app_user), sid
// (session id), jti, iat and exp. EdDSA
// because PostgREST 12 spends about 1.8 ms of CPU on every ES256 token and a
// fraction of that on Ed25519. [Signer] signs and verifies them.
//
// Private keys live in auth.signing_keys sealed with the operator's
// key-encryption key; the public halves form the JWKS, served at
// /.well-known/jwks.json and pushed to PostgREST through the database.
// [Rotator] moves keys through their life:
//
//	next (published, not signing) → current (signing) → retired (published
//	until every token it signed has expired, plus skew) → removed
//
// and removes a key at once when an operator revokes it. Every change runs
// in one transaction of the [KeyStore] that holds the signing-keys lock,
// changes the rows, pushes the new JWKS to PostgREST and announces the
// change to the other replicas: it commits whole or not at all, so a
// replica that dies mid-rotation leaves nothing half-done, and two replicas
// never rotate at once. A key becomes current only after it has been
// published for PublishDelay, long enough for every replica, every
// PostgREST and every JWKS cache to know it; so no token is ever signed
// with a key a verifier has not seen. [HTTPProber] asks PostgREST itself
// whether it took a key.
//
// Start-up is [Rotator.Load]: a current key is made on a new database, the
// key set is published under the lock, and the Signer takes it.
package signer

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"zsm.dev/zsm/authsvc/store"
)

// Role is the only database role an access token may name.
const Role = "app_user"

// MachineKind is the value of the zsm_kind claim of a machine token's
// access token.
const MachineKind = "machine"

// Claims are the claims of a verified access token: a person's (with a
// session) or a machine token's (Machine, with the token id and no
// session).
type Claims struct {
	Subject   string
	SessionID string // "" for a machine
	Machine   bool
	TokenID   string // the tid claim of a machine; equal to Subject
	IssuedAt  time.Time
	Expiry    time.Time
}

// Signer signs access tokens with the current key and verifies them against
// every published key. It is safe for concurrent use.
type Signer struct {
	issuer, audience string
	ttl              time.Duration
	kek              []byte

	mu      sync.RWMutex
	stored  []store.SigningKey
	signKey jwk.Key // private, with kid and alg
	verify  jwk.Set // public keys, with kid and alg
	jwks    []byte
	minIAT  time.Time // MinIssuedAt of stored
	tracker Tracker
	sleep   func(time.Duration) // time.Sleep; tests replace it
}

// Tracker is told of every access token the signer issues, with its
// expiry (jwtcache.Evictor, which later evicts it from PostgREST's JWT
// cache).
type Tracker interface {
	Add(token string, exp time.Time)
}

// Track makes t hear of every token issued from now on.
func (s *Signer) Track(t Tracker) {
	s.mu.Lock()
	s.tracker = t
	s.mu.Unlock()
}

// RevocationWindow is how long after a key's emergency revocation tokens
// that PostgREST may have verified with it can still say they were issued:
// PostgREST refuses an iat more than 30 s ahead of its clock, and reloads
// its keys within milliseconds of the commit (5 s allowed here), plus a
// second because iat has whole seconds. PostgREST 12.0.2's JWT cache keeps
// a token it verified until the token's exp, revoked key or not, and a
// token forged with a stolen key may name any published key; so every
// token issued before the revocation + RevocationWindow is refused from
// the revocation's commit on (gate.check_request(), [Signer.Verify]), and
// the signer dates new tokens no earlier (docs/auth.md "PostgREST's JWT
// cache").
const RevocationWindow = 30*time.Second + RevocationReload + time.Second

// RevocationReload is how long PostgREST may take to drop a revoked key
// (it takes milliseconds after the NOTIFY); [Rotator.Revoke] checks it
// did, when it has a prober.
const RevocationReload = 5 * time.Second

// MaxForward is how far ahead of the clock the signer dates a token's iat
// (only ever to reach the cutoff after a revocation): PostgREST refuses an
// iat more than 30 s ahead, and its clock may differ a little from this
// one. Issuing waits, at most RevocationWindow - MaxForward after a
// revocation, until the cutoff is within reach.
const MaxForward = 25 * time.Second

// MinIssuedAt is the earliest iat a token may carry given keys: the
// latest emergency revocation plus RevocationWindow, rounded up to a
// whole second; the zero time if no key was ever revoked. Keys pruned
// after their tokens expired do not count: nobody can have forged with
// them without stealing them, and then they would be revoked.
func MinIssuedAt(keys []store.SigningKey) time.Time {
	var cutoff time.Time
	for _, k := range keys {
		if !k.Revoked || k.RemovedAt == nil {
			continue
		}
		at := k.RemovedAt.Add(RevocationWindow)
		if t := at.Truncate(time.Second); t.Before(at) {
			at = t.Add(time.Second)
		}
		if at.After(cutoff) {
			cutoff = at
		}
	}
	return cutoff
}

// New returns a Signer; Reload (or Rotator.Load) must succeed before it
// can sign.
func New(issuer, audience string, ttl time.Duration, kek []byte) *Signer {
	return &Signer{issuer: issuer, audience: audience, ttl: ttl, kek: kek}
}

// TTL is the lifetime of the tokens the signer issues.
func (s *Signer) TTL() time.Duration { return s.ttl }

// GenerateKey makes a new Ed25519 key sealed with kek.
func GenerateKey(kek []byte, state string, now time.Time) (store.SigningKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return store.SigningKey{}, err
	}
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return store.SigningKey{}, err
	}
	kid := base64.RawURLEncoding.EncodeToString(id[:])
	sealed, err := sealPrivate(kek, priv.Seed(), kid)
	if err != nil {
		return store.SigningKey{}, err
	}
	k := store.SigningKey{KID: kid, State: state, Public: pub, Sealed: sealed, CreatedAt: now}
	if state == store.KeyCurrent {
		k.ActivatedAt = &now
	}
	return k, nil
}

// find returns the first key in state, or nil.
func find(keys []store.SigningKey, state string) *store.SigningKey {
	for i := range keys {
		if keys[i].State == state {
			return &keys[i]
		}
	}
	return nil
}

// use makes keys the signer's key material.
func (s *Signer) use(keys []store.SigningKey) error {
	cur := find(keys, store.KeyCurrent)
	if cur == nil {
		return errors.New("signer: no current signing key")
	}
	priv, err := OpenPrivateKey(s.kek, *cur)
	if err != nil {
		return err
	}
	signKey, err := jwk.FromRaw(priv)
	if err != nil {
		return err
	}
	if err := setKeyMeta(signKey, cur.KID); err != nil {
		return err
	}

	pubs := Published(keys)
	doc, err := EncodeJWKS(pubs)
	if err != nil {
		return err
	}
	set := jwk.NewSet()
	for _, p := range pubs {
		k, err := jwk.FromRaw(p.Key)
		if err != nil {
			return err
		}
		if err := setKeyMeta(k, p.KID); err != nil {
			return err
		}
		if err := set.AddKey(k); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.signKey, s.verify, s.jwks, s.stored, s.minIAT = signKey, set, doc, keys, MinIssuedAt(keys)
	s.mu.Unlock()
	return nil
}

// Published is the key set to publish, in the order PostgREST 12 should
// try it (it ignores kid): the current key first, since it signs nearly
// every token, then the next key, then retired keys, newest first. Removed
// keys are not published.
func Published(keys []store.SigningKey) []PublicKey {
	var out []PublicKey
	for _, state := range []string{store.KeyCurrent, store.KeyNext, store.KeyRetired} {
		var group []store.SigningKey
		for _, k := range keys {
			if k.State == state {
				group = append(group, k)
			}
		}
		sort.SliceStable(group, func(i, j int) bool { return group[i].CreatedAt.After(group[j].CreatedAt) })
		for _, k := range group {
			out = append(out, PublicKey{KID: k.KID, Key: k.Public})
		}
	}
	return out
}

// Reload takes the keys as stored now (after another replica rotated or
// revoked one) without publishing anything.
func (s *Signer) Reload(ctx context.Context, ks KeyStore) error {
	keys, err := ks.SigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("signer: load keys: %w", err)
	}
	return s.use(keys)
}

// Keys returns the keys as last loaded (private halves still sealed).
func (s *Signer) Keys() []store.SigningKey {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.stored
}

// CurrentKID is the kid of the key that signs now ("" before the keys are
// loaded).
func (s *Signer) CurrentKID() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.signKey == nil {
		return ""
	}
	return s.signKey.KeyID()
}

func setKeyMeta(k jwk.Key, kid string) error {
	return errors.Join(
		k.Set(jwk.KeyIDKey, kid),
		k.Set(jwk.AlgorithmKey, jwa.EdDSA),
		k.Set(jwk.KeyUsageKey, jwk.ForSignature),
	)
}

// JWKS returns the published key set, exactly the bytes PostgREST was given.
func (s *Signer) JWKS() []byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.jwks
}

// Issue signs an access token for the user sub in session sid.
func (s *Signer) Issue(sub, sid string, now time.Time) (string, time.Time, error) {
	return s.issue(sub, now, map[string]string{"sid": sid})
}

// IssueMachine signs an access token for the machine token tokenID: the
// same shape as a person's, with sub = tid = the token id, zsm_kind
// "machine", and no sid (a machine has no session; gate.check_request()
// checks the token itself on every request).
func (s *Signer) IssueMachine(tokenID string, now time.Time) (string, time.Time, error) {
	return s.issue(tokenID, now, map[string]string{"tid": tokenID, "zsm_kind": MachineKind})
}

func (s *Signer) issue(sub string, now time.Time, extra map[string]string) (string, time.Time, error) {
	s.mu.RLock()
	key, minIAT, tracker := s.signKey, s.minIAT, s.tracker
	s.mu.RUnlock()
	if key == nil {
		return "", time.Time{}, ErrNotLoaded
	}
	iat := now.Truncate(time.Second)
	if minIAT.After(iat) {
		// A key was revoked moments ago: date the token at the cutoff,
		// which the gate requires, once that is near enough for PostgREST
		// to take it (a wait of at most RevocationWindow - MaxForward, once
		// after an emergency revocation).
		if wait := minIAT.Sub(now) - MaxForward; wait > 0 {
			sleep := s.sleep
			if sleep == nil {
				sleep = time.Sleep
			}
			sleep(min(wait, RevocationWindow))
		}
		iat = minIAT
	}
	exp := iat.Add(s.ttl)
	// jti: 128 random bits, so that two tokens issued in the same second
	// for the same session never have the same bytes (Ed25519 signatures
	// are deterministic, and iat has one-second resolution).
	b := jwt.NewBuilder().
		JwtID(rand.Text()).
		Issuer(s.issuer).
		Audience([]string{s.audience}).
		Subject(sub).
		IssuedAt(iat).
		Expiration(exp).
		Claim("role", Role).
		// The signing key's kid, also in the claims: PostgREST shows the
		// database only the claims, and gate.check_request() refuses a
		// token whose key is no longer published (migration 000013).
		Claim("kid", key.KeyID())
	for k, v := range extra {
		b = b.Claim(k, v)
	}
	tok, err := b.Build()
	if err != nil {
		return "", time.Time{}, err
	}
	hdr := jws.NewHeaders()
	if err := hdr.Set(jws.TypeKey, "JWT"); err != nil {
		return "", time.Time{}, err
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.EdDSA, key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("signer: sign: %w", err)
	}
	if tracker != nil {
		tracker.Add(string(signed), exp)
	}
	return string(signed), exp, nil
}

// ErrNotLoaded means the signer has no key yet (the database was not
// reachable, or the key-encryption key does not open the stored key).
var ErrNotLoaded = errors.New("signer: signing keys are not loaded")

// ErrInvalidToken is returned for every token Verify refuses; the reason is
// wrapped for logs, not for clients.
var ErrInvalidToken = errors.New("invalid access token")

// Verify checks an access token the way the database does: a published key
// chosen by kid, EdDSA only, our issuer and audience, role app_user, and an
// exp no further than the TTL from iat. Whether the session is still alive is
// the caller's question.
func (s *Signer) Verify(token string, now time.Time) (Claims, error) {
	s.mu.RLock()
	set, minIAT := s.verify, s.minIAT
	s.mu.RUnlock()
	if set == nil {
		return Claims{}, ErrNotLoaded
	}
	// jwx takes the algorithm from the key; the header must say the same,
	// as it must for PostgREST.
	if err := requireEdDSAHeader(token); err != nil {
		return Claims{}, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	if err := requireClaimTypes(token); err != nil {
		return Claims{}, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	tok, err := jwt.ParseString(token,
		jwt.WithKeySet(set, jws.WithRequireKid(true), jws.WithInferAlgorithmFromKey(false)),
		jwt.WithValidate(true),
		jwt.WithClock(jwt.ClockFunc(func() time.Time { return now })),
		// exp and nbf against the clock; iat no later than the clock or
		// the revocation cutoff (a token dated at the cutoff, see issue)
		// and never before the cutoff, as gate.check_request() demands.
		jwt.WithResetValidators(true),
		jwt.WithValidator(jwt.IsExpirationValid()),
		jwt.WithValidator(jwt.IsNbfValid()),
		jwt.WithValidator(issuedAtValid(now, minIAT)),
		jwt.WithIssuer(s.issuer),
		jwt.WithAudience(s.audience),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
		jwt.WithRequiredClaim(jwt.IssuedAtKey),
		jwt.WithMaxDelta(s.ttl, jwt.ExpirationKey, jwt.IssuedAtKey),
		jwt.WithClaimValue("role", Role),
	)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	priv := tok.PrivateClaims()
	sid, _ := priv["sid"].(string)
	tid, hasTID := priv["tid"].(string)
	kind, hasKind := priv["zsm_kind"]
	c := Claims{Subject: tok.Subject(), SessionID: sid, IssuedAt: tok.IssuedAt(), Expiry: tok.Expiration()}
	switch {
	case tok.Subject() == "":
		return Claims{}, fmt.Errorf("%w: missing sub", ErrInvalidToken)
	case hasKind || hasTID:
		// A machine's token: exactly zsm_kind "machine", tid = sub, no sid
		// (the same rule as gate.check_request()).
		if kind != MachineKind || tid != tok.Subject() || sid != "" {
			return Claims{}, fmt.Errorf("%w: a machine token needs zsm_kind machine, tid = sub and no sid", ErrInvalidToken)
		}
		c.Machine, c.TokenID = true, tid
	case sid == "":
		return Claims{}, fmt.Errorf("%w: missing sid", ErrInvalidToken)
	}
	return c, nil
}

// issuedAtValid accepts an iat from minIAT up to now, or up to minIAT
// itself when that is later (whole seconds).
func issuedAtValid(now, minIAT time.Time) jwt.Validator {
	return jwt.ValidatorFunc(func(_ context.Context, t jwt.Token) jwt.ValidationError {
		iat := t.IssuedAt().Truncate(time.Second)
		latest := now.Truncate(time.Second)
		if minIAT.After(latest) {
			latest = minIAT
		}
		switch {
		case iat.After(latest):
			return jwt.NewValidationError(errors.New("iat is in the future"))
		case iat.Before(minIAT):
			return jwt.NewValidationError(errors.New("issued before a signing key was revoked"))
		}
		return nil
	})
}

// requireClaimTypes checks the JSON types of the claims, as strictly as
// gate.check_request() does for PostgREST: exp, iat (and nbf, if present)
// numbers; iss, sub, sid, role, tid and zsm_kind strings; aud a string or an array of
// strings. jwx on its own reads "exp": "1700000000" as a date, so a token the
// gate refuses would have been good for authsvc's own endpoints.
func requireClaimTypes(token string) error {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return errors.New("not a compact JWS")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return errors.New("payload is not base64url")
	}
	var claims map[string]json.RawMessage
	if err := json.Unmarshal(raw, &claims); err != nil {
		return errors.New("payload is not a JSON object")
	}
	kind := func(v json.RawMessage) byte {
		v = bytes.TrimSpace(v)
		if len(v) == 0 {
			return 0
		}
		return v[0]
	}
	isNumber := func(v json.RawMessage) bool { c := kind(v); return c == '-' || '0' <= c && c <= '9' }
	for _, name := range []string{"exp", "iat", "nbf"} {
		if v, ok := claims[name]; ok && !isNumber(v) {
			return fmt.Errorf("claim %s is not a number", name)
		}
	}
	for _, name := range []string{"iss", "sub", "sid", "role", "tid", "zsm_kind"} {
		if v, ok := claims[name]; ok && kind(v) != '"' {
			return fmt.Errorf("claim %s is not a string", name)
		}
	}
	if v, ok := claims["aud"]; ok {
		var one string
		var many []string
		if json.Unmarshal(v, &one) != nil && json.Unmarshal(v, &many) != nil {
			return errors.New("claim aud is neither a string nor an array of strings")
		}
	}
	return nil
}

// requireEdDSAHeader checks that a compact JWS's protected header names
// EdDSA and a kid.
func requireEdDSAHeader(token string) error {
	head, _, ok := strings.Cut(token, ".")
	if !ok {
		return errors.New("not a compact JWS")
	}
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return errors.New("header is not base64url")
	}
	var h struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return errors.New("header is not JSON")
	}
	if h.Alg != "EdDSA" || h.Kid == "" {
		return fmt.Errorf("header alg %q, kid %q: want EdDSA with a kid", h.Alg, h.Kid)
	}
	return nil
}
