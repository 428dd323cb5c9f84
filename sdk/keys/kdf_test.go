package keys_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"zsm.dev/zsm/sdk/keys"
)

var floorSalt = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xa5}, 16))

func floor() keys.KDFParams {
	return keys.KDFParams{Alg: "argon2id", Salt: floorSalt, MemoryKiB: 65536, Iterations: 3, Parallelism: 4}
}

func TestKDFCheckBoundaries(t *testing.T) {
	with := func(f func(*keys.KDFParams)) keys.KDFParams {
		p := floor()
		f(&p)
		return p
	}
	b64 := base64.StdEncoding.EncodeToString
	salt16 := b64(bytes.Repeat([]byte{1}, 16))
	// Salt 16 bytes whose last character carries non-zero padding bits:
	// decodes under a lax decoder to the same bytes, must be refused.
	nonCanon := salt16[:len(salt16)-3] + "B=="
	tests := []struct {
		name string
		p    keys.KDFParams
		ok   bool
	}{
		{"floor", floor(), true},
		{"memory 65535", with(func(p *keys.KDFParams) { p.MemoryKiB = 65535 }), false},
		{"memory 65536", with(func(p *keys.KDFParams) { p.MemoryKiB = 65536 }), true},
		{"memory 0", with(func(p *keys.KDFParams) { p.MemoryKiB = 0 }), false},
		{"memory 8 KiB", with(func(p *keys.KDFParams) { p.MemoryKiB = 8 }), false},
		{"memory 4 GiB", with(func(p *keys.KDFParams) { p.MemoryKiB = 4 << 20 }), true},
		{"memory 4 GiB + 1 KiB", with(func(p *keys.KDFParams) { p.MemoryKiB = 4<<20 + 1 }), false},
		{"memory max uint32", with(func(p *keys.KDFParams) { p.MemoryKiB = ^uint32(0) }), false},
		{"t 2", with(func(p *keys.KDFParams) { p.Iterations = 2 }), false},
		{"t 3", with(func(p *keys.KDFParams) { p.Iterations = 3 }), true},
		{"t 0", with(func(p *keys.KDFParams) { p.Iterations = 0 }), false},
		{"t 64", with(func(p *keys.KDFParams) { p.Iterations = 64 }), true},
		{"t 65", with(func(p *keys.KDFParams) { p.Iterations = 65 }), false},
		{"p 3", with(func(p *keys.KDFParams) { p.Parallelism = 3 }), false},
		{"p 4", with(func(p *keys.KDFParams) { p.Parallelism = 4 }), true},
		{"p 0", with(func(p *keys.KDFParams) { p.Parallelism = 0 }), false},
		{"p 16", with(func(p *keys.KDFParams) { p.Parallelism = 16 }), true},
		{"p 17", with(func(p *keys.KDFParams) { p.Parallelism = 17 }), false},
		{"p 255", with(func(p *keys.KDFParams) { p.Parallelism = 255 }), false},
		{"salt 15 bytes", with(func(p *keys.KDFParams) { p.Salt = b64(make([]byte, 15)) }), false},
		{"salt 16 bytes", with(func(p *keys.KDFParams) { p.Salt = salt16 }), true},
		{"salt 17 bytes", with(func(p *keys.KDFParams) { p.Salt = b64(make([]byte, 17)) }), false},
		{"salt 0 bytes", with(func(p *keys.KDFParams) { p.Salt = "" }), false},
		{"salt 32 bytes", with(func(p *keys.KDFParams) { p.Salt = b64(make([]byte, 32)) }), false},
		{"salt without padding", with(func(p *keys.KDFParams) { p.Salt = strings.TrimRight(salt16, "=") }), false},
		{"salt base64url", with(func(p *keys.KDFParams) { p.Salt = base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 16)) }), false},
		{"salt non-zero padding bits", with(func(p *keys.KDFParams) { p.Salt = nonCanon }), false},
		{"salt with newline", with(func(p *keys.KDFParams) { p.Salt = salt16[:8] + "\n" + salt16[8:] }), false},
		{"salt with space", with(func(p *keys.KDFParams) { p.Salt = " " + salt16 }), false},
		{"salt hex", with(func(p *keys.KDFParams) { p.Salt = "01010101010101010101010101010101" }), false},
		{"alg argon2i", with(func(p *keys.KDFParams) { p.Alg = "argon2i" }), false},
		{"alg argon2d", with(func(p *keys.KDFParams) { p.Alg = "argon2d" }), false},
		{"alg Argon2id", with(func(p *keys.KDFParams) { p.Alg = "Argon2id" }), false},
		{"alg empty", with(func(p *keys.KDFParams) { p.Alg = "" }), false},
		{"alg pbkdf2", with(func(p *keys.KDFParams) { p.Alg = "pbkdf2-sha256" }), false},
		{"everything weak", keys.KDFParams{Alg: "argon2id", Salt: b64(nil), MemoryKiB: 8, Iterations: 1, Parallelism: 1}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.Check()
			if tc.ok && err != nil {
				t.Fatalf("Check = %v, want nil", err)
			}
			if !tc.ok && !errors.Is(err, keys.ErrWeakKDF) {
				t.Fatalf("Check = %v, want ErrWeakKDF", err)
			}
			// Derive refuses the same parameters before any work.
			if !tc.ok {
				_, err := keys.Derive("pw", keys.SecretKey{}, "alice@example.com", tc.p)
				if !errors.Is(err, keys.ErrWeakKDF) {
					t.Fatalf("Derive = %v, want ErrWeakKDF", err)
				}
			}
		})
	}
}

func TestDefaultKDF(t *testing.T) {
	p, err := keys.DefaultKDF(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Check(); err != nil {
		t.Fatal(err)
	}
	if p.MemoryKiB != 65536 || p.Iterations != 3 || p.Parallelism != 4 || p.Alg != "argon2id" {
		t.Fatalf("DefaultKDF = %+v, want the floor", p)
	}
	q, _ := keys.DefaultKDF(rand.Reader)
	if p.Salt == q.Salt || p.Equal(q) {
		t.Fatal("two DefaultKDF calls share a salt")
	}
	if !p.Equal(p) {
		t.Fatal("p is not Equal to itself")
	}
	r := p
	r.MemoryKiB++
	if p.Equal(r) {
		t.Fatal("Equal ignores memory")
	}
	if _, err := keys.DefaultKDF(bytes.NewReader(make([]byte, 15))); err == nil {
		t.Fatal("DefaultKDF succeeded with 15 bytes of randomness")
	}
}

const (
	pw = "correct horse battery staple"
	id = "alice@example.com"
)

var sk = keys.SecretKey{0: 1, 15: 2}

func derive(t *testing.T, password string, sk keys.SecretKey, identity string, p keys.KDFParams) keys.Derived {
	t.Helper()
	d, err := keys.Derive(password, sk, identity, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.SRPSecret) != 32 || len(d.UnlockKey) != 32 {
		t.Fatalf("Derive gave %d- and %d-byte keys", len(d.SRPSecret), len(d.UnlockKey))
	}
	return d
}

// TestDeriveDependsOnEveryInput changes one input at a time and checks that
// both outputs change, and that the two outputs never equal each other.
func TestDeriveDependsOnEveryInput(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Argon2id at the floor ten times")
	}
	base := derive(t, pw, sk, id, floor())
	if bytes.Equal(base.SRPSecret, base.UnlockKey) {
		t.Fatal("SRP secret == unlock key")
	}
	otherSK := sk
	otherSK[7] ^= 1
	otherSalt := floor()
	otherSalt.Salt = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xa4}, 16))
	mem, iter, par := floor(), floor(), floor()
	mem.MemoryKiB++
	iter.Iterations++
	par.Parallelism++
	variants := map[string]keys.Derived{
		"password":    derive(t, pw+"!", sk, id, floor()),
		"Secret Key":  derive(t, pw, otherSK, id, floor()),
		"identity":    derive(t, pw, sk, "alice@example.org", floor()),
		"salt":        derive(t, pw, sk, id, otherSalt),
		"memory":      derive(t, pw, sk, id, mem),
		"iterations":  derive(t, pw, sk, id, iter),
		"parallelism": derive(t, pw, sk, id, par),
	}
	for name, d := range variants {
		if bytes.Equal(d.SRPSecret, base.SRPSecret) {
			t.Errorf("%s: SRP secret unchanged", name)
		}
		if bytes.Equal(d.UnlockKey, base.UnlockKey) {
			t.Errorf("%s: unlock key unchanged", name)
		}
		if bytes.Equal(d.SRPSecret, d.UnlockKey) {
			t.Errorf("%s: SRP secret == unlock key", name)
		}
	}
	// Deterministic.
	again := derive(t, pw, sk, id, floor())
	if !bytes.Equal(again.SRPSecret, base.SRPSecret) || !bytes.Equal(again.UnlockKey, base.UnlockKey) {
		t.Fatal("Derive is not deterministic")
	}
}

func TestDeriveNFKC(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Argon2id at the floor")
	}
	// "é" precomposed (U+00E9) and decomposed (e + U+0301), and the
	// compatibility ligature "ﬁ" (U+FB01) vs "fi": one password each.
	pairs := [][2]string{
		{"caf\u00e9 ﬁle", "cafe\u0301 file"},
	}
	for _, p := range pairs {
		a := derive(t, p[0], sk, id, floor())
		b := derive(t, p[1], sk, id, floor())
		if !bytes.Equal(a.SRPSecret, b.SRPSecret) || !bytes.Equal(a.UnlockKey, b.UnlockKey) {
			t.Errorf("%q and %q derive different keys", p[0], p[1])
		}
	}
}

func TestDeriveRefusals(t *testing.T) {
	for _, tc := range []struct{ name, pw, id string }{
		{"empty password", "", id},
		{"invalid UTF-8 password", "pass\xffword", id},
		{"identity not normalized (case)", pw, "Alice@example.com"},
		{"identity not normalized (space)", pw, " alice@example.com"},
		{"identity empty", pw, ""},
	} {
		if _, err := keys.Derive(tc.pw, sk, tc.id, floor()); err == nil {
			t.Errorf("%s: Derive succeeded", tc.name)
		}
	}
}

func TestRedaction(t *testing.T) {
	d := keys.Derived{SRPSecret: bytes.Repeat([]byte{0xab}, 32), UnlockKey: bytes.Repeat([]byte{0xcd}, 32)}
	s := keys.SecretKey(bytes.Repeat([]byte{0xef}, 16))
	a, err := keys.NewAccountKeys(bytes.NewReader(bytes.Repeat([]byte{0x99}, 96)))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []any{d, &d, s, &s, a, *a} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d"} {
			out := fmt.Sprintf(verb, v)
			for _, leak := range []string{"ab", "AB", "cd", "CD", "ef", "EF", "99", "171", "239", "153"} {
				if strings.Contains(out, strings.Repeat(leak, 4)) {
					t.Errorf("Sprintf(%s, %T) = %q leaks key bytes", verb, v, out)
				}
			}
			if !strings.Contains(out, "REDACTED") {
				t.Errorf("Sprintf(%s, %T) = %q, want REDACTED", verb, v, out)
			}
		}
	}
	if !strings.HasPrefix(s.Text(), "ZSM1-") {
		t.Error("Text() is redacted too")
	}
}
