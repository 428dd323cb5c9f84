package srplogin_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
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
