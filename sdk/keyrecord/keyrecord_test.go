package keyrecord

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
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
