package grant_test

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"testing"

	"github.com/google/uuid"

	"zsm.dev/zsm/sdk/grant"
)

var (
	vaultID = uuid.MustParse("0190a3b4-0000-7000-8000-00000000000a")
	aliceID = uuid.MustParse("0190a3b4-0000-7000-8000-0000000000a1")
	bobID   = uuid.MustParse("0190a3b4-0000-7000-8000-0000000000b0")
)

func x25519(t *testing.T) *ecdh.PrivateKey {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestVaultKeyRoundTrip(t *testing.T) {
	bob := x25519(t)
	vk, err := grant.NewVaultKey(rand.Reader)
	if err != nil || len(vk) != 32 {
		t.Fatalf("NewVaultKey = %x, %v", vk, err)
	}
	sealed, err := grant.SealVaultKey(bob.PublicKey(), vaultID, bobID, vk)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(sealed)
	if len(raw) != 80 {
		t.Fatalf("sealed key is %d bytes, want 32 + 48", len(raw))
	}
	got, err := grant.OpenVaultKey(bob, vaultID, bobID, sealed)
	if err != nil || !bytes.Equal(got, vk) {
		t.Fatalf("OpenVaultKey = %x, %v", got, err)
	}
	again, _ := grant.SealVaultKey(bob.PublicKey(), vaultID, bobID, vk)
	if again == sealed {
		t.Fatal("sealing twice gives the same bytes (no fresh ephemeral key)")
	}
}

func TestVaultKeyBinding(t *testing.T) {
	bob := x25519(t)
	vk, _ := grant.NewVaultKey(rand.Reader)
	sealed, _ := grant.SealVaultKey(bob.PublicKey(), vaultID, bobID, vk)
	otherVault := vaultID
	otherVault[0] ^= 1
	cases := map[string]func() ([]byte, error){
		"another vault": func() ([]byte, error) { return grant.OpenVaultKey(bob, otherVault, bobID, sealed) },
		"another user":  func() ([]byte, error) { return grant.OpenVaultKey(bob, vaultID, aliceID, sealed) },
		"ids swapped":   func() ([]byte, error) { return grant.OpenVaultKey(bob, bobID, vaultID, sealed) },
		"another key":   func() ([]byte, error) { return grant.OpenVaultKey(x25519(t), vaultID, bobID, sealed) },
	}
	for name, open := range cases {
		if _, err := open(); !errors.Is(err, grant.ErrOpenVaultKey) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	raw, _ := base64.StdEncoding.DecodeString(sealed)
	for i := range raw {
		bad := bytes.Clone(raw)
		bad[i] ^= 0x80
		if _, err := grant.OpenVaultKey(bob, vaultID, bobID, base64.StdEncoding.EncodeToString(bad)); err == nil {
			t.Fatalf("byte %d flipped: opened", i)
		}
	}
	for name, s := range map[string]string{
		"empty":    "",
		"short":    base64.StdEncoding.EncodeToString(raw[:79]),
		"long":     base64.StdEncoding.EncodeToString(append(bytes.Clone(raw), 0)),
		"url":      base64.URLEncoding.EncodeToString(raw),
		"newline":  sealed[:10] + "\n" + sealed[10:],
		"not b64":  "!" + sealed[1:],
		"unpadded": base64.RawStdEncoding.EncodeToString(raw[:79]),
		"zero enc": base64.StdEncoding.EncodeToString(append(make([]byte, 32), raw[32:]...)),
	} {
		if s == sealed {
			continue // base64url equals base64 when no byte group maps to + or /
		}
		_, err := grant.OpenVaultKey(bob, vaultID, bobID, s)
		if err == nil {
			t.Errorf("%s: opened", name)
		}
	}
	if _, err := grant.SealVaultKey(bob.PublicKey(), vaultID, bobID, vk[:31]); err == nil {
		t.Error("sealed a 31-byte vault key")
	}
}

func TestMessageLayout(t *testing.T) {
	sealed := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{5}, 80))
	g := grant.Grant{VaultID: vaultID, UserID: bobID, GrantedBy: aliceID, Role: "editor", SealedKey: sealed}
	m, err := g.Message()
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(bytes.Repeat([]byte{5}, 80))
	var want []byte
	want = append(want, "zsm v1 grant\x00"...)
	want = append(want, vaultID[:]...)
	want = append(want, bobID[:]...)
	want = append(want, aliceID[:]...)
	want = append(want, 6)
	want = append(want, "editor"...)
	want = append(want, h[:]...)
	if !bytes.Equal(m, want) {
		t.Fatalf("Message = %x\nwant      %x", m, want)
	}
	for _, role := range []string{"", "Owner", "root", "owner ", "viewer\x00"} {
		g.Role = role
		if _, err := g.Message(); err == nil {
			t.Errorf("role %q accepted", role)
		}
	}
	g.Role = "owner"
	g.SealedKey = base64.StdEncoding.EncodeToString(make([]byte, 79))
	if _, err := g.Message(); !errors.Is(err, grant.ErrBadSealedKey) {
		t.Errorf("79-byte sealed key: err = %v", err)
	}
}

func TestSignVerify(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	bob := x25519(t)
	vk, _ := grant.NewVaultKey(rand.Reader)
	sealed, _ := grant.SealVaultKey(bob.PublicKey(), vaultID, bobID, vk)
	g := grant.Grant{VaultID: vaultID, UserID: bobID, GrantedBy: aliceID, Role: "viewer", SealedKey: sealed}
	sig, err := grant.Sign(g, priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := grant.Verify(g, sig, pub); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	otherSealed, _ := grant.SealVaultKey(bob.PublicKey(), vaultID, bobID, vk) // same key, fresh HPKE
	serverKey := x25519(t)
	substituted, _ := grant.SealVaultKey(serverKey.PublicKey(), vaultID, bobID, vk)
	flip := func(u uuid.UUID) uuid.UUID { u[9] ^= 1; return u }
	changes := map[string]func(*grant.Grant){
		"vault":                      func(g *grant.Grant) { g.VaultID = flip(g.VaultID) },
		"user":                       func(g *grant.Grant) { g.UserID = flip(g.UserID) },
		"granted by":                 func(g *grant.Grant) { g.GrantedBy = flip(g.GrantedBy) },
		"user <-> granted by":        func(g *grant.Grant) { g.UserID, g.GrantedBy = g.GrantedBy, g.UserID },
		"role viewer -> owner":       func(g *grant.Grant) { g.Role = "owner" },
		"role viewer -> editor":      func(g *grant.Grant) { g.Role = "editor" },
		"sealed key re-sealed":       func(g *grant.Grant) { g.SealedKey = otherSealed },
		"sealed key to server's key": func(g *grant.Grant) { g.SealedKey = substituted },
		"unknown role":               func(g *grant.Grant) { g.Role = "god" },
	}
	for name, change := range changes {
		h := g
		change(&h)
		if err := grant.Verify(h, sig, pub); !errors.Is(err, grant.ErrBadSignature) {
			t.Errorf("%s: Verify = %v, want ErrBadSignature", name, err)
		}
	}
	otherPub, _, _ := ed25519.GenerateKey(rand.Reader)
	if err := grant.Verify(g, sig, otherPub); !errors.Is(err, grant.ErrBadSignature) {
		t.Errorf("other signer: %v", err)
	}
	raw, _ := base64.StdEncoding.DecodeString(sig)
	for i := range raw {
		bad := bytes.Clone(raw)
		bad[i] ^= 1
		if err := grant.Verify(g, base64.StdEncoding.EncodeToString(bad), pub); !errors.Is(err, grant.ErrBadSignature) {
			t.Fatalf("signature byte %d flipped: %v", i, err)
		}
	}
	for name, s := range map[string]string{
		"empty": "", "short": base64.StdEncoding.EncodeToString(raw[:63]), "url": base64.URLEncoding.EncodeToString(raw),
		"newline": sig[:4] + "\n" + sig[4:],
	} {
		if s == sig {
			continue
		}
		if err := grant.Verify(g, s, pub); !errors.Is(err, grant.ErrBadSignature) {
			t.Errorf("%s signature: %v", name, err)
		}
	}
	if err := grant.Verify(g, sig, pub[:31]); !errors.Is(err, grant.ErrBadSignature) {
		t.Errorf("31-byte public key: %v", err)
	}
}
