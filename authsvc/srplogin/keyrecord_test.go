package srplogin_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"testing"

	"github.com/google/uuid"

	"zsm.dev/zsm/authsvc/srplogin"
	"zsm.dev/zsm/authsvc/store"
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
		UserID: uid.String(), Identity: ident(t, "alice@example.com"), KeyBundle: []byte(`{}`),
		X25519Public: b64(ak.X25519.PublicKey().Bytes()), Ed25519Public: b64(ak.Ed25519.Public().(ed25519.PublicKey)),
	}
	rec, err := keyrecord.FromBase64(uid, reg.Identity.String(), reg.X25519Public, reg.Ed25519Public)
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
		"another identity":       func(r *srplogin.Registration) { r.Identity = ident(t, "mallory@example.com") },
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
	if err := srplogin.VerifyKeyRecord(srplogin.Registration{Identity: ident(t, "bob")}); err != nil {
		t.Errorf("a sign-up without keys: %v", err)
	}
}

// An account made before key records existed publishes its record late:
// only a signature over its own published keys is stored, once; an account
// without keys has nothing to publish.
func TestPublishKeyRecord(t *testing.T) {
	ctx := context.Background()
	svc, users, _ := newService(t)
	ak, err := keys.NewAccountKeys(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString
	uid := uuid.New()
	pk := store.PublishedKeys{UserID: uid.String(), Identity: "carol@example.com",
		X25519Public: b64(ak.X25519.PublicKey().Bytes()), Ed25519Public: b64(ak.Ed25519.Public().(ed25519.PublicKey))}
	users.keys[pk.UserID] = pk // published before records existed: no signature
	rec, err := keyrecord.FromBase64(uid, pk.Identity, pk.X25519Public, pk.Ed25519Public)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := keyrecord.Sign(rec, ak.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := keys.NewAccountKeys(rand.Reader)
	forged, _ := keyrecord.Sign(rec, other.Ed25519)

	for name, s := range map[string]string{"signed by another key": forged, "malformed": "AAAA", "empty": ""} {
		if err := svc.PublishKeyRecord(ctx, pk.UserID, s); !errors.Is(err, srplogin.ErrBadKeyRecord) {
			t.Errorf("%s: %v, want ErrBadKeyRecord", name, err)
		}
	}
	if users.keys[pk.UserID].KeyRecordSignature != "" {
		t.Fatal("a refused record was stored")
	}
	if err := svc.PublishKeyRecord(ctx, pk.UserID, sig); err != nil {
		t.Fatal(err)
	}
	if users.keys[pk.UserID].KeyRecordSignature != sig {
		t.Fatal("the record was not stored")
	}
	// Sent again (after every login): accepted, nothing changes.
	if err := svc.PublishKeyRecord(ctx, pk.UserID, sig); err != nil {
		t.Fatalf("the same record again: %v", err)
	}
	if err := svc.PublishKeyRecord(ctx, uuid.NewString(), sig); !errors.Is(err, srplogin.ErrNoPublicKeys) {
		t.Fatalf("an account without keys: %v, want ErrNoPublicKeys", err)
	}
}
