package signer

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"zsm.dev/zsm/authsvc/store"
	"zsm.dev/zsm/authsvc/store/memstore"
)

const (
	testIssuer   = "http://127.0.0.1:8080"
	testAudience = "zsm-api"
	testTTL      = 15 * time.Minute
)

func newKEK(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// rotator is the production rotator over an in-memory key store.
func rotator(ks *memstore.Keys, kek []byte) *Rotator {
	return &Rotator{Keys: ks, KEK: kek, Issuer: testIssuer, Audience: testAudience, AccessTTL: testTTL}
}

// loaded starts a Signer the way authsvc does (Rotator.Load) on an empty
// in-memory key store.
func loaded(t *testing.T) (*Signer, *memstore.Keys, []byte) {
	t.Helper()
	kek := newKEK(t)
	ks := &memstore.Keys{}
	s := New(testIssuer, testAudience, testTTL, kek)
	if err := rotator(ks, kek).Load(context.Background(), s); err != nil {
		t.Fatalf("Load: %v", err)
	}
	return s, ks, kek
}

// seeded is a key store holding keys, inserted each at its CreatedAt.
func seeded(t *testing.T, keys ...store.SigningKey) *memstore.Keys {
	t.Helper()
	ks := &memstore.Keys{}
	err := ks.InKeyTx(context.Background(), func(ctx context.Context, tx store.KeyTx) error {
		for _, k := range keys {
			if err := tx.Insert(ctx, k, k.CreatedAt); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func stored(t *testing.T, ks *memstore.Keys) []store.SigningKey {
	t.Helper()
	keys, err := ks.SigningKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// currentPrivate opens the current key the way only the signer should.
func currentPrivate(t *testing.T, ks *memstore.Keys, kek []byte) (string, ed25519.PrivateKey) {
	t.Helper()
	for _, k := range stored(t, ks) {
		if k.State == store.KeyCurrent {
			seed, err := openPrivate(kek, k.Sealed, k.KID)
			if err != nil {
				t.Fatal(err)
			}
			return k.KID, ed25519.NewKeyFromSeed(seed)
		}
	}
	t.Fatal("no current key")
	return "", nil
}

// ---------------------------------------------------------------- JWKS

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func pubKey(t *testing.T) ed25519.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// jwk writes one key in the canonical member order, with fields overridable.
func jwkText(f map[string]string) string {
	order := []string{"kty", "crv", "x", "kid", "alg", "use"}
	var parts []string
	for _, k := range order {
		if v, ok := f[k]; ok {
			parts = append(parts, `"`+k+`":`+v)
		}
	}
	known := map[string]bool{}
	for _, k := range order {
		known[k] = true
	}
	for k, v := range f { // extra members after the known ones
		if !known[k] {
			parts = append(parts, `"`+k+`":`+v)
		}
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func baseFields(x []byte, kid string) map[string]string {
	return map[string]string{
		"kty": `"OKP"`, "crv": `"Ed25519"`, "x": `"` + b64(x) + `"`, "kid": `"` + kid + `"`,
		"alg": `"EdDSA"`, "use": `"sig"`,
	}
}

func with(m map[string]string, k, v string) map[string]string {
	out := map[string]string{}
	for a, b := range m {
		out[a] = b
	}
	if v == "" {
		delete(out, k)
	} else {
		out[k] = v
	}
	return out
}

func TestEncodeJWKSRoundTrip(t *testing.T) {
	keys := []PublicKey{{KID: "kid-one-0001", Key: pubKey(t)}, {KID: "kid_two_0002", Key: pubKey(t)}}
	doc, err := EncodeJWKS(keys)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ValidateJWKS(doc)
	if err != nil {
		t.Fatalf("ValidateJWKS(EncodeJWKS(...)): %v\n%s", err, doc)
	}
	if len(got) != 2 || got[0].KID != keys[0].KID || got[1].KID != keys[1].KID ||
		!got[0].Key.Equal(keys[0].Key) || !got[1].Key.Equal(keys[1].Key) {
		t.Fatalf("keys changed in the round trip: %+v", got)
	}
	// The hand-written canonical form is what EncodeJWKS makes, so the
	// mutations below differ from an accepted document in one respect only.
	hand := `{"keys":[` + jwkText(baseFields(keys[0].Key, keys[0].KID)) + "," + jwkText(baseFields(keys[1].Key, keys[1].KID)) + `]}`
	if hand != string(doc) {
		t.Fatalf("canonical form differs:\n got %s\nwant %s", doc, hand)
	}
	// Surrounding whitespace (a trailing newline from a file) is tolerated.
	if _, err := ValidateJWKS(append(append([]byte("\n"), doc...), '\n')); err != nil {
		t.Fatalf("surrounding whitespace: %v", err)
	}
	// EncodeJWKS refuses to publish what ValidateJWKS would refuse.
	if _, err := EncodeJWKS(nil); err == nil {
		t.Fatal("EncodeJWKS(nil) published an empty set")
	}
	if _, err := EncodeJWKS([]PublicKey{{KID: "short", Key: pubKey(t)}}); err == nil {
		t.Fatal("EncodeJWKS published a malformed kid")
	}
	if _, err := EncodeJWKS([]PublicKey{{KID: "kid-one-0001", Key: pubKey(t)[:31]}}); err == nil {
		t.Fatal("EncodeJWKS published a 31-byte key")
	}
}

func TestValidateJWKSRefuses(t *testing.T) {
	x := pubKey(t)
	kid := "kid-one-0001"
	base := baseFields(x, kid)
	one := func(f map[string]string) string { return `{"keys":[` + jwkText(f) + `]}` }
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	good := one(base)
	if _, err := ValidateJWKS([]byte(good)); err != nil {
		t.Fatalf("baseline refused: %v", err)
	}
	bad := map[string]string{
		"empty input":        ``,
		"empty object":       `{}`,
		"empty keys":         `{"keys":[]}`,
		"null keys":          `{"keys":null}`,
		"bare array":         `[` + jwkText(base) + `]`,
		"bare key":           jwkText(base),
		"private d":          one(with(base, "d", `"`+b64(priv.Seed())+`"`)),
		"alg ES999":          one(with(base, "alg", `"ES999"`)),
		"alg ES256":          one(with(base, "alg", `"ES256"`)),
		"alg HS256":          one(with(base, "alg", `"HS256"`)),
		"alg missing":        one(with(base, "alg", "")),
		"use enc":            one(with(base, "use", `"enc"`)),
		"use foo":            one(with(base, "use", `"foo"`)),
		"use missing":        one(with(base, "use", "")),
		"kty RSA":            one(with(base, "kty", `"RSA"`)),
		"kty EC":             one(with(base, "kty", `"EC"`)),
		"kty oct":            one(with(base, "kty", `"oct"`)),
		"crv X25519":         one(with(base, "crv", `"X25519"`)),
		"crv Ed448":          one(with(base, "crv", `"Ed448"`)),
		"x5t member":         one(with(base, "x5t", `"`+b64(make([]byte, 20))+`"`)),
		"key_ops member":     one(with(base, "key_ops", `["verify"]`)),
		"k member (oct)":     one(with(base, "k", `"`+b64([]byte("secret"))+`"`)),
		"duplicate kid":      `{"keys":[` + jwkText(base) + "," + jwkText(baseFields(pubKey(t), kid)) + `]}`,
		"kid too short":      one(with(base, "kid", `"abc"`)),
		"kid too long":       one(with(base, "kid", `"`+strings.Repeat("a", 65)+`"`)),
		"kid with slash":     one(with(base, "kid", `"kid/one/0001"`)),
		"kid with dot":       one(with(base, "kid", `"kid.one.0001"`)),
		"kid with unicode":   one(with(base, "kid", `"kid-\u00e9-00001"`)),
		"kid not a string":   one(with(base, "kid", `12345678`)),
		"kid missing":        one(with(base, "kid", "")),
		"x 31 bytes":         one(with(base, "x", `"`+b64(x[:31])+`"`)),
		"x 33 bytes":         one(with(base, "x", `"`+b64(append(append([]byte{}, x...), 0))+`"`)),
		"x padded":           one(with(base, "x", `"`+base64.URLEncoding.EncodeToString(x)+`"`)),
		"x std alphabet":     one(with(base, "x", `"`+strings.NewReplacer("-", "+", "_", "/").Replace(b64(bytes.Repeat([]byte{0xfb, 0xff}, 16)))+`"`)),
		"x missing":          one(with(base, "x", "")),
		"x non-canonical":    one(with(base, "x", `"`+b64(x)[:42]+string(nonCanonicalLast(b64(x)[42]))+`"`)),
		"extra top-level":    `{"keys":[` + jwkText(base) + `],"extra":1}`,
		"trailing data":      good + `{}`,
		"trailing brace":     good + `}`,
		"trailing bracket":   good + `]`,
		"two documents":      good + " " + good,
		"duplicate member":   `{"keys":[` + strings.Replace(jwkText(base), `"alg":"EdDSA"`, `"alg":"ES999","alg":"EdDSA"`, 1) + `]}`,
		"duplicate keys":     `{"keys":[],"keys":[` + jwkText(base) + `]}`,
		"case-variant name":  `{"keys":[` + strings.Replace(jwkText(base), `"alg":`, `"ALG":`, 1) + `]}`,
		"case-variant keys":  `{"KEYS":[` + jwkText(base) + `]}`,
		"inner whitespace":   `{"keys": [` + jwkText(base) + `]}`,
		"pretty printed":     "{\n  \"keys\": [\n    " + jwkText(base) + "\n  ]\n}",
		"member order":       `{"keys":[{"crv":"Ed25519","kty":"OKP","x":"` + b64(x) + `","kid":"` + kid + `","alg":"EdDSA","use":"sig"}]}`,
		"escaped string":     one(with(base, "alg", `"EdDS\u0041"`)),
		"not json":           `keys`,
		"json string":        `"` + good + `"`,
		"null":               `null`,
		"x not a string":     one(with(base, "x", `[1,2,3]`)),
		"keys not an array":  `{"keys":` + jwkText(base) + `}`,
		"key is null":        `{"keys":[null]}`,
		"key array element":  `{"keys":[[]]}`,
		"byte order mark":    "\ufeff" + good,
		"NUL after document": good + "\x00",
	}
	for name, doc := range bad {
		t.Run(name, func(t *testing.T) {
			got, err := ValidateJWKS([]byte(doc))
			if err == nil {
				t.Fatalf("accepted %s", doc)
			}
			if got != nil {
				t.Fatalf("returned keys with an error")
			}
			if !strings.HasPrefix(err.Error(), "jwks: ") {
				t.Fatalf("error %q does not come from the JWKS check", err)
			}
		})
	}
}

// nonCanonicalLast returns a base64url character that decodes the same
// 6-bit group's top bits as c but sets unused low bits (x's last character
// carries 4 used bits and 2 unused ones in a 43-character encoding).
func nonCanonicalLast(c byte) byte {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, c)
	return alphabet[i|1]
}

// ---------------------------------------------------------------- seal

func TestSealOpen(t *testing.T) {
	kek := newKEK(t)
	seed := make([]byte, ed25519.SeedSize)
	_, _ = rand.Read(seed)
	sealed, err := sealPrivate(kek, seed, "kid-aaaa-0001")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, seed) {
		t.Fatal("sealed blob contains the seed")
	}
	got, err := openPrivate(kek, sealed, "kid-aaaa-0001")
	if err != nil || !bytes.Equal(got, seed) {
		t.Fatalf("open: %x, %v", got, err)
	}
	again, _ := sealPrivate(kek, seed, "kid-aaaa-0001")
	if bytes.Equal(again, sealed) {
		t.Fatal("two seals of one seed are identical (nonce reuse)")
	}

	if _, err := openPrivate(newKEK(t), sealed, "kid-aaaa-0001"); err == nil {
		t.Error("opened with the wrong key-encryption key")
	}
	if _, err := openPrivate(kek, sealed, "kid-bbbb-0002"); err == nil {
		t.Error("opened under another kid (sealed key moved to another row)")
	}
	for i := range sealed {
		for _, bit := range []byte{0x01, 0x80} {
			c := append([]byte(nil), sealed...)
			c[i] ^= bit
			if _, err := openPrivate(kek, c, "kid-aaaa-0001"); err == nil {
				t.Fatalf("opened with byte %d flipped by %#x", i, bit)
			}
		}
	}
	for _, n := range []int{0, 1, 25, len(sealed) - 1} {
		if _, err := openPrivate(kek, sealed[:n], "kid-aaaa-0001"); err == nil {
			t.Errorf("opened a %d-byte prefix", n)
		}
	}
	if _, err := openPrivate(kek, append(append([]byte(nil), sealed...), 0), "kid-aaaa-0001"); err == nil {
		t.Error("opened with a byte appended")
	}
	if _, err := sealPrivate(kek[:16], seed, "kid-aaaa-0001"); err == nil {
		t.Error("sealed with a 16-byte key-encryption key")
	}
}

// ---------------------------------------------------------------- Load

func TestLoadCreatesOneCurrentKeyAndPublishes(t *testing.T) {
	s, ks, kek := loaded(t)
	keys := stored(t, ks)
	if len(keys) != 1 {
		t.Fatalf("%d keys; want exactly one new key", len(keys))
	}
	k := keys[0]
	if k.State != store.KeyCurrent || k.ActivatedAt == nil {
		t.Fatalf("new key state %q activated %v", k.State, k.ActivatedAt)
	}
	if len(k.Public) != ed25519.PublicKeySize {
		t.Fatalf("public key of %d bytes", len(k.Public))
	}
	// The private half is stored only sealed.
	_, priv := currentPrivate(t, ks, kek)
	if bytes.Contains(k.Sealed, priv.Seed()) {
		t.Fatal("the stored key holds the seed in clear")
	}
	pubs := ks.Published()
	if len(pubs) != 1 {
		t.Fatalf("published %d times, want 1", len(pubs))
	}
	if !bytes.Equal(pubs[0].JWKS, s.JWKS()) {
		t.Fatal("the JWKS pushed to the database differs from the one served")
	}
	if pubs[0].Issuer != testIssuer || pubs[0].Audience != testAudience || pubs[0].MaxTTL != testTTL {
		t.Fatalf("published policy %+v, want issuer, audience, TTL", pubs[0])
	}
	if a := ks.Audited(); len(a) != 1 || a[0].Type != store.EventSigningKeyCreated || a[0].Detail["kid"] != k.KID {
		t.Fatalf("audited %+v, want the new key's creation", a)
	}
	jwks, err := ValidateJWKS(s.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	if len(jwks) != 1 || jwks[0].KID != k.KID || !jwks[0].Key.Equal(ed25519.PublicKey(k.Public)) {
		t.Fatalf("JWKS %+v does not hold the stored key", jwks)
	}
	if bytes.Contains(s.JWKS(), []byte(`"d"`)) {
		t.Fatal("JWKS contains a private member")
	}
}

func TestLoadIsIdempotent(t *testing.T) {
	s1, ks, kek := loaded(t)
	first := append([]byte(nil), s1.JWKS()...)
	s2 := New(testIssuer, testAudience, testTTL, kek)
	if err := rotator(ks, kek).Load(context.Background(), s2); err != nil {
		t.Fatal(err)
	}
	if err := rotator(ks, kek).Load(context.Background(), s1); err != nil {
		t.Fatal(err)
	}
	if keys := stored(t, ks); len(keys) != 1 {
		t.Fatalf("a second Load made another key: %d keys", len(keys))
	}
	if !bytes.Equal(s2.JWKS(), first) || !bytes.Equal(s1.JWKS(), first) {
		t.Fatal("JWKS changed on reload")
	}
	// Two replicas sign interchangeably.
	tok, _, err := s2.Issue("user-1", "sess-1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s1.Verify(tok, time.Now()); err != nil {
		t.Fatalf("replica 1 refused replica 2's token: %v", err)
	}
}

// A replica that starts after another made the first key signs with that
// key; replicas starting at once make one key between them (Load holds the
// signing-keys lock).
func TestLoadLosesRaceToAnotherReplica(t *testing.T) {
	kek := newKEK(t)
	winner, err := GenerateKey(kek, store.KeyCurrent, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ks := seeded(t, winner)
	s := New(testIssuer, testAudience, testTTL, kek)
	if err := rotator(ks, kek).Load(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if keys := stored(t, ks); len(keys) != 1 || keys[0].KID != winner.KID {
		t.Fatalf("keys after the race: %+v", keys)
	}
	tok, _, err := s.Issue("u", "s", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if kidOf(t, tok) != winner.KID {
		t.Fatalf("signed with %s, not the winning key %s", kidOf(t, tok), winner.KID)
	}

	ks = &memstore.Keys{}
	signers := make([]*Signer, 8)
	var wg sync.WaitGroup
	for i := range signers {
		signers[i] = New(testIssuer, testAudience, testTTL, kek)
		wg.Go(func() {
			if err := rotator(ks, kek).Load(context.Background(), signers[i]); err != nil {
				t.Errorf("replica %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	keys := stored(t, ks)
	if len(keys) != 1 {
		t.Fatalf("%d replicas starting at once made %d keys", len(signers), len(keys))
	}
	for i, s := range signers {
		if s.CurrentKID() != keys[0].KID {
			t.Fatalf("replica %d signs with %q, not the one key %s", i, s.CurrentKID(), keys[0].KID)
		}
	}
}

func TestLoadPutsCurrentKeyFirst(t *testing.T) {
	kek := newKEK(t)
	now := time.Now()
	retired, _ := GenerateKey(kek, store.KeyRetired, now.Add(-time.Hour))
	cur, _ := GenerateKey(kek, store.KeyCurrent, now.Add(-time.Minute))
	next, _ := GenerateKey(kek, store.KeyNext, now)
	ks := seeded(t, retired, next, cur)
	s := New(testIssuer, testAudience, testTTL, kek)
	if err := rotator(ks, kek).Load(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if keys := stored(t, ks); len(keys) != 3 {
		t.Fatal("Load made a key although a current one exists")
	}
	pubs, err := ValidateJWKS(ks.Published()[0].JWKS)
	if err != nil {
		t.Fatal(err)
	}
	if len(pubs) != 3 || pubs[0].KID != cur.KID {
		t.Fatalf("JWKS order %v; want the current key %s first and all three keys", kids(pubs), cur.KID)
	}
	got := map[string]bool{}
	for _, p := range pubs {
		got[p.KID] = true
	}
	if !got[retired.KID] || !got[next.KID] {
		t.Fatal("retired or next key missing from the JWKS")
	}
	tok, _, err := s.Issue("u", "s", now)
	if err != nil {
		t.Fatal(err)
	}
	if kidOf(t, tok) != cur.KID {
		t.Fatalf("signed with %s, want the current key", kidOf(t, tok))
	}
	// A token signed by the retired key still verifies (until it is removed).
	seed, _ := openPrivate(kek, retired.Sealed, retired.KID)
	old := forge(t, ed25519.NewKeyFromSeed(seed), map[string]any{"alg": "EdDSA", "kid": retired.KID, "typ": "JWT"}, goodClaims(now))
	if _, err := s.Verify(old, now); err != nil {
		t.Fatalf("token of the retired key refused: %v", err)
	}
}

// A replica whose key-encryption key does not open the current key (or a
// current key whose halves do not match) fails to start and publishes
// nothing.
func TestLoadRefuses(t *testing.T) {
	kek := newKEK(t)
	cur, _ := GenerateKey(kek, store.KeyCurrent, time.Now())

	otherKEK := newKEK(t)
	s := New(testIssuer, testAudience, testTTL, otherKEK)
	ks := seeded(t, cur)
	if err := rotator(ks, otherKEK).Load(context.Background(), s); err == nil {
		t.Fatal("Load opened a key sealed under another KEK")
	}
	if len(ks.Published()) != 0 {
		t.Fatal("published a JWKS after failing to load")
	}
	if _, _, err := s.Issue("u", "s", time.Now()); !errors.Is(err, ErrNotLoaded) {
		t.Fatalf("Issue after a failed Load: %v; want ErrNotLoaded", err)
	}
	if _, err := s.Verify("x.y.z", time.Now()); !errors.Is(err, ErrNotLoaded) {
		t.Fatalf("Verify after a failed Load: %v; want ErrNotLoaded", err)
	}

	// Public half replaced: the halves must match.
	other, _ := GenerateKey(kek, store.KeyCurrent, time.Now())
	mixed := cur
	mixed.Public = other.Public
	s = New(testIssuer, testAudience, testTTL, kek)
	ks = seeded(t, mixed)
	if err := rotator(ks, kek).Load(context.Background(), s); err == nil {
		t.Fatal("Load accepted a public key that does not belong to the private key")
	}
	if len(ks.Published()) != 0 {
		t.Fatal("published a JWKS with a mismatched key")
	}

	// Sealed key moved onto another kid.
	moved := cur
	moved.KID = other.KID
	if err := rotator(seeded(t, moved), kek).Load(context.Background(), s); err == nil {
		t.Fatal("Load accepted a sealed key moved onto another kid")
	}
}

func kids(p []PublicKey) []string {
	var out []string
	for _, k := range p {
		out = append(out, k.KID)
	}
	return out
}

// ---------------------------------------------------------------- tokens

func seg(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b64(b)
}

// forge builds a compact JWS by hand, signed with priv over header.payload.
func forge(t *testing.T, priv ed25519.PrivateKey, header, claims map[string]any) string {
	t.Helper()
	in := seg(t, header) + "." + seg(t, claims)
	return in + "." + b64(ed25519.Sign(priv, []byte(in)))
}

func goodClaims(now time.Time) map[string]any {
	return map[string]any{
		"iss": testIssuer, "aud": []string{testAudience}, "sub": "user-1", "role": Role, "sid": "sess-1",
		"iat": now.Unix(), "exp": now.Add(testTTL).Unix(),
	}
}

// claimsWith returns good claims with the pairs name, value changed; a nil
// value removes the claim.
func claimsWith(now time.Time, kv ...any) map[string]any {
	c := goodClaims(now)
	for i := 0; i < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == nil {
			delete(c, k)
		} else {
			c[k] = kv[i+1]
		}
	}
	return c
}

func kidOf(t *testing.T, tok string) string {
	t.Helper()
	h, _, _ := strings.Cut(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	var hdr map[string]any
	if err := json.Unmarshal(raw, &hdr); err != nil {
		t.Fatal(err)
	}
	kid, _ := hdr["kid"].(string)
	return kid
}

func TestIssueVerify(t *testing.T) {
	s, st, _ := loaded(t)
	now := time.Now()
	tok, exp, err := s.Issue("user-1", "sess-1", now)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Verify(tok, now)
	if err != nil {
		t.Fatalf("Verify(Issue(...)): %v", err)
	}
	if c.Subject != "user-1" || c.SessionID != "sess-1" {
		t.Fatalf("claims %+v", c)
	}
	if !c.Expiry.Equal(exp) || c.Expiry.Sub(c.IssuedAt) != testTTL {
		t.Fatalf("exp %v, iat %v, returned expiry %v; want exp = iat + TTL", c.Expiry, c.IssuedAt, exp)
	}
	// The header and payload are what PostgREST and gate.check_request
	// expect, read without jwx.
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %d parts", len(parts))
	}
	var hdr, pl map[string]any
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	pb, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if json.Unmarshal(hb, &hdr) != nil || json.Unmarshal(pb, &pl) != nil {
		t.Fatal("header or payload is not JSON")
	}
	if hdr["alg"] != "EdDSA" || hdr["kid"] != stored(t, st)[0].KID || hdr["typ"] != "JWT" {
		t.Fatalf("header %v", hdr)
	}
	if pl["role"] != Role || pl["iss"] != testIssuer || pl["sub"] != "user-1" || pl["sid"] != "sess-1" || pl["kid"] != stored(t, st)[0].KID {
		t.Fatalf("payload %v", pl)
	}
	if aud, _ := pl["aud"].([]any); len(aud) != 1 || aud[0] != testAudience {
		// A single string would do too, but the database function compares
		// what it gets; pin the shape.
		if pl["aud"] != testAudience {
			t.Fatalf("aud %v", pl["aud"])
		}
	}
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	if !ed25519.Verify(ed25519.PublicKey(stored(t, st)[0].Public), []byte(parts[0]+"."+parts[1]), sig) {
		t.Fatal("signature does not verify with the published key")
	}
	// Every token is unique: a second one for the same session in the same
	// second differs, by its jti (128 random bits).
	jti, _ := pl["jti"].(string)
	if len(jti) != 26 {
		t.Fatalf("jti %v: want 26 characters of random base32", pl["jti"])
	}
	tok2, _, err := s.Issue("user-1", "sess-1", now)
	if err != nil {
		t.Fatal(err)
	}
	if tok2 == tok {
		t.Fatal("two tokens issued in the same second are byte-identical")
	}
	// Valid until exp, not after.
	if _, err := s.Verify(tok, exp.Add(-time.Second)); err != nil {
		t.Fatalf("refused just before exp: %v", err)
	}
	if _, err := s.Verify(tok, exp.Add(time.Second)); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("accepted after exp: %v", err)
	}
}

func TestVerifyRefusesForgedTokens(t *testing.T) {
	s, st, kek := loaded(t)
	kid, priv := currentPrivate(t, st, kek)
	now := time.Now().Truncate(time.Second)
	hdr := map[string]any{"alg": "EdDSA", "kid": kid, "typ": "JWT"}

	// The hand-made token with the real key is accepted, so each refusal
	// below is for the one thing changed.
	if _, err := s.Verify(forge(t, priv, hdr, goodClaims(now)), now); err != nil {
		t.Fatalf("baseline forged-with-the-real-key token refused: %v", err)
	}

	_, strangerKey, _ := ed25519.GenerateKey(rand.Reader)
	hs := func(key []byte, h, c map[string]any) string {
		in := seg(t, h) + "." + seg(t, c)
		m := hmac.New(sha256.New, key)
		m.Write([]byte(in))
		return in + "." + b64(m.Sum(nil))
	}
	tampered := func() string {
		tok := forge(t, priv, hdr, goodClaims(now))
		p := strings.Split(tok, ".")
		p[1] = seg(t, claimsWith(now, "sub", "someone-else"))
		return strings.Join(p, ".")
	}()
	noneTok := seg(t, map[string]any{"alg": "none", "kid": kid, "typ": "JWT"}) + "." + seg(t, goodClaims(now)) + "."
	noneTokUpper := seg(t, map[string]any{"alg": "None", "kid": kid}) + "." + seg(t, goodClaims(now)) + "."

	cases := map[string]string{
		"alg none":              noneTok,
		"alg None":              noneTokUpper,
		"HS256 keyed with JWKS": hs(s.JWKS(), map[string]any{"alg": "HS256", "kid": kid, "typ": "JWT"}, goodClaims(now)),
		"HS256 keyed with x":    hs(stored(t, st)[0].Public, map[string]any{"alg": "HS256", "kid": kid, "typ": "JWT"}, goodClaims(now)),
		"HS256 without kid":     hs(s.JWKS(), map[string]any{"alg": "HS256", "typ": "JWT"}, goodClaims(now)),
		"unknown key same kid":  forge(t, strangerKey, hdr, goodClaims(now)),
		"unknown key other kid": forge(t, strangerKey, map[string]any{"alg": "EdDSA", "kid": "stranger-kid-01", "typ": "JWT"}, goodClaims(now)),
		"real key unknown kid":  forge(t, priv, map[string]any{"alg": "EdDSA", "kid": "stranger-kid-01", "typ": "JWT"}, goodClaims(now)),
		"real key no kid":       forge(t, priv, map[string]any{"alg": "EdDSA", "typ": "JWT"}, goodClaims(now)),
		"expired":               forge(t, priv, hdr, claimsWith(now, "iat", now.Add(-20*time.Minute).Unix(), "exp", now.Add(-5*time.Minute).Unix())),
		"issued in the future":  forge(t, priv, hdr, claimsWith(now, "iat", now.Add(5*time.Minute).Unix(), "exp", now.Add(10*time.Minute).Unix())),
		"wrong iss":             forge(t, priv, hdr, claimsWith(now, "iss", "http://evil.example")),
		"missing iss":           forge(t, priv, hdr, claimsWith(now, "iss", nil)),
		"wrong aud":             forge(t, priv, hdr, claimsWith(now, "aud", []string{"other-api"})),
		"wrong aud string":      forge(t, priv, hdr, claimsWith(now, "aud", "other-api")),
		"missing aud":           forge(t, priv, hdr, claimsWith(now, "aud", nil)),
		"missing exp":           forge(t, priv, hdr, claimsWith(now, "exp", nil)),
		"missing iat":           forge(t, priv, hdr, claimsWith(now, "iat", nil)),
		"exp - iat > TTL":       forge(t, priv, hdr, claimsWith(now, "exp", now.Add(testTTL+time.Second).Unix())),
		"exp a year ahead":      forge(t, priv, hdr, claimsWith(now, "exp", now.Add(365*24*time.Hour).Unix())),
		"role authenticator":    forge(t, priv, hdr, claimsWith(now, "role", "authenticator")),
		"role postgres":         forge(t, priv, hdr, claimsWith(now, "role", "postgres")),
		"role anon":             forge(t, priv, hdr, claimsWith(now, "role", "anon")),
		"role missing":          forge(t, priv, hdr, claimsWith(now, "role", nil)),
		"role array":            forge(t, priv, hdr, claimsWith(now, "role", []string{Role})),
		// Claim types as strict as the gate's: jwx alone reads these.
		"exp a string":             forge(t, priv, hdr, claimsWith(now, "exp", strconv.FormatInt(now.Add(5*time.Minute).Unix(), 10))),
		"iat a string":             forge(t, priv, hdr, claimsWith(now, "iat", strconv.FormatInt(now.Unix(), 10))),
		"nbf a string":             forge(t, priv, hdr, claimsWith(now, "nbf", strconv.FormatInt(now.Unix(), 10))),
		"sub a number":             forge(t, priv, hdr, claimsWith(now, "sub", 42)),
		"sid a number":             forge(t, priv, hdr, claimsWith(now, "sid", 42)),
		"iss an array":             forge(t, priv, hdr, claimsWith(now, "iss", []string{"x"})),
		"aud a number":             forge(t, priv, hdr, claimsWith(now, "aud", 7)),
		"aud mixed array":          forge(t, priv, hdr, claimsWith(now, "aud", []any{"zsm-api", 7})),
		"missing sub":              forge(t, priv, hdr, claimsWith(now, "sub", nil)),
		"missing sid":              forge(t, priv, hdr, claimsWith(now, "sid", nil)),
		"tampered payload":         tampered,
		"signature stripped":       strings.Join(strings.Split(forge(t, priv, hdr, goodClaims(now)), ".")[:2], ".") + ".",
		"two parts":                strings.Join(strings.Split(forge(t, priv, hdr, goodClaims(now)), ".")[:2], "."),
		"empty":                    "",
		"garbage":                  "not.a.token",
		"JSON serialization":       `{"payload":"` + seg(t, goodClaims(now)) + `","signatures":[]}`,
		"signature of other token": strings.Join(strings.Split(forge(t, priv, hdr, claimsWith(now, "sub", "x")), ".")[:2], ".") + "." + strings.Split(forge(t, priv, hdr, goodClaims(now)), ".")[2],
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := s.Verify(tok, now)
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("Verify = %+v, %v; want ErrInvalidToken", c, err)
			}
			if c != (Claims{}) {
				t.Fatalf("claims returned with an error: %+v", c)
			}
		})
	}
}

// BUG (low severity, reported to the lead): Verify takes the algorithm from
// the key and never compares it with the token's header, so a token whose
// header says "none" or "ES256" but carries a valid Ed25519 signature of our
// key is accepted. Only the key holder can make one, so nothing is forged,
// but Verify documents "EdDSA only" and PostgREST would refuse such a token;
// a verifier that checks less than the database is a trap for later callers.
func TestVerifyRequiresEdDSAHeader(t *testing.T) {
	s, st, kek := loaded(t)
	kid, priv := currentPrivate(t, st, kek)
	now := time.Now().Truncate(time.Second)
	for _, alg := range []string{"none", "ES256", "HS256", "Ed25519", ""} {
		h := map[string]any{"alg": alg, "kid": kid, "typ": "JWT"}
		if alg == "" {
			delete(h, "alg")
		}
		tok := forge(t, priv, h, goodClaims(now))
		if _, err := s.Verify(tok, now); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("header alg %q with an EdDSA signature: %v; want ErrInvalidToken", alg, err)
		}
	}
}

func TestVerifyDoesNotTrustTokensOfAnotherSigner(t *testing.T) {
	a, _, _ := loaded(t)
	b, _, _ := loaded(t)
	tok, _, err := b.Issue("u", "s", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Verify(tok, time.Now()); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("signer A accepted signer B's token: %v", err)
	}
	// Same key material, other issuer or audience configured.
	_, st, kek := loaded(t)
	other := New("http://other", testAudience, testTTL, kek)
	if err := (&Rotator{Keys: st, KEK: kek, Issuer: "http://other", Audience: testAudience, AccessTTL: testTTL}).Load(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	mine := New(testIssuer, testAudience, testTTL, kek)
	if err := rotator(st, kek).Load(context.Background(), mine); err != nil {
		t.Fatal(err)
	}
	tok, _, _ = other.Issue("u", "s", time.Now())
	if _, err := mine.Verify(tok, time.Now()); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("token of another issuer accepted: %v", err)
	}
}

func TestNotLoaded(t *testing.T) {
	s := New(testIssuer, testAudience, testTTL, newKEK(t))
	if _, _, err := s.Issue("u", "s", time.Now()); !errors.Is(err, ErrNotLoaded) {
		t.Fatalf("Issue: %v", err)
	}
	if _, err := s.Verify("a.b.c", time.Now()); !errors.Is(err, ErrNotLoaded) {
		t.Fatalf("Verify: %v", err)
	}
	if s.JWKS() != nil {
		t.Fatal("JWKS before the keys are loaded")
	}
}

func TestOpenPrivateKey(t *testing.T) {
	kek := newKEK(t)
	a, _ := GenerateKey(kek, store.KeyCurrent, time.Now())
	b, _ := GenerateKey(kek, store.KeyNext, time.Now())
	priv, err := OpenPrivateKey(kek, a)
	if err != nil || !priv.Public().(ed25519.PublicKey).Equal(ed25519.PublicKey(a.Public)) {
		t.Fatalf("OpenPrivateKey: %v", err)
	}
	mixed := a
	mixed.Public = b.Public
	if _, err := OpenPrivateKey(kek, mixed); err == nil {
		t.Fatal("halves of two keys accepted as one")
	}
	if _, err := OpenPrivateKey(newKEK(t), a); err == nil {
		t.Fatal("opened with another KEK")
	}
}

// TestIssueMachine: a machine's access token has a person's shape with sub
// = tid = the token id, zsm_kind "machine" and no sid; Verify tells it
// from a person's, and refuses every mix of the two.
func TestIssueMachine(t *testing.T) {
	s, st, kek := loaded(t)
	now := time.Now().Truncate(time.Second)
	tok, exp, err := s.IssueMachine("tok-1", now)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Verify(tok, now)
	if err != nil {
		t.Fatalf("Verify(IssueMachine(...)): %v", err)
	}
	if !c.Machine || c.TokenID != "tok-1" || c.Subject != "tok-1" || c.SessionID != "" || !c.Expiry.Equal(exp) {
		t.Fatalf("claims %+v", c)
	}
	pb, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	var pl map[string]any
	if err := json.Unmarshal(pb, &pl); err != nil {
		t.Fatal(err)
	}
	if _, ok := pl["sid"]; ok || pl["zsm_kind"] != MachineKind || pl["tid"] != "tok-1" || pl["role"] != Role || pl["kid"] == nil {
		t.Fatalf("payload %v", pl)
	}
	if p, err := s.Verify(mustIssue(t, s, now), now); err != nil || p.Machine {
		t.Fatalf("a person's token: %+v, %v", p, err)
	}

	kid, priv := currentPrivate(t, st, kek)
	hdr := map[string]any{"alg": "EdDSA", "kid": kid, "typ": "JWT"}
	machine := func(kv ...any) map[string]any {
		return claimsWith(now, append([]any{"sub", "tok-1", "sid", nil, "tid", "tok-1", "zsm_kind", MachineKind}, kv...)...)
	}
	if _, err := s.Verify(forge(t, priv, hdr, machine()), now); err != nil {
		t.Fatalf("baseline machine token refused: %v", err)
	}
	for name, claims := range map[string]map[string]any{
		"a person's token marked as a machine's": claimsWith(now, "zsm_kind", MachineKind),
		"a person's token with a tid":            claimsWith(now, "tid", "user-1"),
		"tid not the subject":                    machine("tid", "tok-2"),
		"a machine's token with a session":       machine("sid", "sess-1"),
		"zsm_kind person":                        machine("zsm_kind", "person"),
		"zsm_kind not a string":                  machine("zsm_kind", true),
		"tid not a string":                       machine("tid", 7),
		"tid without zsm_kind":                   machine("zsm_kind", nil),
		"zsm_kind without tid":                   machine("tid", nil),
	} {
		if _, err := s.Verify(forge(t, priv, hdr, claims), now); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func mustIssue(t *testing.T, s *Signer, now time.Time) string {
	t.Helper()
	tok, _, err := s.Issue("user-1", "sess-1", now)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestMinIssuedAt(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 6, 0, 0, 250_000_000, time.UTC)
	later := t0.Add(time.Hour)
	keys := []store.SigningKey{
		{KID: "pruned", State: store.KeyRemoved, RemovedAt: &later}, // not revoked: no cutoff
		{KID: "revoked", State: store.KeyRemoved, Revoked: true, RemovedAt: &t0},
		{KID: "current", State: store.KeyCurrent},
	}
	want := time.Date(2026, 11, 30, 6, 0, 37, 0, time.UTC) // 36.25 s later, rounded up
	if got := MinIssuedAt(keys); !got.Equal(want) {
		t.Fatalf("MinIssuedAt = %v, want %v", got, want)
	}
	if got := MinIssuedAt(keys[:1]); !got.IsZero() {
		t.Fatalf("without a revocation: %v, want the zero time", got)
	}
	t1 := t0.Add(2 * time.Minute)
	keys = append(keys, store.SigningKey{KID: "revoked later", State: store.KeyRemoved, Revoked: true, RemovedAt: &t1})
	if got := MinIssuedAt(keys); !got.Equal(want.Add(2 * time.Minute)) {
		t.Fatalf("two revocations: %v, want the later one's cutoff", got)
	}
}

// After a revocation, tokens are dated at the cutoff (after a wait until
// the cutoff is within MaxForward), Verify takes them, and refuses a token
// issued before the cutoff — which is exactly what a token forged with the
// revoked key and cached by PostgREST would be.
func TestIssueAndVerifyAroundARevocationCutoff(t *testing.T) {
	ctx := context.Background()
	s, ks, kek := loaded(t)
	var slept []time.Duration
	s.sleep = func(d time.Duration) { slept = append(slept, d) }
	r := rotator(ks, kek)
	next, err := r.EnsureNext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before, _, err := s.Issue("u", "s", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	revokedAt := time.Now()
	r.Now = func() time.Time { return revokedAt }
	// The next key is revoked (say it leaked): the current key, which
	// signed before, goes on signing.
	if err := r.Revoke(ctx, next.KID); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(ctx, ks); err != nil {
		t.Fatal(err)
	}
	cutoff := MinIssuedAt(stored(t, ks))
	if d := cutoff.Sub(revokedAt); d < RevocationWindow || d >= RevocationWindow+time.Second {
		t.Fatalf("cutoff %v after the revocation, want %v plus under a second", d, RevocationWindow)
	}
	if pubs := ks.Published(); !pubs[len(pubs)-1].MinIAT.Equal(cutoff) {
		t.Fatalf("published min_iat %v, want %v", pubs[len(pubs)-1].MinIAT, cutoff)
	}

	// A token of the current key, still published, issued before the
	// cutoff: refused all the same.
	if _, err := s.Verify(before, time.Now()); !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("a token issued before the revocation: %v, want ErrInvalidToken (revoked)", err)
	}
	now := revokedAt.Add(time.Second)
	tok, exp, err := s.Issue("u", "s", now)
	if err != nil {
		t.Fatal(err)
	}
	if len(slept) != 1 || slept[0] != cutoff.Sub(now)-MaxForward {
		t.Fatalf("waited %v before issuing, want once %v", slept, cutoff.Sub(now)-MaxForward)
	}
	c, err := s.Verify(tok, now)
	if err != nil {
		t.Fatalf("a token dated at the cutoff: %v", err)
	}
	if !c.IssuedAt.Equal(cutoff) || !exp.Equal(cutoff.Add(testTTL)) || !c.Expiry.Equal(exp) {
		t.Fatalf("iat %v exp %v, want %v and %v", c.IssuedAt, exp, cutoff, cutoff.Add(testTTL))
	}
	// Once the cutoff has passed, tokens carry the time again, no wait.
	slept = nil
	late := cutoff.Add(time.Minute)
	tok, _, err = s.Issue("u", "s", late)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := s.Verify(tok, late); err != nil || !c.IssuedAt.Equal(late.Truncate(time.Second)) || slept != nil {
		t.Fatalf("after the cutoff: iat %v, %v, waited %v", c.IssuedAt, err, slept)
	}
	// An iat later than both the clock and the cutoff is refused.
	_, priv := currentPrivate(t, ks, kek)
	kid := s.CurrentKID()
	ahead := forge(t, priv, map[string]any{"alg": "EdDSA", "typ": "JWT", "kid": kid},
		claimsWith(now, "iat", cutoff.Unix()+1, "exp", cutoff.Unix()+60, "kid", kid))
	if _, err := s.Verify(ahead, now); !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), "future") {
		t.Fatalf("an iat after the cutoff and the clock: %v, want ErrInvalidToken (future)", err)
	}
}
