package keys_test

import (
	"bytes"
	"crypto/hpke"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"zsm.dev/zsm/sdk/envelope"
	"zsm.dev/zsm/sdk/keys"
)

func newBundleV2(t testing.TB) (*keys.AccountKeys, keys.Bundle) {
	t.Helper()
	a, err := keys.NewAccountKeys(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.AddXWing(rand.Reader); err != nil {
		t.Fatal(err)
	}
	b, err := a.Bundle(unlockKey, userID, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

// TestXWingKeyFromBytes: the X-Wing key is made from exactly the 32 bytes
// read, used as the seed, and its public key is the one crypto/hpke derives
// from that seed.
func TestXWingKeyFromBytes(t *testing.T) {
	seed := bytes.Repeat([]byte{7}, 32)
	k, err := keys.NewXWingKey(bytes.NewReader(seed))
	if err != nil {
		t.Fatal(err)
	}
	got, err := k.Bytes()
	if err != nil || !bytes.Equal(got, seed) {
		t.Fatalf("seed = %x, %v", got, err)
	}
	want, _ := hpke.MLKEM768X25519().NewPrivateKey(seed)
	if !bytes.Equal(k.PublicKey().Bytes(), want.PublicKey().Bytes()) || len(k.PublicKey().Bytes()) != keys.XWingPublicSize {
		t.Fatal("public key differs from crypto/hpke's derivation")
	}
	if k.KEM().ID() != keys.XWingKEM {
		t.Fatalf("KEM id 0x%04x", k.KEM().ID())
	}
	if _, err := keys.NewXWingKey(bytes.NewReader(seed[:31])); err == nil {
		t.Fatal("made an X-Wing key from 31 bytes")
	}
}

func TestBundleV2RoundTrip(t *testing.T) {
	a, b := newBundleV2(t)
	if b.Version != 2 || b.XWingPublic == "" || b.XWingPrivate == "" {
		t.Fatalf("bundle = version %d", b.Version)
	}
	data, _ := json.Marshal(b)
	var m map[string]any
	json.Unmarshal(data, &m)
	if len(m) != 8 {
		t.Fatalf("version 2 bundle has %d members", len(m))
	}
	b2, err := keys.ParseBundle(data)
	if err != nil || b2 != b {
		t.Fatalf("ParseBundle = %v", err)
	}
	got, err := keys.OpenBundle(b2, unlockKey, userID)
	if err != nil {
		t.Fatal(err)
	}
	s1, _ := got.XWing.Bytes()
	s2, _ := a.XWing.Bytes()
	if !bytes.Equal(s1, s2) || !got.X25519.Equal(a.X25519) || !got.Ed25519.Equal(a.Ed25519) {
		t.Fatal("OpenBundle gave other keys")
	}
	pub, err := b.XWingPublicKey()
	if err != nil || !bytes.Equal(pub, a.XWing.PublicKey().Bytes()) {
		t.Fatalf("XWingPublicKey: %v", err)
	}
	// A version 1 bundle has no X-Wing key, and its JSON is unchanged.
	_, v1 := newBundle(t)
	if pub, err := v1.XWingPublicKey(); err != nil || pub != nil {
		t.Fatalf("version 1 XWingPublicKey = %x, %v", pub, err)
	}
	raw, _ := json.Marshal(v1)
	if strings.Contains(string(raw), "xwing") {
		t.Fatalf("version 1 JSON mentions xwing: %s", raw)
	}
}

func TestKEMKey(t *testing.T) {
	a, _ := newBundleV2(t)
	x, err := a.KEMKey(0x0020)
	if err != nil || x.KEM().ID() != 0x0020 {
		t.Fatalf("KEMKey(0x0020) = %v", err)
	}
	w, err := a.KEMKey(keys.XWingKEM)
	if err != nil || w != a.XWing {
		t.Fatalf("KEMKey(X-Wing) = %v", err)
	}
	v1, _ := newBundle(t)
	if _, err := v1.KEMKey(keys.XWingKEM); err == nil {
		t.Fatal("version 1 keys gave an X-Wing key")
	}
	if _, err := a.KEMKey(0x0010); err == nil {
		t.Fatal("a P-256 key")
	}
	if err := a.AddXWing(rand.Reader); err == nil {
		t.Fatal("AddXWing replaced an existing X-Wing key")
	}
}

// TestUpgradeBundle: the upgrade keeps the five version 1 members byte for
// byte (what the server checks), adds the X-Wing key, and refuses a bundle
// that is already version 2 or belongs to other keys.
func TestUpgradeBundle(t *testing.T) {
	a, v1 := newBundle(t)
	v2, err := a.UpgradeBundle(v1, userID, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if v2.Version != 2 || v2.AccountKey != v1.AccountKey || v2.X25519Public != v1.X25519Public ||
		v2.X25519Private != v1.X25519Private || v2.Ed25519Public != v1.Ed25519Public || v2.Ed25519Private != v1.Ed25519Private {
		t.Fatal("the upgrade changed a version 1 member")
	}
	got, err := keys.OpenBundle(v2, unlockKey, userID)
	if err != nil || got.XWing == nil {
		t.Fatalf("OpenBundle(upgraded) = %v", err)
	}
	s1, _ := got.XWing.Bytes()
	s2, _ := a.XWing.Bytes()
	if !bytes.Equal(s1, s2) {
		t.Fatal("the upgraded bundle holds another X-Wing key than a")
	}
	if _, err := a.UpgradeBundle(v2, userID, rand.Reader); err == nil {
		t.Fatal("upgraded a version 2 bundle")
	}
	other, otherB := newBundle(t)
	if _, err := a.UpgradeBundle(otherB, userID, rand.Reader); err == nil {
		t.Fatal("upgraded another account's bundle with a's keys")
	}
	// The upgrade seals under the account key for this user: another user
	// id does not open.
	v2other, err := other.UpgradeBundle(otherB, userID, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherUser := userID
	otherUser[3] ^= 1
	if _, err := keys.OpenBundle(v2other, unlockKey, otherUser); !errors.Is(err, keys.ErrUnlock) {
		t.Fatalf("another user id: %v", err)
	}
}

// TestBundleV2Tampered: the server substitutes the X-Wing public key (to
// receive vault keys sealed to the user), or moves in another account's
// X-Wing private key, or a seed of the wrong size: each is a tampered
// bundle.
func TestBundleV2Tampered(t *testing.T) {
	a, b := newBundleV2(t)
	_, evil := newBundleV2(t)
	cases := map[string]func(*keys.Bundle){
		"substituted public key":          func(c *keys.Bundle) { c.XWingPublic = evil.XWingPublic },
		"another account's private key":   func(c *keys.Bundle) { c.XWingPrivate = evil.XWingPrivate },
		"both halves of another account":  func(c *keys.Bundle) { c.XWingPublic, c.XWingPrivate = evil.XWingPublic, evil.XWingPrivate },
		"seed of 31 bytes":                func(c *keys.Bundle) { c.XWingPrivate = sealSeed(t, a.AccountKey, make([]byte, 31)) },
		"seed of 64 bytes":                func(c *keys.Bundle) { c.XWingPrivate = sealSeed(t, a.AccountKey, make([]byte, 64)) },
		"X25519 scalar relabelled type 6": func(c *keys.Bundle) { c.XWingPrivate = relabel(t, c.X25519Private, envelope.XWingSeed) },
		"private key tag flipped": func(c *keys.Bundle) {
			raw, _ := base64.StdEncoding.DecodeString(c.XWingPrivate)
			raw[len(raw)-1] ^= 1
			c.XWingPrivate = base64.StdEncoding.EncodeToString(raw)
		},
	}
	for name, edit := range cases {
		c := b
		edit(&c)
		if _, err := keys.OpenBundle(c, unlockKey, userID); !errors.Is(err, keys.ErrTamperedBundle) {
			t.Errorf("%s: err = %v, want ErrTamperedBundle", name, err)
		}
	}
	// The right seed under the account key but another public key of the
	// right shape: one bit flipped in the X25519 half.
	raw, _ := base64.StdEncoding.DecodeString(b.XWingPublic)
	raw[len(raw)-1] ^= 1
	c := b
	c.XWingPublic = base64.StdEncoding.EncodeToString(raw)
	if _, err := keys.OpenBundle(c, unlockKey, userID); !errors.Is(err, keys.ErrTamperedBundle) {
		t.Errorf("flipped public key bit: %v", err)
	}
}

func sealSeed(t *testing.T, accountKey, seed []byte) string {
	s, err := envelope.SealString(accountKey, envelope.Context{Type: envelope.XWingSeed, ObjectID: userID}, seed, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestParseBundleV2Strict: version 1 has exactly six members and version 2
// exactly eight; the X-Wing members have their exact size and type.
func TestParseBundleV2Strict(t *testing.T) {
	_, b := newBundleV2(t)
	good, _ := json.Marshal(b)
	if _, err := keys.ParseBundle(good); err != nil {
		t.Fatal(err)
	}
	obj := func(edit func(m map[string]any)) []byte {
		var m map[string]any
		json.Unmarshal(good, &m)
		edit(m)
		out, _ := json.Marshal(m)
		return out
	}
	pub, _ := base64.StdEncoding.DecodeString(b.XWingPublic)
	bad := map[string][]byte{
		"version 1 with X-Wing members":   obj(func(m map[string]any) { m["version"] = 1 }),
		"version 2 without X-Wing":        obj(func(m map[string]any) { delete(m, "xwing_public"); delete(m, "xwing_private") }),
		"version 2 without xwing_public":  obj(func(m map[string]any) { delete(m, "xwing_public") }),
		"version 2 without xwing_private": obj(func(m map[string]any) { delete(m, "xwing_private") }),
		"version 2, empty xwing_public":   obj(func(m map[string]any) { m["xwing_public"] = "" }),
		"version 3":                       obj(func(m map[string]any) { m["version"] = 3 }),
		"version 2.0":                     []byte(strings.Replace(string(good), `"version":2`, `"version":2.0`, 1)),
		"xwing_public of 1215 bytes":      obj(func(m map[string]any) { m["xwing_public"] = base64.StdEncoding.EncodeToString(pub[:1215]) }),
		"xwing_public of 1217 bytes": obj(func(m map[string]any) {
			m["xwing_public"] = base64.StdEncoding.EncodeToString(append(bytes.Clone(pub), 0))
		}),
		"xwing_public not an ML-KEM key": obj(func(m map[string]any) {
			m["xwing_public"] = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xff}, 1216))
		}),
		"xwing_public base64url":      obj(func(m map[string]any) { m["xwing_public"] = base64.URLEncoding.EncodeToString(pub) }),
		"xwing_private of type 2":     obj(func(m map[string]any) { m["xwing_private"] = b.X25519Private }),
		"xwing_private number":        obj(func(m map[string]any) { m["xwing_private"] = 6 }),
		"X-Wing member repeated":      []byte(strings.Replace(string(good), `{`, `{"xwing_private":"`+b.XWingPrivate+`",`, 1)),
		"X-Wing name in another case": []byte(strings.Replace(string(good), `"xwing_public"`, `"XWing_Public"`, 1)),
	}
	if base64.URLEncoding.EncodeToString(pub) == b.XWingPublic {
		delete(bad, "xwing_public base64url")
	}
	for name, data := range bad {
		if _, err := keys.ParseBundle(data); !errors.Is(err, keys.ErrMalformedBundle) {
			t.Errorf("%s: ParseBundle err = %v", name, err)
		}
	}
	// OpenBundle refuses the same shapes when handed a Bundle directly.
	c := b
	c.Version = 1
	if _, err := keys.OpenBundle(c, unlockKey, userID); !errors.Is(err, keys.ErrMalformedBundle) {
		t.Errorf("OpenBundle of version 1 with X-Wing members: %v", err)
	}
	c = b
	c.XWingPrivate = ""
	if _, err := keys.OpenBundle(c, unlockKey, userID); !errors.Is(err, keys.ErrMalformedBundle) {
		t.Errorf("OpenBundle of version 2 without xwing_private: %v", err)
	}
}
