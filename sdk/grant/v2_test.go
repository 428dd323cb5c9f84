package grant_test

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/google/uuid"

	"zsm.dev/zsm/sdk/envelope"
	"zsm.dev/zsm/sdk/grant"
)

func xwing(t testing.TB) hpke.PrivateKey {
	k, err := hpke.MLKEM768X25519().GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func dhkem(t testing.TB, k *ecdh.PrivateKey) hpke.PrivateKey {
	p, err := hpke.NewDHKEMPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRecipientKeyChoosesXWing(t *testing.T) {
	x := x25519(t)
	w := xwing(t)
	pk, err := grant.RecipientKey(x.PublicKey().Bytes(), w.PublicKey().Bytes())
	if err != nil || pk.KEM().ID() != uint16(grant.KEMXWing) {
		t.Fatalf("with an X-Wing key: %v", err)
	}
	pk, err = grant.RecipientKey(x.PublicKey().Bytes(), nil)
	if err != nil || pk.KEM().ID() != uint16(grant.KEMX25519) {
		t.Fatalf("without: %v", err)
	}
	if _, err := grant.RecipientKey(x.PublicKey().Bytes(), w.PublicKey().Bytes()[:1215]); err == nil {
		t.Error("a 1215-byte X-Wing key was accepted")
	}
	if _, err := grant.RecipientKey(x.PublicKey().Bytes()[:31], nil); err == nil {
		t.Error("a 31-byte X25519 key was accepted")
	}
}

func TestSealOpenV2(t *testing.T) {
	vk, _ := grant.NewVaultKey(rand.Reader)
	x := x25519(t)
	w := xwing(t)
	for _, c := range []struct {
		priv hpke.PrivateKey
		kem  grant.KEM
		size int
	}{
		{w, grant.KEMXWing, 1168},
		{dhkem(t, x), grant.KEMX25519, 80},
	} {
		sealed, kem, err := grant.SealVaultKeyV2(c.priv.PublicKey(), vaultID, bobID, 3, vk)
		if err != nil || kem != c.kem {
			t.Fatalf("%v: Seal = %v, %v", c.kem, kem, err)
		}
		raw, _ := base64.StdEncoding.DecodeString(sealed)
		if len(raw) != c.size {
			t.Fatalf("%v: sealed key of %d bytes, want %d", c.kem, len(raw), c.size)
		}
		got, err := grant.OpenVaultKeyV2(c.priv, vaultID, bobID, 3, sealed)
		if err != nil || !bytes.Equal(got, vk) {
			t.Fatalf("%v: Open = %v", c.kem, err)
		}
		// Bound to vault, user, generation and key.
		other := vaultID
		other[1] ^= 1
		for name, open := range map[string]func() ([]byte, error){
			"another vault":        func() ([]byte, error) { return grant.OpenVaultKeyV2(c.priv, other, bobID, 3, sealed) },
			"another user":         func() ([]byte, error) { return grant.OpenVaultKeyV2(c.priv, vaultID, aliceID, 3, sealed) },
			"generation 2":         func() ([]byte, error) { return grant.OpenVaultKeyV2(c.priv, vaultID, bobID, 2, sealed) },
			"generation 4":         func() ([]byte, error) { return grant.OpenVaultKeyV2(c.priv, vaultID, bobID, 4, sealed) },
			"another key, one KEM": func() ([]byte, error) { return grant.OpenVaultKeyV2(otherOf(t, c.kem), vaultID, bobID, 3, sealed) },
		} {
			if _, err := open(); !errors.Is(err, grant.ErrOpenVaultKey) {
				t.Errorf("%v, %s: err = %v", c.kem, name, err)
			}
		}
	}
	// A sealed key of one KEM presented to a key of the other has the
	// wrong size: malformed, never tried.
	sx, _, _ := grant.SealVaultKeyV2(dhkem(t, x).PublicKey(), vaultID, bobID, 1, vk)
	if _, err := grant.OpenVaultKeyV2(w, vaultID, bobID, 1, sx); !errors.Is(err, grant.ErrBadSealedKey) {
		t.Errorf("X25519 sealed key to an X-Wing key: %v", err)
	}
	sw, _, _ := grant.SealVaultKeyV2(w.PublicKey(), vaultID, bobID, 1, vk)
	if _, err := grant.OpenVaultKeyV2(dhkem(t, x), vaultID, bobID, 1, sw); !errors.Is(err, grant.ErrBadSealedKey) {
		t.Errorf("X-Wing sealed key to an X25519 key: %v", err)
	}
	// Version 1 and version 2 seals are domain-separated: a version 1
	// sealed key is not a version 2 key of generation 1, nor the other way.
	s1, _ := grant.SealVaultKey(x.PublicKey(), vaultID, bobID, vk)
	if _, err := grant.OpenVaultKeyV2(dhkem(t, x), vaultID, bobID, 1, s1); !errors.Is(err, grant.ErrOpenVaultKey) {
		t.Errorf("v1 sealed key opened as v2: %v", err)
	}
	if _, err := grant.OpenVaultKey(x, vaultID, bobID, sx); !errors.Is(err, grant.ErrOpenVaultKey) {
		t.Errorf("v2 sealed key opened as v1: %v", err)
	}
	// Every byte of an X-Wing sealed key matters.
	raw, _ := base64.StdEncoding.DecodeString(sw)
	for i := 0; i < len(raw); i += 7 {
		bad := bytes.Clone(raw)
		bad[i] ^= 0x10
		if _, err := grant.OpenVaultKeyV2(w, vaultID, bobID, 1, base64.StdEncoding.EncodeToString(bad)); !errors.Is(err, grant.ErrOpenVaultKey) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
	for name, s := range map[string]string{
		"empty": "", "1167 bytes": base64.StdEncoding.EncodeToString(raw[:1167]),
		"newline": sw[:8] + "\n" + sw[8:], "unpadded": base64.RawStdEncoding.EncodeToString(raw[:1166]),
	} {
		if _, err := grant.OpenVaultKeyV2(w, vaultID, bobID, 1, s); !errors.Is(err, grant.ErrBadSealedKey) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func otherOf(t *testing.T, kem grant.KEM) hpke.PrivateKey {
	if kem == grant.KEMXWing {
		return xwing(t)
	}
	return dhkem(t, x25519(t))
}

func TestSealV2Refuses(t *testing.T) {
	vk, _ := grant.NewVaultKey(rand.Reader)
	w := xwing(t)
	if _, _, err := grant.SealVaultKeyV2(w.PublicKey(), vaultID, bobID, 0, vk); err == nil {
		t.Error("sealed generation 0")
	}
	if _, _, err := grant.SealVaultKeyV2(w.PublicKey(), vaultID, bobID, 1, vk[:31]); err == nil {
		t.Error("sealed a 31-byte key")
	}
	if _, _, err := grant.SealVaultKeyV2(nil, vaultID, bobID, 1, vk); err == nil {
		t.Error("sealed to nil")
	}
	// Only the two KEMs of zsm: a P-256 or a pure ML-KEM key is refused.
	p256, _ := hpke.DHKEM(ecdh.P256()).GenerateKey()
	mlkem, _ := hpke.MLKEM768().GenerateKey()
	for _, k := range []hpke.PrivateKey{p256, mlkem} {
		if _, _, err := grant.SealVaultKeyV2(k.PublicKey(), vaultID, bobID, 1, vk); !errors.Is(err, grant.ErrUnknownKEM) {
			t.Errorf("KEM 0x%04x: seal err = %v", k.KEM().ID(), err)
		}
		if _, err := grant.OpenVaultKeyV2(k, vaultID, bobID, 1, "AAAA"); !errors.Is(err, grant.ErrUnknownKEM) {
			t.Errorf("KEM 0x%04x: open err = %v", k.KEM().ID(), err)
		}
	}
}

// TestCheckKEM: the server (or a careless granter) seals to the X25519 key
// of a member whose record has an X-Wing key: refused as a downgrade.
func TestCheckKEM(t *testing.T) {
	if err := grant.CheckKEM(grant.KEMXWing, true); err != nil {
		t.Error(err)
	}
	if err := grant.CheckKEM(grant.KEMX25519, false); err != nil {
		t.Error(err)
	}
	if err := grant.CheckKEM(grant.KEMX25519, true); !errors.Is(err, grant.ErrDowngrade) {
		t.Errorf("X25519 for a member with X-Wing: %v", err)
	}
	if err := grant.CheckKEM(grant.KEMXWing, false); !errors.Is(err, grant.ErrUnknownKEM) {
		t.Errorf("X-Wing for a member without: %v", err)
	}
	if err := grant.CheckKEM(0x0010, true); !errors.Is(err, grant.ErrUnknownKEM) {
		t.Errorf("P-256: %v", err)
	}
}

func TestGrantV2MessageLayout(t *testing.T) {
	sealedRaw := bytes.Repeat([]byte{9}, 1168)
	g := grant.GrantV2{VaultID: vaultID, UserID: bobID, GrantedBy: aliceID, Role: "viewer", Generation: 0x0102030405060708,
		KEM: grant.KEMXWing, SealedKey: base64.StdEncoding.EncodeToString(sealedRaw)}
	m, err := g.Message()
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(sealedRaw)
	var want []byte
	want = append(want, "zsm v2 grant\x00"...)
	want = append(want, vaultID[:]...)
	want = append(want, bobID[:]...)
	want = append(want, aliceID[:]...)
	want = append(want, 6)
	want = append(want, "viewer"...)
	want = append(want, 1, 2, 3, 4, 5, 6, 7, 8)
	want = append(want, 0x64, 0x7a)
	want = append(want, h[:]...)
	if !bytes.Equal(m, want) {
		t.Fatalf("Message = %x\nwant      %x", m, want)
	}
	bad := map[string]func(*grant.GrantV2){
		"generation 0":           func(g *grant.GrantV2) { g.Generation = 0 },
		"unknown KEM":            func(g *grant.GrantV2) { g.KEM = 0x0010 },
		"X25519 size for X-Wing": func(g *grant.GrantV2) { g.SealedKey = base64.StdEncoding.EncodeToString(make([]byte, 80)) },
		"X-Wing size for X25519": func(g *grant.GrantV2) { g.KEM = grant.KEMX25519 },
		"unknown role":           func(g *grant.GrantV2) { g.Role = "root" },
	}
	for name, edit := range bad {
		c := g
		edit(&c)
		if _, err := c.Message(); err == nil {
			t.Errorf("%s: encoded", name)
		}
	}
}

func TestSignVerifyV2(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	w := xwing(t)
	vk, _ := grant.NewVaultKey(rand.Reader)
	sealed, kem, _ := grant.SealVaultKeyV2(w.PublicKey(), vaultID, bobID, 2, vk)
	g := grant.GrantV2{VaultID: vaultID, UserID: bobID, GrantedBy: aliceID, Role: "editor", Generation: 2, KEM: kem, SealedKey: sealed}
	sig, err := grant.SignV2(g, priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := grant.VerifyV2(g, sig, pub); err != nil {
		t.Fatal(err)
	}
	resealed, _, _ := grant.SealVaultKeyV2(w.PublicKey(), vaultID, bobID, 2, vk)
	server := xwing(t)
	toServer, _, _ := grant.SealVaultKeyV2(server.PublicKey(), vaultID, bobID, 2, vk)
	x := x25519(t)
	downgraded, _, _ := grant.SealVaultKeyV2(dhkem(t, x).PublicKey(), vaultID, bobID, 2, vk)
	flip := func(u uuid.UUID) uuid.UUID { u[9] ^= 1; return u }
	for name, change := range map[string]func(*grant.GrantV2){
		"vault":                           func(g *grant.GrantV2) { g.VaultID = flip(g.VaultID) },
		"user":                            func(g *grant.GrantV2) { g.UserID = flip(g.UserID) },
		"granted by":                      func(g *grant.GrantV2) { g.GrantedBy = flip(g.GrantedBy) },
		"role editor -> admin":            func(g *grant.GrantV2) { g.Role = "admin" },
		"generation 2 -> 3":               func(g *grant.GrantV2) { g.Generation = 3 },
		"generation 2 -> 1":               func(g *grant.GrantV2) { g.Generation = 1 },
		"re-sealed":                       func(g *grant.GrantV2) { g.SealedKey = resealed },
		"sealed to the server's key":      func(g *grant.GrantV2) { g.SealedKey = toServer },
		"downgraded to X25519":            func(g *grant.GrantV2) { g.KEM, g.SealedKey = grant.KEMX25519, downgraded },
		"KEM relabelled, same ciphertext": func(g *grant.GrantV2) { g.KEM = grant.KEMX25519 },
	} {
		c := g
		change(&c)
		if err := grant.VerifyV2(c, sig, pub); !errors.Is(err, grant.ErrBadSignature) {
			t.Errorf("%s: VerifyV2 = %v", name, err)
		}
	}
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	if err := grant.VerifyV2(g, sig, other); !errors.Is(err, grant.ErrBadSignature) {
		t.Errorf("another signer: %v", err)
	}
	// A version 1 signature over the same fields is not a version 2 grant.
	x1, _ := grant.SealVaultKey(x.PublicKey(), vaultID, bobID, vk)
	g1 := grant.Grant{VaultID: vaultID, UserID: bobID, GrantedBy: aliceID, Role: "editor", SealedKey: x1}
	sig1, _ := grant.Sign(g1, priv)
	g2 := grant.GrantV2{VaultID: vaultID, UserID: bobID, GrantedBy: aliceID, Role: "editor", Generation: 1, KEM: grant.KEMX25519, SealedKey: x1}
	if err := grant.VerifyV2(g2, sig1, pub); !errors.Is(err, grant.ErrBadSignature) {
		t.Errorf("v1 signature as v2: %v", err)
	}
	for name, s := range map[string]string{"empty": "", "unpadded": sig[:len(sig)-2], "newline": sig[:4] + "\n" + sig[4:]} {
		if err := grant.VerifyV2(g, s, pub); !errors.Is(err, grant.ErrBadSignature) {
			t.Errorf("%s signature: %v", name, err)
		}
	}
}

func TestKeyCommitment(t *testing.T) {
	vk, _ := grant.NewVaultKey(rand.Reader)
	c, err := grant.KeyCommitment(vk, vaultID, 5)
	if err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, vk)
	m.Write([]byte("zsm v1 vault-key-commitment\x00"))
	m.Write(vaultID[:])
	m.Write(binary.BigEndian.AppendUint64(nil, 5))
	if !bytes.Equal(c[:], m.Sum(nil)) {
		t.Fatal("commitment layout differs")
	}
	if err := grant.CheckKeyCommitment(vk, vaultID, 5, c); err != nil {
		t.Fatal(err)
	}
	other, _ := grant.NewVaultKey(rand.Reader)
	otherVault := vaultID
	otherVault[0] ^= 1
	for name, err := range map[string]error{
		"a key the server chose": grant.CheckKeyCommitment(other, vaultID, 5, c),
		"generation 4":           grant.CheckKeyCommitment(vk, vaultID, 4, c),
		"another vault":          grant.CheckKeyCommitment(vk, otherVault, 5, c),
		"zero commitment":        grant.CheckKeyCommitment(vk, vaultID, 5, [32]byte{}),
		"31-byte key":            grant.CheckKeyCommitment(vk[:31], vaultID, 5, c),
	} {
		if !errors.Is(err, grant.ErrKeyCommitment) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestChain: generation g's key is wrapped under g+1's; a member holding
// the newest key walks back to every older one, each checked against its
// commitment. A member removed at g+1 (holding only g's key and every row
// of the chain) cannot reach g+1.
func TestChain(t *testing.T) {
	const n = 4
	ks := map[uint64][]byte{}
	ch := grant.Chain{VaultID: vaultID, Wrapped: map[uint64]string{}, Commitments: map[uint64][32]byte{}}
	for g := uint64(1); g <= n; g++ {
		ks[g], _ = grant.NewVaultKey(rand.Reader)
		ch.Commitments[g], _ = grant.KeyCommitment(ks[g], vaultID, g)
		if g > 1 {
			w, err := grant.WrapPrevious(ks[g], vaultID, g-1, ks[g-1], rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			ch.Wrapped[g-1] = w
		}
	}
	got, err := ch.Keys(n, ks[n], 1)
	if err != nil || len(got) != n {
		t.Fatalf("Keys = %d keys, %v", len(got), err)
	}
	for g := uint64(1); g <= n; g++ {
		if !bytes.Equal(got[g], ks[g]) {
			t.Fatalf("generation %d differs", g)
		}
	}
	if got, err := ch.Keys(n, ks[n], 3); err != nil || len(got) != 2 {
		t.Fatalf("Keys down to 3: %d, %v", len(got), err)
	}
	// The removed member holds generation 2 and claims it is the newest.
	if _, err := ch.Keys(3, ks[2], 1); !errors.Is(err, grant.ErrKeyCommitment) {
		t.Errorf("older key as newest: %v", err)
	}
	// The server drops a link, or moves one to another generation, or
	// substitutes one sealed under a key it knows.
	drop := ch
	drop.Wrapped = map[uint64]string{1: ch.Wrapped[1], 3: ch.Wrapped[3]}
	if _, err := drop.Keys(n, ks[n], 1); !errors.Is(err, grant.ErrChain) {
		t.Errorf("missing link: %v", err)
	}
	moved := ch
	moved.Wrapped = map[uint64]string{1: ch.Wrapped[2], 2: ch.Wrapped[2], 3: ch.Wrapped[3]}
	if _, err := moved.Keys(n, ks[n], 1); !errors.Is(err, grant.ErrChain) || !errors.Is(err, envelope.ErrTampered) {
		t.Errorf("link moved to another generation: %v", err)
	}
	// A server that knew key 3 (it cannot, but say a removed member
	// colludes) wraps a key of its choice as generation 2: the commitment
	// refuses it.
	evil, _ := grant.NewVaultKey(rand.Reader)
	forged := ch
	forged.Wrapped = map[uint64]string{1: ch.Wrapped[1], 3: ch.Wrapped[3]}
	forged.Wrapped[2], _ = grant.WrapPrevious(ks[3], vaultID, 2, evil, rand.Reader)
	if _, err := forged.Keys(n, ks[n], 1); !errors.Is(err, grant.ErrKeyCommitment) {
		t.Errorf("substituted previous key: %v", err)
	}
	if _, err := ch.Keys(n, ks[n], 0); !errors.Is(err, grant.ErrChain) {
		t.Errorf("oldest 0: %v", err)
	}
	if _, err := grant.UnwrapPrevious(ks[2], vaultID, 1, ch.Wrapped[1]); err != nil {
		t.Error(err)
	}
	if _, err := grant.WrapPrevious(ks[2], vaultID, 0, ks[1], rand.Reader); err == nil {
		t.Error("wrapped generation 0")
	}
}

func BenchmarkSealXWing(b *testing.B) {
	w := xwing(b)
	vk, _ := grant.NewVaultKey(rand.Reader)
	for b.Loop() {
		if _, _, err := grant.SealVaultKeyV2(w.PublicKey(), vaultID, bobID, 1, vk); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenXWing(b *testing.B) {
	w := xwing(b)
	vk, _ := grant.NewVaultKey(rand.Reader)
	s, _, _ := grant.SealVaultKeyV2(w.PublicKey(), vaultID, bobID, 1, vk)
	for b.Loop() {
		if _, err := grant.OpenVaultKeyV2(w, vaultID, bobID, 1, s); err != nil {
			b.Fatal(err)
		}
	}
}
