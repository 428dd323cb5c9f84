package keys_test

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"zsm.dev/zsm/sdk/envelope"
	"zsm.dev/zsm/sdk/keys"
)

var (
	unlockKey = bytes.Repeat([]byte{0x11}, 32)
	userID    = uuid.MustParse("0190a3b4-0000-7000-8000-0000000000aa")
)

func newBundle(t testing.TB) (*keys.AccountKeys, keys.Bundle) {
	t.Helper()
	a, err := keys.NewAccountKeys(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := a.Bundle(unlockKey, userID, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

func TestBundleRoundTrip(t *testing.T) {
	a, b := newBundle(t)
	data, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := keys.ParseBundle(data)
	if err != nil {
		t.Fatal(err)
	}
	if b2 != b {
		t.Fatalf("ParseBundle(json(b)) = %+v, want %+v", b2, b)
	}
	got, err := keys.OpenBundle(b2, unlockKey, userID)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.AccountKey, a.AccountKey) || !got.X25519.Equal(a.X25519) || !got.Ed25519.Equal(a.Ed25519) {
		t.Fatal("OpenBundle gave other keys")
	}
	xp, err := b.X25519PublicKey()
	if err != nil || !xp.Equal(a.X25519.PublicKey()) {
		t.Fatalf("X25519PublicKey = %v, %v", xp, err)
	}
	ep, err := b.Ed25519PublicKey()
	if err != nil || !ep.Equal(a.Ed25519.Public()) {
		t.Fatalf("Ed25519PublicKey = %v, %v", ep, err)
	}
	// The key material really is what NewAccountKeys read.
	fixed := bytes.Repeat([]byte{1}, 32)
	fixed = append(fixed, bytes.Repeat([]byte{2}, 32)...)
	fixed = append(fixed, bytes.Repeat([]byte{3}, 32)...)
	k, err := keys.NewAccountKeys(bytes.NewReader(fixed))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k.AccountKey, fixed[:32]) || !bytes.Equal(k.X25519.Bytes(), fixed[32:64]) || !bytes.Equal(k.Ed25519.Seed(), fixed[64:]) {
		t.Fatal("NewAccountKeys does not use the bytes it reads")
	}
	if _, err := keys.NewAccountKeys(bytes.NewReader(fixed[:95])); err == nil {
		t.Fatal("NewAccountKeys succeeded with 95 bytes of randomness")
	}
}

func TestBundleWrongUnlockKeyOrUser(t *testing.T) {
	_, b := newBundle(t)
	wrongKey := bytes.Clone(unlockKey)
	wrongKey[0] ^= 1
	if _, err := keys.OpenBundle(b, wrongKey, userID); !errors.Is(err, keys.ErrUnlock) || !errors.Is(err, envelope.ErrTampered) {
		t.Errorf("wrong unlock key: err = %v", err)
	}
	otherUser := userID
	otherUser[15] ^= 1
	if _, err := keys.OpenBundle(b, unlockKey, otherUser); !errors.Is(err, keys.ErrUnlock) {
		t.Errorf("wrong user id: err = %v", err)
	}
	if _, err := keys.OpenBundle(b, unlockKey, uuid.Nil); !errors.Is(err, keys.ErrUnlock) {
		t.Errorf("nil user id: err = %v", err)
	}
}

// TestBundleOtherUsersBundle: a server that hands Alice Bob's bundle (both
// sealed with keys Alice does not have) gets ErrUnlock; one that hands Alice
// her own account key with Bob's private keys gets ErrTamperedBundle.
func TestBundleMixedUsers(t *testing.T) {
	_, alice := newBundle(t)
	_, bob := newBundle(t)
	mixed := alice
	mixed.X25519Private, mixed.X25519Public = bob.X25519Private, bob.X25519Public
	if _, err := keys.OpenBundle(mixed, unlockKey, userID); !errors.Is(err, keys.ErrTamperedBundle) {
		t.Errorf("Bob's X25519 pair in Alice's bundle: err = %v", err)
	}
	mixed = alice
	mixed.Ed25519Private = bob.Ed25519Private
	if _, err := keys.OpenBundle(mixed, unlockKey, userID); !errors.Is(err, keys.ErrTamperedBundle) {
		t.Errorf("Bob's Ed25519 private key in Alice's bundle: err = %v", err)
	}
}

func TestBundleTamperedPublicKeys(t *testing.T) {
	_, b := newBundle(t)
	// The server substitutes its own public keys (to receive vault keys
	// meant for the user, or to verify grants it signed): the private
	// halves no longer match, and the bundle is refused.
	evilX, _ := ecdh.X25519().GenerateKey(rand.Reader)
	evilE, _, _ := ed25519.GenerateKey(rand.Reader)
	x := b
	x.X25519Public = base64.StdEncoding.EncodeToString(evilX.PublicKey().Bytes())
	if _, err := keys.OpenBundle(x, unlockKey, userID); !errors.Is(err, keys.ErrTamperedBundle) {
		t.Errorf("substituted X25519 public key: err = %v", err)
	}
	e := b
	e.Ed25519Public = base64.StdEncoding.EncodeToString(evilE)
	if _, err := keys.OpenBundle(e, unlockKey, userID); !errors.Is(err, keys.ErrTamperedBundle) {
		t.Errorf("substituted Ed25519 public key: err = %v", err)
	}
	// One bit of a public key.
	raw, _ := base64.StdEncoding.DecodeString(b.X25519Public)
	raw[31] ^= 0x01
	x.X25519Public = base64.StdEncoding.EncodeToString(raw)
	if _, err := keys.OpenBundle(x, unlockKey, userID); !errors.Is(err, keys.ErrTamperedBundle) {
		t.Errorf("flipped X25519 public key bit: err = %v", err)
	}
}

func TestBundleSwappedEnvelopes(t *testing.T) {
	_, b := newBundle(t)
	swaps := map[string]func(*keys.Bundle){
		"x25519 <-> ed25519 private": func(b *keys.Bundle) { b.X25519Private, b.Ed25519Private = b.Ed25519Private, b.X25519Private },
		"account key <-> x25519":     func(b *keys.Bundle) { b.AccountKey, b.X25519Private = b.X25519Private, b.AccountKey },
		"account key <-> ed25519":    func(b *keys.Bundle) { b.AccountKey, b.Ed25519Private = b.Ed25519Private, b.AccountKey },
		"public <-> public":          func(b *keys.Bundle) { b.X25519Public, b.Ed25519Public = b.Ed25519Public, b.X25519Public },
	}
	for name, swap := range swaps {
		s := b
		swap(&s)
		if _, err := keys.OpenBundle(s, unlockKey, userID); err == nil {
			t.Errorf("%s: opened", name)
		}
	}
	// The same swap with the type bytes relabelled to match the fields
	// passes parsing but fails the AD check: the type is bound in the AD.
	s := b
	s.X25519Private, s.Ed25519Private = relabel(t, b.Ed25519Private, envelope.X25519Private), relabel(t, b.X25519Private, envelope.Ed25519Private)
	if _, err := keys.OpenBundle(s, unlockKey, userID); !errors.Is(err, keys.ErrTamperedBundle) || !errors.Is(err, envelope.ErrTampered) {
		t.Errorf("relabelled swap: err = %v", err)
	}
}

func relabel(t *testing.T, s string, ty envelope.Type) string {
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	raw[1] = byte(ty)
	return base64.StdEncoding.EncodeToString(raw)
}

func TestBundleFlipEveryByte(t *testing.T) {
	_, b := newBundle(t)
	fields := map[string]*string{
		"account_key": &b.AccountKey, "x25519_private": &b.X25519Private, "ed25519_private": &b.Ed25519Private,
		"x25519_public": &b.X25519Public, "ed25519_public": &b.Ed25519Public,
	}
	for name, f := range fields {
		orig := *f
		raw, _ := base64.StdEncoding.DecodeString(orig)
		for i := range raw {
			bad := bytes.Clone(raw)
			bad[i] ^= 0x01
			*f = base64.StdEncoding.EncodeToString(bad)
			if _, err := keys.OpenBundle(b, unlockKey, userID); err == nil {
				t.Fatalf("%s byte %d flipped: opened", name, i)
			}
		}
		*f = orig
	}
	if _, err := keys.OpenBundle(b, unlockKey, userID); err != nil {
		t.Fatal(err)
	}
}

func TestParseBundleStrict(t *testing.T) {
	_, b := newBundle(t)
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
	s := string(good)
	bad := map[string][]byte{
		"empty":           nil,
		"null":            []byte("null"),
		"array":           []byte("[]"),
		"empty object":    []byte("{}"),
		"unknown member":  obj(func(m map[string]any) { m["extra"] = "x" }),
		"missing member":  obj(func(m map[string]any) { delete(m, "ed25519_public") }),
		"missing version": obj(func(m map[string]any) { delete(m, "version") }),
		"version 2":       obj(func(m map[string]any) { m["version"] = 2 }),
		"version 0":       obj(func(m map[string]any) { m["version"] = 0 }),
		"version string":  obj(func(m map[string]any) { m["version"] = "1" }),
		"version 1.0":     []byte(strings.Replace(s, `"version":1`, `"version":1.0`, 1)),
		"version 1e0":     []byte(strings.Replace(s, `"version":1`, `"version":1e0`, 1)),
		"field null":      obj(func(m map[string]any) { m["account_key"] = nil }),
		"field number":    obj(func(m map[string]any) { m["account_key"] = 5 }),
		"field object":    obj(func(m map[string]any) { m["account_key"] = map[string]any{} }),
		"field empty":     obj(func(m map[string]any) { m["x25519_public"] = "" }),
		"public 31 bytes": obj(func(m map[string]any) { m["x25519_public"] = base64.StdEncoding.EncodeToString(make([]byte, 31)) }),
		"public 33 bytes": obj(func(m map[string]any) { m["ed25519_public"] = base64.StdEncoding.EncodeToString(make([]byte, 33)) }),
		"public base64url": obj(func(m map[string]any) {
			m["ed25519_public"] = base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xff}, 32))
		}),
		"envelope garbage":   obj(func(m map[string]any) { m["account_key"] = base64.StdEncoding.EncodeToString(make([]byte, 80)) }),
		"envelope version 2": obj(func(m map[string]any) { m["account_key"] = relabelVersion(t, b.AccountKey) }),
		"case-variant name":  []byte(strings.Replace(s, `"account_key"`, `"Account_Key"`, 1)),
		"duplicate member":   []byte(strings.Replace(s, `{`, `{"account_key":"`+b.X25519Private+`",`, 1)),
		"trailing object":    append(bytes.Clone(good), []byte(`{}`)...),
		"trailing garbage":   append(bytes.Clone(good), 'x'),
		"truncated":          good[:len(good)-1],
		"huge":               append(bytes.Clone(good), bytes.Repeat([]byte(" "), 20<<10)...),
	}
	for name, data := range bad {
		if _, err := keys.ParseBundle(data); !errors.Is(err, keys.ErrMalformedBundle) {
			t.Errorf("%s: ParseBundle err = %v", name, err)
		}
	}
	// Whitespace and member order are free.
	var m map[string]any
	json.Unmarshal(good, &m)
	indented, _ := json.MarshalIndent(m, "", "  ")
	if _, err := keys.ParseBundle(append(indented, '\n')); err != nil {
		t.Errorf("indented bundle: %v", err)
	}
	// OpenBundle checks a Bundle it did not parse the same way.
	nb := b
	nb.Version = 2
	if _, err := keys.OpenBundle(nb, unlockKey, userID); !errors.Is(err, keys.ErrMalformedBundle) {
		t.Errorf("OpenBundle of version 2: %v", err)
	}
}

func relabelVersion(t *testing.T, s string) string {
	raw, _ := base64.StdEncoding.DecodeString(s)
	raw[0] = 2
	return base64.StdEncoding.EncodeToString(raw)
}

func FuzzParseBundle(f *testing.F) {
	_, b := newBundle(f)
	good, _ := json.Marshal(b)
	f.Add(good)
	_, b2 := newBundleV2(f)
	good2, _ := json.Marshal(b2)
	f.Add(good2)
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":2,"xwing_public":"","xwing_private":""}`))
	f.Add([]byte(`{"version":1,"version":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := keys.ParseBundle(data)
		if err != nil {
			if !errors.Is(err, keys.ErrMalformedBundle) {
				t.Fatalf("error of no known class: %v", err)
			}
			return
		}
		out, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		b2, err := keys.ParseBundle(out)
		if err != nil || b2 != b {
			t.Fatalf("accepted bundle does not round-trip: %v", err)
		}
	})
}
