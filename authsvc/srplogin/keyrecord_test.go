package srplogin_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"zsm.dev/zsm/authsvc/srplogin"
	"zsm.dev/zsm/sdk/keyrecord"
	"zsm.dev/zsm/sdk/keys"
)

// A sign-up that publishes keys must carry a key record signed by the
// Ed25519 key it publishes, binding its user id and identity.
func TestVerifyKeyRecord(t *testing.T) {
	ak, err := keys.NewAccountKeys(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := keys.NewAccountKeys(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString
	uid := uuid.New()
	reg := srplogin.Registration{
		UserID: uid.String(), Identity: "alice@example.com", KeyBundle: []byte(`{}`),
		X25519Public: b64(ak.X25519.PublicKey().Bytes()), Ed25519Public: b64(ak.Ed25519.Public().(ed25519.PublicKey)),
	}
	rec, err := keyrecord.FromBase64(uid, reg.Identity, reg.X25519Public, reg.Ed25519Public)
	if err != nil {
		t.Fatal(err)
	}
	reg.KeyRecordSignature, err = keyrecord.Sign(rec, ak.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	if err := srplogin.VerifyKeyRecord(reg); err != nil {
		t.Fatalf("a proper record: %v", err)
	}
	otherRec := rec
	otherRec.Ed25519 = other.Ed25519.Public().(ed25519.PublicKey)
	otherSig, err := keyrecord.Sign(otherRec, other.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*srplogin.Registration){
		"no signature":           func(r *srplogin.Registration) { r.KeyRecordSignature = "" },
		"no user id":             func(r *srplogin.Registration) { r.UserID = "" },
		"another user id":        func(r *srplogin.Registration) { r.UserID = uuid.NewString() },
		"another identity":       func(r *srplogin.Registration) { r.Identity = "mallory@example.com" },
		"another X25519 key":     func(r *srplogin.Registration) { r.X25519Public = b64(other.X25519.PublicKey().Bytes()) },
		"signed by another key":  func(r *srplogin.Registration) { r.KeyRecordSignature = otherSig },
		"a signature, no bundle": func(r *srplogin.Registration) { r.KeyBundle = nil },
		"a malformed signature":  func(r *srplogin.Registration) { r.KeyRecordSignature = "AAAA" },
		"a malformed public key": func(r *srplogin.Registration) { r.Ed25519Public = "AAAA" },
	} {
		r := reg
		mod(&r)
		if err := srplogin.VerifyKeyRecord(r); !errors.Is(err, srplogin.ErrBadKeyRecord) {
			t.Errorf("%s: %v, want ErrBadKeyRecord", name, err)
		}
	}
	// Nothing published, nothing to prove.
	if err := srplogin.VerifyKeyRecord(srplogin.Registration{Identity: "bob"}); err != nil {
		t.Errorf("a sign-up without keys: %v", err)
	}
}

// A version 2 bundle is parsed as strictly as the client does, yields its
// X-Wing key, and needs a version 2 record: a version 1 record of the same
// keys (which leaves the hybrid key unvouched) is refused.
func TestVersion2BundleAndRecord(t *testing.T) {
	ak, err := keys.NewAccountKeys(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := ak.AddXWing(rand.Reader); err != nil {
		t.Fatal(err)
	}
	uid := uuid.New()
	unlock := make([]byte, 32)
	b, err := ak.Bundle(unlock, uid, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	x, e, w, err := srplogin.BundlePublicKeys(raw)
	if err != nil || x != b.X25519Public || e != b.Ed25519Public || w != b.XWingPublic {
		t.Fatalf("BundlePublicKeys(v2) = %q %q %q %v", x, e, w, err)
	}
	for name, bad := range map[string]string{
		"version 2 without xwing_private":  strings.Replace(string(raw), `,"xwing_private":"`+b.XWingPrivate+`"`, "", 1),
		"version 2 with an unknown member": strings.Replace(string(raw), "{", `{"extra":1,`, 1),
		"version 3":                        strings.Replace(string(raw), `"version":2`, `"version":3`, 1),
	} {
		if _, _, _, err := srplogin.BundlePublicKeys([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	reg := srplogin.Registration{UserID: uid.String(), Identity: "alice@example.com", KeyBundle: raw,
		X25519Public: x, Ed25519Public: e, XWingPublic: w}
	xw, _ := b.XWingPublicKey()
	rec := keyrecord.Record{UserID: uid, Identity: reg.Identity, X25519: ak.X25519.PublicKey().Bytes(),
		Ed25519: ak.Ed25519.Public().(ed25519.PublicKey), XWing: xw}
	if reg.KeyRecordSignature, err = keyrecord.Sign(rec, ak.Ed25519); err != nil {
		t.Fatal(err)
	}
	if err := srplogin.VerifyKeyRecord(reg); err != nil {
		t.Fatalf("a proper version 2 record: %v", err)
	}
	rec.XWing = nil
	v1sig, err := keyrecord.Sign(rec, ak.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	r := reg
	r.KeyRecordSignature = v1sig
	if err := srplogin.VerifyKeyRecord(r); !errors.Is(err, srplogin.ErrBadKeyRecord) {
		t.Fatalf("version 1 record for a version 2 bundle: %v, want ErrBadKeyRecord", err)
	}
}
