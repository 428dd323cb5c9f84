package srplogin_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
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
	reg := srplogin.Registration{UserID: uid.String(), Identity: ident(t, "alice@example.com"), KeyBundle: raw,
		X25519Public: x, Ed25519Public: e, XWingPublic: w}
	xw, _ := b.XWingPublicKey()
	rec := keyrecord.Record{UserID: uid, Identity: reg.Identity.String(), X25519: ak.X25519.PublicKey().Bytes(),
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

// UpgradeKeys adds an X-Wing key to a version 1 account and nothing else:
// a bundle that is not version 2, one that changes any of the five stored
// members, and a record not signed by the account's Ed25519 key are each
// refused with their own error and change nothing; the proper upgrade is
// stored once, sending it again is accepted, and a different version 2
// bundle afterwards is ErrKeysChanged.
func TestUpgradeKeys(t *testing.T) {
	ctx := context.Background()
	svc, users, _ := newService(t)
	ak, err := keys.NewAccountKeys(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	uid := uuid.New()
	unlock := make([]byte, 32)
	v1, err := ak.Bundle(unlock, uid, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	v1raw, _ := json.Marshal(v1)
	b64 := base64.StdEncoding.EncodeToString
	pk := store.PublishedKeys{UserID: uid.String(), Identity: "dave@example.com", KeyRecordVersion: 1,
		X25519Public: b64(ak.X25519.PublicKey().Bytes()), Ed25519Public: b64(ak.Ed25519.Public().(ed25519.PublicKey))}
	rec1, _ := keyrecord.FromBase64(uid, pk.Identity, pk.X25519Public, pk.Ed25519Public)
	pk.KeyRecordSignature, _ = keyrecord.Sign(rec1, ak.Ed25519)
	users.keys[pk.UserID], users.bundles[pk.UserID] = pk, v1raw

	v2, err := ak.UpgradeBundle(v1, uid, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	v2raw, _ := json.Marshal(v2)
	xw, _ := v2.XWingPublicKey()
	rec2 := keyrecord.Record{UserID: uid, Identity: pk.Identity, X25519: ak.X25519.PublicKey().Bytes(),
		Ed25519: ak.Ed25519.Public().(ed25519.PublicKey), XWing: xw}
	sig, err := keyrecord.Sign(rec2, ak.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := keys.NewAccountKeys(rand.Reader)
	forged, _ := keyrecord.Sign(rec2, other.Ed25519)
	otherV1, _ := other.Bundle(unlock, uid, rand.Reader)
	otherV2, _ := other.UpgradeBundle(otherV1, uid, rand.Reader)
	swapped := v2
	swapped.AccountKey = otherV2.AccountKey
	swappedRaw, _ := json.Marshal(swapped)

	for _, c := range []struct {
		name   string
		bundle json.RawMessage
		sig    string
		want   error
	}{
		{"a version 1 bundle", v1raw, sig, srplogin.ErrBadUpgrade},
		{"not a bundle", json.RawMessage(`{"version":2}`), sig, srplogin.ErrBadUpgrade},
		{"another account key", swappedRaw, sig, srplogin.ErrKeyChangeRefused},
		{"record signed by another key", v2raw, forged, srplogin.ErrBadKeyRecord},
	} {
		if err := svc.UpgradeKeys(ctx, pk.UserID, c.bundle, c.sig); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		if got := users.keys[pk.UserID]; got.KeyRecordVersion != 1 || got.XWingPublic != "" || !bytes.Equal(users.bundles[pk.UserID], v1raw) {
			t.Fatalf("%s: a refused upgrade changed the account", c.name)
		}
	}
	if !errors.Is(srplogin.ErrBadUpgrade, srplogin.ErrBadRequest) {
		t.Error("ErrBadUpgrade does not wrap ErrBadRequest (400)")
	}
	if err := svc.UpgradeKeys(ctx, pk.UserID, v2raw, sig); err != nil {
		t.Fatalf("the upgrade: %v", err)
	}
	if got := users.keys[pk.UserID]; got.KeyRecordVersion != 2 || got.KeyRecordSignature != sig || got.XWingPublic != v2.XWingPublic {
		t.Fatalf("stored record after the upgrade: %+v", got)
	}
	if err := svc.UpgradeKeys(ctx, pk.UserID, v2raw, sig); err != nil {
		t.Fatalf("the same upgrade again: %v", err)
	}
	again, _ := ak.UpgradeBundle(v1, uid, rand.Reader) // fresh envelopes: another bundle
	againRaw, _ := json.Marshal(again)
	if err := svc.UpgradeKeys(ctx, pk.UserID, againRaw, sig); !errors.Is(err, srplogin.ErrKeysChanged) {
		t.Fatalf("another version 2 bundle after the upgrade: %v, want ErrKeysChanged", err)
	}
	if err := svc.UpgradeKeys(ctx, uuid.NewString(), v2raw, sig); !errors.Is(err, srplogin.ErrNoPublicKeys) {
		t.Fatalf("an account without keys: %v, want ErrNoPublicKeys", err)
	}
}
