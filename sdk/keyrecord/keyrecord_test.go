package keyrecord

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"testing"

	"github.com/google/uuid"
)

func newRecord(t *testing.T) (Record, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	x, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return Record{UserID: uuid.New(), Identity: "alice@example.com", X25519: x.PublicKey().Bytes(), Ed25519: pub}, priv
}

func TestSignVerify(t *testing.T) {
	r, priv := newRecord(t)
	sig, err := Sign(r, priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(r, sig); err != nil {
		t.Fatalf("own record: %v", err)
	}
	m, _ := r.Message()
	if !bytes.HasPrefix(m, []byte("zsm v1 key-record\x00")) || len(m) != 18+16+1+len(r.Identity)+64 {
		t.Fatalf("message layout: %x", m)
	}
}

// Every field is covered: a record changed after signing does not verify.
func TestModifiedRecordIsRefused(t *testing.T) {
	r, priv := newRecord(t)
	sig, err := Sign(r, priv)
	if err != nil {
		t.Fatal(err)
	}
	other, otherPriv := newRecord(t)
	for name, mod := range map[string]func(*Record){
		"user id":        func(c *Record) { c.UserID[0] ^= 1 },
		"identity":       func(c *Record) { c.Identity = "mallory@example.com" },
		"x25519 key":     func(c *Record) { c.X25519 = other.X25519 },
		"ed25519 key":    func(c *Record) { c.Ed25519 = other.Ed25519 },
		"not normalized": func(c *Record) { c.Identity = "Alice@example.com" },
		"short key":      func(c *Record) { c.X25519 = c.X25519[:31] },
	} {
		c := r
		c.X25519, c.Ed25519 = bytes.Clone(r.X25519), bytes.Clone(r.Ed25519)
		mod(&c)
		if err := Verify(c, sig); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: %v, want ErrBadSignature", name, err)
		}
	}
	// Somebody else's key cannot sign for r's keys.
	if _, err := Sign(r, otherPriv); err == nil {
		t.Error("signed a record with a key that is not the record's")
	}
	raw, _ := base64.StdEncoding.DecodeString(sig)
	for name, s := range map[string]string{
		"unpadded":  base64.RawStdEncoding.EncodeToString(raw),
		"truncated": base64.StdEncoding.EncodeToString(raw[:63]),
		"flipped":   base64.StdEncoding.EncodeToString(append([]byte{raw[0] ^ 1}, raw[1:]...)),
		"empty":     "",
	} {
		if err := Verify(r, s); !errors.Is(err, ErrBadSignature) {
			t.Errorf("signature %s: %v, want ErrBadSignature", name, err)
		}
	}
}

// A key of small order would let anybody forge the account's signatures:
// plain Ed25519 verifies R = identity, S = 0 under the identity point for
// every message. A record never publishes one.
func TestSmallOrderKeysAreRefused(t *testing.T) {
	forged := make([]byte, 64)
	forged[0] = 1 // R = the identity, S = 0
	r, _ := newRecord(t)
	for i, e := range smallOrder {
		for _, sign := range []byte{0, 0x80} {
			k := bytes.Clone(e[:])
			k[31] |= sign
			if !SmallOrder(k) {
				t.Fatalf("entry %d (sign %x) not recognized", i, sign)
			}
			r.Ed25519 = k
			if err := Verify(r, base64.StdEncoding.EncodeToString(forged)); !errors.Is(err, ErrBadSignature) {
				t.Errorf("entry %d (sign %x): %v, want ErrBadSignature", i, sign, err)
			}
		}
	}
	// The trivial forgery really verifies under the identity with plain
	// Ed25519, which is why the record must refuse it.
	identity := smallOrder[1]
	if !ed25519.Verify(identity[:], []byte("anything"), forged) {
		t.Fatal("crypto/ed25519 refuses the identity point now; revisit SmallOrder's comment")
	}
	for range 100 {
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		if SmallOrder(pub) {
			t.Fatalf("a generated key %x flagged as small order", pub)
		}
	}
}

func TestFromBase64(t *testing.T) {
	r, _ := newRecord(t)
	b64 := base64.StdEncoding.EncodeToString
	got, err := FromBase64(r.UserID, r.Identity, b64(r.X25519), b64(r.Ed25519))
	if err != nil || !bytes.Equal(got.X25519, r.X25519) || !bytes.Equal(got.Ed25519, r.Ed25519) {
		t.Fatalf("%v %v", got, err)
	}
	if _, err := FromBase64(r.UserID, r.Identity, base64.RawStdEncoding.EncodeToString(r.X25519), b64(r.Ed25519)); err == nil {
		t.Error("accepted unpadded base64")
	}
	if _, err := FromBase64(r.UserID, r.Identity, b64(r.X25519[:31]), b64(r.Ed25519)); err == nil {
		t.Error("accepted a 31-byte key")
	}
}

// fuzzKey is a fixed account for FuzzKeyRecord.
var fuzzKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))

// FuzzKeyRecord feeds arbitrary published values (identity, both keys in
// their text form, the signature) to the parser and verifier. Nothing
// panics; every refusal is ErrBadSignature or a parse error; and a record
// verifies only with the one signature its own key makes (Ed25519 is
// deterministic and Go refuses non-canonical encodings), so no other
// spelling of a signature is ever accepted.
func FuzzKeyRecord(f *testing.F) {
	b64 := base64.StdEncoding.EncodeToString
	pub := fuzzKey.Public().(ed25519.PublicKey)
	x := bytes.Repeat([]byte{9}, 32)
	uid := uuid.MustParse("6f1c2a3b-4d5e-4f60-8a7b-8c9d0e1f2a3b")
	good := Record{UserID: uid, Identity: "alice@example.com", X25519: x, Ed25519: pub}
	sig, err := Sign(good, fuzzKey)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uid[:], good.Identity, b64(x), b64(pub), sig)
	f.Add(uid[:], "Alice@example.com", b64(x), b64(pub), sig)
	f.Add(uid[:], "j\u00fcrgen@example.com", b64(x), b64(pub), sig[:len(sig)-2])
	f.Add(make([]byte, 16), "", "", "", "")
	f.Add(uid[:], good.Identity, base64.RawStdEncoding.EncodeToString(x), b64(pub), sig+"\n")
	f.Fuzz(func(t *testing.T, id []byte, identity, xs, es, s string) {
		u, err := uuid.FromBytes(id)
		if err != nil {
			return
		}
		r, err := FromBase64(u, identity, xs, es)
		if err != nil {
			return
		}
		if b64(r.X25519) != xs || b64(r.Ed25519) != es {
			t.Fatalf("FromBase64 accepted a non-canonical key spelling: %q %q", xs, es)
		}
		if m, err := r.Message(); err == nil && !bytes.HasPrefix(m, []byte(labelV1+"\x00")) {
			t.Fatalf("message without its label: %x", m)
		}
		err = Verify(r, s)
		if err != nil {
			if !errors.Is(err, ErrBadSignature) {
				t.Fatalf("Verify error of no known class: %v", err)
			}
			return
		}
		// Only the account's own key can have made it, and only this one
		// spelling of it.
		if !bytes.Equal(r.Ed25519, pub) {
			t.Fatalf("a record verified under a key nobody here holds: %x", r.Ed25519)
		}
		want, err := Sign(r, fuzzKey)
		if err != nil || want != s {
			t.Fatalf("Verify accepted %q; the one signature is %q", s, want)
		}
	})
}

func xwingPublic(t *testing.T) []byte {
	t.Helper()
	k, err := hpke.MLKEM768X25519().GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	b := k.PublicKey().Bytes()
	if len(b) != XWingSize {
		t.Fatalf("X-Wing public key of %d bytes", len(b))
	}
	return b
}

// Version 2 adds the X-Wing key under another label: a version 2 record
// never verifies as version 1 (dropping the hybrid key breaks the
// signature), nor the other way round, and every byte of the X-Wing key is
// covered.
func TestVersion2(t *testing.T) {
	r, priv := newRecord(t)
	r.XWing = xwingPublic(t)
	if r.Version() != V2 {
		t.Fatalf("version %d", r.Version())
	}
	sig, err := Sign(r, priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(r, sig); err != nil {
		t.Fatalf("own version 2 record: %v", err)
	}
	m, _ := r.Message()
	if !bytes.HasPrefix(m, []byte("zsm v2 key-record\x00")) || len(m) != 18+16+1+len(r.Identity)+64+XWingSize {
		t.Fatalf("message layout: %x", m[:40])
	}
	v1 := r
	v1.XWing = nil
	if err := Verify(v1, sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("version 2 signature over the version 1 record: %v", err)
	}
	v1sig, err := Sign(v1, priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(r, v1sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("version 1 signature over the version 2 record: %v", err)
	}
	other := r
	other.XWing = xwingPublic(t)
	if err := Verify(other, sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("substituted X-Wing key: %v", err)
	}
	short := r
	short.XWing = r.XWing[:XWingSize-1]
	if _, err := short.Message(); err == nil {
		t.Fatal("a short X-Wing key has a message")
	}
	bad := r
	bad.XWing = bytes.Repeat([]byte{0xff}, XWingSize) // coefficients above q
	if _, err := bad.Message(); err == nil {
		t.Fatal("an invalid ML-KEM key has a message")
	}

	b64 := base64.StdEncoding.EncodeToString
	got, err := FromPublished(V2, r.UserID, r.Identity, b64(r.X25519), b64(r.Ed25519), b64(r.XWing))
	if err != nil || !bytes.Equal(got.XWing, r.XWing) || got.Version() != V2 {
		t.Fatalf("FromPublished v2: %v", err)
	}
	if _, err := FromPublished(V1, r.UserID, r.Identity, b64(r.X25519), b64(r.Ed25519), b64(r.XWing)); err == nil {
		t.Fatal("version 1 with an X-Wing key accepted")
	}
	if _, err := FromPublished(V2, r.UserID, r.Identity, b64(r.X25519), b64(r.Ed25519), ""); err == nil {
		t.Fatal("version 2 without an X-Wing key accepted")
	}
	if _, err := FromPublished(3, r.UserID, r.Identity, b64(r.X25519), b64(r.Ed25519), ""); err == nil {
		t.Fatal("version 3 accepted")
	}
	if _, err := FromPublished(V2, r.UserID, r.Identity, b64(r.X25519), b64(r.Ed25519), base64.RawStdEncoding.EncodeToString(r.XWing)); err == nil {
		t.Fatal("unpadded X-Wing key accepted")
	}
}

// FuzzPublished feeds arbitrary published rows (version, identity, the
// three keys in their text form, the signature) to FromPublished and
// Verify, as a client reads them from the server. Nothing panics; a
// record's version is 2 exactly when it has an X-Wing key; keys are taken
// only in their one canonical spelling; and a record verifies only with
// the one signature its own key makes.
func FuzzPublished(f *testing.F) {
	b64 := base64.StdEncoding.EncodeToString
	pub := fuzzKey.Public().(ed25519.PublicKey)
	x := bytes.Repeat([]byte{9}, 32)
	w, err := hpke.MLKEM768X25519().NewPrivateKey(bytes.Repeat([]byte{3}, 32))
	if err != nil {
		f.Fatal(err)
	}
	xw := w.PublicKey().Bytes()
	uid := uuid.MustParse("6f1c2a3b-4d5e-4f60-8a7b-8c9d0e1f2a3b")
	good := Record{UserID: uid, Identity: "alice@example.com", X25519: x, Ed25519: pub, XWing: xw}
	sig, err := Sign(good, fuzzKey)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(2, uid[:], good.Identity, b64(x), b64(pub), b64(xw), sig)
	f.Add(1, uid[:], good.Identity, b64(x), b64(pub), b64(xw), sig)
	f.Add(1, uid[:], good.Identity, b64(x), b64(pub), "", sig)
	f.Add(2, uid[:], good.Identity, b64(x), b64(pub), b64(xw[:1215]), sig)
	f.Add(3, make([]byte, 16), "", "", "", "", "")
	f.Fuzz(func(t *testing.T, version int, id []byte, identity, xs, es, ws, s string) {
		u, err := uuid.FromBytes(id)
		if err != nil {
			return
		}
		r, err := FromPublished(version, u, identity, xs, es, ws)
		if err != nil {
			return
		}
		if r.Version() != version || (version == V2) != (r.XWing != nil) {
			t.Fatalf("version %d gave a record of version %d", version, r.Version())
		}
		if b64(r.X25519) != xs || b64(r.Ed25519) != es || (r.XWing != nil && b64(r.XWing) != ws) {
			t.Fatal("FromPublished accepted a non-canonical key spelling")
		}
		if err := Verify(r, s); err != nil {
			if !errors.Is(err, ErrBadSignature) {
				t.Fatalf("Verify error of no known class: %v", err)
			}
			return
		}
		if !bytes.Equal(r.Ed25519, pub) {
			t.Fatalf("a record verified under a key nobody here holds: %x", r.Ed25519)
		}
		if want, err := Sign(r, fuzzKey); err != nil || want != s {
			t.Fatalf("Verify accepted %q; the one signature is %q", s, want)
		}
	})
}
